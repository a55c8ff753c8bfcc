"""Training the heart finder (:mod:`napari_yolosam.models.heart`) on labels with a myocardium.

Each slice's whole-slice embedding (from the cache: encoded once, the encoder frozen) is
the input; the label's LV (myocardium and blood pool) and blood pool, resized to the
embedding's grid, are the targets (the anatomy head, on windows, learns the label's scar
as a third). Binary Dice and cross-entropy per channel, AdamW, random horizontal and
vertical flips of embedding and targets together. Slices without a heart teach the head
where there is none. The myocardium labels are the clean part of noisy scar labels: the
heart finder learns only from them.
"""

from __future__ import annotations

from collections.abc import Callable, Generator

import numpy as np

from ..defaults import TRAINING
from ..models.embeddings import EmbeddingCache
from ..models.heart import CHANNELS, SCAR_CHANNELS, HeartFinder
from ..models.segmenter import Segmenter
from ..progress import Progress
from ..stack import Stack
from ..view import View
from .data import Augmentation, fixed_view, target_to_grid

#: Optimisation steps, slices per step and learning rate of the head.
STEPS = TRAINING.heart_steps
BATCH = 16
LR = 1e-3


def heart_targets(
    stack: Stack,
    i: int,
    img_size: int,
    grid: int,
    view: View | None = None,
    channels: tuple[str, ...] = CHANNELS,
):
    """Slice ``i``'s ``channels`` (LV, blood pool and, in :data:`SCAR_CHANNELS`, the label's
    scar) as a ``(len(channels), grid, grid)`` tensor in the model's frame (of ``view`` of
    the slice: default the whole slice)."""
    import torch

    labels = stack.crop(i, stack.labels[i])
    view = View.whole(labels.shape) if view is None else view
    spec = stack.spec
    of = {"lv": spec.lv_mask, "blood_pool": spec.blood_pool_mask, "scar": spec.scar_mask}
    return torch.stack(
        [target_to_grid(view.take(of[c](labels)), img_size, grid) for c in channels]
    )


def train_heart(
    segmenter: Segmenter,
    stack: Stack,
    indices: list[int],
    cache: EmbeddingCache | None = None,
    steps: int = STEPS,
    seed: int = 0,
    view_of: Callable[[int], View] | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> Generator[Progress, None, HeartFinder | None]:
    """Train a heart finder on the labelled slices ``indices`` of ``stack`` (a generator:
    :class:`Progress` per encoded slice, ``stage="heart-embed"``, and per step,
    ``stage="heart"``; close it to stop). Returns ``None`` where the labels carry no
    myocardium (binary labels): nothing to learn the heart from.

    ``view_of(i)``: the window slice ``i`` is seen through (default the whole slice: the
    finder that places windows); windows round the heart train the head that reads the
    anatomy inside them (:func:`train_anatomy`); ``channels``: what it learns to map."""
    import torch

    if not (stack.has_labels and stack.spec.has_myocardium) or not indices:
        return None
    cache = cache if cache is not None else EmbeddingCache(max_bytes=1 << 30)
    _, embed_channels, grid, _ = segmenter.embedding_shape
    inputs, targets = [], []
    for done, i in enumerate(indices, start=1):
        image = stack.crop(i, stack.images[i])
        view = View.whole(image.shape) if view_of is None else view_of(i)
        embedding = cache.get(segmenter, view.crop(image))
        inputs.append(embedding.to(torch.float16))  # half the memory; computed in float32
        targets.append(heart_targets(stack, i, segmenter.img_size, grid, view, channels))
        yield Progress(done, len(indices), "heart-embed", stack.names[i])
    if not any(t[0].any() for t in targets):
        return None
    finder = HeartFinder.build(embed_channels, seed=seed, channels=channels)
    net = finder.net.train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LR)
    rng = np.random.default_rng(seed)
    loss_value = float("nan")
    for step in range(1, steps + 1):
        pick = rng.choice(len(inputs), size=min(BATCH, len(inputs)), replace=False)
        x = torch.cat([inputs[k] for k in pick]).to(torch.float32)
        y = torch.stack([targets[k] for k in pick])
        for axis in (-1, -2):
            if rng.random() < 0.5:
                x, y = x.flip(axis), y.flip(axis)
        loss = _loss(net(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        loss_value = float(loss.detach())
        yield Progress(step, steps, "heart", f"step {step}", {"loss": loss_value})
    finder.net.eval()
    finder.info = {"slices": len(inputs), "steps": steps, "loss": loss_value}
    finder.info["encoder"] = segmenter.name
    return finder


def train_anatomy(
    segmenter: Segmenter,
    stack: Stack,
    indices: list[int],
    augmentation: Augmentation,
    cache: EmbeddingCache | None = None,
    steps: int = STEPS,
    seed: int = 0,
) -> Generator[Progress, None, HeartFinder | None]:
    """The anatomy head: a heart finder trained on windows round each slice's labelled heart,
    the heart's box jittered as a box prompt is (``augmentation``; :func:`.data.slice_view`)
    since inference's windows come from the heart finder and are off. One window a slice,
    the one the segmenter's cached training sees it through (:func:`.data.fixed_view`), so
    training on windows encodes it once for both. It learns the labels' scar too
    (:data:`~napari_yolosam.models.heart.SCAR_CHANNELS`): where a slice has scar at all,
    read without any label. A generator, as :func:`train_heart`."""
    views = {i: fixed_view(stack, i, augmentation) for i in indices}
    return (
        yield from train_heart(
            segmenter, stack, indices, cache, steps, seed, views.get, SCAR_CHANNELS
        )
    )


def train_heads(
    segmenter: Segmenter,
    stack: Stack,
    indices: list[int],
    augmentation: Augmentation,
    cache: EmbeddingCache | None = None,
    steps: int = STEPS,
    seed: int = 0,
) -> Generator[Progress, None, bool]:
    """Both heads of ``segmenter``, trained on the labelled hearts of slices ``indices``:
    the heart finder on whole slices (``segmenter.heart``), then the anatomy head on the
    jittered windows (``segmenter.anatomy``). Binary labels train neither and leave the
    segmenter's heads as they were. A generator, as :func:`train_heart`, returning whether
    it trained them."""
    finder = yield from train_heart(segmenter, stack, indices, cache, steps, seed)
    if finder is None:
        return False
    segmenter.heart = finder
    segmenter.anatomy = yield from train_anatomy(
        segmenter, stack, indices, augmentation, cache, steps, seed
    )
    return True


def _loss(logits, targets):
    """Binary cross-entropy plus soft Dice, each channel, averaged."""
    import torch
    import torch.nn.functional as F

    probs = torch.sigmoid(logits)
    overlap = (probs * targets).sum(dim=(0, 2, 3))
    total = probs.sum(dim=(0, 2, 3)) + targets.sum(dim=(0, 2, 3))
    dice = (2 * overlap + 1) / (total + 1)
    return F.binary_cross_entropy_with_logits(logits, targets) + (1 - dice).mean()
