"""Scar regions: the parts of a scar mask a person would put one box round.

One definition serves every place a box is drawn round scar: SAM's training
targets, the detector's training boxes and the label prompts of proposals,
so that the boxes SAM sees at inference are the boxes it learnt from.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Scar regions at a 256-pixel slice: components closer than ``2 * REGION_GAP`` pixels
#: are one region, and regions under ``MIN_REGION`` pixels are specks (scaled with the
#: slice's size).
REGION_GAP = 2
MIN_REGION = 8


def scar_regions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """The scar regions a person would box: ``(labels, count)``, regions numbered ``1..count``.

    Thresholded labels break one scar into fragments a pixel or two apart and
    add specks; a box per fragment or speck gives the detector and SAM
    targets that change from slice to slice. 8-connected components within
    ``2 * REGION_GAP`` pixels of each other form one region (its pixels are
    the mask's own, never the gap), and regions under ``MIN_REGION`` pixels
    are dropped. Both scale with the slice's size (256 pixels = 1).
    """
    mask = np.asarray(mask, bool)
    unit = max(mask.shape) / 256
    gap = max(1, int(round(REGION_GAP * unit)))
    grouped = ndi.binary_dilation(mask, structure=np.ones((3, 3)), iterations=gap)
    labels, count = ndi.label(grouped, structure=np.ones((3, 3)))
    labels[~mask] = 0
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    keep = sizes >= max(1, int(round(MIN_REGION * unit**2)))
    keep[0] = False
    if not keep[1:].all():
        number = np.zeros(count + 1, np.int32)
        number[keep] = np.arange(1, int(keep.sum()) + 1)
        labels, count = number[labels], int(keep.sum())
    return labels, count
