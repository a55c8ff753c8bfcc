"""The ``yolosam`` command: each sub-command is a thin call into the core."""

from __future__ import annotations

import argparse
import json
import sys

from .io import LABEL_FORMATS, StackError, read_stack, write_labels, write_yolo_labels
from .labelspec import MASK_MODES, LabelSpec


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """Label-specification options shared by every command that reads labels."""
    group = parser.add_argument_group("label values")
    group.add_argument(
        "--label-spec",
        default="emidec",
        choices=["emidec", "binary"],
        help="preset for what label values mean (default: emidec)",
    )
    group.add_argument("--scar-values", help="comma-separated scar values (emidec: 3,4)")
    group.add_argument("--myo-values", help="comma-separated myocardium values (emidec: 2,3,4)")
    group.add_argument("--mvo-values", help="comma-separated no-reflow values (emidec: 4)")
    group.add_argument(
        "--mask-mode", choices=MASK_MODES, help="how mask files are decoded (default: auto)"
    )
    group.add_argument(
        "--mask-threshold", type=int, help="binarisation threshold for soft masks (default 128)"
    )


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--detector / --segmenter / --device, shared by propose, audit and train."""
    parser.add_argument(
        "--detector",
        default="yolo11n.yaml",
        help="detector checkpoint (.pt, project format), a config such as yolo11n.yaml "
        "(fresh weights), or 'none' (label prompts only)",
    )
    parser.add_argument(
        "--segmenter",
        default="tiny",
        help="segmenter checkpoint, a config (tiny, vit_b, mobile_sam: fresh weights), "
        "a downloaded model (sam_vit_b, ...) or medsam:PATH",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    parser.add_argument(
        "--trust-detector",
        action="store_true",
        help="allow an ultralytics .pt detector (it runs code when loaded): trusted files only",
    )


def spec_from_args(args: argparse.Namespace) -> LabelSpec:
    """The :class:`LabelSpec` the options describe."""
    return LabelSpec.from_name(
        args.label_spec,
        scar=args.scar_values,
        myocardium=args.myo_values,
        no_reflow=args.mvo_values,
        mode=args.mask_mode,
        threshold=args.mask_threshold,
    )


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
    written = write_labels(stack, args.out, fmt=args.format)
    print(f"wrote {len(written)} file(s) to {args.out}")
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    stack = _read(args)
    if not stack.has_labels:
        raise StackError(args.path, "has no labels to derive boxes from")
    written = write_yolo_labels(
        stack.scar(), stack.names, args.out, stack.original_shapes, min_area=args.min_area
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
    save_phantom(phantom, args.out)
    print(
        f"wrote {len(phantom.stack)} phantom slices ({len(phantom.corruptions)} corrupted) to {args.out}"
    )
    return 0


def load_models(args: argparse.Namespace):
    """Detector (or ``None``) and segmenter named by ``--detector`` / ``--segmenter``."""
    from .detector import Detector
    from .segmenter import Segmenter

    segmenter = Segmenter.from_spec(args.segmenter, device=args.device)
    detector = None
    if args.detector and args.detector.lower() != "none":
        detector = Detector.from_spec(args.detector, device=args.device, trust=args.trust_detector)
    return detector, segmenter


def cmd_propose(args: argparse.Namespace) -> int:
    from .embeddings import EmbeddingCache
    from .paths import cache_dir
    from .progress import cli_progress, drive
    from .proposals import propose
    from .proposals_io import save_proposals

    stack = read_stack(args.images, labels=args.labels, spec=spec_from_args(args))
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
    )
    proposals = drive(work, cli_progress())
    save_proposals(proposals, stack, args.out)
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
        "configurations (fresh weights): tiny, vit_b, vit_l, vit_h, mobile_sam; detectors: yolo11n.yaml, yolov8n.yaml, ..."
    )
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
    p.set_defaults(func=cmd_convert)
    p = reader_command("boxes", "write YOLO box labels (one box per scar component)")
    p.add_argument("--out", required=True, help="folder for the .txt files")
    p.add_argument(
        "--min-area", type=int, default=0, help="drop components smaller than this (pixels)"
    )
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
    p.add_argument("--conf", type=float, default=0.25, help="detector confidence threshold")
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
    p.set_defaults(func=cmd_propose)

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
    p.add_argument("--cases", type=int, default=4)
    p.add_argument("--slices", type=int, default=8, help="slices per case")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--corrupt", type=float, default=0.3, help="fraction of corrupted labels")
    p.add_argument("--seed", type=int, default=0)
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
