"""An annotator's prompts: drawn boxes and clicks to SAM's inputs, and SAM's answer to a proposal.

Qt-free: the viewer hands over its layers' coordinates, this module does the
rest (tested without a viewer).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.segmenter import PromptOutput
from .types import Proposals, SliceProposal


def on_slice(coords: np.ndarray, index: int) -> np.ndarray:
    """The ``(row, col)`` of the coordinates lying on slice ``index`` (``(z, row, col)`` rows of
    a stack layer; a 2D layer's ``(row, col)`` rows are all on it)."""
    coords = np.asarray(coords, float).reshape(-1, np.shape(coords)[-1] if np.size(coords) else 2)
    if coords.shape[1] == 3:
        return coords[np.round(coords[:, 0]) == index][:, 1:]
    return coords


def slice_prompts(
    shapes: Sequence[np.ndarray],
    positive: np.ndarray | None,
    negative: np.ndarray | None,
    index: int,
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """SAM's ``(box, points, point_labels)`` from drawn shapes and clicks on slice ``index``.

    The box is the bounding box (``x0 y0 x1 y1``) of the last shape on the
    slice; points are ``x, y`` with label 1 (positive) or 0 (negative).
    Each is ``None`` when nothing of its kind is on the slice.
    """
    box = None
    drawn = [on_slice(s, index) for s in shapes]
    drawn = [s for s in drawn if len(s)]
    if drawn:
        corners = drawn[-1]
        rows, cols = corners[:, 0], corners[:, 1]
        box = np.array([[cols.min(), rows.min(), cols.max(), rows.max()]], np.float32)
    points, labels = [], []
    for clicks, value in ((positive, 1), (negative, 0)):
        if clicks is None:
            continue
        for row, col in on_slice(clicks, index):
            points.append((col, row))
            labels.append(value)
    if not points:
        return box, None, None
    return box, np.array(points, np.float32), np.array(labels)


def user_proposal(
    output: PromptOutput, box: np.ndarray | None, shape: tuple[int, int], view=None
) -> SliceProposal | None:
    """SAM's answer to the annotator's prompt as the slice's proposal (source ``user``), at the
    stack's padded ``shape``, recording the window SAM looked at (a
    :class:`~napari_yolosam.view.View`; ``None``: the whole slice); ``None`` when SAM
    returned no mask."""
    if output is None or not len(output.masks):
        return None
    mask = np.zeros(shape, bool)
    prob = np.zeros(shape, np.float32)
    h, w = output.masks.shape[1:]
    mask[:h, :w] = output.masks[0]
    prob[:h, :w] = output.probability
    boxes = np.zeros((1, 4), np.float32) if box is None else np.asarray(box, np.float32)[:1]
    return SliceProposal(
        mask,
        prob,
        boxes,
        np.array([np.nan], np.float32),
        output.iou[:1].astype(np.float32),
        ["user"],
        mask[None],
        "ok",
        view=None if view is None or view.is_whole else view.to_dict(),
    )


def with_slice(
    proposals: Proposals | None, names: Sequence[str], index: int, proposal: SliceProposal
) -> Proposals:
    """``proposals`` with slice ``index`` replaced (a new set of empty ones when ``None``)."""
    if proposals is None:
        shape = proposal.mask.shape
        proposals = Proposals(list(names), [SliceProposal.empty(shape) for _ in names], {})
    proposals.slices[index] = proposal
    return proposals
