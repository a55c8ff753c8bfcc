"""The ``yolosam`` argument parser: every sub-command, option, default and help line.

Each sub-command's ``func`` runs the matching ``cmd_*`` function of
:mod:`napari_yolosam.cli.commands` (imported when the command runs, so this module
stays free of the command implementations and of any import circle).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..defaults import TRAINING, default_segmenter
from ..io import LABEL_FORMATS
from .options import (
    add_detector_prompt_options,
    add_model_options,
    add_overwrite_option,
    add_spec_options,
    add_train_options,
    non_negative_int,
    positive_int,
)


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The sub-command ``name`` of :mod:`napari_yolosam.cli.commands`, looked up when it runs."""

    def run(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)

    run.__name__ = name
    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yolosam``."""
    parser = argparse.ArgumentParser(
        prog="yolosam",
        description="YOLO + SAM scar proposals and label audit for LGE cardiac MRI.",
    )
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
    p.set_defaults(func=_command("cmd_info"))
    p = reader_command("convert", "write a stack's labels to a new folder or file")
    p.add_argument("--out", required=True, help="new folder (png) or file (.tif, .nii.gz)")
    p.add_argument("--format", choices=LABEL_FORMATS, help="default: the stack's own layout")
    add_overwrite_option(p)
    p.set_defaults(func=_command("cmd_convert"))
    p = reader_command("boxes", "write YOLO box labels (one box per scar component)")
    p.add_argument("--out", required=True, help="folder for the .txt files")
    p.add_argument(
        "--min-area",
        type=non_negative_int,
        default=0,
        help="drop components smaller than this (pixels)",
    )
    add_overwrite_option(p)
    p.set_defaults(func=_command("cmd_boxes"))

    p = sub.add_parser(
        "embed",
        help="encode every slice once into the embedding cache (before proposing or review)",
        description="Encode every slice of a stack with the segmenter's encoder and keep the "
        "embeddings (float16) in the cache that propose, audit, review prompts and fine-tuning "
        "read; slices already cached are skipped.",
    )
    p.add_argument("--images", required=True, help="any input the readers take")
    p.add_argument("--series", help=argparse.SUPPRESS)
    p.add_argument(
        "--segmenter",
        default=default_segmenter(),
        help=f"segmenter whose encoder runs (default: {default_segmenter()})",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps (default: cpu)")
    p.add_argument(
        "--first", type=non_negative_int, default=0, help="slice encoded first (default: 0)"
    )
    p.add_argument(
        "--cache",
        help="cache folder (default: the user cache's embeddings/, which the other commands read)",
    )
    add_spec_options(p)
    p.set_defaults(func=_command("cmd_embed"))

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
    p.set_defaults(func=_command("cmd_propose"))

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
    add_train_options(p)
    p.add_argument(
        "--detector-epochs", type=positive_int, help="detector epochs (default: --epochs)"
    )
    p.add_argument(
        "--imgsz",
        type=positive_int,
        default=TRAINING.detector_imgsz,
        help=f"detector input size (default {TRAINING.detector_imgsz})",
    )
    p.add_argument(
        "--detector-best-by",
        choices=["scar_AP50", "mAP50", "fitness"],
        default="scar_AP50",
        help="which detector epoch is saved: best scar AP50 (default), best mAP50 of all "
        "classes, or ultralytics' fitness",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_spec_options(p)
    add_overwrite_option(p, "run folder (--resume continues it)")
    p.set_defaults(func=_command("cmd_train"))

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
    p.set_defaults(func=_command("cmd_quantify"))

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
    p.set_defaults(func=_command("cmd_semiauto"))

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
    p.set_defaults(func=_command("cmd_audit"))

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
    p.set_defaults(func=_command("cmd_demo"))

    p = sub.add_parser(
        "models", help="list known checkpoints, or download one (opt-in, SHA-256 checked)"
    )
    p.add_argument("action", nargs="?", choices=["list", "download"], default="list")
    p.add_argument("name", nargs="?", help="model to download (see the list)")
    p.add_argument("--url", help="a mirror instead of the published address")
    p.add_argument("--sha256", help="expected SHA-256 (required where none is published)")
    p.set_defaults(func=_command("cmd_models"))

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
    p.set_defaults(func=_command("cmd_phantom"))

    p = sub.add_parser(
        "view", help="open napari with the plugin and a stack (or the phantom sample)"
    )
    p.add_argument("path", nargs="?", help="stack to open (default: the phantom sample)")
    p.add_argument("--sample", action="store_true", help="open the phantom sample")
    p.add_argument("--no-block", action="store_true", help=argparse.SUPPRESS)
    add_spec_options(p)
    p.set_defaults(func=_command("cmd_view"))
    return parser
