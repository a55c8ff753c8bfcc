"""The segmenter's validation during training: Dice with true boxes on the held-out slices."""

from __future__ import annotations

import numpy as np

from ..io.yolo_boxes import regions_to_boxes
from ..models.embeddings import EmbeddingCache
from ..models.segmenter import Segmenter
from ..regions import scar_regions
from ..stack import Stack
from .data import bbox


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
) -> dict:
    """Dice with true boxes on ``indices``: scar from a box round each scar region (slices
    with scar; a slice with only specks scores 0), myocardium (where labelled) and scar from
    the true LV box (slices with scar and myocardium). ``via`` (``trunk`` or ``stage``):
    embeddings from cached trunk features or last-stage inputs through the (training) rest
    of the encoder, so the frozen part runs once per slice."""
    import torch

    cache = cache if cache is not None else EmbeddingCache(max_bytes=128 << 20)
    scar_scores, myo_scores, lv_scores = [], [], []
    was_training = segmenter.model.training
    segmenter.model.eval()
    with torch.inference_mode():
        for i in indices:
            image = stack.crop(i, stack.images[i])
            labels = stack.crop(i, stack.labels[i])
            scar = stack.spec.scar_mask(labels)
            myo = stack.spec.myocardium_mask(labels)
            if not scar.any() and not myo.any():
                continue
            embedding = _embedding(segmenter, cache, image, via)
            if scar.any():  # the boxes training draws: one per scar region
                boxes = regions_to_boxes(scar_regions(scar)[0]).astype(np.float32)
                out = segmenter.decode(embedding, image.shape, boxes=boxes) if len(boxes) else None
                scar_scores.append(dice(out.union, scar) if out is not None else 0.0)
            if myo.any():  # the true LV box: myocardium, and scar from it
                box = bbox(stack.spec.lv_mask(labels))[None]
                out = segmenter.decode(embedding, image.shape, boxes=box, target="myocardium")
                myo_scores.append(dice(out.masks[0], myo))
                if scar.any():
                    out = segmenter.decode(embedding, image.shape, boxes=box, target="scar")
                    lv_scores.append(dice(out.masks[0], scar))
    segmenter.model.train(was_training)
    return {
        "val_dice": float(np.mean(scar_scores)) if scar_scores else float("nan"),
        "val_myo_dice": float(np.mean(myo_scores)) if myo_scores else float("nan"),
        "val_lv_scar_dice": float(np.mean(lv_scores)) if lv_scores else float("nan"),
        "val_slices": len(scar_scores),
    }


def _embedding(segmenter: Segmenter, cache: EmbeddingCache, image: np.ndarray, via: str):
    """The slice's embedding, finished from cached features ``via`` the trainable encoder part."""
    if via == "trunk":
        return segmenter.neck(cache.get(segmenter, image, "trunk"))
    if via == "stage":
        return segmenter.from_stage(cache.get(segmenter, image, "stage"))
    return cache.get(segmenter, image)
