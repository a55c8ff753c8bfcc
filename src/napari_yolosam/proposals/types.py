"""What a proposal is: per-slice masks, probabilities and prompts with their sources.

Light (numpy and scipy only), so that the audit, the proposals' files and
the package root use it without loading a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..io.yolo_boxes import regions_to_boxes
from ..regions import scar_regions
from ..semiauto import ENHANCED_N

SOURCES = ("detector", "label", "neighbour", "lv", "intensity", "head", "user")
#: Sources of scar boxes from the detector (its own, or carried from a neighbouring slice).
SCAR_BOX_SOURCES = ("detector", "neighbour")
#: Every prompt the detector drove: scar boxes and the LV box (``lv_scar``).
DETECTOR_SOURCES = (*SCAR_BOX_SOURCES, "lv")
#: Prompts that do not come from the label being judged: the detector's, the image's and
#: the scar the segmenter's anatomy head reads (``head``).
INDEPENDENT_SOURCES = (*DETECTOR_SOURCES, "intensity", "head")
#: n of the n-SD rule that finds the enhanced regions :func:`intensity_boxes` boxes.
INTENSITY_N = ENHANCED_N


@dataclass
class SliceProposal:
    """What the models propose for one slice (arrays at the slice's padded stack shape).

    Attributes
    ----------
    mask
        Scar mask: union of the masks of all prompts.
    probability
        Pixelwise max over prompts of sigmoid(logits), 0..1.
    boxes, scores, iou, sources
        Per prompt: ``x0 y0 x1 y1`` box, detector confidence (NaN for
        label/user prompts), SAM's predicted IoU, prompt source.
    prompt_masks
        ``(K, H, W)`` the mask of each prompt.
    status
        ``ok`` (detector boxes found), ``no_detection`` (the detector found
        nothing; the user can prompt by hand), ``no_detector``.
    myocardium
        Proposed myocardium (from the detector's LV box), or ``None``.
    view
        The window SAM looked at (:meth:`napari_yolosam.view.View.to_dict`), or ``None``
        for the whole slice.
    """

    mask: np.ndarray
    probability: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    iou: np.ndarray
    sources: list[str]
    prompt_masks: np.ndarray
    status: str = "ok"
    myocardium: np.ndarray | None = None
    view: dict | None = None

    @classmethod
    def empty(cls, shape: tuple[int, int], status: str = "not_proposed") -> SliceProposal:
        """A slice with no prompt and no mask."""
        zero = np.zeros(shape, np.float32)
        return cls(
            zero > 0,
            zero,
            np.zeros((0, 4), np.float32),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            [],
            np.zeros((0, *shape), bool),
            status,
        )

    @classmethod
    def of_mask(
        cls, mask: np.ndarray, probability: np.ndarray | None = None, source: str = "label"
    ) -> SliceProposal:
        """A slice proposed by one prompt whose mask is ``mask`` (probability: the mask's own
        0/1, unless given); for proposals made outside SAM (benchmarks, tests)."""
        mask = np.asarray(mask, bool)
        prob = mask.astype(np.float32) if probability is None else probability
        return cls(
            mask,
            np.asarray(prob, np.float32),
            np.zeros((1, 4), np.float32),
            np.array([np.nan], np.float32),
            np.ones(1, np.float32),
            [source],
            mask[None],
        )

    def from_source(self, *sources: str) -> np.ndarray:
        """Union of the masks of prompts from the given sources."""
        keep = [i for i, s in enumerate(self.sources) if s in sources]
        if not keep:
            return np.zeros(self.mask.shape, bool)
        if len(self.prompt_masks) != len(
            self.sources
        ):  # loaded from files: only the union is known
            return self.mask.copy()
        return self.prompt_masks[keep].any(axis=0)

    @property
    def detector_count(self) -> int:
        """Number of detector (and carried neighbour) boxes."""
        return sum(s in SCAR_BOX_SOURCES for s in self.sources)


@dataclass
class Proposals:
    """Proposals for every slice of a stack, with the settings that made them."""

    names: list[str]
    slices: list[SliceProposal]
    settings: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.slices)

    def masks(self) -> np.ndarray:
        """``(N, H, W)`` scar masks."""
        return np.stack([s.mask for s in self.slices])

    def probabilities(self) -> np.ndarray:
        """``(N, H, W)`` probability maps (float32)."""
        return np.stack([s.probability for s in self.slices])

    def myocardium(self) -> np.ndarray | None:
        """``(N, H, W)`` proposed myocardium, or ``None`` when no slice has one."""
        if all(s.myocardium is None for s in self.slices):
            return None
        return np.stack(
            [
                s.myocardium if s.myocardium is not None else np.zeros(s.mask.shape, bool)
                for s in self.slices
            ]
        )


def label_boxes(scar: np.ndarray, margin: int = 0) -> np.ndarray:
    """One box per scar region of a label (:func:`~napari_yolosam.regions.scar_regions`,
    the boxes SAM was trained on: fragments a pixel or two apart are one region, specks
    get none), widened by ``margin`` pixels."""
    boxes = regions_to_boxes(scar_regions(scar)[0]).astype(float)
    if len(boxes):
        h, w = scar.shape
        boxes = boxes + np.array([-margin, -margin, margin, margin], dtype=float)
        boxes = np.clip(boxes, 0, [w, h, w, h])
    return boxes.astype(np.float32)


def _pad(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape[:-2] + tuple(shape[-2:]), dtype=array.dtype)
    out[..., : array.shape[-2], : array.shape[-1]] = array
    return out
