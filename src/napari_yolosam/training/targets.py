"""Training targets whose extent the image sets: a noise-robust step before training.

Semi-automatic labels put scar where the annotator's threshold did, so their extent is
as wrong as the threshold; where a label has scar, the myocardium's enhanced regions (the
n-SD rule with the most sensitive usual n) are better evidence of how far it reaches.
:func:`extent_targets` gives each label's scar the enhanced regions it touches, as the
proposals' extent rule does (``proposals.core.enhanced_extent``): SAM then learns scar
of the image's extent from labels that only say where it is.
"""

from __future__ import annotations

import numpy as np

from ..semiauto import ENHANCED_N, nsd, touched_regions
from ..stack import Stack


def extent_scar(
    image: np.ndarray,
    scar: np.ndarray,
    myocardium: np.ndarray,
    blood_pool: np.ndarray | None = None,
    n: float = ENHANCED_N,
) -> np.ndarray | None:
    """One slice's scar with its extent from the enhanced regions it touches; ``None``
    where the slice gives no evidence (no scar, no myocardium, or nothing enhanced)."""
    if not scar.any() or not myocardium.any():
        return None
    enhanced = nsd(image, myocardium | scar, n, blood_pool=blood_pool).mask
    if not enhanced.any():
        return None
    return touched_regions(scar, enhanced)


def extent_targets(stack: Stack, n: float = ENHANCED_N) -> tuple[Stack, int]:
    """``stack`` with each slice's scar given the extent of the enhanced regions it touches
    (only scar changes: :meth:`LabelSpec.replace_scar`), and how many slices changed.
    Slices without scar, myocardium or enhanced tissue keep their labels."""
    spec = stack.spec
    if stack.labels is None or not spec.has_myocardium:
        return stack, 0
    labels = stack.labels.copy()
    changed = 0
    for i, image in enumerate(stack.images):
        scar = extent_scar(
            image,
            spec.scar_mask(labels[i]),
            spec.myocardium_mask(labels[i]),
            spec.blood_pool_mask(labels[i]),
            n,
        )
        if scar is None:
            continue
        new, _ = spec.replace_scar(labels[i], scar)
        changed += int(not np.array_equal(new, labels[i]))
        labels[i] = new
    return stack.with_labels(labels), changed
