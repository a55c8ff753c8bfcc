"""Where the end-to-end path (no labels) loses: each link replaced by the expert's.

On each fold's audit half of ``models_benchmark.py`` (the same noise, folds, fold
detectors and fine-tuned segmenters), the end-to-end scar (the detector's best LV
box prompts SAM for the myocardium and for scar; scar kept inside that myocardium;
extent from its enhanced regions) is measured with its links swapped one at a time:

- ``detector box``: as the product does it (``defaults.LV_CONF``);
- ``true box``: a box round the expert LV instead, SAM's myocardium from it;
- ``expert myocardium``: the true box, and the expert's myocardium instead of SAM's;
- ``2 SD alone``: no SAM scar, every enhanced region of the expert myocardium.

Scar Dice is against the expert on slices with expert scar; on scar-free slices,
the share given some scar. Also: the LV boxes' IoU with the true box and SAM's
myocardium Dice from each box.

``--look-closer``: the same links through the product's windows (#27), the segmenter's
heads in place of the detector. ``detector box`` becomes the window the heart finder
places (``propose`` without labels, as recorded in its proposals), the anatomy head's LV
box and myocardium read inside it; ``true box`` the window round the expert LV, the
head's myocardium read inside that; ``expert myocardium`` that window and the expert's
myocardium; ``product`` the proposals' own scar (the head's scar prompts, the default).

    .venv/bin/python benchmarks/end_to_end_parts.py --out runs/models-lite --model neck
    .venv/bin/python benchmarks/end_to_end_parts.py --out runs/models-closer --model decoder-closer-scarhead --look-closer
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from models_benchmark import emidec_folds  # noqa: E402


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``x0 y0 x1 y1`` boxes."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return float(w * h / (area - w * h))


def scar_from_box(segmenter, embedding, image, box, myocardium, view=None) -> np.ndarray:
    """Scar as the end-to-end path makes it (``proposals.core``) from an LV box and a
    myocardium: SAM's scar from the box (looking at ``view``, default the whole slice),
    kept inside the myocardium, extent from the image."""
    from napari_yolosam.proposals.core import enhanced_extent, segment_slice

    if box is None or not myocardium.any():
        return np.zeros(image.shape, bool)
    prompts = [(box, float("nan"), "lv")]
    out, _ = segment_slice(
        segmenter, embedding, image.shape, prompts, myocardium=myocardium, view=view
    )
    return enhanced_extent(out, image, myocardium).union


def scar_rows(row: dict, scars: dict, scar: np.ndarray) -> dict:
    """``row`` with each path's scar Dice (slices with scar) or false scar (without)."""
    from napari_yolosam.audit.metrics import dice

    for name, mask in scars.items():
        if scar.any():
            row[f"scar {name}"] = dice(mask, scar)
        else:
            row[f"false scar {name}"] = float(mask.any())
    return row


def window_parts(segmenter, cache, image, labels, spec, proposal) -> dict:
    """Every measure of one slice looking closer: the heads' window and anatomy (from the
    slice's proposal without labels) against the expert's window and myocardium."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.proposals.core import anatomy_of, read_window
    from napari_yolosam.proposals.types import INTENSITY_N
    from napari_yolosam.semiauto import nsd
    from napari_yolosam.training.data import bbox
    from napari_yolosam.view import View

    myo, scar = spec.myocardium_mask(labels), spec.scar_mask(labels)
    true_box = bbox(spec.lv_mask(labels))
    views = {
        "found": View.from_dict(proposal.view) if proposal.view else View.whole(image.shape),
        "true": View.around(true_box, image.shape, "label"),
    }
    parts = {}
    for name, view in views.items():
        read, box = anatomy_of(read_window(segmenter, cache, image, view))
        parts[name] = (view, box, np.zeros_like(myo) if read is None else read[0])
    (found_view, head_box, head_myo), (true_view, _, true_myo) = parts["found"], parts["true"]
    row = {
        "box_iou": 0.0 if head_box is None else box_iou(head_box, true_box),
        "myo_detector_box": dice(head_myo, myo),
        "myo_true_box": dice(true_myo, myo),
    }
    found_emb = cache.get(segmenter, found_view.crop(image))
    true_emb = cache.get(segmenter, true_view.crop(image))
    scars = {
        "product": proposal.mask[: image.shape[0], : image.shape[1]],
        "detector box": scar_from_box(segmenter, found_emb, image, head_box, head_myo, found_view),
        "true box": scar_from_box(segmenter, true_emb, image, true_box, true_myo, true_view),
        "expert myocardium": scar_from_box(segmenter, true_emb, image, true_box, myo, true_view),
        "2 SD alone": nsd(image, myo, INTENSITY_N).mask,
    }
    return scar_rows(row, scars, scar)


def slice_parts(segmenter, detector, cache, image, labels, spec) -> dict:
    """Every measure of one slice (keys absent where they do not apply)."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.defaults import LV_CONF
    from napari_yolosam.models.detector import LV_CLASS
    from napari_yolosam.proposals.core import model_myocardium
    from napari_yolosam.proposals.types import INTENSITY_N
    from napari_yolosam.semiauto import nsd
    from napari_yolosam.training.data import bbox

    myo, scar = spec.myocardium_mask(labels), spec.scar_mask(labels)
    true_box = bbox(spec.lv_mask(labels))
    found = detector.predict([image], class_conf={LV_CLASS: LV_CONF})[0]
    found = found.of_class(detector.class_index(LV_CLASS))
    det_box = found.boxes[int(np.argmax(found.scores))] if len(found) else None
    embedding = cache.get(segmenter, image)

    def model_myo(box):
        found = model_myocardium(segmenter, embedding, image.shape, box)
        return np.zeros_like(myo) if found is None else found

    det_myo, true_myo = model_myo(det_box), model_myo(true_box)
    row = {
        "box_iou": 0.0 if det_box is None else box_iou(det_box, true_box),
        "myo_detector_box": dice(det_myo, myo),
        "myo_true_box": dice(true_myo, myo),
    }
    scars = {
        "detector box": scar_from_box(segmenter, embedding, image, det_box, det_myo),
        "true box": scar_from_box(segmenter, embedding, image, true_box, true_myo),
        "expert myocardium": scar_from_box(segmenter, embedding, image, true_box, myo),
        "2 SD alone": nsd(image, myo, INTENSITY_N).mask,
    }
    return scar_rows(row, scars, scar)


def fold_rows(stack, truth, audit_cases, segmenter, fold: Path, cache, closer: bool) -> list:
    """Every measure of each audit-half slice with an expert myocardium."""
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose

    audit = [i for i, case in enumerate(stack.cases) if case in audit_cases]
    if closer:  # the product without labels on the whole half: its windows and scar
        proposals = drive(propose(stack.subset(audit).with_labels(None), segmenter, None, cache))
    else:
        detector = Detector.load(fold / "detector.pt")
    rows = []
    for j, i in enumerate(audit):
        labels, image = stack.crop(i, truth[i]), stack.crop(i, stack.images[i])
        if not stack.spec.myocardium_mask(labels).any():
            continue
        if closer:
            part = window_parts(segmenter, cache, image, labels, stack.spec, proposals.slices[j])
        else:
            part = slice_parts(segmenter, detector, cache, image, labels, stack.spec)
        rows.append(part)
    return rows


def main() -> None:
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/models-lite", help="models_benchmark.py's OUT")
    parser.add_argument("--model", default="neck", help="the fold segmenters' folder name")
    parser.add_argument(
        "--look-closer", action="store_true", help="the links through the heads' windows"
    )
    args = parser.parse_args()
    out = Path(args.out)
    stack, truth, _, folds = emidec_folds(args.emidec)
    cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=out / "embeddings")
    report = {}
    for f, audit_cases in enumerate(folds):
        fold = out / f"fold{f}"
        segmenter = Segmenter.load(fold / args.model / "segmenter.pth")
        rows = fold_rows(stack, truth, audit_cases, segmenter, fold, cache, args.look_closer)
        keys = sorted({k for row in rows for k in row})
        report[f"fold{f}"] = {
            k: [
                round(float(np.mean([r[k] for r in rows if k in r])), 3),
                sum(k in r for r in rows),
            ]
            for k in keys
        }
        print(f, json.dumps(report[f"fold{f}"]), flush=True)
    tag = "-closer" if args.look_closer else ""
    (out / f"end-to-end-parts-{args.model}{tag}.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
