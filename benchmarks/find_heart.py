"""Finding the heart without labels (#27 point 2): the windows the product takes from the
detector, and what SAM makes of them, against the expert.

Each fold's detector (yolo11n from scratch on the other half's *noisy* labels, as in
``models_benchmark.py``: the same noise, folds, seed and epochs; reused when OUT has it)
boxes the LV of the audit half's slices; ``propose`` then runs without any label (binary
or none), twice: on the whole slice and with ``look_closer`` (the window round the
case-smoothed LV box, :func:`~napari_yolosam.proposals.heart.find_views`). On slices with
an expert myocardium:

- ``box_iou``: the LV box that finds the heart (``--finder``: the segmenter's heart finder,
  trained here on the noisy training half's myocardium labels, or the detector's best LV
  box) against the box round the expert LV; ``box_iou_window``: the LV box the proposals
  looking closer prompt with (the anatomy head's, read inside the window; trained here on
  jittered windows round the training half's labelled hearts, unless ``--no-anatomy``);
- ``covered``: the share of the expert heart's box inside the window; ``inside``: the
  share of slices whose whole heart box is inside it; ``heart_cut``: every measure again
  on the slices whose window cuts the heart (what a wrong region costs);
- ``myocardium``: the proposals' own myocardium (SAM's from the LV box on the whole slice;
  looking closer, the anatomy head's LV less its blood pool in the window) against the
  expert's;
- ``scar``: the end-to-end proposals (detector boxes, LV-box scar prompt, the extent
  rule) against the expert scar on slices with scar; ``false_scar``: the share of
  scar-free slices given some.

Zero-shot LiteMedSAM (nothing fine-tuned), ONNX Runtime encoder. Whole-slice embeddings
are cached in OUT/embeddings.

    .venv/bin/python benchmarks/find_heart.py --out runs/find-heart
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

from end_to_end_parts import box_iou  # noqa: E402
from models_benchmark import emidec_folds, train_detector  # noqa: E402


class _Found:
    """The heart finder's LV box as detections of the LV class (for :func:`slice_rows`)."""

    def __init__(self, box):
        self.boxes = np.zeros((0, 4), np.float32) if box is None else box[None]
        self.scores = np.ones(len(self.boxes), np.float32)

    def of_class(self, _):
        return self

    def __len__(self):
        return len(self.boxes)


def heart_box(segmenter, cache, stack, i):
    image = stack.crop(i, stack.images[i])
    embedding = cache.get(segmenter, image)
    return _Found(segmenter.heart.lv_box(embedding, image.shape, segmenter.img_size))


def covered(window, box) -> float:
    """The share of ``box`` (``x0 y0 x1 y1``) inside ``window`` (a View's box)."""
    inter = [max(window[0], box[0]), max(window[1], box[1])]
    inter += [min(window[2], box[2]), min(window[3], box[3])]
    w, h = max(0.0, inter[2] - inter[0]), max(0.0, inter[3] - inter[1])
    return float(w * h / max((box[2] - box[0]) * (box[3] - box[1]), 1e-6))


def slice_rows(blind, truth, spec, whole, closer, detections, lv_index) -> list[dict]:
    """One row per slice with an expert myocardium: every measure of the docstring."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.proposals.heart import mask_box
    from napari_yolosam.training.data import bbox

    rows = []
    for i in range(len(blind)):
        labels = blind.crop(i, truth[i])
        myo, scar = spec.myocardium_mask(labels), spec.scar_mask(labels)
        if not myo.any():
            continue
        true_box = bbox(spec.lv_mask(labels))
        heart = mask_box(myo | spec.blood_pool_mask(labels))
        lv = detections[i].of_class(lv_index)
        det = lv.boxes[int(np.argmax(lv.scores))] if len(lv) else None
        view = closer.slices[i].view
        window = view and np.array([view["left"], view["top"], view["left"] + view["size"],
                                    view["top"] + view["size"]], np.float32)  # fmt: skip
        lv_prompts = [b for b, s in zip(closer.slices[i].boxes, closer.slices[i].sources,
                                        strict=True) if s == "lv"]  # fmt: skip
        row = {
            "box_iou": 0.0 if det is None else box_iou(det, true_box),
            "box_iou_window": box_iou(lv_prompts[0], true_box) if lv_prompts else 0.0,
            "covered": 0.0 if window is None else covered(window, heart),
            "window": "whole" if view is None else view["source"],
        }
        row["inside"] = float(row["covered"] > 0.999)
        for name, found in (("whole", whole), ("closer", closer)):
            p = found.slices[i]
            own = np.zeros_like(myo) if p.myocardium is None else blind.crop(i, p.myocardium)
            row[f"myocardium_{name}"] = dice(own, myo)
            mask = blind.crop(i, p.mask)
            if scar.any():
                row[f"scar_{name}"] = dice(mask, scar)
            else:
                row[f"false_scar_{name}"] = float(mask.any())
        rows.append(row)
    return rows


def summary(rows: list[dict]) -> dict:
    """Means over the rows; the same over the slices whose window cut the heart (what a
    wrong region costs) and over the others."""
    keys = sorted({k for r in rows for k in r if k != "window"})

    def means(part: list[dict]) -> dict:
        return {
            k: round(float(np.mean([r[k] for r in part if k in r])), 3)
            for k in keys
            if any(k in r for r in part)
        }

    out = means(rows)
    out["slices"] = len(rows)
    out["windows"] = {s: sum(r["window"] == s for r in rows) for s in {r["window"] for r in rows}}
    cut = [r for r in rows if not r["inside"]]
    out["heart_cut"] = {"slices": len(cut), **means(cut)} if cut else {"slices": 0}
    return out


def main() -> None:
    from napari_yolosam.defaults import LV_CONF
    from napari_yolosam.models.detector import LV_CLASS
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.training.data import Augmentation
    from napari_yolosam.training.heart import train_anatomy, train_heart

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/find-heart")
    parser.add_argument("--detector-epochs", type=int, default=40)
    parser.add_argument("--train-only", action="store_true", help="train the detectors, stop")
    parser.add_argument(
        "--finder",
        choices=("detector", "heart"),
        default="heart",
        help="what finds the heart: the segmenter's heart finder (trained here on the noisy "
        "training half's myocardium labels) or the detector's LV box",
    )
    parser.add_argument(
        "--no-anatomy",
        action="store_true",
        help="without the anatomy head: SAM's myocardium from the finder's LV box in the window",
    )
    args = parser.parse_args()
    out = Path(args.out)
    stack, truth, noisy, folds = emidec_folds(args.emidec)
    report = []
    for f, audit_cases in enumerate(folds):
        train_idx = [i for i, c in enumerate(stack.cases) if c not in audit_cases]
        detector, minutes = train_detector(
            noisy.subset(train_idx), out / f"fold{f}", args.detector_epochs
        )
        print(f"fold {f}: detector in {minutes} min", flush=True)
        if args.train_only:
            continue
        audit_idx = [i for i, c in enumerate(stack.cases) if c in audit_cases]
        blind = noisy.subset(audit_idx).with_labels(None)
        segmenter = Segmenter.from_spec("lite_medsam")
        cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=out / "embeddings")
        started = time.time()
        if args.finder == "heart":  # the product's heads, on the noisy training half
            segmenter.heart = drive(train_heart(segmenter, noisy, train_idx, cache, seed=0))
            print(f"heart finder: {segmenter.heart.info}", flush=True)
            if not args.no_anatomy:
                work = train_anatomy(segmenter, noisy, train_idx, Augmentation(), cache, seed=0)
                segmenter.anatomy = drive(work)
                print(f"anatomy head: {segmenter.anatomy.info}", flush=True)
        found = {}
        for closer in (False, True):
            found[closer] = drive(
                propose(blind, segmenter, detector, cache, lv_scar=True, look_closer=closer)
            )
        found_lv = detector.predict(
            [blind.crop(i, blind.images[i]) for i in range(len(blind))],
            class_conf={LV_CLASS: LV_CONF},
        )
        if args.finder == "heart":
            found_lv = [heart_box(segmenter, cache, blind, i) for i in range(len(blind))]
        rows = slice_rows(
            blind, truth[audit_idx], stack.spec, found[False], found[True],
            found_lv, detector.class_index(LV_CLASS),
        )  # fmt: skip
        fold = {"fold": f, "finder": args.finder, "detector_minutes": minutes, **summary(rows)}
        fold["minutes"] = round((time.time() - started) / 60, 1)
        fold["encoded"] = cache.stats.encoded
        print(json.dumps(fold), flush=True)
        report.append(fold)
    if report:
        (out / "find-heart.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
