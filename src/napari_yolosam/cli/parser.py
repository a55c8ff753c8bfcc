"""The ``yolosam`` argument parser: one grammar for every sub-command.

Every sub-command names its input ``--images PATH`` (any input the readers
take; labels beside it or ``--labels PATH``) and its result ``--out``; every
option has a help line that ends with its default. Each sub-command runs
``commands.cmd_<name>``, imported when it runs, so that ``yolosam --help``
loads no model and this module imports no command.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from ..defaults import DIRECTIONS, TRAINING, default_segmenter
from ..io import LABEL_FORMATS
from .options import (
    add_detector_prompt_options,
    add_encoder_backend_option,
    add_extent_option,
    add_look_closer_option,
    add_model_options,
    add_overwrite_option,
    add_spec_options,
    add_train_options,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    unit_float,
)
from .phases import phase_choice
from .study import PER_PATIENT, shard_choice

INPUT_HELP = "the stack: folder (images/ + masks/), DICOM folder, TIFF, NIfTI or image"


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The sub-command ``name`` of :mod:`.commands`, looked up when it runs."""

    def run(args: argparse.Namespace) -> int:
        from . import commands

        return getattr(commands, name)(args)

    run.__name__ = name
    return run


class _HelpFormatter(argparse.HelpFormatter):
    """Each option's help ends with its default (unless it names one or has none)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            action.option_strings
            and action.default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
        ):
            text += " (default: %(default)s)"
        return text


class _Parser(argparse.ArgumentParser):
    """Resolves the input: ``--images``, or the positional path older command lines gave."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extra = super().parse_known_args(args, namespace)
        if hasattr(namespace, "images") and getattr(namespace, "legacy_path", None):
            namespace.images = namespace.images or namespace.legacy_path
        if getattr(namespace, "needs_images", False) and not namespace.images:
            self._command(namespace.command).error("the input is required: --images PATH")
        return namespace, extra

    def _command(self, name: str) -> argparse.ArgumentParser:
        """The sub-command's own parser (its usage and ``yolosam NAME: error:`` lines)."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction) and name in action.choices:
                return action.choices[name]
        return self


def add_input(
    p: argparse.ArgumentParser, labels_help: str, required: bool = True, legacy: str = "path"
) -> None:
    """``--images`` (the input) with ``--labels`` and ``--series``. The spelling older command
    lines used still works, unlisted: a bare path (``legacy="path"``) or ``--data``."""
    p.add_argument(
        "--images", metavar="PATH", help=INPUT_HELP + ("" if required else " (optional)")
    )
    if legacy == "path":
        p.add_argument("legacy_path", nargs="?", help=argparse.SUPPRESS)
    elif legacy:
        p.add_argument(legacy, dest="legacy_path", help=argparse.SUPPRESS)
    p.add_argument("--labels", metavar="PATH", help=labels_help)
    p.add_argument("--series", help="DICOM: which series (UID, number or PatientID)")
    phase = "DICOM series with several phases (cine): which one, 0-based in time order"
    first = " (default: the first, end-diastole for an ECG-triggered cine)"
    if p.prog.split()[-1] not in PER_PATIENT:  # the stack (or study) whole: one phase, no shards
        p.add_argument("--phase", type=non_negative_int, help=phase + first)
        p.set_defaults(needs_images=required)
        return
    p.add_argument(
        "--phase",
        type=phase_choice,
        help=phase
        + ", or 'all': the command once per phase, --out NAME_phaseKK.csv / OUT/phaseKK",
    )
    p.add_argument(
        "--shard",
        type=shard_choice,
        metavar="K/N",
        help="a study (a folder of patients): run every N-th patient from the K-th "
        "(0-based), for N processes or cluster jobs sharing it",
    )
    p.set_defaults(needs_images=required)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``yolosam``."""
    parser = _Parser(
        prog="yolosam",
        description="YOLO + SAM scar proposals and label audit for LGE cardiac MRI.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, parser_class=argparse.ArgumentParser
    )

    def command(name: str, help_: str, description: str | None = None):
        """A sub-command: ``help_`` (lower case, no full stop) in the list of commands, and a
        description (sentences) at the top of its own help."""
        description = description or help_[0].upper() + help_[1:] + "."
        p = sub.add_parser(
            name, help=help_, description=description, formatter_class=_HelpFormatter
        )
        p.set_defaults(func=_command(f"cmd_{name}"))
        return p

    for add in (
        _info_convert_boxes,
        _embed,
        _propose,
        _propagate,
        _train,
        _quantify,
        _semiauto,
        _audit,
        _review,
        _demo,
        _models,
        _phantom,
        _view,
    ):
        add(command)
    return parser


def _info_convert_boxes(command) -> None:
    elsewhere = "labels kept elsewhere (mask folder or label file)"
    p = command("info", "summarise a stack and its labels")
    add_input(p, elsewhere)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    add_spec_options(p)
    p = command("convert", "write a stack's labels to a new folder or file")
    add_input(p, elsewhere)
    p.add_argument("--out", required=True, help="new folder (png) or file (.tif, .nii.gz)")
    p.add_argument(
        "--format", choices=LABEL_FORMATS, help="output format (default: the stack's own layout)"
    )
    add_spec_options(p)
    add_overwrite_option(p)
    p = command("boxes", "write YOLO box labels (one box per scar component)")
    add_input(p, elsewhere)
    p.add_argument("--out", required=True, help="folder for the .txt files")
    p.add_argument(
        "--min-area",
        type=non_negative_int,
        default=0,
        help="drop components smaller than this (pixels)",
    )
    add_spec_options(p)
    add_overwrite_option(p)


def _embed(command) -> None:
    p = command(
        "embed",
        "encode every slice once into the embedding cache (before proposing or review)",
        "Encode every slice of a stack with the segmenter's encoder and keep the embeddings "
        "(float16) in the cache that propose, audit, review prompts and fine-tuning read; "
        "slices already cached are skipped.",
    )
    add_input(p, "labels kept elsewhere (not needed to embed)", legacy="")
    p.add_argument("--segmenter", default=default_segmenter(), help="segmenter whose encoder runs")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_encoder_backend_option(p)
    add_look_closer_option(p, "the labels' anatomy, else the heart finder's; as propose reads it")
    p.add_argument("--first", type=non_negative_int, default=0, help="slice encoded first")
    p.add_argument(
        "--cache",
        help="cache folder (default: the user cache's embeddings/, which the other commands read)",
    )
    add_spec_options(p)


def _propose(command) -> None:
    p = command(
        "propose",
        "propose scar masks with YOLO boxes and SAM",
        "Propose a scar mask for every slice: YOLO boxes (and label components) prompt SAM.",
    )
    add_input(p, "labels kept elsewhere (their components prompt SAM too)", legacy="")
    add_model_options(p)
    add_detector_prompt_options(p)
    p.add_argument("--iou", type=unit_float, default=0.5, help="detector NMS IoU threshold")
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


def _propagate(command) -> None:
    p = command(
        "propagate",
        "propagate one slice's scar mask through its neighbours with SAM",
        "From the scar on one slice (the labels', or a mask file), propose the slices above "
        "and/or below one after another: each new mask's regions prompt SAM on the next "
        "slice (a box and a click each), inside the labels' myocardium; a direction stops "
        "where the scar vanishes, the myocardium ends or the patient does. Writes the same "
        "folder as propose (slices not reached are empty).",
    )
    add_input(p, "labels kept elsewhere (their scar on --slice starts, their myocardium bounds)")
    p.add_argument("--slice", required=True, help="start slice: its index or file name")
    p.add_argument(
        "--mask", help="start mask file (PNG/TIFF, nonzero = scar) (default: the labels' scar)"
    )
    p.add_argument("--direction", choices=DIRECTIONS, default="both", help="which neighbours")
    p.add_argument(
        "--segmenter",
        default=default_segmenter(),
        help=f"segmenter (as for propose) (default: {default_segmenter()})",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_encoder_backend_option(p)
    add_extent_option(p)
    add_look_closer_option(p, "the labels' anatomy; the whole slice without it")
    p.add_argument("--out", required=True, help="new folder, as propose writes")
    add_spec_options(p)
    add_overwrite_option(p)


def _train(command) -> None:
    p = command(
        "train",
        "train the detector and the segmenter on a labelled stack",
        "Train YOLO (boxes) and SAM (noise-robust loss) on labels; writes RUN/detector.pt, "
        "RUN/segmenter.pth and RUN/metrics.csv.",
    )
    add_input(p, "labels kept elsewhere", legacy="--data")
    p.add_argument("--out", required=True, help="run folder")
    add_model_options(p)
    add_train_options(p)
    p.add_argument(
        "--detector-epochs", type=positive_int, help="detector epochs (default: --epochs)"
    )
    p.add_argument(
        "--imgsz", type=positive_int, default=TRAINING.detector_imgsz, help="detector input size"
    )
    p.add_argument(
        "--detector-best-by",
        choices=["scar_AP50", "mAP50", "fitness"],
        default="scar_AP50",
        help="which detector epoch is saved: best scar AP50, best mAP50 of all classes, or "
        "ultralytics' fitness",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    add_spec_options(p)
    add_overwrite_option(p, "run folder (--resume continues it)")


def _quantify(command) -> None:
    p = command(
        "quantify", "scar size per slice and case: areas, volumes, burden, MVO, transmurality"
    )
    add_input(
        p,
        "labels kept elsewhere; alone (without --images), a mask folder or label file "
        "quantified in pixels",
        required=False,
        legacy="",
    )
    p.add_argument(
        "--sectors", type=positive_int, default=6, help="myocardial sectors for transmurality"
    )
    p.add_argument(
        "--proposals", help="proposals folder to compare with (output of yolosam propose)"
    )
    p.add_argument("--methods", help="semi-automatic methods to compare with, e.g. nsd,fwhm,otsu")
    p.add_argument("--n", type=positive_float, default=5.0, help="n of n-SD for --methods")
    p.add_argument(
        "--out",
        required=True,
        help="case table (CSV); the slice table goes beside it (*_slices.csv)",
    )
    add_spec_options(p)
    add_overwrite_option(p)


def _semiauto(command) -> None:
    p = command("semiauto", "n-SD, FWHM or Otsu scar inside the labelled myocardium")
    add_input(p, "labels with the myocardium (default: masks/ beside images/)", legacy="")
    p.add_argument(
        "--method", required=True, choices=["nsd", "fwhm", "otsu"], help="thresholding method"
    )
    p.add_argument(
        "--n",
        type=positive_float,
        default=5.0,
        help="n of mean + n SD of remote myocardium (2..8)",
    )
    p.add_argument(
        "--min-size",
        type=non_negative_int,
        default=0,
        help="drop components smaller than this (pixels)",
    )
    p.add_argument("--fill-holes", action="store_true", help="fill holes in the scar")
    p.add_argument(
        "--out", required=True, help="new folder for binary scar masks (0/255 PNG per slice)"
    )
    add_spec_options(p)
    add_overwrite_option(p)


def _audit(command) -> None:
    p = command("audit", "flag and rank likely label errors by comparing labels with proposals")
    add_input(p, "labels kept elsewhere (default: masks/ beside images/)", legacy="")
    p.add_argument(
        "--proposals",
        help="output of 'yolosam propose', or any folder of masks named like the slices",
    )
    p.add_argument(
        "--detector",
        help="detector checkpoint or config (with --segmenter, instead of --proposals)",
    )
    p.add_argument("--segmenter", help="segmenter checkpoint or config")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_encoder_backend_option(p)
    p.add_argument("--trust-detector", action="store_true", help=argparse.SUPPRESS)
    add_detector_prompt_options(p)
    p.add_argument(
        "--flag-quality",
        type=unit_float,
        default=0.5,
        help="flag slices whose quality is below this",
    )
    p.add_argument(
        "--relative-flag",
        type=non_negative_float,
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


def _review(command) -> None:
    p = command(
        "review",
        "the review queue without a viewer: list it, or apply decisions and save the cleaned set",
        "Audit the labels against the proposals, then list the review queue (--list), or make "
        "decisions from a file (--decisions: CSV or JSON rows of image, action = accept / keep / "
        "union / intersection / mask, and mask = a mask file for 'mask') or a rule "
        "(--accept-below), exactly as the review widget makes them, and write the cleaned set "
        "with decisions.jsonl and summary.json.",
    )
    add_input(p, "labels kept elsewhere (default: masks/ beside images/)", legacy="")
    p.add_argument("--proposals", required=True, help="output of 'yolosam propose'")
    p.add_argument(
        "--list", action="store_true", help="print the queue, worst first; write nothing"
    )
    p.add_argument("--decisions", help="CSV or JSON file of decisions (image, action[, mask])")
    p.add_argument(
        "--accept-below",
        type=unit_float,
        help="accept the proposal on queued slices whose quality is below this",
    )
    p.add_argument(
        "--min-confidence",
        type=unit_float,
        default=0.0,
        help="with --accept-below: only proposals with at least this mean SAM probability",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="with --accept-below: run the rule even where the data cannot say that accepting "
        "helps (too few agreed slices, proposals too weak), and accept whatever its gain",
    )
    p.add_argument(
        "--flag-quality",
        type=unit_float,
        default=0.5,
        help="the audit flags slices below this quality",
    )
    p.add_argument(
        "--out", help="new folder for the cleaned set (masks/, decisions.jsonl, summary.json)"
    )
    add_spec_options(p)
    add_overwrite_option(p)


def _demo(command) -> None:
    p = command(
        "demo",
        "the whole method on generated data: propose, audit, scripted review, fine-tune, "
        "re-score, with pictures (3-7 min on 2 cores, measured; no data, no download)",
    )
    p.add_argument(
        "--out", default="demo", help="folder for data, models, proposals and report.json"
    )
    p.add_argument("--quick", action="store_true", help="a tiny version (seconds; for tests)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument(
        "--segmenter",
        default=default_segmenter(),
        help="segmenter to fine-tune: lite_medsam (pretrained) or tiny (from scratch)",
    )
    add_overwrite_option(p)


def _models(command) -> None:
    p = command("models", "list known checkpoints, or download one (opt-in, SHA-256 checked)")
    p.add_argument(
        "action", nargs="?", choices=["list", "download"], default="list", help="what to do"
    )
    p.add_argument("name", nargs="?", help="model to download (see the list)")
    p.add_argument("--url", help="a mirror instead of the published address")
    p.add_argument("--sha256", help="expected SHA-256 (required where none is published)")


def _phantom(command) -> None:
    p = command("phantom", "generate a synthetic LGE data set with noisy labels")
    p.add_argument(
        "--out",
        required=True,
        help="new folder: images/, masks/ (noisy), truth/, corruptions.json",
    )
    p.add_argument("--cases", type=positive_int, default=4, help="cases (patients)")
    p.add_argument("--slices", type=positive_int, default=8, help="slices per case")
    p.add_argument("--size", type=positive_int, default=256, help="image side in pixels")
    p.add_argument("--corrupt", type=unit_float, default=0.3, help="fraction of corrupted labels")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    add_overwrite_option(p)


def _view(command) -> None:
    p = command("view", "open napari with the plugin's workflow and a stack (default: the sample)")
    add_input(p, "labels kept elsewhere", required=False)
    p.add_argument("--sample", action="store_true", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--no-block", action="store_true", help=argparse.SUPPRESS)
    add_spec_options(p)
