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
    rows, cols = np.flatnonzero(myocardium.any(1)), np.flatnonzero(myocardium.any(0))
    window = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    labels, count = ndi.label(myocardium[window], structure=EIGHT)
    keep = np.zeros(count + 1, bool)
    keep[labels[healthy[window]]] = True
    keep[0] = False
    wall = np.zeros_like(myocardium, dtype=bool)
    wall[window] = keep[labels]
    return wall


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


def neighbours_with_scar(
    areas: np.ndarray, cases: list[str], min_area: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per slice: how many neighbours of the same case it has (0-2), and how many of them carry
    at least ``min_area`` of scar. Slices are in stack order within each case."""
    count = np.zeros(len(areas), int)
    with_scar = np.zeros(len(areas), int)
    for i in range(len(areas)):
        for j in (i - 1, i + 1):
            if 0 <= j < len(areas) and cases[j] == cases[i]:
                count[i] += 1
                with_scar[i] += int(areas[j] >= min_area)
    return count, with_scar


def inconsistent_slices(areas: np.ndarray, cases: list[str], min_area: float) -> list[str]:
    """Per slice: ``appears``/``vanishes`` when scar is there (absent) while both neighbours of the
    same case lack (have) it, else ``""``. Slices are in stack order within each case."""
    areas = np.asarray(areas, float)
    count, with_scar = neighbours_with_scar(areas, cases, min_area)
    _, with_any = neighbours_with_scar(areas, cases, np.nextafter(0.0, 1.0))
    both = count == 2
    appears = both & (areas >= min_area) & (with_any == 0)
    vanishes = both & (areas == 0) & (with_scar == 2)
    return [
        "appears" if a else "vanishes" if v else "" for a, v in zip(appears, vanishes, strict=True)
    ]


def continuity(
    areas: np.ndarray, cases: list[str], min_area: float
) -> tuple[np.ndarray, dict, np.ndarray]:
    """How much less likely a slice's label is made by its neighbours, learned from the data set.

    Scar runs through neighbouring slices. Among the other slices with the
    same number ``k`` of scar-bearing neighbours, the share that carry a
    label estimates ``P(label | k)``; among all other slices, ``P(label)``
    (leave-one-out, each with a uniform prior: ``(labelled + 1) / (slices + 2)``).
    A labelled slice scores ``P(label | k) / P(label)``, an empty one
    ``(1 - P(label | k)) / (1 - P(label))``, at most 1: neighbours lower the
    score only where they make what the slice shows unusual. An empty slice
    between two scar slices of a data set where such slices nearly always
    carry scar scores near 0, and so does a lone label where isolated slices
    rarely carry one; where neighbours tell nothing (scar placed at random
    along the stack) every score stays near 1. Slices without neighbours
    score 1.

    Returns
    -------
    scores : numpy.ndarray
        Per slice, in [0, 1].
    rates : dict
        ``k -> P(label | k)`` over all slices, for the report.
    k : numpy.ndarray
        Per slice, its number of scar-bearing neighbours.
    """
    areas = np.asarray(areas, float)
    count, k = neighbours_with_scar(areas, cases, min_area)
    labelled = areas > 0
    scores = np.ones(len(areas))
    rates = {}
    total = int(labelled.sum())
    for value in (0, 1, 2):
        members = (k == value) & (count > 0)
        n, hits = int(members.sum()), int(labelled[members].sum())
        if n:
            rates[value] = hits / n
        for i in np.flatnonzero(members):
            rate = (hits - labelled[i] + 1) / (n - 1 + 2)
            base = (total - labelled[i] + 1) / (len(areas) - 1 + 2)
            scores[i] = min(1.0, rate / base if labelled[i] else (1 - rate) / (1 - base))
    return scores, rates, k
