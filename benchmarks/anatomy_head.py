"""What limits the anatomy head's myocardium (#27 point 3): the grid, or what it learns.

Two measures, neither touching the audit halves' figures:

1. ``ceiling``: the expert's own LV and blood pool put on the head's grid (the window's or
   the whole slice's 64x64 embedding cells, as :func:`~napari_yolosam.training.data.target_to_grid`
   makes the head's targets) and brought back to slice pixels the way the head's logits are
   (:func:`~napari_yolosam.models.preprocess.logits_to_image`): the myocardium's Dice with
   the expert's, on every slice with one. What a perfect head on that grid would reach.
2. ``variants``: heads trained as :func:`~napari_yolosam.training.heart.train_anatomy`
   trains the product's (each fold's training half of ``models_benchmark.py``, less its
   validation cases; the decoder's fixed windows, the noisy labels, the same steps, batch,
   rate and seed), judged on those validation cases (patients neither the decoder nor
   the heads trained on) through the heart finder's windows, no labels: the myocardium
   (LV less blood pool, or a fourth channel read directly) against the expert's.
   ``base`` is the product's head; ``context`` adds dilated convolutions (29 cells of
   context instead of 5); ``wide`` trains on windows jittered twice as much (box shift
   and scale, one new window a slice), as wrong as the finder's are at inference; ``myo`` learns the myocardium as a channel of its own; ``rot``
   adds quarter turns of embedding and targets to the flips; ``affine`` moves (up to 10%
   of the window) and zooms (up to 20%) embedding and targets together at each step
   instead, no new encoding. ``decoder`` trains nothing:
   the fine-tuned SAM decoder's myocardium output (the token it learns the labels'
   myocardium with) from the product's anatomy head's LV box, in the same window.

Needs the window run's fold segmenters (``models_benchmark.py --look-closer --scar-head``,
``runs/models-closer/fold*/decoder-closer-scarhead``) and, for speed, its embedding cache.

    .venv/bin/python benchmarks/anatomy_head.py --variants base context wide affine myo rot decoder
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models_benchmark import emidec_folds  # noqa: E402


def ceiling(stack, truth, grid: int, img_size: int = 256) -> dict:
    """Mean myocardium Dice of the expert's anatomy round-tripped through ``grid`` cells."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.geometry import mask_box
    from napari_yolosam.models.preprocess import logits_to_image
    from napari_yolosam.training.data import target_to_grid
    from napari_yolosam.view import View

    spec = stack.spec
    scores: dict[str, list[float]] = {"whole": [], "window": []}
    for i in range(len(stack)):
        labels = stack.crop(i, truth[i])
        myo = spec.myocardium_mask(labels)
        if not myo.any():
            continue
        lv, blood = spec.lv_mask(labels), spec.blood_pool_mask(labels)
        views = {
            "whole": View.whole(labels.shape),
            "window": View.around(mask_box(lv), labels.shape, "label"),
        }
        for name, view in views.items():
            back = [
                view.paste(
                    logits_to_image(target_to_grid(view.take(m), img_size, grid), view.view_shape,
                                    img_size).numpy(), 0.0,
                ) >= 0.5
                for m in (lv, blood)
            ]  # fmt: skip
            scores[name].append(dice(back[0] & ~back[1], myo))
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items()}


def head_net(variant: str, c_in: int, c_out: int, hidden: int = 32):
    """The product's head, or for ``context``: dilated 3x3 convolutions for context."""
    import torch.nn as nn

    from napari_yolosam.models.heart import build_net

    if variant != "context":
        return build_net(c_in, hidden, c_out)
    layers = [nn.Conv2d(c_in, hidden, 3, padding=1), nn.ReLU()]
    for d in (2, 4, 1):
        layers += [nn.Conv2d(hidden, hidden, 3, padding=d, dilation=d), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(hidden, c_out, 1))


def fit(variant: str, inputs: list, targets: list, steps: int, seed: int = 0):
    """Train a changed head (``context``, ``myo``, ``rot``, ``affine``) with the product's
    loop (:func:`~napari_yolosam.training.heart.train_heart`: its batch, rate, loss, seed
    and flips) and the variant's change."""
    import torch

    from napari_yolosam.training.heart import BATCH, LR, _loss

    channels = 4 if variant == "myo" else 3
    torch.manual_seed(seed)
    net = head_net(variant, inputs[0].shape[1], channels).train()
    optimiser = torch.optim.AdamW(net.parameters(), lr=LR)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        pick = rng.choice(len(inputs), size=min(BATCH, len(inputs)), replace=False)
        x = torch.cat([inputs[k] for k in pick]).float()
        y = torch.stack([targets[k][:channels] for k in pick])
        for axis in (-1, -2):
            if rng.random() < 0.5:
                x, y = x.flip(axis), y.flip(axis)
        if variant == "rot":
            turns = int(rng.integers(4))
            x, y = x.rot90(turns, (-2, -1)), y.rot90(turns, (-2, -1))
        if variant == "affine":
            x, y = shift_and_zoom(x, y, rng)
        loss = _loss(net(x), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return net.eval()


def training_windows(train, indices, views, segmenter, cache) -> tuple[list, list]:
    """Embeddings (half precision) and grid targets of training slices ``indices``, each
    seen through ``views[i]``: the anatomy head's (LV, blood pool, scar) and the myocardium."""
    import torch

    from napari_yolosam.models.heart import SCAR_CHANNELS
    from napari_yolosam.training.data import target_to_grid
    from napari_yolosam.training.heart import heart_targets

    size, grid = segmenter.img_size, segmenter.embedding_shape[2]
    inputs, targets = [], []
    for i in indices:
        view = views[i]
        inputs.append(cache.get(segmenter, view.crop(train.crop(i, train.images[i]))).half())
        myo = view.take(train.spec.myocardium_mask(train.crop(i, train.labels[i])))
        product = heart_targets(train, i, size, grid, view, SCAR_CHANNELS)
        targets.append(torch.cat([product, target_to_grid(myo, size, grid)[None]]))
    return inputs, targets


def shift_and_zoom(x, y, rng: np.random.Generator, shift: float = 0.1, zoom: float = 0.2):
    """Embeddings and targets moved by up to ``shift`` of the window and zoomed by up to
    ``zoom`` together, each sample its own draw: a window placed wrong, without encoding."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    scale = 1 + rng.uniform(-zoom, zoom, n)
    move = rng.uniform(-2 * shift, 2 * shift, (n, 2))  # the grid spans -1..1
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = move
    grid = F.affine_grid(torch.from_numpy(theta), list(x.shape), align_corners=False)
    return (
        F.grid_sample(x, grid, align_corners=False),
        F.grid_sample(y, grid, align_corners=False),
    )


def fold_data(noisy, truth, audit_cases, segmenter, cache):
    """The fold's training half and slices, their windows (the decoder's fixed ones, and
    ones jittered twice as much), the fixed windows' embeddings and targets, and its
    held-out cases' finder windows and windows round their expert hearts."""
    from dataclasses import replace

    from napari_yolosam.geometry import mask_box
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.training.data import fixed_view, slice_indices, slice_view, split_cases
    from napari_yolosam.training.sam import SamTrainConfig
    from napari_yolosam.view import View

    rows = [i for i, c in enumerate(noisy.cases) if c not in audit_cases]
    train, expert = noisy.subset(rows), truth[rows]
    config = SamTrainConfig()
    inner_cases, val_cases = split_cases(list(train.cases), config.val_fraction, config.seed)
    inner = slice_indices(train, inner_cases)
    aug = config.augmentation
    wide = replace(aug, box_shift=2 * aug.box_shift, box_scale=2 * aug.box_scale)
    rng = np.random.default_rng(13)
    views = {
        "base": {i: fixed_view(train, i, aug) for i in inner},
        "wide": {i: slice_view(train, i, rng, wide) for i in inner},
    }
    fixed = training_windows(train, inner, views["base"], segmenter, cache)
    val = slice_indices(train, val_cases)
    proposals = drive(propose(train.subset(val).with_labels(None), segmenter, None, cache))
    held = []
    for j, i in enumerate(val):
        image, record = train.crop(i, train.images[i]), proposals.slices[j].view
        labels = train.crop(i, expert[i])
        myo = train.spec.myocardium_mask(labels)
        if not myo.any():
            continue
        found = View.from_dict(record) if record else View.whole(image.shape)
        true = View.around(mask_box(train.spec.lv_mask(labels)), image.shape, "label")
        held.append([(v, cache.get(segmenter, v.crop(image)), myo) for v in (found, true)])
    return train, inner, views, fixed, held


def judge(variant: str, net, held, img_size: int) -> dict:
    """Held-out myocardium Dice: LV less blood pool (``ring``; ``ring_true`` in the window
    round the expert heart), the channel (``direct``)."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.models.heart import SCAR_CHANNELS, HeartFinder

    head = HeartFinder(net, next(net.parameters()).shape[1], channels=SCAR_CHANNELS)
    scores: dict[str, list[float]] = {"ring": [], "ring_true": [], "direct": []}
    for (view, embedding, myo), true in held:
        reading = head.read(embedding, view, img_size)
        scores["ring"].append(dice(reading.lv & ~reading.blood_pool, myo))
        at_true = head.read(true[1], true[0], img_size)
        scores["ring_true"].append(dice(at_true.lv & ~at_true.blood_pool, myo))
        if variant == "myo":
            probs = head.probabilities(embedding, view.view_shape, img_size)
            scores["direct"].append(dice(view.paste(probs[3], 0.0) >= 0.5, myo))
    return {k: round(float(np.mean(v)), 3) for k, v in scores.items() if v}


def judge_decoder(segmenter, held) -> dict:
    """Held-out myocardium Dice of SAM's myocardium from the anatomy head's LV box."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.geometry import mask_box

    scores = []
    for (view, embedding, myo), _ in held:
        reading = segmenter.anatomy.read(embedding, view, segmenter.img_size)
        box = mask_box(reading.lv)
        if box is None:
            scores.append(0.0)
            continue
        output = segmenter.decode(embedding, view.shape, boxes=box[None], target="myocardium",
                                  view=view)  # fmt: skip
        scores.append(dice(output.masks[0], myo))
    return {"decoder": round(float(np.mean(scores)), 3)}


def train_anatomy_in(segmenter, train, indices, views, cache, steps):
    """The product's anatomy head training (:func:`~napari_yolosam.training.heart.train_heart`
    with its scar channel) on the given windows."""
    from napari_yolosam.models.heart import SCAR_CHANNELS
    from napari_yolosam.training.heart import train_heart

    return train_heart(segmenter, train, indices, cache, steps, 0, views.get, SCAR_CHANNELS)


def main() -> None:
    from napari_yolosam.defaults import TRAINING
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/models-closer")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=["base", "context", "wide", "affine", "myo", "rot", "decoder"],
    )
    parser.add_argument("--steps", type=int, default=TRAINING.heart_steps)
    args = parser.parse_args()
    out = Path(args.out)
    stack, truth, noisy, folds = emidec_folds(args.emidec)
    name = "-".join(args.variants)
    results: dict = {"ceiling": {g: ceiling(stack, truth, g) for g in (64, 128)}}
    print("ceiling", results["ceiling"], flush=True)
    for f, audit_cases in enumerate(folds):
        path = out / f"fold{f}/decoder-closer-scarhead/segmenter.pth"
        segmenter = Segmenter.load(path)
        cache = EmbeddingCache(max_bytes=4 << 30, disk_dir=out / "embeddings")
        train, inner, views, fixed, held = fold_data(noisy, truth, audit_cases, segmenter, cache)
        for variant in args.variants:
            started = time.time()
            if variant == "decoder":
                row = judge_decoder(segmenter, held)
            elif variant in ("base", "wide"):  # the product's training, its windows or wider
                head = drive(
                    train_anatomy_in(segmenter, train, inner, views[variant], cache, args.steps)
                )
                row = judge(variant, head.net, held, segmenter.img_size)
            else:
                net = fit(variant, *fixed, args.steps)
                row = judge(variant, net, held, segmenter.img_size)
            row.update(slices=len(held), minutes=round((time.time() - started) / 60, 1))
            results[f"fold{f}/{variant}"] = row
            print(f"fold {f} {variant}", row, flush=True)
    (out / f"anatomy-head-{name}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
