"""Propagating a mask through the stack: each slice's mask prompts SAM on its neighbour.

From a mask on slice ``k`` (accepted, drawn or edited), slices ``k+1, k+2, ...``
(``up``) and ``k-1, k-2, ...`` (``down``) are proposed in turn: every region of
the last mask gives SAM a box and a positive click at its most interior pixel.
The scar stays inside the label's myocardium where the labels have one (and,
with ``extent``, takes the enhanced extent of the myocardium it touches, as in
:func:`~napari_yolosam.proposals.core.propose`). A direction stops where the
proposal vanishes (under ``min_area`` pixels), the heart ends (labels with a
myocardium have none on the next slice) or the patient does (the next slice
belongs to another case). LiteMedSAM and SAM here take box and
point prompts; no mask prompt. With ``look_closer`` SAM looks at each slice's window
round the heart (:func:`.heart.stack_views`, or the ``views`` given, such as the ones
the slices' proposals used), as :func:`~napari_yolosam.proposals.core.propose` does; the
masks stay in slice pixels and each proposal records its window.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence

import numpy as np
from scipy import ndimage as ndi

from ..defaults import DIRECTIONS, EXTENT, LOOK_CLOSER
from ..models.embeddings import EmbeddingCache
from ..models.segmenter import PromptOutput, Segmenter
from ..progress import Progress
from ..regions import scar_regions
from ..stack import Stack
from ..view import View
from .core import Anatomy, enhanced_extent, inside_myocardium
from .heart import stack_views
from .types import Proposals, SliceProposal, _pad

#: A propagated proposal smaller than this (pixels) has vanished: the direction stops there.
MIN_AREA = 5
#: Where a propagated proposal came from (its prompt source).
SOURCE = "propagated"


def region_prompts(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box ``(K, 4)`` and one positive click ``(K, 1, 2)`` (``x, y``) per region of
    ``mask``: the click at the region's most interior pixel (farthest from its edge)."""
    regions, _ = scar_regions(mask)
    depth = ndi.distance_transform_edt(regions > 0)
    boxes, points = [], []
    for k, found in enumerate(ndi.find_objects(regions), start=1):
        if found is None:
            continue
        rows, cols = found
        boxes.append((cols.start, rows.start, cols.stop, rows.stop))
        inside = np.where(regions == k, depth, -1.0)
        y, x = np.unravel_index(int(np.argmax(inside)), inside.shape)
        points.append([(x, y)])
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4),
        np.asarray(points, np.float32).reshape(-1, 1, 2),
    )


def propagate_slice(
    segmenter: Segmenter,
    cache: EmbeddingCache,
    image: np.ndarray,
    previous: np.ndarray,
    anatomy: tuple[np.ndarray | None, np.ndarray | None] = (None, None),
    extent: bool = EXTENT,
    view: View | None = None,
) -> tuple[PromptOutput, np.ndarray]:
    """SAM's masks on ``image`` prompted by the regions of the neighbour's mask ``previous``
    (kept inside the myocardium of ``anatomy`` when given), looking at ``view`` (default the
    whole slice); returns them and the boxes, in slice pixels."""
    boxes, points = region_prompts(previous)
    if not len(boxes):
        empty = np.zeros((0, *image.shape), np.float32)
        return PromptOutput(empty > 0, empty, np.zeros(0, np.float32)), boxes
    view = View.whole(image.shape) if view is None else view
    embedding = cache.get(segmenter, view.crop(image))
    output = segmenter.decode(embedding, image.shape, boxes=boxes, points=points, view=view)
    myocardium, blood = anatomy
    if myocardium is not None and myocardium.any():
        output = inside_myocardium(output, myocardium)
        if extent:
            output = enhanced_extent(output, image, myocardium, blood)
    return output, boxes


def propagate(
    stack: Stack,
    segmenter: Segmenter,
    start: int,
    mask: np.ndarray,
    direction: str = "both",
    cache: EmbeddingCache | None = None,
    use_labels: bool = True,
    extent: bool = EXTENT,
    min_area: int = MIN_AREA,
    look_closer: bool = LOOK_CLOSER,
    views: Sequence[View] | None = None,
) -> Generator[Progress, None, Proposals]:
    """Propose the slices next to ``start`` from ``mask`` (its scar, the stack's padded
    slice shape), one neighbour after another (a generator: :class:`Progress` per slice,
    ``stage="propagate"``; close it to stop; returns :class:`Proposals` with the start
    slice's own mask, the propagated slices, and empty ``not_proposed`` slices elsewhere).

    ``direction``: ``up`` (higher indices), ``down`` or ``both``. ``use_labels``: keep the
    scar inside the labels' myocardium and stop where it ends. ``extent``: the enhanced
    extent rule (where a myocardium is known). ``look_closer``: SAM looks at each slice's
    window round the heart, ``views[i]`` where given (default: the labels' hearts,
    :func:`.heart.stack_views`; the whole slice where no heart is known).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose from {DIRECTIONS}")
    if not 0 <= start < len(stack):
        raise ValueError(f"slice {start} is outside the stack of {len(stack)} slices")
    mask = np.asarray(mask, bool)
    if mask.shape != stack.shape[1:]:
        raise ValueError(f"a start mask of shape {mask.shape} for slices of {stack.shape[1:]}")
    if not mask.any():
        raise ValueError(f"the start mask on slice {start} is empty: nothing to propagate")
    cache = EmbeddingCache(max_bytes=256 << 20) if cache is None else cache
    anatomy = Anatomy.of(stack, use_labels)
    views = _windows(stack, look_closer, views, use_labels)
    full = stack.shape[1:]
    slices: list[SliceProposal] = [SliceProposal.empty(full) for _ in range(len(stack))]
    slices[start] = SliceProposal.of_mask(mask, source="start")
    steps = {"up": [1], "down": [-1], "both": [1, -1]}[direction]
    case = [i for i, c in enumerate(stack.cases) if c == stack.cases[start]]
    planned = sum((case[-1] - start) if s > 0 else (start - case[0]) for s in steps)
    done = 0
    for step in steps:
        walk = _walk(stack, segmenter, cache, anatomy, views, (start, mask, step), extent)
        for i, proposal in walk:
            done += 1
            area = int(proposal.mask.sum())
            yield Progress(done, planned, "propagate", stack.names[i], {"area": area})
            if area < min_area:
                break  # the scar vanished
            slices[i] = proposal
    settings = {"propagated_from": stack.names[start], "direction": direction}
    settings.update(segmenter=segmenter.name, extent=extent, use_labels=use_labels)
    settings.update(look_closer=look_closer)
    return Proposals(list(stack.names), slices, settings)


def _windows(stack, look_closer: bool, views, use_labels: bool) -> list[View]:
    """Each slice's window: the whole slice, the ``views`` given, or the labels' hearts."""
    shapes = [stack.crop(i, stack.images[i]).shape for i in range(len(stack))]
    if not look_closer:
        return [View.whole(shape) for shape in shapes]
    if views is None:
        return stack_views(stack, use_labels=use_labels and stack.has_labels)
    if len(views) != len(stack):
        raise ValueError(f"{len(views)} windows for a stack of {len(stack)} slices")
    for i, view in enumerate(views):
        if tuple(view.shape) != tuple(shapes[i]):
            raise ValueError(f"slice {i}'s window is for a {view.shape} slice, not {shapes[i]}")
    return list(views)


def _walk(stack, segmenter, cache, anatomy, views, begin, extent):
    """Slices ``start + step, start + 2 step, ...`` of the start's patient (``begin`` =
    ``(start, mask, step)``), while its heart lasts: yields ``(index, proposal)``, each
    proposal prompting the next slice."""
    start, mask, step = begin
    previous, i = mask, start + step
    while 0 <= i < len(stack) and stack.cases[i] == stack.cases[start]:
        if anatomy.myocardium is not None and not anatomy.myocardium[i].any():
            return  # the heart ends here
        image = stack.crop(i, stack.images[i])
        output, boxes = propagate_slice(
            segmenter,
            cache,
            image,
            stack.crop(i, previous),
            anatomy.at(stack, i),
            extent,
            views[i],
        )
        proposal = _slice(output, boxes, stack.shape[1:], views[i])
        yield i, proposal
        previous, i = proposal.mask, i + step


def _slice(output: PromptOutput, boxes: np.ndarray, full: tuple[int, int], view: View):
    count = len(boxes)
    return SliceProposal(
        mask=_pad(output.union, full),
        probability=_pad(output.probability, full),
        boxes=boxes,
        scores=np.full(count, np.nan, np.float32),
        iou=output.iou.astype(np.float32),
        sources=[SOURCE] * count,
        prompt_masks=_pad(output.masks, (count, *full)),
        status="ok",
        view=None if view.is_whole else view.to_dict(),
    )
