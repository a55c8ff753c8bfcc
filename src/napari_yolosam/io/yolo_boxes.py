"""Masks to YOLO box labels (one box per connected scar component) and back."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from .atomic import atomic_write_text
from .errors import StackError


def regions_to_boxes(regions: np.ndarray) -> np.ndarray:
    """``(K, 4)`` boxes ``x0, y0, x1, y1`` (ends exclusive) of the regions ``1..K`` of a label
    image, sorted by ``(y0, x0)``; numbers without pixels get no box."""
    boxes = [
        (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
        for sl in ndi.find_objects(np.asarray(regions, dtype=np.int64))
        if sl is not None
    ]
    boxes.sort(key=lambda b: (b[1], b[0]))
    return np.asarray(boxes, dtype=float).reshape(-1, 4)


def mask_to_boxes(mask: np.ndarray, min_area: int = 0, connectivity: int = 2) -> np.ndarray:
    """Bounding boxes of the connected components of a binary mask.

    Parameters
    ----------
    mask
        2D boolean (or 0/non-zero) mask.
    min_area
        Components with fewer pixels are dropped.
    connectivity
        1 for 4-connectivity, 2 for 8-connectivity (the default, as contour
        tracing does).

    Returns
    -------
    numpy.ndarray
        ``(K, 4)`` float boxes ``x0, y0, x1, y1`` in pixels, ends exclusive,
        sorted by ``(y0, x0)``.
    """
    structure = ndi.generate_binary_structure(2, connectivity)
    components, count = ndi.label(np.asarray(mask) > 0, structure=structure)
    if min_area > 1:
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        components[sizes[components] < min_area] = 0
    return regions_to_boxes(components)


def boxes_to_yolo(boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixel ``x0 y0 x1 y1`` boxes to normalised YOLO ``cx cy w h`` for an image of ``shape``."""
    height, width = shape
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    cx = (boxes[:, 0] + boxes[:, 2]) / 2 / width
    cy = (boxes[:, 1] + boxes[:, 3]) / 2 / height
    w = (boxes[:, 2] - boxes[:, 0]) / width
    h = (boxes[:, 3] - boxes[:, 1]) / height
    return np.stack([cx, cy, w, h], axis=1)


def yolo_to_boxes(yolo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Normalised YOLO ``cx cy w h`` to pixel ``x0 y0 x1 y1`` for an image of ``shape``."""
    height, width = shape
    yolo = np.asarray(yolo, dtype=float).reshape(-1, 4)
    x0 = (yolo[:, 0] - yolo[:, 2] / 2) * width
    y0 = (yolo[:, 1] - yolo[:, 3] / 2) * height
    x1 = (yolo[:, 0] + yolo[:, 2] / 2) * width
    y1 = (yolo[:, 1] + yolo[:, 3] / 2) * height
    return np.stack([x0, y0, x1, y1], axis=1)


def format_yolo_lines(yolo: np.ndarray, classes: Iterable[int] | None = None) -> str:
    """YOLO label file text: ``class cx cy w h`` to 6 decimals, one line per box."""
    yolo = np.asarray(yolo, dtype=float).reshape(-1, 4)
    classes = list(classes) if classes is not None else [0] * len(yolo)
    return "".join(
        f"{c} {b[0]:.6f} {b[1]:.6f} {b[2]:.6f} {b[3]:.6f}\n"
        for c, b in zip(classes, yolo, strict=True)
    )


def read_yolo_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read a YOLO label file: ``(classes (K,), boxes (K, 4) normalised cx cy w h)``."""
    path = Path(path)
    classes, boxes = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise StackError(path, f"line {number}: expected 'class cx cy w h', got {line!r}")
        try:
            classes.append(int(parts[0]))
            boxes.append([float(v) for v in parts[1:]])
        except ValueError as exc:
            raise StackError(path, f"line {number}: {exc}") from exc
    return np.asarray(classes, dtype=int), np.asarray(boxes, dtype=float).reshape(-1, 4)


def write_yolo_labels(
    masks: np.ndarray,
    names: list[str],
    out_dir: str | Path,
    shapes: list[tuple[int, int]] | None = None,
    min_area: int = 0,
    class_id: int = 0,
) -> list[Path]:
    """Write one YOLO label file per slice (empty file for slices without scar).

    Parameters
    ----------
    masks
        ``(N, H, W)`` boolean scar masks (padded slices are cropped to ``shapes``).
    names
        Slice file names; each label file gets the name's stem and ``.txt``.
    shapes
        Original ``(h, w)`` per slice, the frame boxes are normalised to.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(names):
        mask = np.asarray(masks[i])
        if shapes is not None:
            mask = mask[: shapes[i][0], : shapes[i][1]]
        yolo = boxes_to_yolo(mask_to_boxes(mask, min_area=min_area), mask.shape)
        target = out_dir / Path(name).with_suffix(".txt")
        atomic_write_text(target, format_yolo_lines(yolo, [class_id] * len(yolo)))
        written.append(target)
    return written
