"""Do automatic accept rules make labels better? The old rule against the rule with a gain.

The old rule (`yolosam review --accept-below 0.5 --min-confidence 0.5` before the
expected-gain test: every queued slice under the quality with a confident proposal, the
widget's concerns aside) and the rule as it is now (the same, plus an expected gain of at
least `review_gain.MIN_GAIN` from what the audit knows, and no run at all where the data
cannot say that accepting helps), each judged against the truth: mean Dice of the labels
over the slices with scar in the truth, before and after, and how many accepted slices got
better or worse. On the default phantom (`yolosam phantom`, seed 0) and on both EMIDEC dev
folds with noisy labels (as `review_queue.py`: zero-shot LiteMedSAM, label prompts).

    .venv/bin/python benchmarks/rule_gain.py --out runs/rule-gain
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


def _mean_dice(labels, truth) -> float:
    from napari_yolosam.audit.metrics import dice

    keep = [i for i in range(len(truth)) if truth[i].any()]
    return float(np.mean([dice(labels[i], truth[i]) for i in keep]))


def judge(stack, truth, segmenter, cache, below=0.5, confidence=0.5) -> dict:
    from napari_yolosam.audit import audit
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.review import ReviewSession
    from napari_yolosam.review_batch import apply, rule_decisions
    from napari_yolosam.review_gain import GainModel, RuleRefused

    proposals = drive(propose(stack, segmenter, None, cache=cache))
    rows = audit(stack, proposals).rows
    figures = {"labels": round(_mean_dice(stack.scar(), truth), 4)}
    for name, force in (("old rule", True), ("rule with gain", False)):
        session = ReviewSession(stack, proposals.masks(), rows)
        model = GainModel.of(session)
        try:
            planned = rule_decisions(session, proposals, below, confidence, force=force)
        except RuleRefused as exc:
            figures[name] = {"refused": str(exc), "level": model.level, "agreed": model.agreed}
            continue
        decisions = apply(session, planned)
        after = session.stack.spec.scar_mask(session.labels)
        changes = [
            dice(after[d.slice], truth[d.slice]) - dice(stack.scar()[d.slice], truth[d.slice])
            for d in decisions
        ]
        figures[name] = {
            "accepted": len(decisions),
            "labels_after": round(_mean_dice(after, truth), 4),
            "better": sum(c > 0.01 for c in changes),
            "worse": sum(c < -0.01 for c in changes),
            "level": round(model.level, 4),
            "agreed": model.agreed,
            "expected_gain": round(float(np.nanmean([p.gain for p in planned])), 4)
            if planned
            else None,
            "measured_gain": round(float(np.mean(changes)), 4) if changes else None,
        }
    return figures


def main() -> None:
    from napari_yolosam.defaults import default_segmenter
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/rule-gain")
    parser.add_argument("--cache", default="runs/review-queue/embeddings")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    segmenter = Segmenter.from_spec(default_segmenter())
    cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=args.cache)
    report = {}
    phantom = make_phantom(n_slices=8, n_cases=4, corrupt=0.3, seed=0)  # `yolosam phantom`
    report["phantom"] = judge(phantom.stack, np.isin(phantom.truth, (3, 4)), segmenter, cache)
    print("phantom", json.dumps(report["phantom"]), flush=True)
    stack, truth, noisy, folds = emidec_folds(args.emidec)
    expert = np.isin(truth, (3, 4))
    for f, cases in enumerate(folds):
        idx = [i for i, c in enumerate(stack.cases) if c in cases]
        report[f"emidec fold {f}"] = judge(noisy.subset(idx), expert[idx], segmenter, cache)
        print(f"fold {f}", json.dumps(report[f"emidec fold {f}"]), flush=True)
    (out / "rule-gain.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
