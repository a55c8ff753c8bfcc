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
    try:
        return int(args.func(args) or 0)
    except (StackError, ValueError, PermissionError, FileNotFoundError) as exc:
        print(f"yolosam {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
