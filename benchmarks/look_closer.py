"""Look closer: the whole slice against a window round the heart, zero-shot, on both folds.

On each fold's audit half of ``models_benchmark.py`` (the same noise and folds), with
zero-shot LiteMedSAM (nothing trained), each measure is made twice, SAM looking at the
whole slice and at the window round the true heart (``View.around``: 1.5x the box round
the expert's myocardium and blood pool):

- myocardium from nothing but the true boxes: SAM's LV from the LV box less SAM's blood
  pool from the blood pool's box, Dice against the expert myocardium;
- scar from the expert's boxes (one per expert scar region), Dice against the expert;
- the product: ``propose`` with the noisy labels (label prompts, the label's myocardium,
  the extent rule), whole slice vs ``look_closer=True``, scar Dice against the expert on
  slices with expert scar (the noisy labels' own Dice beside it) and the share of
  scar-free slices given scar;
- encoder passes per slice and minutes.

    .venv/bin/python benchmarks/look_closer.py [--folds 2]
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


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else 2 * float((a & b).sum()) / float(total)


def anatomy_scores(stack, expert, segmenter, cache, views) -> dict:
    """Myocardium from the true boxes and scar from the expert's boxes, through ``views``."""
    from napari_yolosam.proposals.heart import mask_box
    from napari_yolosam.proposals.types import label_boxes

    spec = stack.spec
    myo_scores, scar_scores = [], []
    for i, image in enumerate(stack.images):
        myo, blood = spec.myocardium_mask(expert[i]), spec.blood_pool_mask(expert[i])
        lv_box, bp_box = mask_box(myo | blood), mask_box(blood)
        if lv_box is None:
            continue
        view = views[i]
        embedding = cache.get(segmenter, view.crop(image))
        lv = segmenter.decode(embedding, image.shape, boxes=lv_box[None], view=view).masks[0]
        if bp_box is not None:
            pool = segmenter.decode(embedding, image.shape, boxes=bp_box[None], view=view)
            lv = lv & ~pool.masks[0]
        myo_scores.append(dice(lv, myo))
        scar = spec.scar_mask(expert[i])
        if scar.sum() >= 1:
            got = segmenter.decode(embedding, image.shape, boxes=label_boxes(scar), view=view)
            scar_scores.append(dice(got.union, scar))
    return {
        "myocardium": float(np.mean(myo_scores)),
        "scar_expert_boxes": float(np.mean(scar_scores)),
    }


def product_scores(noisy, expert, segmenter, cache, look_closer: bool) -> dict:
    """``propose`` with the noisy labels: scar Dice against the expert."""
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose

    proposals = drive(propose(noisy, segmenter, None, cache=cache, look_closer=look_closer))
    scar = noisy.spec.scar_mask(expert)
    label = noisy.scar()
    with_scar = [i for i in range(len(noisy)) if scar[i].any()]
    free = [i for i in range(len(noisy)) if not scar[i].any()]
    return {
        "proposal_dice": float(
            np.mean([dice(proposals.slices[i].mask, scar[i]) for i in with_scar])
        ),
        "label_dice": float(np.mean([dice(label[i], scar[i]) for i in with_scar])),
        "scar_free_given_scar": float(np.mean([proposals.slices[i].mask.any() for i in free])),
        "windows": sorted({(s.view or {"source": "whole"})["source"] for s in proposals.slices}),
    }


def main() -> None:
    from models_benchmark import emidec_folds

    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.proposals.heart import mask_box
    from napari_yolosam.view import View

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--out", default="runs/look-closer.json")
    args = parser.parse_args()
    stack, truth, noisy_stack, folds = emidec_folds(args.emidec)
    segmenter = Segmenter.from_spec("lite_medsam")
    report = []
    for f, cases in enumerate(folds[: args.folds]):
        idx = [i for i, c in enumerate(stack.cases) if c in cases]
        sub, noisy, expert = stack.subset(idx), noisy_stack.subset(idx), truth[idx]
        cache = EmbeddingCache(max_bytes=1 << 33)
        started = time.time()
        row = {"fold": f, "slices": len(idx)}
        spec = sub.spec
        hearts = [mask_box(spec.myocardium_mask(e) | spec.blood_pool_mask(e)) for e in expert]
        shape = sub.images[0].shape
        whole = [View.whole(shape)] * len(sub)
        close = [
            View.whole(shape) if b is None else View.around(b, shape, "label") for b in hearts
        ]
        for name, views in (("whole", whole), ("closer", close)):
            row[name] = anatomy_scores(sub, expert, segmenter, cache, views)
            row[name].update(product_scores(noisy, expert, segmenter, cache, name == "closer"))
        row["encoder_passes_per_slice"] = cache.stats.encoded / len(idx)
        row["minutes"] = round((time.time() - started) / 60, 1)
        report.append(row)
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(
        "| fold | view | myocardium from true boxes | scar from expert boxes | proposals (labels) | noisy labels | scar-free given scar |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in report:
        for name in ("whole", "closer"):
            r = row[name]
            print(
                f"| {row['fold']} | {name} | {r['myocardium']:.3f} | {r['scar_expert_boxes']:.3f} "
                f"| {r['proposal_dice']:.3f} | {r['label_dice']:.3f} | {r['scar_free_given_scar']:.0%} |"
            )


if __name__ == "__main__":
    main()
