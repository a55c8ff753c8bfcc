"""``yolosam demo``: the whole method on generated data, no download, a few CPU minutes.

phantom with noisy labels -> propose (SAM from the labels' boxes) -> audit ->
scripted review (the rule of ``yolosam review --accept-below``) -> fine-tune
the detector and SAM on the cleaned set -> propose and audit again. The
phantom's truth is known, so every step is scored against it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audit.metrics import auroc, dice
from .audit.report import write_overview
from .defaults import default_segmenter
from .demo_figures import before_after, training_curves
from .io.atomic import atomic_write_text
from .io.manifest import Provenance, write_manifest
from .io.outputs import check_output
from .phantom.io import save_phantom
from .phantom.make import make_phantom
from .progress import Progress, drive
from .training.sam import SamTrainConfig


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: cases, slices per case, image side, epochs."""

    cases: int = 6
    slices: int = 5
    size: int = 160
    sam_epochs: int = 3
    detector_epochs: int = 10
    corrupt: float = 0.3


QUICK = DemoSize(cases=3, slices=3, size=96, sam_epochs=1, detector_epochs=1)
#: The scripted review: accept the proposal where quality is under this ...
REVIEW_BELOW = 0.5
#: ... and SAM's mean probability in its proposal is at least this.
REVIEW_CONFIDENCE = 0.5
#: A label is bad when its Dice against the truth is under this (what the audit should find).
BAD_LABEL = 0.5


def run_demo(
    out: str | Path,
    size: DemoSize = DemoSize(),
    seed: int = 0,
    on_progress=None,
    segmenter: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Run the method on a phantom and score each step against its truth (default segmenter:
    :func:`~napari_yolosam.defaults.default_segmenter`). Writes ``data/``, ``cleaned/``,
    ``run/``, ``proposals/`` and ``report.json`` under ``out``; returns the report."""
    from .io import read_stack
    from .models.embeddings import EmbeddingCache
    from .models.segmenter import Segmenter
    from .paths import cache_dir

    check_output(out, (), overwrite)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_manifest(out, Provenance("demo"), finished=False)  # the folder is this run's
    phantom = make_phantom(
        n_slices=size.slices,
        n_cases=size.cases,
        shape=(size.size, size.size),
        corrupt=size.corrupt,
        seed=seed,
    )
    save_phantom(phantom, out / "data")
    stack = read_stack(out / "data")
    truth = np.isin(phantom.truth, (3, 4))
    cache = EmbeddingCache(disk_dir=cache_dir("embeddings"))
    name = segmenter or default_segmenter()
    first = Segmenter.from_spec(name)
    before = _score(stack, truth, first, None, cache, on_progress)
    proposals, result = before.pop("proposals"), before.pop("result")
    models = {"segmenter": name, "segmenter_fingerprint": first.fingerprint, "detector": None}
    cleaned, review = _scripted_review(stack, proposals, result.rows, truth, out, models)
    run = _fine_tune(cleaned, out / "run", name, size, seed, cache, on_progress)
    after = _score(cleaned, truth, run["segmenter"], run["detector"], cache, on_progress)
    after.pop("result")
    _save_end_to_end(after.pop("proposals"), cleaned, out / "proposals")
    flagged = [i for i, row in enumerate(result.rows) if row["flag"]]
    figures = {
        "overview": write_overview(result, stack, proposals.masks(), out / "overview.png"),
        "before_after": before_after(
            stack, truth, proposals.masks(), cleaned.scar(), flagged, out / "before_after.png"
        ),
        "training": training_curves(run["history"], out / "training.png"),
    }
    report = {
        "segmenter": name,
        "segmenter_is": first.origin,
        "models": {**models, "trained": {k: str(v) for k, v in run["files"].items()}},
        "figures": {k: str(v) for k, v in figures.items()},
        "cases": size.cases,
        "slices": len(stack),
        "corrupted_slices": int(phantom.corrupted.sum()),
        "before": before,
        "review": review,
        "after": after,
        "minutes": run["minutes"],
        "files": {k: str(v) for k, v in run["files"].items()},
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=str))
    write_manifest(out, Provenance("demo"))
    return report


def _score(stack, truth, segmenter, detector, cache, on_progress) -> dict:
    """Propose from the labels (and the detector), audit, and score against the truth."""
    from .audit import audit
    from .proposals.core import propose

    proposals = drive(
        propose(stack, segmenter, detector, cache=cache, lv_scar=detector is not None),
        on_progress,
    )
    result = audit(stack, proposals)
    quality = np.array([row["quality"] for row in result.rows])
    label_dice = _dices(stack.scar(), truth)
    bad = label_dice < BAD_LABEL
    scores = {
        "labels_dice_vs_truth": _mean(label_dice, truth),
        "bad_labels": int(bad.sum()),
        "flagged": int(sum(bool(row["flag"]) for row in result.rows)),
        "audit_auroc": round(auroc(1 - quality, bad), 4),
        "proposals_dice_vs_truth": _mean(_dices(proposals.masks(), truth), truth),
        "proposals": proposals,
        "result": result,
    }
    if detector is not None:
        alone = drive(propose(stack, segmenter, detector, cache=cache, use_labels=False))
        scores["end_to_end_dice_vs_truth"] = _mean(_dices(alone.masks(), truth), truth)
        scores["proposals"] = alone
    return scores


def _scripted_review(stack, proposals, rows, truth, out: Path, models: dict):
    """The review rule on the audit's queue; the cleaned set (read back) and its figures."""
    from .io import read_stack
    from .review import ReviewSession
    from .review_batch import apply, rule_decisions
    from .review_gain import RuleRefused

    session = ReviewSession(stack, proposals.masks(), rows, models=models)
    queued = len(session.queue())
    try:  # the rule runs only where the data say accepting helps (review_gain)
        planned, refused = rule_decisions(session, proposals, REVIEW_BELOW, REVIEW_CONFIDENCE), ""
    except RuleRefused as exc:
        planned, refused = [], str(exc)
    decisions = apply(session, planned)
    session.save_cleaned(out / "cleaned")
    cleaned = read_stack(out / "cleaned")  # the cleaned set is a data set
    idx = [d.slice for d in decisions]
    was, now = _dices(stack.scar(), truth), _dices(cleaned.scar(), truth)
    return cleaned, {
        "accepted": len(decisions),
        "queue": queued,
        "refused": refused,
        "expected_gain": float(np.mean([p.gain for p in planned])) if planned else float("nan"),
        "accepted_labels_dice_before": _mean(was[idx], truth[idx]) if idx else float("nan"),
        "accepted_labels_dice_after": _mean(now[idx], truth[idx]) if idx else float("nan"),
    }


def _fine_tune(stack, out: Path, segmenter: str, size: DemoSize, seed, cache, on_progress):
    """Train the detector from scratch and fine-tune SAM on the cleaned set."""
    import time

    from .models.detector import Detector
    from .models.segmenter import Segmenter
    from .training.run import train

    started = time.time()
    config = SamTrainConfig(epochs=size.sam_epochs, val_fraction=0.2, seed=seed)
    result = drive(
        train(
            stack,
            out,
            detector="yolo11n.yaml",
            segmenter=segmenter,
            epochs=size.sam_epochs,
            detector_epochs=size.detector_epochs,
            sam_config=config,
            detector_imgsz=size.size,
            overwrite=True,  # the demo's folder was checked
            cache=cache,
        ),
        on_progress,
    )
    return {
        "detector": Detector.load(result.detector) if result.detector else None,
        "segmenter": Segmenter.load(result.segmenter),
        "minutes": round((time.time() - started) / 60, 2),
        "files": {"detector": result.detector, "segmenter": result.segmenter},
        "history": result.history,
    }


def _save_end_to_end(proposals, stack, out: Path) -> None:
    from .proposals.io import save_proposals

    save_proposals(proposals, stack, out, overwrite=True)  # the demo's folder was checked


def _dices(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-slice Dice (1.0 where both are empty)."""
    return np.array([dice(p, t) for p, t in zip(pred, truth, strict=True)])


def _mean(dices: np.ndarray, truth: np.ndarray) -> float:
    """Mean Dice over the slices with scar in the truth."""
    keep = np.array([t.any() for t in truth])
    return round(float(dices[keep].mean()), 4) if keep.any() else float("nan")


def _verdict(before: float, after: float, better: str, worse: str) -> str:
    if not (np.isfinite(before) and np.isfinite(after)) or abs(after - before) < 0.01:
        return "no change"
    return better if after > before else worse


def summary_lines(report: dict) -> list[str]:
    """The demo's before/after figures, each with one line of what it means."""
    b, r, a = report["before"], report["review"], report["after"]
    accepted = (r["accepted_labels_dice_before"], r["accepted_labels_dice_after"])
    end_to_end = a.get("end_to_end_dice_vs_truth", float("nan"))
    lines = [
        f"segmenter: {report['segmenter']} ({report['segmenter_is']})",
        f"labels vs truth: {b['labels_dice_vs_truth']:.2f} -> {a['labels_dice_vs_truth']:.2f}"
        "  (mean Dice of the noisy labels, then of the cleaned set)",
        f"audit AUROC: {b['audit_auroc']:.2f}  (1.0: every bad label ranked first; "
        f"{b['bad_labels']} bad of {report['slices']})",
        f"review: {r['accepted']} of {r['queue']} flagged proposal(s) accepted by the rule; "
        f"those labels {accepted[0]:.2f} -> {accepted[1]:.2f}  ("
        + _verdict(
            *accepted,
            "accepting helped where it was done",
            "accepting made them worse: these proposals are weaker than the labels; "
            "review such slices by eye",
        )
        + ")",
        f"proposals vs truth: {b['proposals_dice_vs_truth']:.2f} -> "
        f"{a['proposals_dice_vs_truth']:.2f}  (SAM from the labels' boxes, before and after "
        "fine-tuning on the cleaned set)",
        f"end to end: {end_to_end:.2f}  (the trained detector and SAM, no labels"
        + (
            "; the detector found no scar box: it needs more epochs and data than a demo has)"
            if end_to_end == 0
            else ")"
        ),
        f"audit after re-scoring: AUROC {a['audit_auroc']:.2f}, {a['flagged']} flagged "
        f"({a['bad_labels']} bad labels left)",
        f"fine-tuning took {report['minutes']:.1f} min",
    ]
    return lines


__all__ = ["DemoSize", "QUICK", "Progress", "run_demo", "summary_lines"]
