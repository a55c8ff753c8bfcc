"""Audit benchmark with known truth: does `quality` find the slices whose label is wrong?

Clean labels (the phantom's truth, or EMIDEC's expert labels) are corrupted
the way semi-automatic tools do: scar re-thresholded at mean + n SD of remote
myocardium inside the clean myocardium (n drawn per patient), then a share of
slices with a dropped component, a spurious blob or a jittered boundary. The
models are trained on the noisy labels only (the engine of `yolosam train`),
on one half of the patients; the other half is proposed and audited, then
the halves swap (2-fold, split by patient). Reported: AUROC of 1 - quality
for "noisy label Dice < 0.5 against the clean label", precision among the
10% lowest-quality slices, and the same for the baseline (binary Dice
between label and proposal alone).

    .venv/bin/python benchmarks/audit_benchmark.py --data emidec --out runs/audit-emidec
    .venv/bin/python benchmarks/audit_benchmark.py --data phantom --out runs/audit-phantom

The settings of the documented runs are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from napari_yolosam.audit.metrics import auroc, precision_at  # noqa: F401 (models_benchmark too)


def make_noisy(stack, truth, n_range, rng, local_share: float = 0.3):
    """Noisy scar labels: n-SD per patient inside the clean myocardium of slices with scar, plus
    local corruptions (a dropped component, a spurious blob, a jittered boundary) on any slice."""
    from napari_yolosam.phantom.make import MYOCARDIUM, NO_REFLOW, SCAR, corrupt_label
    from napari_yolosam.semiauto import nsd

    noisy = truth.copy()
    n_of = {c: float(rng.uniform(*n_range)) for c in sorted(set(stack.cases))}
    kinds = []
    for i in range(len(stack)):
        myo = np.isin(truth[i], (MYOCARDIUM, SCAR, NO_REFLOW))
        labels = truth[i].copy()
        labels[np.isin(labels, (SCAR, NO_REFLOW))] = MYOCARDIUM
        if myo.any() and np.isin(truth[i], (SCAR, NO_REFLOW)).any():
            # annotators threshold the slices that show enhancement; the rest stay unlabelled
            labels[
                nsd(stack.images[i], myo, n_of[stack.cases[i]], blood_pool=truth[i] == 1).mask
            ] = SCAR
        kind = "nsd"
        if rng.random() < local_share:
            kind = str(rng.choice(["drop", "spurious", "jitter"]))
            labels, _ = corrupt_label(stack.images[i], labels, kind, rng)
        noisy[i] = labels
        kinds.append(kind)
    return noisy, n_of, kinds


def main() -> None:
    from napari_yolosam.audit import AuditConfig, audit
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.io import read_stack
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.progress import cli_progress, drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.training.run import train
    from napari_yolosam.training.sam import SamTrainConfig

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", choices=["phantom", "emidec"], default="phantom")
    parser.add_argument(
        "--emidec", default=str(Path(__file__).resolve().parents[2] / "shared/data/emidec_dev")
    )
    parser.add_argument("--out", default="runs/audit-benchmark")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--detector-epochs", type=int, default=30)
    parser.add_argument("--n-range", type=float, nargs=2, default=(2.0, 6.0))
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument(
        "--phantom-cases", type=int, default=24, help="phantom cases (8 slices each)"
    )
    parser.add_argument(
        "--max-folds", type=int, help="audit only the first k folds (fewer patients, less time)"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="reuse models already trained in OUT/foldK"
    )
    parser.add_argument("--segmenter", default="tiny", help="tiny or tiny_hr")
    parser.add_argument("--scar-free-share", type=float, default=1.0)
    parser.add_argument(
        "--lv-scar", action="store_true", help="propose scar from the detector's LV box too"
    )
    parser.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="audit without the data-set threshold shift (to measure what it does)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    out = Path(args.out)
    rng = np.random.default_rng(args.seed)
    if args.data == "phantom":
        ph = make_phantom(n_slices=8, n_cases=args.phantom_cases, shape=(256, 256), seed=args.seed)
        stack, truth = ph.stack, ph.truth
    else:
        stack = read_stack(args.emidec, spec=LabelSpec.emidec())
        truth = stack.labels.copy()
    noisy, n_of, kinds = make_noisy(stack, truth, args.n_range, rng)
    clean_scar, noisy_scar = np.isin(truth, (3, 4)), np.isin(noisy, (3, 4))
    label_dice = np.array([dice(noisy_scar[i], clean_scar[i]) for i in range(len(stack))])
    has_scar = clean_scar.any(axis=(1, 2)) | noisy_scar.any(axis=(1, 2))
    print(
        f"{args.data}: {len(stack)} slices; noisy label Dice vs clean on slices with scar: "
        f"median {np.median(label_dice[has_scar]):.2f}, 10-90% {np.percentile(label_dice[has_scar], 10):.2f}-"
        f"{np.percentile(label_dice[has_scar], 90):.2f}; n per patient {args.n_range}"
    )
    noisy_stack = stack.with_labels(noisy)
    cases = sorted(set(stack.cases))
    order = rng.permutation(len(cases))
    folds = [[cases[j] for j in order[f :: args.folds]] for f in range(args.folds)]
    quality = np.full(len(stack), np.nan)
    baseline = np.full(len(stack), np.nan)
    issues = [""] * len(stack)
    started = time.time()
    rows_out: list[dict] = []
    label_dice_all = label_dice.copy()
    for f, audit_cases in enumerate(folds[: args.max_folds or len(folds)]):
        train_cases = [c for c in cases if c not in audit_cases]
        train_idx = [i for i, c in enumerate(stack.cases) if c in train_cases]
        audit_idx = [i for i, c in enumerate(stack.cases) if c in audit_cases]
        train_stack = noisy_stack.subset(train_idx)
        run = out / f"fold{f}"
        config = SamTrainConfig(
            epochs=args.epochs,
            val_fraction=0.15,
            seed=args.seed,
            lr=5e-4,
            scar_free_share=args.scar_free_share,
        )
        if args.reuse and (run / "segmenter.pth").exists() and (run / "detector.pt").exists():
            from types import SimpleNamespace

            result = SimpleNamespace(detector=run / "detector.pt", segmenter=run / "segmenter.pth")
        else:
            result = drive(
                train(
                    train_stack,
                    run,
                    detector="yolo11n.yaml",
                    segmenter=args.segmenter,
                    epochs=args.epochs,
                    detector_epochs=args.detector_epochs,
                    sam_config=config,
                    overwrite=True,  # a benchmark's own run folder
                ),
                cli_progress(f"fold {f} "),
            )
        sub = noisy_stack.subset(audit_idx)
        detector = Detector.load(result.detector) if result.detector else None
        proposals = drive(
            propose(sub, Segmenter.load(result.segmenter), detector, lv_scar=args.lv_scar)
        )
        res = audit(
            sub, proposals, config=AuditConfig(bias_correction=not args.no_bias_correction)
        )
        (run / "audit_summary.json").write_text(json.dumps(res.summary, indent=1, default=str))
        rows_out += [
            {**r, "noisy_vs_clean_dice": float(label_dice_all[i]), "fold": f}
            for r, i in zip(res.rows, audit_idx, strict=True)
        ]
        for k, i in enumerate(audit_idx):
            quality[i] = res.rows[k]["quality"]
            baseline[i] = res.rows[k]["dice"]
            issues[i] = res.rows[k]["issue"]
    audited = np.isfinite(quality)  # all slices with every fold, half with --max-folds 1
    noisy_median = float(np.median(label_dice[has_scar]))
    quality, baseline, label_dice = quality[audited], baseline[audited], label_dice[audited]
    bad = label_dice < 0.5
    labelled = noisy_scar.any(axis=(1, 2))[audited]
    report = {
        "data": args.data,
        "slices": int(audited.sum()),
        "bad_labels": int(bad.sum()),
        "auroc_quality": auroc(1 - quality, bad),
        "auroc_baseline_dice": auroc(1 - baseline, bad),
        "precision_at_10pct_quality": precision_at(1 - quality, bad),
        "precision_at_10pct_baseline": precision_at(1 - baseline, bad),
        "prevalence": float(bad.mean()),
        # the labels' shape question alone (slices with a label), and the bad labels that are
        # empty: only a proposal of missed scar can find those
        "auroc_quality_labelled": auroc(1 - quality[labelled], bad[labelled]),
        "auroc_baseline_labelled": auroc(1 - baseline[labelled], bad[labelled]),
        "bad_empty_labels": int((bad & ~labelled).sum()),
        "minutes": round((time.time() - started) / 60, 1),
        "n_range": list(args.n_range),
        "folds": args.folds,
        "phantom_cases": args.phantom_cases if args.data == "phantom" else None,
        "segmenter": args.segmenter,
        "lv_scar": args.lv_scar,
        "bias_correction": not args.no_bias_correction,
        "epochs": args.epochs,
        "detector_epochs": args.detector_epochs,
        "noisy_label_dice_median": noisy_median,
        "issues_flagged": {k: issues.count(k) for k in sorted(set(issues)) if k},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmark.json").write_text(json.dumps(report, indent=1))
    import csv

    with open(
        out / "slices.csv", "w", newline=""
    ) as handle:  # per-slice scores, to study the ranking
        writer = csv.DictWriter(handle, fieldnames=list(rows_out[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows_out)
    print(json.dumps(report, indent=1))
    print(
        "\n| data | slices | bad labels | AUROC quality | AUROC baseline | precision@10% quality | precision@10% baseline |"
    )
    print("|---|---|---|---|---|---|---|")
    print(
        f"| {args.data} | {int(audited.sum())} | {int(bad.sum())} | {report['auroc_quality']:.3f} | "
        f"{report['auroc_baseline_dice']:.3f} | {report['precision_at_10pct_quality']:.2f} | "
        f"{report['precision_at_10pct_baseline']:.2f} |"
    )


if __name__ == "__main__":
    main()
