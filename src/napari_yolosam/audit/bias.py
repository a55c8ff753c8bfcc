"""Data-set threshold bias: the probability level at which proposals match the labels' size.

Semi-automatic labels are often uniformly too large (2SD) or too small
(5SD, FWHM). Rather than flag every slice for it, the audit finds the
threshold ``t*`` on the proposals' probability maps at which the median
signed area difference between labels and proposals is zero, reports it
once, and compares each label with the proposal taken at ``t*``, provided
the shift explains the difference (the median overlap grows at ``t*``).
"""

from __future__ import annotations

import numpy as np

from .metrics import dice

THRESHOLDS = np.round(np.linspace(0.02, 0.98, 49), 3)


def relative_difference(label_area: np.ndarray, proposal_area: np.ndarray) -> np.ndarray:
    """``(label - proposal) / mean(label, proposal)`` per slice (NaN where both are 0)."""
    mean = (label_area + proposal_area) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mean > 0, (label_area - proposal_area) / mean, np.nan)


def area_curves(labels: list[np.ndarray], probs: list[np.ndarray]) -> np.ndarray:
    """``(N, T)`` proposal areas at each threshold of :data:`THRESHOLDS`."""
    out = np.zeros((len(probs), len(THRESHOLDS)))
    for i, p in enumerate(probs):
        values = np.sort(p[p > THRESHOLDS[0]].ravel())
        out[i] = len(values) - np.searchsorted(values, THRESHOLDS, side="right")
    return out


def fit_threshold(
    label_areas: np.ndarray, curves: np.ndarray, usable: np.ndarray
) -> tuple[float, float]:
    """``t*`` and the median relative difference at 0.5, over ``usable`` slices (both non-empty)."""
    if not usable.any():
        return 0.5, float("nan")
    at_half = curves[usable, int(np.argmin(np.abs(THRESHOLDS - 0.5)))]
    bias = float(np.nanmedian(relative_difference(label_areas[usable], at_half)))
    medians = np.array(
        [
            np.nanmedian(relative_difference(label_areas[usable], curves[usable, j]))
            for j in range(len(THRESHOLDS))
        ]
    )
    finite = np.isfinite(medians)
    if not finite.any():
        return 0.5, bias
    j = int(np.argmin(np.where(finite, np.abs(medians), np.inf)))
    return float(THRESHOLDS[j]), bias


def explains_bias(
    labels: list[np.ndarray], probs: list[np.ndarray], usable: np.ndarray, threshold: float
) -> tuple[float, float]:
    """Median Dice of labels and proposals over ``usable`` slices, at 0.5 and at ``threshold``.

    A threshold bias is a size difference that a threshold shift removes: the
    overlap grows when the proposals are taken at ``t*``. If it does not (the
    masks disagree in place, not only in size), the shift would only hide the
    difference, and the audit keeps the proposals as they are.
    """
    at = {
        t: float(np.median([dice(labels[i], probs[i] > t) for i in np.flatnonzero(usable)]))
        if usable.any()
        else float("nan")
        for t in (0.5, threshold)
    }
    return at[0.5], at[threshold]


def shift_probability(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Probabilities re-centred so that ``threshold`` maps to 0.5 (a logit shift)."""
    if abs(threshold - 0.5) < 1e-9:
        return prob
    p = np.clip(prob, 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p)) - np.log(threshold / (1 - threshold))
    return (1 / (1 + np.exp(-logit))).astype(np.float32)
