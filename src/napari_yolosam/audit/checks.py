"""Checks that need no model, or only the anatomy: outside myocardium, enhancement, specks,
holes, and consistency between neighbouring slices."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..semiauto import remote_region

EIGHT = np.ones((3, 3), bool)


def outside_fraction(scar: np.ndarray, myocardium: np.ndarray | None) -> float:
    """Share of labelled scar more than one pixel outside the myocardium (NaN without myocardium)."""
    if myocardium is None or not myocardium.any() or not scar.any():
        return float("nan") if myocardium is None or not myocardium.any() else 0.0
    allowed = ndi.binary_dilation(myocardium, structure=EIGHT)
    return float((scar & ~allowed).sum() / scar.sum())


def wall_region(myocardium: np.ndarray, scar: np.ndarray) -> np.ndarray:
    """The myocardial wall a label's scar may lie in: the parts of its myocardium (which includes
    the scar) connected to healthy myocardium. Scar blobs detached from the wall fall outside."""
    healthy = myocardium & ~scar
    if not healthy.any():
        return myocardium
    labels, _ = ndi.label(myocardium, structure=EIGHT)
    keep = np.unique(labels[healthy])
    return np.isin(labels, keep[keep > 0])


def enhancement(
    image: np.ndarray,
    scar: np.ndarray,
    myocardium: np.ndarray | None,
    blood_pool: np.ndarray | None = None,
) -> float:
    """How many remote SDs the labelled scar's mean lies above the remote mean (NaN if unknown)."""
    if myocardium is None or not scar.any() or not myocardium.any():
        return float("nan")
    healthy = myocardium & ~ndi.binary_dilation(scar, iterations=2)
    if healthy.sum() < 10:
        return float("nan")
    remote = remote_region(image, healthy, blood_pool)
    values = image[remote] if remote.sum() >= 5 else image[healthy]
    sd = float(values.std()) or 1e-6
    return float((image[scar].mean() - values.mean()) / sd)


def specks_and_holes(scar: np.ndarray, min_size: int) -> tuple[int, int]:
    """Number of components smaller than ``min_size`` and number of enclosed hole pixels."""
    if not scar.any():
        return 0, 0
    labels, count = ndi.label(scar, structure=EIGHT)
    sizes = np.bincount(labels.ravel())[1:]
    holes = int((ndi.binary_fill_holes(scar) & ~scar).sum())
    return int((sizes < min_size).sum()), holes


def inconsistent_slices(areas: np.ndarray, cases: list[str], min_area: float) -> list[str]:
    """Per slice: ``appears``/``vanishes`` when scar is there (absent) while both neighbours of the
    same case lack (have) it, else ``""``. Slices are in stack order within each case."""
    out = [""] * len(areas)
    for i in range(len(areas)):
        prev_ok = i > 0 and cases[i - 1] == cases[i]
        next_ok = i + 1 < len(areas) and cases[i + 1] == cases[i]
        if not (prev_ok and next_ok):
            continue
        neighbours = (areas[i - 1], areas[i + 1])
        if areas[i] >= min_area and max(neighbours) == 0:
            out[i] = "appears"
        elif areas[i] == 0 and min(neighbours) >= min_area:
            out[i] = "vanishes"
    return out
