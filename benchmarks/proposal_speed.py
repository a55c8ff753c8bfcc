"""Proposal speed on this machine: encoder, decoder with a cached embedding, whole stack.

Random weights are fine for speed. Prints a Markdown table (copy it into
docs/benchmarks.md). Usage::

    .venv/bin/python benchmarks/proposal_speed.py [--models tiny vit_b lite_medsam] [--slices 6] [--threads 2]

``lite_medsam`` (the default segmenter) loads its packaged pretrained weights.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-bench-"))


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times), sum(times) / len(times)


def main() -> None:
    import numpy as np
    import torch

    from napari_yolosam.models.detector import Detections, Detector
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", nargs="+", default=["tiny", "vit_b"])
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--boxes", type=int, default=2, help="scar boxes per slice")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    phantom = make_phantom(n_slices=args.slices, shape=(256, 256), seed=1)
    stack = phantom.stack.with_labels(None)
    image = stack.images[0]
    boxes = np.array([[90, 90, 140, 150], [120, 80, 170, 120], [80, 120, 130, 170]], np.float32)[
        : args.boxes
    ]
    detector = Detector.build("yolo11n.yaml", names=("scar",), imgsz=256)
    fixed = Detections(boxes, np.full(len(boxes), 0.9, np.float32), np.zeros(len(boxes), int))
    det_time, _ = _best(lambda: detector.predict([image]), 3)

    print(
        f"torch {torch.__version__}, {args.threads} threads, {args.slices} slices of 256x256, "
        f"{args.boxes} boxes per slice; yolo11n predict {det_time * 1000:.0f} ms/slice\n"
    )
    print(
        "| model | encoder s/slice | decoder ms/box (cached) | decoder ms/call, 1 box | stack s (cached emb.) "
        "| stack s (total) | encoder-bound s | overhead | re-encode per box s | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        seg = Segmenter.from_spec(name) if name == "lite_medsam" else Segmenter.build(name)
        seg.encode(image)  # warm up
        _, enc = _best(lambda seg=seg: seg.encode(image), 3 if name != "tiny" else 5)
        emb = seg.encode(image)
        dec_k, _ = _best(lambda seg=seg, emb=emb: seg.decode(emb, image.shape, boxes=boxes), 10)
        dec_1, _ = _best(
            lambda seg=seg, emb=emb: seg.decode(emb, image.shape, boxes=boxes[:1]), 10
        )
        detector.predict = lambda images, **kw: [
            fixed for _ in images
        ]  # time SAM, not the random detector
        cache = EmbeddingCache()
        start = time.perf_counter()
        drive(propose(stack, seg, detector, cache=cache, use_labels=False))
        total = time.perf_counter() - start
        start = time.perf_counter()
        drive(propose(stack, seg, detector, cache=cache, use_labels=False))
        cached = time.perf_counter() - start
        bound = enc * len(stack)
        reencode = (enc + dec_1) * args.boxes * len(stack)
        print(
            f"| {name} | {enc:.3f} | {dec_k / args.boxes * 1000:.1f} | {dec_1 * 1000:.1f} | {cached:.2f} | "
            f"{total:.2f} | {bound:.2f} | {100 * (total - bound) / bound:+.1f}% | {reencode:.2f} | "
            f"{reencode / total:.1f}x |"
        )


if __name__ == "__main__":
    main()
