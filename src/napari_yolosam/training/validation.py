"""The segmenter's validation during training: Dice with true boxes on the held-out slices."""

from __future__ import annotations

import numpy as np

from ..io.yolo_boxes import regions_to_boxes
from ..models.embeddings import EmbeddingCache
from ..models.segmenter import Segmenter
from ..regions import scar_regions
from ..stack import Stack
from .data import Augmentation, bbox, slice_view


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two masks (1.0 when both are empty)."""
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(a, b).sum() / total)


def validate(
    segmenter: Segmenter,
    stack: Stack,
    indices: list[int],
    cache: EmbeddingCache | None = None,
    via: str = "embedding",
    look_closer: bool = False,
) -> dict:
    """Dice with true boxes on ``indices``: scar from a box round each scar region (slices
    with scar; a slice with only specks scores 0), myocardium (where labelled) and scar from
    the true LV box (slices with scar and myocardium). ``via`` (``trunk`` or ``stage``):
    embeddings from cached trunk features or last-stage inputs through the (training) rest
    of the encoder, so the frozen part runs once per slice. ``look_closer``: each slice seen
    through its window round the labelled heart (:func:`.data.slice_view`, not jittered),
    as training saw it."""
    import torch

    cache = cache if cache is not None else EmbeddingCache(max_bytes=128 << 20)
    scores: dict[str, list[float]] = {"scar": [], "myocardium": [], "lv": []}
    was_training = segmenter.model.training
    segmenter.model.eval()
    with torch.inference_mode():
        for i in indices:
            for key, value in _slice_scores(segmenter, cache, stack, i, via, look_closer):
                scores[key].append(value)
    segmenter.model.train(was_training)

    def mean(key: str) -> float:
        return float(np.mean(scores[key])) if scores[key] else float("nan")

    return {
        "val_dice": mean("scar"),
        "val_myo_dice": mean("myocardium"),
        "val_lv_scar_dice": mean("lv"),
        "val_slices": len(scores["scar"]),
    }


def _slice_scores(segmenter, cache, stack: Stack, i: int, via: str, look_closer: bool):
    """``(measure, Dice)`` pairs of slice ``i`` (none for a slice without scar or myocardium)."""
    image = stack.crop(i, stack.images[i])
    labels = stack.crop(i, stack.labels[i])
    scar = stack.spec.scar_mask(labels)
    myo = stack.spec.myocardium_mask(labels)
    if not scar.any() and not myo.any():
        return []
    view = slice_view(stack, i, None, Augmentation()) if look_closer else None
    embedding = _embedding(segmenter, cache, image if view is None else view.crop(image), via)

    def decode(boxes, target="scar"):
        return segmenter.decode(embedding, image.shape, boxes=boxes, target=target, view=view)

    found = []
    if scar.any():  # the boxes training draws: one per scar region
        boxes = regions_to_boxes(scar_regions(scar)[0]).astype(np.float32)
        found.append(("scar", dice(decode(boxes).union, scar) if len(boxes) else 0.0))
    if myo.any():  # the true LV box: myocardium, and scar from it
        box = bbox(stack.spec.lv_mask(labels))[None]
        found.append(("myocardium", dice(decode(box, "myocardium").masks[0], myo)))
        if scar.any():
            found.append(("lv", dice(decode(box).masks[0], scar)))
    return found


def _embedding(segmenter: Segmenter, cache: EmbeddingCache, image: np.ndarray, via: str):
    """The slice's embedding, finished from cached features ``via`` the trainable encoder part."""
    if via == "trunk":
        return segmenter.neck(cache.get(segmenter, image, "trunk"))
    if via == "stage":
        return segmenter.from_stage(cache.get(segmenter, image, "stage"))
    return cache.get(segmenter, image)
