"""The ``yolosam`` command: each sub-command is a thin call into the core."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .cli_options import (
    add_detector_prompt_options,
    add_model_options,
    add_overwrite_option,
    add_spec_options,
    load_models,
    non_negative_int,
    output_folder,
    positive_int,
    sam_config_from_args,
    spec_from_args,
    write_csv,
)
from .defaults import TRAIN_MODES, default_segmenter
from .io import LABEL_FORMATS, StackError, read_stack, write_labels, write_yolo_labels
from .io.outputs import check_output
from .io.writers import default_format


def _read(args: argparse.Namespace):
    return read_stack(
        args.path,
        labels=getattr(args, "labels", None),
        spec=spec_from_args(args),
        series=getattr(args, "series", None),
    )


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
    }
    if stack.has_labels:
        scar = stack.scar()
        summary["slices_with_scar"] = int(scar.any(axis=(1, 2)).sum())
    print(json.dumps(summary, indent=2))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.path, "has no labels to write")
    fmt = args.format or default_format(stack)
    if fmt != "png" and Path(args.out).suffix.lower() in (".tif", ".tiff", ".gz", ".nii"):
        check_output(args.out, (args.path, args.labels), args.overwrite)
        written = write_labels(stack, args.out, fmt=fmt)  # one file, written atomically
    else:
        with output_folder(args, args.path, args.labels) as folder:
            written = write_labels(stack, folder, fmt=fmt)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.path, "has no labels to derive boxes from")
    with output_folder(args, args.path, args.labels) as folder:
        written = write_yolo_labels(
            stack.scar(), stack.names, folder, stack.original_shapes, min_area=args.min_area
        )
    print(f"wrote {len(written)} YOLO label file(s) to {args.out}")
    return 0


def cmd_phantom(args: argparse.Namespace) -> int:
    from .phantom import make_phantom
    from .phantom_io import save_phantom

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


def cmd_propose(args: argparse.Namespace) -> int:
    from .embeddings import EmbeddingCache
    from .paths import cache_dir
    from .progress import cli_progress, drive
    from .proposals import propose
    from .proposals_io import save_proposals

    stack = read_stack(args.images, labels=args.labels, spec=spec_from_args(args))
    check_output(args.out, (args.images, args.labels), args.overwrite)  # before any model work
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
    )
    proposals = drive(work, cli_progress())
    save_proposals(proposals, stack, args.out, overwrite=args.overwrite)
    statuses = [s.status for s in proposals.slices]
    print(
        f"proposed {len(stack)} slices ({statuses.count('no_detection')} without detection; "
        f"{cache.stats.encoded} encoded, {cache.stats.disk_hits} from the disk cache) -> {args.out}"
    )
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import model_store

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
    from .progress import cli_progress, drive
    from .training.run import train

    stack = read_stack(args.data, labels=args.labels, spec=spec_from_args(args))
    check_output(  # an earlier run is continued with --resume, replaced only with --overwrite
        args.out,
        (args.data, args.labels),
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
        ),
        cli_progress(),
    )
    print(
        f"trained on {len(result.train_cases)} case(s), validated on {len(result.val_cases)}: "
        f"detector {result.detector}, segmenter {result.segmenter}, metrics {result.out / 'metrics.csv'}"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import QUICK, DemoSize, run_demo
    from .progress import cli_progress

    report = run_demo(
        args.out,
        QUICK if args.quick else DemoSize(),
        seed=args.seed,
        on_progress=cli_progress(),
        segmenter=args.segmenter,
        overwrite=args.overwrite,
    )
    print(json.dumps({k: v for k, v in report.items() if k != "metrics"}, indent=1, default=str))
    return 0


def cmd_quantify(args: argparse.Namespace) -> int:
    from .io import read_labels_only
    from .quantify import CASE_COLUMNS, SLICE_COLUMNS, quantify_labels, units_note

    spec = spec_from_args(args)
    if args.images:
        stack = read_stack(args.images, labels=args.labels, spec=spec, series=args.series)
    else:
        stack = read_labels_only(args.labels, spec=spec)
    out = Path(args.out)
    slice_path = out.with_name(out.stem + "_slices.csv")
    for target in (out, slice_path):
        check_output(target, (args.labels, args.images, args.proposals), args.overwrite)
    slices, cases = quantify_labels(stack, n_sectors=args.sectors)
    if args.proposals or args.methods:
        cases = _comparison(stack, args, cases)
    write_csv(out, cases, CASE_COLUMNS)
    write_csv(slice_path, slices, SLICE_COLUMNS)
    note = units_note(stack)
    print(
        f"{len(cases)} case(s), {len(slices)} slice(s) -> {out}, {slice_path}"
        + (f"\nnote: {note}" if note else "")
    )
    return 0


def _comparison(stack, args: argparse.Namespace, label_cases: list[dict]) -> list[dict]:
    """Label, proposal and semi-automatic scar in one table per case."""
    from .quantify import compare_sources
    from .semiauto import semiauto_stack

    if not stack.spec.has_myocardium:
        raise ValueError(
            "comparing with proposals or semi-automatic methods needs labels with the myocardium"
        )
    if args.methods and not args.images:
        raise ValueError("the semi-automatic methods need the images (--images)")
    sources = {}
    if args.proposals:
        from .proposals_io import load_proposals

        sources["proposal"] = load_proposals(args.proposals, stack).masks()
    for method in [m for m in (args.methods or "").split(",") if m]:
        name = f"{method} {args.n:g}" if method == "nsd" else method
        sources[name] = semiauto_stack(stack, method, n=args.n)
    rows = label_cases + compare_sources(stack, sources, stack.myocardium(), args.sectors)
    return sorted(rows, key=lambda r: (r["case"], r["source"] != "label", r["source"]))


def cmd_semiauto(args: argparse.Namespace) -> int:
    import numpy as np

    from .io.writers import write_labels
    from .labelspec import LabelSpec
    from .semiauto import semiauto_stack

    stack = read_stack(
        args.images, labels=args.labels, spec=spec_from_args(args), series=args.series
    )
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
    from .audit import AuditConfig, audit, save_audit
    from .stack import case_of

    stack = read_stack(
        args.images, labels=args.labels, spec=spec_from_args(args), series=args.series
    )
    if not stack.has_labels:
        raise StackError(args.images, "has no labels to audit (give --labels)")
    check_output(args.out, (args.images, args.labels, args.proposals), args.overwrite)
    if args.case_separator != "_slice":
        stack.cases = [case_of(name, args.case_separator) for name in stack.names]
    if args.proposals:
        from .proposals_io import load_proposals

        proposals = load_proposals(args.proposals, stack)
    else:
        if not args.segmenter:
            raise ValueError(
                "give --proposals DIR, or --segmenter (and --detector) to propose now"
            )
        from .embeddings import EmbeddingCache
        from .paths import cache_dir
        from .progress import cli_progress, drive
        from .proposals import propose

        detector, segmenter = load_models(args)
        cache = EmbeddingCache(disk_dir=cache_dir("embeddings"))
        proposals = drive(
            propose(stack, segmenter, detector, cache=cache, conf=args.conf, lv_scar=args.lv_scar),
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


def cmd_view(args: argparse.Namespace) -> int:
    from .viewer import open_viewer

    open_viewer(
        path=args.path,
        sample=args.sample or args.path is None,
        spec=spec_from_args(args),
        block=not args.no_block,
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yolosam``."""
    parser = argparse.ArgumentParser(prog="yolosam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def reader_command(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument(
            "path", help="folder (images/ + masks/), DICOM folder, TIFF, NIfTI or image"
        )
        p.add_argument("--labels", help="labels kept elsewhere (mask folder or label file)")
        p.add_argument("--series", help="DICOM: which series (UID, number or PatientID)")
        add_spec_options(p)
        return p

    p = reader_command("info", "summarise a stack and its labels")
    p.set_defaults(func=cmd_info)
    p = reader_command("convert", "write a stack's labels to a new folder or file")
    p.add_argument("--out", required=True, help="new folder (png) or file (.tif, .nii.gz)")
    p.add_argument("--format", choices=LABEL_FORMATS, help="default: the stack's own layout")
    add_overwrite_option(p)
    p.set_defaults(func=cmd_convert)
    p = reader_command("boxes", "write YOLO box labels (one box per scar component)")
    p.add_argument("--out", required=True, help="folder for the .txt files")
    p.add_argument(
        "--min-area",
        type=non_negative_int,
        default=0,
        help="drop components smaller than this (pixels)",
    )
    add_overwrite_option(p)
    p.set_defaults(func=cmd_boxes)

    p = sub.add_parser(
        "propose",
        help="propose scar masks with YOLO boxes and SAM",
        description="Propose a scar mask for every slice: YOLO boxes (and label components) prompt SAM.",
    )
    p.add_argument("--images", required=True, help="any input the readers take")
    p.add_argument("--labels", help="labels kept elsewhere (their components prompt SAM too)")
    p.add_argument("--series", help=argparse.SUPPRESS)
    add_model_options(p)
    add_detector_prompt_options(p)
    p.add_argument("--iou", type=float, default=0.5, help="detector NMS IoU threshold")
    p.add_argument(
        "--no-label-prompts", action="store_true", help="do not prompt SAM with label components"
    )
    p.add_argument(
        "--carry-neighbour",
        action="store_true",
        help="on slices without detection, prompt with the previous slice's boxes",
    )
    p.add_argument("--no-disk-cache", action="store_true", help="keep embeddings in memory only")
    p.add_argument(
        "--out",
        required=True,
        help="new folder: masks/, probabilities.npz, summary.csv, prompts.json",
    )
    add_spec_options(p)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_propose)

    p = sub.add_parser(
        "train",
        help="train the detector and the segmenter on a labelled stack",
        description="Train YOLO (boxes) and SAM (noise-robust loss) on labels; writes "
        "RUN/detector.pt, RUN/segmenter.pth and RUN/metrics.csv.",
    )
    p.add_argument("--data", required=True, help="folder the readers take (images/ + masks/)")
    p.add_argument("--labels", help="labels kept elsewhere")
    p.add_argument("--series", help=argparse.SUPPRESS)
    p.add_argument("--out", required=True, help="run folder")
    add_model_options(p)
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=20,
        help="segmenter epochs (and detector epochs by default)",
    )
    p.add_argument(
        "--detector-epochs", type=positive_int, help="detector epochs (default: --epochs)"
    )
    p.add_argument(
        "--batch",
        type=positive_int,
        default=8,
        help="segmenter slices per step (with all their prompts)",
    )
    p.add_argument(
        "--scar-free-share",
        type=float,
        default=1.0,
        help="share of the slices without scar the segmenter sees each epoch (0..1)",
    )
    p.add_argument(
        "--lr", type=float, default=3e-4, help="segmenter learning rate (AdamW, cosine schedule)"
    )
    p.add_argument(
        "--mode",
        choices=TRAIN_MODES,
        default="auto",
        help="full: train the encoder too; decoder: frozen encoder with cached embeddings",
    )
    p.add_argument("--imgsz", type=positive_int, default=256, help="detector input size")
    p.add_argument(
        "--detector-best-by",
        choices=["scar_AP50", "mAP50", "fitness"],
        default="scar_AP50",
        help="which detector epoch is saved: best scar AP50 (default), best mAP50 of all "
        "classes, or ultralytics' fitness",
    )
    p.add_argument(
        "--val-fraction", type=float, default=0.2, help="share of cases held out for validation"
    )
    p.add_argument(
        "--val-cases", help="comma-separated validation cases (instead of a random share)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_spec_options(p)
    add_overwrite_option(p, "run folder (--resume continues it)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "quantify", help="scar size per slice and case: areas, volumes, burden, MVO, transmurality"
    )
    p.add_argument(
        "--labels",
        required=True,
        help="mask folder or label file (with --images: labels kept elsewhere)",
    )
    p.add_argument("--images", help="the images (DICOM/TIFF/NIfTI give the spacing)")
    p.add_argument("--series", help=argparse.SUPPRESS)
    p.add_argument(
        "--sectors", type=positive_int, default=6, help="myocardial sectors for transmurality"
    )
    p.add_argument(
        "--proposals", help="proposals folder to compare with (output of yolosam propose)"
    )
    p.add_argument("--methods", help="semi-automatic methods to compare with, e.g. nsd,fwhm,otsu")
    p.add_argument("--n", type=float, default=5.0, help="n of n-SD for --methods")
    p.add_argument(
        "--out",
        required=True,
        help="case table (CSV); the slice table goes beside it (*_slices.csv)",
    )
    add_spec_options(p)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_quantify)

    p = sub.add_parser("semiauto", help="n-SD, FWHM or Otsu scar inside the labelled myocardium")
    p.add_argument("--images", required=True)
    p.add_argument("--labels", help="labels with the myocardium (default: masks/ beside images/)")
    p.add_argument("--series", help=argparse.SUPPRESS)
    p.add_argument("--method", required=True, choices=["nsd", "fwhm", "otsu"])
    p.add_argument(
        "--n", type=float, default=5.0, help="n of mean + n SD of remote myocardium (2..8)"
    )
    p.add_argument(
        "--min-size",
        type=non_negative_int,
        default=0,
        help="drop components smaller than this (pixels)",
    )
    p.add_argument("--fill-holes", action="store_true")
    p.add_argument(
        "--out", required=True, help="new folder for binary scar masks (0/255 PNG per slice)"
    )
    add_spec_options(p)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_semiauto)

    p = sub.add_parser(
        "audit", help="flag and rank likely label errors by comparing labels with proposals"
    )
    p.add_argument("--images", required=True)
    p.add_argument("--labels", help="labels kept elsewhere (default: masks/ beside images/)")
    p.add_argument("--series", help=argparse.SUPPRESS)
    p.add_argument(
        "--proposals",
        help="output of 'yolosam propose', or any folder of masks named like the slices",
    )
    p.add_argument(
        "--detector",
        help="detector checkpoint or config (with --segmenter, instead of --proposals)",
    )
    p.add_argument("--segmenter", help="segmenter checkpoint or config")
    p.add_argument("--device", default="cpu")
    p.add_argument("--trust-detector", action="store_true", help=argparse.SUPPRESS)
    add_detector_prompt_options(p)
    p.add_argument(
        "--flag-quality", type=float, default=0.5, help="flag slices whose quality is below this"
    )
    p.add_argument(
        "--relative-flag",
        type=float,
        default=1.0,
        help="rate agreement against this share of the labelled slices' median agreement, "
        "where that is below --flag-quality: it then scores --flag-quality (weak models agree "
        "poorly with every label; 0: off)",
    )
    p.add_argument(
        "--no-cleanlab",
        action="store_true",
        help="leave cleanlab's pixel confidence out of the score",
    )
    p.add_argument(
        "--no-bias-correction",
        action="store_true",
        help="measure and report the data set's threshold bias, but compare every label with "
        "the proposals at 0.5 (not at the threshold that matches the labels' median size)",
    )
    p.add_argument(
        "--case-separator",
        default="_slice",
        help="a slice's case is the part of its name before this",
    )
    p.add_argument(
        "--out", required=True, help="new folder: report.csv, cases.csv, report.json, overview.png"
    )
    add_spec_options(p)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_audit)

    p = sub.add_parser(
        "demo", help="the method end to end on generated data (no data, no weights needed)"
    )
    p.add_argument(
        "--out", default="demo", help="folder for data, models, proposals and report.json"
    )
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds; for tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--segmenter",
        default=default_segmenter(),
        help="segmenter to fine-tune: lite_medsam (pretrained) or tiny (from scratch) "
        f"(default: {default_segmenter()})",
    )
    add_overwrite_option(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "models", help="list known checkpoints, or download one (opt-in, SHA-256 checked)"
    )
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list")
    p.add_argument("name", nargs="?", help="model to download (see the list)")
    p.add_argument("--url", help="a mirror instead of the published address")
    p.add_argument("--sha256", help="expected SHA-256 (required where none is published)")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("phantom", help="generate a synthetic LGE data set with noisy labels")
    p.add_argument(
        "--out",
        required=True,
        help="new folder: images/, masks/ (noisy), truth/, corruptions.json",
    )
    p.add_argument("--cases", type=positive_int, default=4)
    p.add_argument("--slices", type=positive_int, default=8, help="slices per case")
    p.add_argument("--size", type=positive_int, default=256, help="image side in pixels")
    p.add_argument("--corrupt", type=float, default=0.3, help="fraction of corrupted labels")
    p.add_argument("--seed", type=int, default=0)
    add_overwrite_option(p)
    p.set_defaults(func=cmd_phantom)

    p = sub.add_parser(
        "view", help="open napari with the plugin and a stack (or the phantom sample)"
    )
    p.add_argument("path", nargs="?", help="stack to open (default: the phantom sample)")
    p.add_argument("--sample", action="store_true", help="open the phantom sample")
    p.add_argument("--no-block", action="store_true", help=argparse.SUPPRESS)
    add_spec_options(p)
    p.set_defaults(func=cmd_view)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``yolosam``; bad input ends with a one-line error, not a traceback."""
    args = build_parser().parse_args(argv)
    from .progress import Stopped

    try:
        return int(args.func(args) or 0)
    except (StackError, ValueError, PermissionError, FileNotFoundError, RuntimeError) as exc:
        print(f"yolosam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped):
        print(f"yolosam {args.command}: stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
