"""The ``yolosam`` command: each sub-command is a thin call into the core."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..io import StackError, read_stack, write_labels, write_yolo_labels
from ..io.atomic import atomic_write_csv
from ..io.outputs import check_output, check_writable
from ..io.writers import default_format
from .options import (
    load_models,
    output_folder,
    sam_config_from_args,
    segmenter_from_args,
    spec_from_args,
)


def _read(args: argparse.Namespace, labels: bool = True):
    """The stack ``--images`` (with ``--labels``, ``--series`` and ``--phase``) names; a
    study's patients all in one stack (training, embedding). What the reader warned of
    (slices without a label file, for example) is printed (``info`` lists it itself)."""
    from ..io import read_study
    from ..io.study import study_or_raise

    given = getattr(args, "labels", None) if labels else None
    if study_or_raise(args.images, given):
        stack = read_study(args.images, given, spec_from_args(args), getattr(args, "phase", None))
    else:
        stack = read_stack(
            args.images,
            labels=given,
            spec=spec_from_args(args),
            series=getattr(args, "series", None),
            phase=getattr(args, "phase", None),
        )
    if args.command != "info":
        for warning in [*stack.warnings, *_unused_values(args, stack)]:
            print(f"warning: {warning}", file=sys.stderr)
    return stack


def _unused_values(args: argparse.Namespace, stack) -> list[str]:
    """Warnings for label values given on the command line that no label map holds."""
    if not stack.has_labels or stack.spec.mode == "binary":
        return []
    present = None
    found = []
    for option in ("scar_values", "myo_values", "mvo_values"):
        values = getattr(args, option, None)
        if not values:
            continue
        present = np.unique(stack.labels) if present is None else present
        if not np.isin(values, present).any():
            found.append(
                f"--{option.replace('_', '-')} {','.join(map(str, values))}: no label holds "
                f"these values (the labels hold {', '.join(map(str, present.tolist()))}), so "
                "that structure is empty everywhere"
            )
    return found


def cmd_info(args: argparse.Namespace) -> int:
    stack = _read(args)
    summary = {
        "slices": len(stack),
        "shape": list(stack.shape),
        "layout": stack.layout,
        "cases": len(set(stack.cases)),
        "spacing_mm": stack.spacing,
        "thickness_mm": stack.thickness,
        "slice_spacing_mm": stack.slice_spacing,
        "labels": stack.has_labels,
        "label_spec": stack.spec.to_dict(),
        "warnings": stack.warnings,
        "phases": max(len(stack.phases), 1),
        "phase": stack.phase,
        "phase_times_ms": [round(t, 1) for t in stack.phases],
    }
    if stack.has_labels:
        scar = stack.scar()
        summary["slices_with_scar"] = int(scar.any(axis=(1, 2)).sum())
    print(json.dumps(summary, indent=2) if args.json else _readable(summary))
    return 0


def _readable(summary: dict) -> str:
    """``yolosam info`` in words, a line per fact."""
    spacing = summary["spacing_mm"]
    step = summary["slice_spacing_mm"] or summary["thickness_mm"]
    spec = summary["label_spec"]
    lines = [
        f"{summary['slices']} slices of {summary['shape'][1]} x {summary['shape'][2]} px, "
        f"{summary['cases']} case(s) ({summary['layout']})",
        "pixel spacing: "
        + (f"{spacing[0]:.3g} x {spacing[1]:.3g} mm" if spacing else "unknown (areas in pixels)")
        + (f"; slice step {step:.3g} mm" if step else ""),
    ]
    if summary["phases"] > 1:
        times = summary["phase_times_ms"]
        lines.append(
            f"{summary['phases']} phases (trigger {times[0]:.0f}-{times[-1]:.0f} ms); this stack: "
            f"phase {summary['phase']} ({times[summary['phase']]:.0f} ms"
            + (", end-diastole)" if summary["phase"] == 0 else ")")
            + "; choose with --phase"
        )
    if summary["labels"]:
        lines.append(
            f"labels: {spec.get('name', 'custom')} (scar {spec['scar']}, myocardium "
            f"{spec['myocardium']}); {summary.get('slices_with_scar', 0)} slice(s) with scar"
        )
    else:
        lines.append("labels: none found")
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def cmd_convert(args: argparse.Namespace) -> int:
    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.images, "has no labels to write")
    fmt = args.format or default_format(stack)
    if fmt != "png" and Path(args.out).suffix.lower() in (".tif", ".tiff", ".gz", ".nii", ".dcm"):
        check_output(args.out, (args.images, args.labels), args.overwrite)
        written = write_labels(stack, args.out, fmt=fmt)  # one file, written atomically
    else:
        with output_folder(args, args.images, args.labels) as folder:
            written = write_labels(stack, folder, fmt=fmt)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.images, "has no labels to derive boxes from")
    with output_folder(args, args.images, args.labels) as folder:
        written = write_yolo_labels(
            stack.scar(), stack.names, folder, stack.original_shapes, min_area=args.min_area
        )
    print(f"wrote {len(written)} YOLO label file(s) to {args.out}")
    return 0


def cmd_phantom(args: argparse.Namespace) -> int:
    from ..phantom.io import save_phantom
    from ..phantom.make import make_phantom

    phantom = make_phantom(
        n_slices=args.slices,
        n_cases=args.cases,
        corrupt=args.corrupt,
        seed=args.seed,
        shape=(args.size, args.size),
    )
    with output_folder(args) as folder:
        save_phantom(phantom, folder)
    print(
        f"wrote {len(phantom.stack)} phantom slices ({len(phantom.corruptions)} corrupted) to {args.out}"
    )
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from ..models.embeddings import EmbeddingCache, embed_stack
    from ..paths import cache_dir
    from ..progress import cli_progress, drive
    from ..proposals.heart import embed_views

    stack = _read(args, labels=args.look_closer)  # the labels' anatomy places the windows
    segmenter = segmenter_from_args(args)
    if not 0 <= args.first < len(stack):
        raise StackError(args.images, f"--first {args.first}: its slices are 0..{len(stack) - 1}")
    folder = Path(args.cache) if args.cache else cache_dir("embeddings")
    check_writable(folder)
    cache = EmbeddingCache(disk_dir=folder)
    closer = ""
    if args.look_closer:  # what propose reads: windows round the heart
        work = embed_views(stack, segmenter, cache, args.first)
        passes, views = drive(work, cli_progress())
        closer = f"; {sum(not v.is_whole for v in views)} windows round the heart"
    else:
        images = [stack.crop(i, stack.images[i]) for i in range(len(stack))]
        work = embed_stack(segmenter, images, cache, args.first, names=stack.names)
        passes = drive(work, cli_progress())
    print(
        f"{len(stack)} slices: {passes} encoded now, the rest already cached "
        f"({segmenter.name}; cache {folder}{closer})"
    )
    return 0


def cmd_propose(args: argparse.Namespace) -> int:
    from ..models.embeddings import EmbeddingCache
    from ..paths import cache_dir
    from ..progress import cli_progress, drive
    from ..proposals.core import propose
    from ..proposals.io import save_proposals

    stack = _read(args)
    need = len(stack) * stack.shape[1] * stack.shape[2] * 4  # masks, probabilities, myocardium
    check_output(args.out, (args.images, args.labels), args.overwrite, need_bytes=need)
    detector, segmenter = load_models(args)
    cache = EmbeddingCache(disk_dir=None if args.no_disk_cache else cache_dir("embeddings"))
    work = propose(
        stack,
        segmenter,
        detector,
        cache=cache,
        conf=args.conf,
        iou=args.iou,
        use_labels=not args.no_label_prompts,
        carry_neighbour=args.carry_neighbour,
        lv_scar=args.lv_scar,
        intensity=args.intensity,
        extent=args.extent,
        lv_conf=args.lv_conf,
        look_closer=args.look_closer,
        head_scar=args.head_scar,
    )
    proposals = drive(work, cli_progress())
    save_proposals(proposals, stack, args.out, overwrite=args.overwrite)
    statuses = [s.status for s in proposals.slices]
    print(
        f"proposed {len(stack)} slices ({statuses.count('no_detection')} without detection; "
        f"{cache.stats.encoded} encoded, {cache.stats.disk_hits} from the disk cache) -> {args.out}"
    )
    return 0


def _start_slice(stack, text: str) -> int:
    """The slice named by ``--slice``: an index, or a file name (with or without extension)."""
    if text.isdigit():
        index = int(text)
        if index < len(stack):
            return index
        raise StackError(
            None, f"--slice {index}: the stack has {len(stack)} slices (0-{len(stack) - 1})"
        )
    stems = [Path(n).stem for n in stack.names]
    for i, name in enumerate(stack.names):
        if text in (name, Path(name).name, stems[i]):
            return i
    raise StackError(
        None, f"--slice {text!r} names no slice of the stack (e.g. {stack.names[0]!r})"
    )


def _start_mask(stack, index: int, path: str | None):
    """The start mask: the labels' scar on slice ``index``, or the mask file ``path``."""
    import numpy as np

    from ..io.images import read_raw_mask

    if path is None:
        if not stack.has_labels:
            raise StackError(stack.source, "has no labels: give --labels or a start --mask")
        return stack.scar()[index]
    mask = read_raw_mask(Path(path)) > 0
    h, w = stack.original_shapes[index]
    if mask.shape != (h, w):
        raise StackError(path, f"is a mask of {mask.shape}; slice {index} is {(h, w)}")
    full = np.zeros(stack.shape[1:], bool)
    full[:h, :w] = mask
    return full


def cmd_propagate(args: argparse.Namespace) -> int:
    from ..models.embeddings import EmbeddingCache
    from ..paths import cache_dir
    from ..progress import cli_progress, drive
    from ..proposals.io import save_proposals
    from ..proposals.propagate import propagate

    stack = _read(args)
    check_output(args.out, (args.images, args.labels, args.mask), args.overwrite)
    start = _start_slice(stack, args.slice)
    mask = _start_mask(stack, start, args.mask)
    if not mask.any():
        raise StackError(
            args.mask or stack.label_source, f"slice {stack.names[start]} has no scar to propagate"
        )
    segmenter = segmenter_from_args(args)
    cache = EmbeddingCache(disk_dir=cache_dir("embeddings"))
    work = propagate(
        stack,
        segmenter,
        start,
        mask,
        args.direction,
        cache,
        extent=args.extent,
        look_closer=args.look_closer,
    )
    proposals = drive(work, cli_progress())
    save_proposals(proposals, stack, args.out, overwrite=args.overwrite)
    reached = [stack.names[i] for i, s in enumerate(proposals.slices) if s.status == "ok"]
    print(
        f"propagated from {stack.names[start]} ({args.direction}): {len(reached) - 1} "
        f"slice(s) reached, {reached[0]} to {reached[-1]} -> {args.out}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import model_store

    if args.action == "download":
        if not args.name:
            raise ValueError("name the model to download (see 'yolosam models')")

        def show(done: int, total: int) -> None:
            sys.stderr.write(
                f"\r{args.name}: {done / 1e6:.1f}"
                + (f" / {total / 1e6:.1f} MB" if total else " MB")
            )
            sys.stderr.flush()

        path = model_store.download(args.name, url=args.url, sha256=args.sha256, progress=show)
        sys.stderr.write("\n")
        print(f"{args.name}: {path} (SHA-256 verified)")
        return 0
    for row in model_store.list_models():
        state = row["path"] or ("not downloaded" if row["url"] else "manual download")
        print(
            f"{row['name']:<11} {row['arch']:<10} {row['size_mb']:>5} MB  {row['licence']:<10} {state}"
            + (f"  ({row['note']})" if row["note"] else "")
        )
    print(
        "configurations (fresh weights): tiny, tiny_hr, vit_b, vit_l, vit_h, mobile_sam; detectors: yolo11n.yaml, yolov8n.yaml, ..."
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from ..progress import cli_progress, drive
    from ..training.run import train

    stack = _read(args)
    check_output(  # an earlier run is continued with --resume, replaced only with --overwrite
        args.out,
        (args.images, args.labels),
        args.overwrite or args.resume,
        "--resume or --overwrite",
    )
    config = sam_config_from_args(args)
    detector = None if args.detector.lower() == "none" else args.detector
    segmenter = None if args.segmenter.lower() == "none" else args.segmenter
    result = drive(
        train(
            stack,
            args.out,
            detector=detector,
            segmenter=segmenter,
            epochs=args.epochs,
            detector_epochs=args.detector_epochs,
            sam_config=config,
            device=args.device,
            detector_imgsz=args.imgsz,
            resume=args.resume,
            trust_detector=args.trust_detector,
            detector_best_by=args.detector_best_by,
            overwrite=args.overwrite,
            encoder_backend=args.encoder_backend,
        ),
        cli_progress(),
    )
    print(
        f"trained on {len(result.train_cases)} case(s), validated on {len(result.val_cases)}: "
        f"detector {result.detector}, segmenter {result.segmenter}, metrics {result.out / 'metrics.csv'}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import QUICK, DemoSize, run_demo, summary_lines
    from ..progress import cli_progress

    report = run_demo(
        args.out,
        QUICK if args.quick else DemoSize(),
        seed=args.seed,
        on_progress=cli_progress(),
        segmenter=args.segmenter,
        overwrite=args.overwrite,
    )
    print("\n".join(summary_lines(report)))
    print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def cmd_quantify(args: argparse.Namespace) -> int:
    from ..io import read_labels_only
    from ..quantify import CASE_COLUMNS, SLICE_COLUMNS, quantify_labels, units_note

    spec = spec_from_args(args)
    if args.images:
        stack = _read(args)
    elif args.labels:
        stack = read_labels_only(args.labels, spec=spec)
    else:
        raise ValueError("give --images PATH (the stack with its labels) or --labels PATH")
    out = Path(args.out)
    slice_path = out.with_name(out.stem + "_slices.csv")
    for target in (out, slice_path):
        check_output(target, (args.labels, args.images, args.proposals), args.overwrite)
    slices, cases = quantify_labels(stack, n_sectors=args.sectors)
    if stack.unlabelled():
        print(
            f"warning: {len(stack.unlabelled())} slice(s) without a label file are left out of "
            "the volumes (see the columns labelled and unlabelled_slices)",
            file=sys.stderr,
        )
    if args.proposals or args.methods:
        cases = _comparison(stack, args, cases)
    atomic_write_csv(out, cases, CASE_COLUMNS)
    atomic_write_csv(slice_path, slices, SLICE_COLUMNS)
    note = units_note(stack)
    print(
        f"{len(cases)} case(s), {len(slices)} slice(s) -> {out}, {slice_path}"
        + (f"\nnote: {note}" if note else "")
    )
    return 0


def _comparison(stack, args: argparse.Namespace, label_cases: list[dict]) -> list[dict]:
    """Label, proposal and semi-automatic scar in one table per case."""
    from ..quantify import compare_sources
    from ..semiauto import semiauto_stack

    if not stack.spec.has_myocardium:
        raise ValueError(
            "comparing with proposals or semi-automatic methods needs labels with the myocardium"
        )
    if args.methods and not args.images:
        raise ValueError("the semi-automatic methods need the images (--images)")
    sources = {}
    if args.proposals:
        from ..proposals.io import load_proposals

        sources["proposal"] = load_proposals(args.proposals, stack).masks()
    for method in [m for m in (args.methods or "").split(",") if m]:
        name = f"{method} {args.n:g}" if method == "nsd" else method
        sources[name] = semiauto_stack(stack, method, n=args.n)
    rows = label_cases + compare_sources(stack, sources, stack.myocardium(), args.sectors)
    return sorted(rows, key=lambda r: (r["case"], r["source"] != "label", r["source"]))


def cmd_semiauto(args: argparse.Namespace) -> int:
    import numpy as np

    from ..io.writers import write_labels
    from ..labelspec import LabelSpec
    from ..semiauto import semiauto_stack

    stack = _read(args)
    scar = semiauto_stack(
        stack, args.method, n=args.n, min_size=args.min_size, fill_holes=args.fill_holes
    )
    binary = stack.with_labels(scar.astype(np.uint8), LabelSpec.binary())
    binary.binary_on_disk = 255
    with output_folder(args, args.images, args.labels) as folder:
        written = write_labels(binary, folder, fmt="png")
    print(
        f"{args.method}: scar in {int(scar.any(axis=(1, 2)).sum())} of {len(stack)} slices -> "
        f"{len(written)} masks in {args.out}"
    )
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from ..audit import AuditConfig, audit, save_audit
    from ..stack import case_of

    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.images, "has no labels to audit (give --labels)")
    check_output(args.out, (args.images, args.labels, args.proposals), args.overwrite)
    if args.case_separator != "_slice":
        stack.cases = [case_of(name, args.case_separator) for name in stack.names]
    if args.proposals:
        from ..proposals.io import load_proposals

        proposals = load_proposals(args.proposals, stack)
    else:
        if not args.segmenter:
            raise ValueError(
                "give --proposals DIR, or --segmenter (and --detector) to propose now"
            )
        from ..models.embeddings import EmbeddingCache
        from ..paths import cache_dir
        from ..progress import cli_progress, drive
        from ..proposals.core import propose

        detector, segmenter = load_models(args)
        cache = EmbeddingCache(disk_dir=cache_dir("embeddings"))
        proposals = drive(
            propose(
                stack,
                segmenter,
                detector,
                cache=cache,
                conf=args.conf,
                lv_scar=args.lv_scar,
                intensity=args.intensity,
                extent=args.extent,
                lv_conf=args.lv_conf,
                look_closer=args.look_closer,
                head_scar=args.head_scar,
            ),
            cli_progress(),
        )
    config = AuditConfig(
        flag_quality=args.flag_quality,
        relative_flag=args.relative_flag,
        cleanlab=not args.no_cleanlab,
        bias_correction=not args.no_bias_correction,
    )
    result = audit(stack, proposals, config=config)
    save_audit(result, stack, proposals.masks(), args.out, overwrite=args.overwrite)
    bias = result.summary["bias"]
    print(
        f"audited {len(stack)} slices: {result.summary['flagged']} flagged; bias "
        f"{bias['median_relative_area_difference']:+.2f} ({bias['meaning']}) -> {args.out}/report.csv"
    )
    if result.summary["note"]:
        print(f"note: {result.summary['note']}")
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from ..audit import AuditConfig, audit
    from ..proposals.io import load_proposals
    from ..review import ReviewSession
    from ..review_batch import apply, queue_table, read_decisions, rule_decisions

    if not args.list and (not args.out or (args.decisions is None) == (args.accept_below is None)):
        raise ValueError("give --list, or --out with one of --decisions FILE / --accept-below Q")
    stack = _read(args)
    if not args.list:
        check_output(args.out, (args.images, args.labels, args.proposals), args.overwrite)
    proposals = load_proposals(args.proposals, stack)
    result = audit(stack, proposals, config=AuditConfig(flag_quality=args.flag_quality))
    settings = proposals.settings
    models = {k: settings.get(k) for k in ("segmenter", "segmenter_fingerprint", "detector")}
    session = ReviewSession(stack, proposals.masks(), result.rows, models=models)
    if args.list:
        owner = f"{args.patient}/" if getattr(args, "patient", None) else ""
        for row in queue_table(session, proposals):
            print(
                f"{row['rank']:4d}  {owner}{row['image']}  quality {row['quality']:.2f}  "
                f"{row['issue']}  confidence {row['confidence']:.2f}  {row['evidence']}"
            )
        print(f"{len(session.queue())} of {len(stack)} slices in the queue")
        return 0
    skipped: list[tuple[str, str]] = []
    planned = (
        read_decisions(args.decisions, session, getattr(args, "patient", None))
        if args.decisions
        else rule_decisions(
            session, proposals, args.accept_below, args.min_confidence, skipped, args.force
        )
    )
    decisions = apply(session, planned)
    session.save_cleaned(args.out, overwrite=args.overwrite)
    for image, why in skipped:
        print(f"not accepted by the rule (review it by eye): {image}: {why}")
    for p in planned:
        if np.isfinite(p.gain):
            print(f"accepted: {stack.names[p.index]}: expected Dice gain {p.gain:+.2f}")
    gains = [p.gain for p in planned if np.isfinite(p.gain)]
    if gains:
        print(
            f"the rule accepted {len(gains)} proposal(s), each expected to gain Dice "
            f"{np.mean(gains):+.2f} on average (at least {min(gains):+.2f})"
        )
    counts = {
        a: sum(d.action == a for d in decisions) for a in sorted({d.action for d in decisions})
    }
    print(f"{len(decisions)} decision(s) {counts}; cleaned set -> {args.out}")
    return 0


def cmd_view(args: argparse.Namespace) -> int:
    from ..viewer import open_viewer

    open_viewer(
        path=args.images,
        sample=args.sample or args.images is None,
        spec=spec_from_args(args),
        block=not args.no_block,
    )
    return 0
