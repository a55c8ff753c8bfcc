"""Agreement between two masks: Dice, IoU, HD95, mean surface distance, area difference."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient; 1.0 when both masks are empty."""
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union; 1.0 when both masks are empty."""
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union


def soft_dice(label: np.ndarray, prob: np.ndarray) -> float:
    """Dice of a binary label with a probability map (1.0 when both are empty)."""
    total = float(label.sum()) + float(prob.sum())
    return 1.0 if total < 1e-6 else 2.0 * float((label * prob).sum()) / total


def _crop(a: np.ndarray, b: np.ndarray, margin: int = 2):
    rows = np.flatnonzero(a.any(1) | b.any(1))
    cols = np.flatnonzero(a.any(0) | b.any(0))
    r0, r1 = max(rows[0] - margin, 0), rows[-1] + margin + 1
    c0, c1 = max(cols[0] - margin, 0), cols[-1] + margin + 1
    return a[r0:r1, c0:c1], b[r0:r1, c0:c1]


def surface_distances(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """Distances from each boundary pixel of ``a`` to the boundary of ``b`` and back (both directions)."""
    a, b = _crop(np.asarray(a, bool), np.asarray(b, bool))
    a_edge = a & ~ndi.binary_erosion(a, border_value=0)
    b_edge = b & ~ndi.binary_erosion(b, border_value=0)
    to_b = ndi.distance_transform_edt(~b_edge, sampling=spacing)
    to_a = ndi.distance_transform_edt(~a_edge, sampling=spacing)
    return np.concatenate([to_b[a_edge], to_a[b_edge]])


def hd95_and_msd(
    a: np.ndarray, b: np.ndarray, spacing: tuple[float, float] | None = None
) -> tuple[float, float]:
    """95th-percentile Hausdorff distance and mean surface distance.

    In the units of ``spacing`` (mm), or pixels without it. Both empty: 0;
    one empty: NaN (no boundary to measure against).
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    if not a.any() and not b.any():
        return 0.0, 0.0
    if not a.any() or not b.any():
        return float("nan"), float("nan")
    distances = surface_distances(a, b, spacing or (1.0, 1.0))
    return float(np.percentile(distances, 95)), float(distances.mean())


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for the ``positive`` items (Mann-Whitney, ties
    counted half); NaN without both classes."""
    from scipy.stats import rankdata

    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at(scores: np.ndarray, positive: np.ndarray, share: float = 0.1) -> float:
    """Share of positives among the ``share`` highest scores."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    k = max(1, int(round(share * len(scores))))
    return float(positive[np.argsort(-scores, kind="mergesort")[:k]].mean())
