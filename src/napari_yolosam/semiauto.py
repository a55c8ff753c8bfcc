"""Semi-automatic scar thresholds inside the myocardium: n-SD, FWHM and Otsu.

These are the methods the noisy training labels come from; the plugin runs
them next to the label and the proposal so annotators can see what each
would have drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .geometry import lv_centre, sector_map

METHODS = ("nsd", "fwhm", "otsu")


@dataclass
class Threshold:
    """A semi-automatic result: the scar mask, the threshold used and the reference region."""

    mask: np.ndarray
    threshold: float
    reference: np.ndarray | None = None


def remote_region(
    image: np.ndarray,
    myocardium: np.ndarray,
    blood_pool: np.ndarray | None = None,
    n_sectors: int = 6,
) -> np.ndarray:
    """Remote (healthy) myocardium chosen automatically.

    The myocardium is divided into ``n_sectors`` equal angular sectors round
    the blood-pool centre (the myocardial centre without a blood pool); the
    sector with the lowest mean intensity is remote. Healthy myocardium is
    nulled in LGE, so the darkest sector is the least likely to hold scar.
    """
    centre = lv_centre(myocardium, blood_pool)
    if centre is None:
        return np.zeros_like(myocardium, dtype=bool)
    sectors = sector_map(myocardium, centre, n_sectors)
    best, best_mean = None, np.inf
    for s in range(n_sectors):
        pixels = image[sectors == s]
        if pixels.size >= 5 and pixels.mean() < best_mean:
            best, best_mean = s, pixels.mean()
    return sectors == best if best is not None else myocardium.copy()


def cleanup(mask: np.ndarray, min_size: int = 0, fill_holes: bool = False) -> np.ndarray:
    """Drop components smaller than ``min_size`` pixels and optionally fill holes."""
    mask = np.asarray(mask, bool)
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    if min_size > 1 and mask.any():
        labels, count = ndi.label(mask, structure=np.ones((3, 3)))
        sizes = np.bincount(labels.ravel())
        keep = sizes >= min_size
        keep[0] = False
        mask = keep[labels]
    return mask


#: n of the n-SD rule that marks the myocardium's *enhanced* regions: the most sensitive of
#: the usual n-SD thresholds. Proposals box them (``--intensity``) and take scar's extent
#: from them; training can take its targets' extent from them.
ENHANCED_N = 2.0


def touched_regions(masks: np.ndarray, enhanced: np.ndarray) -> np.ndarray:
    """For each mask (``(H, W)`` or ``(K, H, W)``), the connected regions of ``enhanced``
    that it touches: where a mask says *where*, the enhanced regions say *how far*."""
    regions, _ = ndi.label(enhanced)
    masks = np.asarray(masks, bool)
    out = np.zeros(masks.shape, bool)
    for k in np.ndindex(masks.shape[:-2]):
        touched = np.unique(regions[masks[k] & (regions > 0)])
        out[k] = np.isin(regions, touched[touched > 0])
    return out


def nsd(
    image: np.ndarray,
    myocardium: np.ndarray,
    n: float = 5.0,
    remote: np.ndarray | None = None,
    blood_pool: np.ndarray | None = None,
) -> Threshold:
    """Scar = myocardium brighter than mean + ``n`` SD of remote myocardium."""
    if not 0 < n <= 20:
        raise ValueError(f"n must lie in (0, 20], got {n}")
    myocardium = np.asarray(myocardium, bool)
    remote = (
        remote_region(image, myocardium, blood_pool)
        if remote is None
        else np.asarray(remote, bool)
    )
    if not remote.any():
        return Threshold(np.zeros_like(myocardium), float("nan"), remote)
    values = image[remote]
    threshold = float(values.mean() + n * values.std())
    return Threshold(myocardium & (image > threshold), threshold, remote)


def fwhm(
    image: np.ndarray,
    myocardium: np.ndarray,
    seed: tuple[int, int] | None = None,
    connected: bool = True,
    smooth: float = 1.0,
) -> Threshold:
    """Full width at half maximum: scar = myocardium at >= 50% of the enhanced region's maximum.

    The maximum is taken near ``seed`` (row, col) when given, else at the
    brightest myocardial pixel after a light Gaussian smoothing (``smooth``
    px, so one noisy pixel cannot set it). With ``connected``, only the
    above-threshold region connected to that maximum is kept.
    """
    myocardium = np.asarray(myocardium, bool)
    if not myocardium.any():
        return Threshold(np.zeros_like(myocardium), float("nan"))
    smoothed = ndi.gaussian_filter(image.astype(np.float32), smooth) if smooth > 0 else image
    if seed is not None:
        r, c = int(seed[0]), int(seed[1])
        window = np.zeros_like(myocardium)
        window[max(r - 3, 0) : r + 4, max(c - 3, 0) : c + 4] = True
        window &= myocardium
        if not window.any():
            raise ValueError(f"the FWHM seed {seed} is not inside the myocardium")
        peak_mask = window
    else:
        peak_mask = myocardium
    flat = np.where(peak_mask, smoothed, -np.inf)
    peak = np.unravel_index(int(np.argmax(flat)), flat.shape)
    threshold = 0.5 * float(smoothed[peak])
    mask = myocardium & (image >= threshold)
    if connected and mask.any():
        labels, _ = ndi.label(mask, structure=np.ones((3, 3)))
        if labels[peak]:
            mask = labels == labels[peak]
        else:  # the smoothed peak fell on a pixel below threshold: nearest component
            distance, (rows, cols) = ndi.distance_transform_edt(labels == 0, return_indices=True)
            mask = labels == labels[rows[peak], cols[peak]]
    return Threshold(mask, threshold)


def otsu(image: np.ndarray, myocardium: np.ndarray) -> Threshold:
    """Otsu's threshold of the myocardial intensities."""
    from skimage.filters import threshold_otsu

    myocardium = np.asarray(myocardium, bool)
    values = image[myocardium]
    if values.size < 2 or values.min() == values.max():
        return Threshold(np.zeros_like(myocardium), float("nan"))
    threshold = float(threshold_otsu(values))
    return Threshold(myocardium & (image > threshold), threshold)


def semiauto_slice(
    image: np.ndarray,
    myocardium: np.ndarray,
    method: str,
    n: float = 5.0,
    blood_pool: np.ndarray | None = None,
    remote: np.ndarray | None = None,
    seed: tuple[int, int] | None = None,
    min_size: int = 0,
    fill_holes: bool = False,
) -> Threshold:
    """Run one method on one slice, then the optional clean-up."""
    if method == "nsd":
        result = nsd(image, myocardium, n, remote, blood_pool)
    elif method == "fwhm":
        result = fwhm(image, myocardium, seed)
    elif method == "otsu":
        result = otsu(image, myocardium)
    else:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    result.mask = cleanup(result.mask, min_size, fill_holes) & np.asarray(myocardium, bool)
    return result


def semiauto_stack(
    stack,
    method: str,
    n: float = 5.0,
    myocardium: np.ndarray | None = None,
    min_size: int = 0,
    fill_holes: bool = False,
    remote: np.ndarray | None = None,
    seeds: dict[int, tuple[int, int]] | None = None,
) -> np.ndarray:
    """Scar masks ``(N, H, W)`` of a method on every slice of a stack.

    The myocardium comes from ``myocardium`` (e.g. proposed by the segmenter
    or drawn by hand) or from the stack's labels. ``remote`` ``(N, H, W)`` is
    a user-drawn remote region for n-SD (slices where it is empty use the
    automatic choice); ``seeds`` maps a slice index to a ``(row, col)`` FWHM seed.
    """
    if myocardium is None:
        if not (stack.has_labels and stack.spec.has_myocardium):
            raise ValueError(
                "the semi-automatic methods need a myocardium: labels with myocardium values, "
                "a proposed myocardium or one drawn by hand"
            )
        myocardium = stack.myocardium()
    blood = stack.spec.blood_pool_mask(stack.labels) if stack.has_labels else None
    out = np.zeros(stack.shape, bool)
    for i in range(len(stack)):
        if myocardium[i].any():
            drawn = None if remote is None or not remote[i].any() else np.asarray(remote[i], bool)
            out[i] = semiauto_slice(
                stack.images[i],
                myocardium[i],
                method,
                n,
                None if blood is None else blood[i],
                remote=drawn,
                seed=None if seeds is None else seeds.get(i),
                min_size=min_size,
                fill_holes=fill_holes,
            ).mask
    return out
