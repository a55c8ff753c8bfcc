"""The review queue's worst slices: is what Accept offers there better than the label?

EMIDEC dev with noisy labels (the noise model, seed and 2 patient folds of
``audit_benchmark.py`` and ``models_benchmark.py``), the annotator's default
setting: zero-shot LiteMedSAM (the default segmenter and encoder backend), label
prompts, no detector, the default proposal options, the audit as ``yolosam audit``
runs it, the queue as the review widget orders it. For each fold, over the first
``--worst`` queued slices:

- the label's Dice against the expert, and the offered correction's (what Accept
  writes: the proposal's scar inside the label's myocardium), per slice and pooled;
- how many of them Accept would ask about first (``proposal_concerns``), how many
  carry expert scar, on how many the models found nothing, and how many offered
  corrections are worse than the label.

    .venv/bin/python benchmarks/review_queue.py --out runs/review-queue
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


def pooled(masks, truths) -> float:
    """Dice of all the slices' pixels together."""
    inter = sum(int((m & t).sum()) for m, t in zip(masks, truths, strict=True))
    total = sum(int(m.sum() + t.sum()) for m, t in zip(masks, truths, strict=True))
    return 2 * inter / total if total else 1.0


def fold_figures(stack, expert, segmenter, cache, worst: int) -> dict:
    """Propose, audit and queue one fold's slices; the figures of the ``worst`` first."""
    from napari_yolosam.audit import audit
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.review import ReviewSession

    started = time.time()
    proposals = drive(propose(stack, segmenter, None, cache=cache))
    result = audit(stack, proposals)
    session = ReviewSession(stack, proposals.masks(), result.rows)
    queue = session.queue()[:worst]
    labels, offered, truths, rows = [], [], [], []
    for i in queue:
        label = stack.spec.scar_mask(stack.labels[i])
        accepted, _ = stack.spec.replace_scar(stack.labels[i], proposals.slices[i].mask)
        correction = stack.spec.scar_mask(accepted)
        labels.append(label)
        offered.append(correction)
        truths.append(expert[i])
        rows.append(
            {
                "image": stack.names[i],
                "issue": result.rows[i]["issue"],
                "quality": round(float(result.rows[i]["quality"]), 4),
                "label_dice": round(dice(label, expert[i]), 4),
                "offered_dice": round(dice(correction, expert[i]), 4),
                "expert_px": int(expert[i].sum()),
                "asks_first": bool(session.proposal_concerns(i)),
                "model_found_nothing": "model_found_nothing" in result.rows[i]["evidence"],
            }
        )
    return {
        "slices": len(stack),
        "flagged": result.summary["flagged"],
        "model_found_nothing_all": result.summary["model_found_nothing"],
        "worst": len(queue),
        "label_dice_mean": float(np.mean([r["label_dice"] for r in rows])) if rows else None,
        "offered_dice_mean": float(np.mean([r["offered_dice"] for r in rows])) if rows else None,
        "label_dice_pooled": pooled(labels, truths),
        "offered_dice_pooled": pooled(offered, truths),
        "with_expert_scar": sum(r["expert_px"] > 0 for r in rows),
        "asks_first": sum(r["asks_first"] for r in rows),
        "model_found_nothing": sum(r["model_found_nothing"] for r in rows),
        "offered_worse": sum(r["offered_dice"] < r["label_dice"] for r in rows),
        "minutes": round((time.time() - started) / 60, 1),
        "rows": rows,
    }


def main() -> None:
    from napari_yolosam.defaults import default_segmenter
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/review-queue")
    parser.add_argument("--worst", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, help="only the first N patients (a smoke run)")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stack, truth, noisy, folds = emidec_folds(args.emidec, seed=args.seed, first_cases=args.cases)
    expert = np.isin(truth, (3, 4))
    segmenter = Segmenter.from_spec(default_segmenter())
    cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=out / "embeddings")
    report = {"args": vars(args), "segmenter": segmenter.name, "folds": []}
    for f, cases in enumerate(folds):
        idx = [i for i, c in enumerate(stack.cases) if c in cases]
        figures = fold_figures(noisy.subset(idx), expert[idx], segmenter, cache, args.worst)
        report["folds"].append({"fold": f, **figures})
        summary = {k: v for k, v in figures.items() if k != "rows"}
        print(f"fold {f}", json.dumps(summary), flush=True)
    (out / "review-queue.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
