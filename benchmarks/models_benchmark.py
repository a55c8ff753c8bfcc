"""Are the proposals better than the labels they judge? EMIDEC dev, 2 folds, against the expert.

The noisy labels are made as in ``audit_benchmark.py`` (same noise model, same
seed, same patient folds). For each fold the models are trained on one half's
*noisy* labels and judged on the other half against the *expert* labels:

- SAM with expert boxes (one box per expert scar region), zero-shot and fine-tuned;
- label-prompted proposals (boxes round the noisy label's regions) against the
  labels' own Dice;
- end to end (detector boxes only; and with the LV-box scar prompt);
- the audit (AUROC all / labelled slices, precision among the worst 10%, the
  models' median agreement) and, on the slices it flags, the offered
  correction's Dice against the label's;
- minutes of embedding and of fine-tuning on this machine.

Every slice is encoded once: the embedding cache lives on disk in OUT and a
decoder-only fine-tuned segmenter keeps the encoder (and so the cache key).

    .venv/bin/python benchmarks/models_benchmark.py --out runs/models-lite
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

from audit_benchmark import auroc, make_noisy, precision_at  # noqa: E402


def mean(values) -> float:
    values = [v for v in values if np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def expert_box_dice(segmenter, stack, expert, cache, look_closer: bool = False) -> float:
    """Mean Dice of SAM prompted with one box per expert scar region (slices with expert
    scar); with ``look_closer`` SAM looks at the window round the label's heart."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.proposals.core import label_boxes
    from napari_yolosam.proposals.heart import heart_view
    from napari_yolosam.view import View

    scores = []
    for i in range(len(stack)):
        if not expert[i].any():
            continue
        boxes = label_boxes(expert[i])
        if not len(boxes):
            scores.append(0.0)
            continue
        shape = expert[i].shape
        view = heart_view(stack, i) if look_closer else View.whole(shape)
        embedding = cache.get(segmenter, view.crop(stack.images[i]))
        out = segmenter.decode(embedding, shape, boxes=boxes, view=view)
        scores.append(dice(out.union, expert[i]))
    return mean(scores)


def proposal_dice(proposals, expert) -> float:
    """Mean Dice of proposals against the expert on slices with expert scar."""
    from napari_yolosam.audit.metrics import dice

    return mean(
        [dice(proposals.slices[k].mask, expert[k]) for k in range(len(expert)) if expert[k].any()]
    )


def false_scar(proposals, expert) -> float:
    """Share of the slices without expert scar on which the proposals give scar."""
    free = [k for k in range(len(expert)) if not expert[k].any()]
    return float(np.mean([proposals.slices[k].mask.any() for k in free])) if free else float("nan")


def head_decisions(proposals, expert) -> list[float]:
    """Share of the slices with / without expert scar on which the anatomy head read scar
    (its ``head`` prompts)."""
    said = np.array(["head" in s.sources for s in proposals.slices])
    has = expert.any(axis=(1, 2))
    return [float(said[has].mean()), float(said[~has].mean())]


def run_propose(stack, segmenter, detector, cache, **kwargs):
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose

    return drive(propose(stack, segmenter, detector, cache=cache, **kwargs))


def audit_rows(stack, expert, proposals, label_dice, has_expert) -> tuple[dict, dict]:
    """The audit of ``proposals``: figures on flagged slices and per-slice rows for AUROC."""
    from napari_yolosam.audit import audit
    from napari_yolosam.audit.metrics import dice

    noisy = stack.scar()
    result = audit(stack, proposals)
    quality = np.array([r["quality"] for r in result.rows])
    flagged = np.array([bool(r["flag"]) for r in result.rows])
    offered = np.array([dice(proposals.slices[k].mask, expert[k]) for k in range(len(stack))])
    # judge only what can be judged: a slice where expert and label are both empty has no error
    judged = flagged & (has_expert | noisy.any(axis=(1, 2)))
    figures = {
        "flagged": int(flagged.sum()),
        "flagged_offered_dice": mean(offered[judged]),
        "flagged_label_dice": mean(label_dice[judged]),
        "median_labelled_agreement": result.summary["median_labelled_agreement"],
    }
    rows = {"quality": quality, "label_dice": label_dice, "labelled": noisy.any(axis=(1, 2))}
    return figures, {"rows": rows, "judged": judged}


#: Proposal variants the benchmark can add (``--variants``): their tag and propose options.
#: ``lv_any``: the slice's best LV box whatever the class's validated threshold (every
#: short-axis slice crosses the LV; 0.01 is only a floor under noise).
VARIANTS = {
    "intensity": {"intensity": True, "lv_conf": None},
    "extent": {"extent": True, "lv_conf": None},
    "lv_any": {"lv_conf": 0.01},
    "lv_any_intensity": {"lv_conf": 0.01, "intensity": True},
    "no_head_scar": {"head_scar": False, "lv_conf": None},
}


def judge(
    stack, expert, segmenter, detector, cache, extra: list[str], look_closer: bool = False
) -> tuple[dict, dict]:
    """Every figure of one fold's audit half for one segmenter; per-slice rows for the audit.

    Each named variant in ``extra`` (:data:`VARIANTS`) measures the end-to-end and
    audited proposals again with its propose options (``_intensity``: SAM prompted by the
    myocardium's enhanced regions too; ``_extent``: SAM locates, the enhanced regions
    it touches set the extent), so the table shows what each adds. ``look_closer``: SAM
    looks at each slice's window round the heart (every propose and the expert boxes).
    """
    from napari_yolosam.audit.metrics import dice

    noisy = stack.scar()
    label_dice = np.array([dice(noisy[k], expert[k]) for k in range(len(stack))])
    has_expert = expert.any(axis=(1, 2))
    figures = {
        "sam_expert_boxes": expert_box_dice(segmenter, stack, expert, cache, look_closer),
        "labels_dice": mean(label_dice[has_expert]),
    }
    candidates = {
        "label_prompted": run_propose(stack, segmenter, None, cache, look_closer=look_closer)
    }
    figures["label_prompted_dice"] = proposal_dice(candidates["label_prompted"], expert)
    # the base row keeps the LV class's validated threshold, as measured before LV_CONF
    variants = {"": {"lv_conf": None}, **{f"_{name}": VARIANTS[name] for name in extra}}
    variants = {tag: {**options, "look_closer": look_closer} for tag, options in variants.items()}
    if detector is not None:
        blind = stack.with_labels(None)
        for tag, options in variants.items():
            plain = run_propose(blind, segmenter, detector, cache, **options)
            figures["end_to_end" + tag] = proposal_dice(plain, expert)
            figures["false_scar" + tag] = false_scar(plain, expert)
            figures["head_says_scar" + tag] = head_decisions(plain, expert)
            with_lv = run_propose(blind, segmenter, detector, cache, lv_scar=True, **options)
            figures["end_to_end_lv" + tag] = proposal_dice(with_lv, expert)
            figures["false_scar_lv" + tag] = false_scar(with_lv, expert)
            # scar from the detector's LV box alone: independent of the label and of scar boxes
            candidates["anatomy" + tag] = run_propose(
                blind, segmenter, detector, cache, lv_scar=True, scar_boxes=False, **options
            )
            figures["end_to_end_anatomy" + tag] = proposal_dice(
                candidates["anatomy" + tag], expert
            )
            figures["false_scar_anatomy" + tag] = false_scar(candidates["anatomy" + tag], expert)
    rows = {}
    for tag, options in variants.items():  # what `yolosam audit` proposes and judges with
        proposals = run_propose(stack, segmenter, detector, cache, **options)
        audited, rows[tag] = audit_rows(stack, expert, proposals, label_dice, has_expert)
        figures.update({k + tag: v for k, v in audited.items()})
    judged = rows[""]["judged"]
    for name, candidate in candidates.items():
        scores = [dice(candidate.slices[k].mask, expert[k]) for k in range(len(stack))]
        figures[f"flagged_{name}_dice"] = mean(np.array(scores)[judged])
    return figures, {tag: value["rows"] for tag, value in rows.items()}


def audit_scores(rows: list[dict]) -> dict:
    """AUROC / precision@10% of 1 - quality for 'label Dice < 0.5', over all folds' slices."""
    quality = np.concatenate([r["quality"] for r in rows])
    bad = np.concatenate([r["label_dice"] for r in rows]) < 0.5
    labelled = np.concatenate([r["labelled"] for r in rows])
    return {
        "auroc": auroc(1 - quality, bad),
        "auroc_labelled": auroc(1 - quality[labelled], bad[labelled]),
        "precision_at_10pct": precision_at(1 - quality, bad),
        "bad_labels": int(bad.sum()),
    }


def train_detector(train_stack, run: Path, epochs: int, look_closer: bool = False):
    """The fold's detector (ultralytics, from scratch; reused when RUN has one) and its
    minutes; ``look_closer``: trained on the windows round the hearts, in RUN/detector-closer."""
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.progress import drive
    from napari_yolosam.training.run import train
    from napari_yolosam.training.sam import SamTrainConfig

    if not epochs:
        return None, 0.0
    started = time.time()
    folder = run / "detector-closer" if look_closer else run
    if not (folder / "detector.pt").exists():
        drive(
            train(
                train_stack,
                folder,
                segmenter=None,
                detector_epochs=epochs,
                sam_config=SamTrainConfig(epochs=epochs, look_closer=look_closer),
                overwrite=True,
            )
        )
    return Detector.load(folder / "detector.pt"), round((time.time() - started) / 60, 1)


def fine_tune(train_stack, run: Path, mode: str, args, cache):
    """The fold's segmenter fine-tuned in ``mode`` on the noisy labels, with its minutes."""
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.models.segmenter.model import HEADS
    from napari_yolosam.progress import drive
    from napari_yolosam.training.losses import LossWeights
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    segmenter = Segmenter.from_spec(args.segmenter)
    if args.heads_from:  # the heads of a segmenter trained on anatomy labels (binary labels)
        donor = Segmenter.load(Path(args.heads_from.format(fold=run.name[len("fold") :])))
        for head in HEADS:
            setattr(segmenter, head, getattr(donor, head))

    # the ablation of the noise-robust loss: Dice + BCE in the same 3:1 ratio, no KL term
    loss = LossWeights(dice=0.75, bce=0.25, kl=0.0) if args.loss == "plain" else LossWeights()
    config = SamTrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        mode=mode,
        targets=args.targets,
        loss=loss,
        cached_variants=args.cached_variants,
        val_fraction=0.15,
        seed=args.seed,
        look_closer=args.look_closer,
        heart_steps=args.heart_steps,
    )
    suffix = "".join(f"-{v}" for v in (args.targets, args.loss) if v not in ("labels", "robust"))
    suffix += f"-v{args.cached_variants}" if args.cached_variants > 1 else ""
    suffix += "-binary" if args.binary else ""
    suffix += "-closer" if args.look_closer else ""
    folder = run / f"{mode}{suffix}"
    best = folder / "segmenter.pth"
    if args.reuse and best.exists():
        segmenter = Segmenter.load(best)
        if args.scar_head:
            return scar_head(segmenter, train_stack, folder, config, cache)
        return segmenter, {}
    started = time.time()
    result = drive(train_segmenter(train_stack, segmenter, config, folder, cache=cache))
    minutes = round((time.time() - started) / 60, 1)
    tuned = Segmenter.load(result.best_path) if result.best_path else segmenter
    return tuned, {"minutes": minutes, "history": result.history}


def scar_head(segmenter, train_stack, folder: Path, config, cache):
    """``segmenter`` with its anatomy head trained again as the product trains it now (with
    the scar channel, on the run's own training split and windows), kept in
    ``FOLDER-scarhead``: the decoder and heart finder stay those judged before."""
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive
    from napari_yolosam.training.data import slice_indices, split_cases
    from napari_yolosam.training.heart import train_anatomy

    path = folder.with_name(folder.name + "-scarhead") / "segmenter.pth"
    if path.exists():
        return Segmenter.load(path), {}
    started = time.time()
    train_cases, _ = split_cases(list(train_stack.cases), config.val_fraction, config.seed)
    indices = slice_indices(train_stack, train_cases)
    segmenter.anatomy = drive(
        train_anatomy(
            segmenter, train_stack, indices, config.augmentation, cache,
            config.heart_steps, config.seed,
        )
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    segmenter.save(path)
    return segmenter, {"head_minutes": round((time.time() - started) / 60, 1)}


def emidec_folds(emidec, n_range=(2.0, 6.0), seed: int = 0, first_cases: int | None = None):
    """EMIDEC dev with the expert labels, its noisy copy and the 2 patient folds, drawn
    as in ``audit_benchmark.py``: ``(stack, expert labels, noisy stack, folds)``."""
    from napari_yolosam.io import read_stack
    from napari_yolosam.labelspec import LabelSpec

    rng = np.random.default_rng(seed)  # the same draws as audit_benchmark.py
    stack = read_stack(emidec, spec=LabelSpec.emidec())
    if first_cases:
        keep = set(sorted(set(stack.cases))[:first_cases])
        stack = stack.subset([i for i, c in enumerate(stack.cases) if c in keep])
    truth = stack.labels.copy()
    noisy, _, _ = make_noisy(stack, truth, n_range, rng)
    cases = sorted(set(stack.cases))
    order = rng.permutation(len(cases))
    folds = [[cases[j] for j in order[f::2]] for f in range(2)]
    return stack, truth, stack.with_labels(noisy), folds


def main() -> None:
    from napari_yolosam.defaults import TRAINING
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--out", default="runs/models-benchmark")
    parser.add_argument("--segmenter", default="lite_medsam")
    parser.add_argument(
        "--modes", nargs="+", default=["decoder", "neck"], help="segmenter training modes"
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument(
        "--loss",
        choices=["robust", "plain"],
        default="robust",
        help="the noise-robust loss (Dice + BCE + KL to softened targets) or plain Dice + BCE",
    )
    parser.add_argument(
        "--targets",
        default="labels",
        help="segmenter targets: labels, or extent (the labels' "
        "scar with the extent of the enhanced regions it touches)",
    )
    parser.add_argument(
        "--cached-variants",
        type=int,
        default=1,
        help="versions of each slice for cached training, the others augmented before caching",
    )
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--heart-steps",
        type=int,
        default=TRAINING.heart_steps,
        help="steps of the heart finder and anatomy head (the product's default)",
    )
    parser.add_argument("--detector-epochs", type=int, default=40)
    parser.add_argument("--n-range", type=float, nargs=2, default=(2.0, 6.0))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cases", type=int, help="only the first N patients (a smoke run)")
    parser.add_argument("--max-folds", type=int, default=2, help="judge only the first k folds")
    parser.add_argument("--tag", default="", help="suffix of the report's file name")
    parser.add_argument(
        "--variants",
        nargs="*",
        default=[],
        choices=sorted(VARIANTS),
        help="measure these proposal variants too (intensity-region prompts; enhanced extent)",
    )
    parser.add_argument(
        "--skip-zero-shot", action="store_true", help="judge fine-tuned models only"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="judge the models already trained in OUT again"
    )
    parser.add_argument(
        "--look-closer",
        action="store_true",
        help="fine-tune on windows round the heart and propose through them (#27); "
        "otherwise the whole slice everywhere, as measured before",
    )
    parser.add_argument(
        "--propose-closer",
        action="store_true",
        help="without --look-closer: judge the models trained on whole slices a second "
        "time proposing through the windows (the product's proposals)",
    )
    parser.add_argument(
        "--detector-closer",
        action="store_true",
        help="the fold detectors trained on the windows round the training half's hearts, "
        "reading each slice through its window (#27 point 4; FOLD/detector-closer)",
    )
    parser.add_argument(
        "--scar-head",
        action="store_true",
        help="with --reuse: train each fold segmenter's anatomy head again with its scar "
        "channel (the product's heads now; FOLD/MODE-scarhead) and judge with it",
    )
    parser.add_argument(
        "--heads-from",
        help="start each fold's segmenter with the heart finder and anatomy head of this "
        "checkpoint ({fold}: the fold's number), e.g. one trained on the maps of the same "
        "training half; binary labels train no heads",
    )
    parser.add_argument(
        "--binary",
        action="store_true",
        help="binary scar labels (no myocardium, the YoloSAM sample's kind) for training "
        "and for the audited labels; the expert stays the judge",
    )
    args = parser.parse_args()
    out = Path(args.out)
    stack, truth, noisy_stack, folds = emidec_folds(
        args.emidec, args.n_range, args.seed, args.cases
    )
    expert_all = np.isin(truth, (3, 4))
    if args.binary:  # the noisy scar alone, as a binary mask: the anatomy is the models'
        binary = LabelSpec.binary()
        noisy_stack = noisy_stack.with_labels(noisy_stack.scar().astype(np.uint8), binary)
    cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=out / "embeddings")
    started = time.time()
    pretrained = Segmenter.from_spec(args.segmenter)
    kinds = ["trunk"] + (["stage"] if "stage" in args.modes else [])
    for image in stack.images:  # the frozen encoder part once per slice, up front (timed alone)
        for kind in kinds:
            cache.get(pretrained, image, kind)
    embed_minutes = round((time.time() - started) / 60, 1)
    report = {"args": vars(args), "embedding_minutes": embed_minutes, "folds": []}
    rows: dict[str, list] = {}
    for f, audit_cases in enumerate(folds[: args.max_folds]):
        train_idx = [i for i, c in enumerate(stack.cases) if c not in audit_cases]
        audit_idx = [i for i, c in enumerate(stack.cases) if c in audit_cases]
        run, train_stack = out / f"fold{f}", noisy_stack.subset(train_idx)
        detector, detector_minutes = train_detector(
            train_stack, run, args.detector_epochs, args.detector_closer
        )
        sub, expert = noisy_stack.subset(audit_idx), expert_all[audit_idx]
        fold = {"fold": f, "detector_minutes": detector_minutes}
        models = {} if args.skip_zero_shot else {"zero_shot": (pretrained, {})}
        for mode in args.modes:
            models[mode] = fine_tune(train_stack, run, mode, args, cache)
        views = [(key, model, info, args.look_closer) for key, (model, info) in models.items()]
        if args.propose_closer and not args.look_closer:  # trained whole, proposing closer
            views += [(key + "_proposing_closer", m, {}, True) for key, m, _, _ in views]
        for key, model, info, closer in views:
            fold[key], fold_rows = judge(
                sub, expert, model, detector, cache, args.variants, closer
            )
            fold[key].update({k: v for k, v in info.items() if k != "history"})
            for tag, tag_rows in fold_rows.items():
                rows.setdefault(key + tag, []).append(tag_rows)
            print(key, json.dumps(fold[key]), flush=True)
        fold["encoder_passes"] = cache.stats.encoded
        report["folds"].append(fold)
    report["audit"] = {k: audit_scores(v) for k, v in rows.items() if v}
    report["minutes"] = round((time.time() - started) / 60, 1)
    out.mkdir(parents=True, exist_ok=True)
    name = f"benchmark{'-reuse' if args.reuse else ''}{args.tag}.json"
    (out / name).write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps(report["audit"], indent=1))


if __name__ == "__main__":
    main()
