"""The GPU path, checked in one run on a machine with CUDA (the CI machine has none).

Checks that ``auto`` picks float16 on CUDA and that it holds: the embedding's error
against float32, and the Dice of scar proposals from truth-box prompts on phantom slices
(against the truth and against float32's masks); times the encoder per slice in both
precisions (single slices and a batch); runs ``propose`` on CUDA; and trains the
segmenter for one epoch in ``decoder`` and ``full`` mode on CUDA. Prints a table and writes
``gpu_check.json`` to ``--out``. Usage::

    python benchmarks/gpu_check.py [--slices 24] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-gpu-"))


def dice(a, b) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2 * float((a & b).sum()) / float(total)


def per_slice(run, inputs, repeats: int = 5) -> float:
    """Median seconds per slice of ``run`` over ``inputs`` (CUDA synchronised)."""
    import numpy as np
    import torch

    run(inputs[0][None])
    times = []
    for r in range(repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        run(inputs[r % len(inputs)][None])
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def batched(run, inputs) -> float:
    import torch

    batch = torch.stack(inputs)
    run(batch)
    torch.cuda.synchronize()
    start = time.perf_counter()
    run(batch)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / len(inputs)


def precision_check(segmenter, images, truths) -> dict:
    """float16 against float32: embedding error, proposal Dice, speed."""
    import numpy as np

    from napari_yolosam.models.preprocess import prepare_image
    from napari_yolosam.models.segmenter.backends import half_runner, torch_runner
    from napari_yolosam.proposals.types import label_boxes

    fp32, fp16 = torch_runner(segmenter).run, half_runner(segmenter).run
    inputs = [prepare_image(image, segmenter.preprocess).cuda() for image in images]
    rel, d32, d16, agree = [], [], [], []
    for image, truth, x in zip(images, truths, inputs, strict=True):
        e32, e16 = fp32(x[None]), fp16(x[None])
        rel.append(float((e16 - e32).norm() / e32.norm()))
        boxes = label_boxes(truth)
        m32 = segmenter.decode(e32, image.shape, boxes=boxes).union
        m16 = segmenter.decode(e16, image.shape, boxes=boxes).union
        d32.append(dice(m32, truth))
        d16.append(dice(m16, truth))
        agree.append(dice(m16, m32))
    return {
        "relative_error_max": max(rel),
        "dice_fp32": float(np.mean(d32)),
        "dice_fp16": float(np.mean(d16)),
        "dice_change": float(np.mean(d16) - np.mean(d32)),
        "dice_fp16_vs_fp32_masks": float(np.mean(agree)),
        "s_per_slice_fp32": per_slice(fp32, inputs),
        "s_per_slice_fp16": per_slice(fp16, inputs),
        "s_per_slice_fp32_batch": batched(fp32, inputs),
        "s_per_slice_fp16_batch": batched(fp16, inputs),
    }


def workflow_check(phantom, out: Path) -> dict:
    """propose and one epoch of decoder / full training, all on CUDA."""
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    facts = {}
    segmenter = Segmenter.from_spec("lite_medsam", device="cuda")
    start = time.perf_counter()
    proposals = drive(propose(phantom.stack, segmenter, None, EmbeddingCache()))
    facts["propose_s"] = time.perf_counter() - start
    facts["propose_backend"] = segmenter.encoder_runner.name
    truth = phantom.stack.spec.scar_mask(phantom.truth)
    facts["propose_dice_vs_truth"] = dice(
        __import__("numpy").stack([s.mask for s in proposals.slices]), truth
    )
    for mode, name in (("decoder", "lite_medsam"), ("full", "tiny")):
        seg = Segmenter.from_spec(name, device="cuda")
        config = SamTrainConfig(epochs=1, batch_size=4, mode=mode, val_fraction=0.25)
        start = time.perf_counter()
        result = drive(
            train_segmenter(phantom.stack, seg, config, out / mode, cache=EmbeddingCache())
        )
        facts[f"train_{mode}_s"] = time.perf_counter() - start
        facts[f"train_{mode}_val_dice"] = result.history[-1].get("val_dice")
        facts[f"train_{mode}_backend_after"] = seg.encoder_backend
    return facts


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=24)
    parser.add_argument("--out", default=os.environ.get("OUT", "gpu-check"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: this check is for a machine with a GPU")

    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom

    facts = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    segmenter = Segmenter.from_spec("lite_medsam", device="cuda")
    facts["auto_backend_on_cuda"] = segmenter.encoder_runner.name
    phantom = make_phantom(n_slices=args.slices, shape=(256, 256), seed=1)
    truths = list(phantom.stack.spec.scar_mask(phantom.truth))
    facts.update(precision_check(segmenter, list(phantom.stack.images), truths))
    facts.update(workflow_check(phantom, out / "runs"))
    (out / "gpu_check.json").write_text(json.dumps(facts, indent=1))
    for key, value in facts.items():
        print(f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |")


if __name__ == "__main__":
    main()
