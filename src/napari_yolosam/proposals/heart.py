"""Find the heart: the window of each slice SAM looks at closely (:class:`~napari_yolosam.view.View`).

In order of trust: the label's anatomy (a box round its myocardium and blood pool), else the
detector's LV box, made consistent through each case (the LV moves little from slice to
slice: each detector box is the median of itself and its case neighbours', so one bad
slice does not lose the heart), else a neighbour's window in the same case, else the whole
slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..view import View


def mask_box(mask: np.ndarray) -> np.ndarray | None:
    """``x0 y0 x1 y1`` round a mask's pixels (``None`` for an empty mask)."""
    rows, cols = np.nonzero(mask)
    if not len(rows):
        return None
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], np.float32)


def find_views(
    shapes: Sequence[tuple[int, int]],
    cases: Sequence[str],
    anatomy: Sequence[np.ndarray | None],
    lv_boxes: Sequence[np.ndarray | None],
) -> list[View]:
    """One window per slice (``shapes[i]``: slice ``i``'s own shape).

    ``anatomy[i]``: the label's heart (myocardium and blood pool) of slice ``i`` or
    ``None``; ``lv_boxes[i]``: the detector's LV box or ``None``.
    """
    n = len(cases)
    boxes: list[tuple[np.ndarray, str] | None] = [None] * n
    for i in range(n):
        heart = None if anatomy[i] is None else mask_box(anatomy[i])
        if heart is not None:
            boxes[i] = (heart, "label")
    smoothed = _case_medians(cases, lv_boxes)
    for i in range(n):
        if boxes[i] is None and smoothed[i] is not None:
            boxes[i] = (smoothed[i], "detector")
    views = [
        None if b is None else View.around(b[0], shapes[i], b[1]) for i, b in enumerate(boxes)
    ]
    for i in range(n):
        if views[i] is None:
            views[i] = _from_neighbour(i, cases, views, shapes[i])
    return views


def _case_medians(cases: Sequence[str], boxes: Sequence[np.ndarray | None]) -> list:
    """Each box as the median of itself and its nearest case neighbours' boxes (3 at most)."""
    out: list = [None] * len(cases)
    for i, box in enumerate(boxes):
        if box is None:
            continue
        near = [
            boxes[j]
            for j in (i - 1, i, i + 1)
            if 0 <= j < len(cases) and cases[j] == cases[i] and boxes[j] is not None
        ]
        out[i] = np.median(np.stack(near), axis=0).astype(np.float32)
    return out


def _from_neighbour(i: int, cases: Sequence[str], views: list, shape) -> View:
    """The window of the nearest slice of the same case that has one, else the whole slice."""
    for step in range(1, len(cases)):
        for j in (i - step, i + step):
            if 0 <= j < len(cases) and cases[j] == cases[i] and views[j] is not None:
                if views[j].source != "neighbours":
                    v = views[j]
                    return View(v.top, v.left, v.size, tuple(shape), "neighbours")
    return View.whole(shape)
