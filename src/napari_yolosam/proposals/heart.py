"""Find the heart: the window of each slice SAM looks at closely (:class:`~napari_yolosam.view.View`).

In order of trust: the label's anatomy (a box round its myocardium and blood pool), else the
LV box of the segmenter's heart finder (:mod:`napari_yolosam.models.heart`) or, without
one, of the detector, made consistent through each case (the LV moves little from slice to
slice: each detector box is the median of itself and its case neighbours', so one bad
slice does not lose the heart), else a neighbour's window in the same case, else the whole
slice.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence

import numpy as np

from ..geometry import mask_box
from ..models.embeddings import EmbeddingCache, embed_stack
from ..progress import Progress
from ..view import View


def label_hearts(stack) -> list[np.ndarray | None]:
    """Each slice's labelled heart (myocardium and blood pool, at the slice's own shape), or
    ``None`` where its label has no myocardium (or the labels carry none)."""
    spec = stack.spec
    if not (stack.has_labels and spec.has_myocardium):
        return [None] * len(stack)
    hearts: list[np.ndarray | None] = []
    for i, label in enumerate(stack.labels):
        myocardium = spec.myocardium_mask(label)
        heart = myocardium | spec.blood_pool_mask(label)
        hearts.append(stack.crop(i, heart) if myocardium.any() else None)
    return hearts


def stack_views(
    stack,
    lv_box_of: Callable[[int], np.ndarray | None] | None = None,
    indices: Sequence[int] | None = None,
    use_labels: bool = True,
    source: str = "detector",
) -> list:
    """Each slice's window round the heart (:func:`find_views`): from the labels' anatomy
    (``use_labels``), else from ``lv_box_of(i)`` (the LV box of slice ``i`` that ``source``
    found: the segmenter's heart finder or the detector), asked only for ``indices``
    (default all) and their neighbours that lack a labelled heart."""
    n = len(stack)
    shapes = [stack.crop(i, stack.images[i]).shape for i in range(n)]
    hearts = label_hearts(stack) if use_labels else [None] * n
    wanted = range(n) if indices is None else indices
    near = sorted({j for i in wanted for j in (i - 1, i, i + 1) if 0 <= j < n})
    lv_boxes: list = [None] * n
    if lv_box_of is not None:
        for i in near:
            if hearts[i] is None:
                lv_boxes[i] = lv_box_of(i)
    return find_views(shapes, stack.cases, hearts, lv_boxes, source)


def find_views(
    shapes: Sequence[tuple[int, int]],
    cases: Sequence[str],
    anatomy: Sequence[np.ndarray | None],
    lv_boxes: Sequence[np.ndarray | None],
    source: str = "detector",
) -> list[View]:
    """One window per slice (``shapes[i]``: slice ``i``'s own shape).

    ``anatomy[i]``: the label's heart (myocardium and blood pool) of slice ``i`` or
    ``None``; ``lv_boxes[i]``: the LV box ``source`` found (the segmenter's heart finder,
    ``heart``, or the ``detector``) or ``None``.
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
            boxes[i] = (smoothed[i], source)
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
                if views[j].source not in ("neighbours", "whole"):
                    v = views[j]
                    return View(v.top, v.left, v.size, tuple(shape), "neighbours")
    return View.whole(shape)


def slice_windows(stack, proposals=None) -> list[View]:
    """The window each slice is looked at through after proposing: the one its proposal
    recorded (``proposals``, where given and a slice has one), else :func:`stack_views`
    (the labels' heart, a neighbour's, the whole slice). Clicks, propagation and the
    embedding cache use these, so they reuse the proposals' embeddings."""
    views = stack_views(stack)
    if proposals is not None and len(proposals) == len(stack):
        for i, proposal in enumerate(proposals.slices):
            if getattr(proposal, "view", None):
                views[i] = View.from_dict(proposal.view)
    return views


def heart_view(stack, index: int, proposal=None) -> View:
    """The window round slice ``index``'s heart that the annotator is shown: the one its
    proposal used (``proposal.view``), else the label's heart, else the whole slice."""
    if proposal is not None and getattr(proposal, "view", None):
        return View.from_dict(proposal.view)
    shape = stack.crop(index, stack.images[index]).shape
    if stack.has_labels and stack.spec.has_myocardium:
        label = stack.labels[index]
        heart = stack.spec.myocardium_mask(label) | stack.spec.blood_pool_mask(label)
        box = mask_box(stack.crop(index, heart))
        if box is not None:
            return View.around(box, shape, "label")
    return View.whole(shape)


def finder_boxes(stack, segmenter, cache: EmbeddingCache):
    """The segmenter's heart finder's LV box of slice ``i`` (from the whole slice's
    embedding) as a function of ``i``, each slice once; ``None`` without a heart finder."""
    if segmenter.heart is None:
        return None
    found: dict[int, np.ndarray | None] = {}

    def heart_box(i: int) -> np.ndarray | None:
        if i not in found:
            image = stack.crop(i, stack.images[i])
            embedding = cache.get(segmenter, image)
            found[i] = segmenter.heart.lv_box(embedding, image.shape, segmenter.img_size)
        return found[i]

    return heart_box


def embed_views(
    stack, segmenter, cache: EmbeddingCache, first: int = 0, proposals=None
) -> Generator[Progress, None, tuple[int, list[View]]]:
    """Encode what looking closer reads, the slice ``first`` first: each slice's window
    (:func:`slice_windows`). Where neither proposal nor label places one and the segmenter
    has a heart finder, the whole slice is encoded first (the finder reads it) and then the
    window round the heart it finds, as ``propose`` places it. A generator, as
    :func:`~napari_yolosam.models.embeddings.embed_stack`; returns the encoder passes and
    the windows."""
    images = [stack.crop(i, stack.images[i]) for i in range(len(stack))]
    views = slice_windows(stack, proposals)
    need = [i for i, v in enumerate(views) if v.is_whole]
    passes = 0
    if need and segmenter.heart is not None:
        start = int(np.argmin([abs(i - first) for i in need]))
        whole = [images[i] for i in need]
        names = [stack.names[i] for i in need]
        passes += yield from embed_stack(segmenter, whole, cache, start, names=names)
        found = stack_views(stack, finder_boxes(stack, segmenter, cache), need, source="heart")
        views = [found[i] if i in need else v for i, v in enumerate(views)]
    work = embed_stack(segmenter, images, cache, first, names=stack.names, views=views)
    return passes + (yield from work), views
