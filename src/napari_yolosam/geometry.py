"""Left-ventricle geometry: a mask's box, the centre, angles and radial sampling of the myocardium."""

from __future__ import annotations

import numpy as np


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """``x0 y0 x1 y1`` (float32, ends exclusive) round a mask's pixels, ``None`` when empty."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    if not len(rows):
        return None
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def lv_centre(
    myocardium: np.ndarray, blood_pool: np.ndarray | None = None
) -> tuple[float, float] | None:
    """``(row, col)`` of the blood-pool centroid, else of the myocardium (``None`` if both are empty)."""
    for mask in (blood_pool, myocardium):
        if mask is not None and mask.any():
            rows, cols = np.nonzero(mask)
            return float(rows.mean()), float(cols.mean())
    return None


def angle_map(shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
    """Angle of each pixel round ``centre`` in radians, 0..2pi (0 = +column direction, image rows down)."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    return np.mod(np.arctan2(rows - centre[0], cols - centre[1]), 2 * np.pi)


def sector_map(myocardium: np.ndarray, centre: tuple[float, float], n_sectors: int) -> np.ndarray:
    """Sector index (0..n-1) of each myocardial pixel, -1 elsewhere; equal angles from angle 0."""
    sectors = np.floor(angle_map(myocardium.shape, centre) / (2 * np.pi) * n_sectors).astype(int)
    sectors = np.clip(sectors, 0, n_sectors - 1)
    return np.where(myocardium, sectors, -1)


def radial_profiles(
    masks: list[np.ndarray],
    centre: tuple[float, float],
    n_rays: int = 360,
    step: float = 0.5,
    max_radius: float | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Sample masks along ``n_rays`` rays from ``centre`` (nearest pixel, ``step`` px apart).

    Returns the ray angles and, per mask, an ``(n_rays, n_steps)`` boolean array.
    """
    shape = masks[0].shape
    max_radius = max_radius or float(np.hypot(*shape))
    angles = np.arange(n_rays) * 2 * np.pi / n_rays
    radii = np.arange(0, max_radius, step)
    rows = np.rint(centre[0] + np.sin(angles)[:, None] * radii[None]).astype(int)
    cols = np.rint(centre[1] + np.cos(angles)[:, None] * radii[None]).astype(int)
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    rows, cols = np.clip(rows, 0, shape[0] - 1), np.clip(cols, 0, shape[1] - 1)
    return angles, [np.asarray(m, bool)[rows, cols] & inside for m in masks]
