"""Options and helpers shared by the ``yolosam`` sub-commands (and the DDP entry point)."""

from __future__ import annotations

import argparse
import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

from ..defaults import (
    ENCODER_BACKEND,
    ENCODER_BACKENDS,
    EXTENT,
    HEAD_SCAR,
    LOOK_CLOSER,
    LV_CONF,
    TARGETS,
    TRAIN_MODES,
    TRAINING,
    default_segmenter,
)
from ..io.manifest import Provenance
from ..io.outputs import check_output, staged_folder
from ..labelspec import MASK_MODES, LabelSpec


def _int_at_least(text: str, lowest: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < lowest:
        raise argparse.ArgumentTypeError(f"must be at least {lowest}, not {value}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (epochs, batch, sectors, sizes, counts)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0 (minimum sizes in pixels)."""
    return _int_at_least(text, 0)


def finite_float(text: str) -> float:
    """An argparse type: a finite number (never NaN or infinity)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a finite number above 0 (rates, n of n-SD)."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
    return value


def non_negative_float(text: str) -> float:
    """An argparse type: a finite number of at least 0 (0 often turns a rule off)."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, not {text}")
    return value


def unit_float(text: str) -> float:
    """An argparse type: a finite number in 0..1 (shares, thresholds, confidences)."""
    value = finite_float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in 0..1, not {text}")
    return value


def label_values(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated label values, each a whole number in 1..65535."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError("give at least one value, such as 3,4")
    values = []
    for part in parts:
        if not part.isdigit() or not 1 <= int(part) <= 65535:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a label value (a whole number in 1..65535; 0 is background)"
            )
        values.append(int(part))
    return tuple(values)


def add_spec_options(parser: argparse.ArgumentParser) -> None:
    """Label-specification options shared by every command that reads labels."""
    group = parser.add_argument_group("label values")
    group.add_argument(
        "--label-spec",
        default="emidec",
        choices=["emidec", "binary"],
        help="preset for what label values mean (default: emidec)",
    )
    group.add_argument(
        "--scar-values", type=label_values, help="comma-separated scar values (emidec: 3,4)"
    )
    group.add_argument(
        "--myo-values", type=label_values, help="comma-separated myocardium values (emidec: 2,3,4)"
    )
    group.add_argument(
        "--mvo-values", type=label_values, help="comma-separated no-reflow values (emidec: 4)"
    )
    group.add_argument(
        "--mask-mode", choices=MASK_MODES, help="how mask files are decoded (default: auto)"
    )
    group.add_argument(
        "--mask-threshold", type=int, help="binarisation threshold for soft masks (default: 128)"
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
        default=default_segmenter(),
        help="segmenter: lite_medsam (pretrained, packaged), a checkpoint, a config "
        "(tiny, tiny_hr, vit_b: fresh weights), a downloaded model (sam_vit_b, mobile_sam, ...) "
        f"or medsam:PATH (default: {default_segmenter()})",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps")
    add_encoder_backend_option(parser)
    parser.add_argument(
        "--trust-detector",
        action="store_true",
        help="allow an ultralytics .pt detector (it runs code when loaded): trusted files only",
    )


def add_encoder_backend_option(parser: argparse.ArgumentParser) -> None:
    """``--encoder-backend``: what computes the segmenter's embeddings."""
    parser.add_argument(
        "--encoder-backend",
        choices=ENCODER_BACKENDS,
        default=ENCODER_BACKEND,
        help="what computes the image embeddings: auto (ONNX Runtime on a CPU, else "
        "PyTorch), torch (PyTorch float32, the reference), onnx (the same embeddings, faster "
        f"on a CPU) or half (default: {ENCODER_BACKEND})",
    )


def segmenter_from_args(args: argparse.Namespace, spec: str | None = None):
    """The segmenter named by ``--segmenter`` (or ``spec``) on ``--device`` with ``--encoder-backend``."""
    from ..models.segmenter import Segmenter

    return Segmenter.from_spec(
        spec or args.segmenter,
        device=args.device,
        encoder_backend=getattr(args, "encoder_backend", ENCODER_BACKEND),
    )


def add_overwrite_option(parser: argparse.ArgumentParser, what: str = "output") -> None:
    """``--overwrite``: replace an existing output (never an input or a data set)."""
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help=f"replace an existing {what} ; inputs and data sets are never written (default: refuse)",
    )


#: Options naming input files or folders: a manifest records them (and their files'
#: signature) as inputs; the others are settings.
INPUT_OPTIONS = ("images", "labels", "proposals", "decisions", "mask", "dicom_seg")
#: Options that say where or how to run, not what the output holds.
NOT_SETTINGS = ("func", "command", "out", "overwrite", "shard", "patient", "resume", "series")


def provenance_from_args(args: argparse.Namespace) -> Provenance:
    """What a command's output is made of: its inputs (resolved paths, the DICOM series)
    and its settings."""
    values = vars(args)
    inputs = tuple(str(Path(values[n]).resolve()) for n in INPUT_OPTIONS if values.get(n))
    if values.get("series"):
        inputs += (f"series {values['series']}",)
    settings = {
        k: v for k, v in values.items() if k not in INPUT_OPTIONS and k not in NOT_SETTINGS
    }
    return Provenance(f"yolosam {args.command}", inputs, settings)


@contextlib.contextmanager
def output_folder(args: argparse.Namespace, *inputs) -> Iterator[Path]:
    """Check ``--out`` against the inputs and ``--overwrite``, then yield a staged folder that
    becomes ``--out`` only when the command finishes (a killed run leaves no mix)."""
    check_output(args.out, inputs, args.overwrite)
    with staged_folder(args.out, provenance_from_args(args)) as folder:
        yield folder


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


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The segmenter's training options, shared by ``yolosam train`` and the DDP launcher;
    defaults from :data:`~napari_yolosam.defaults.TRAINING`."""
    parser.add_argument(
        "--epochs",
        type=positive_int,
        default=TRAINING.epochs,
        help=f"segmenter epochs (and detector epochs, unless given) (default: {TRAINING.epochs})",
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=TRAINING.batch_size,
        help=f"segmenter slices per step, with all their prompts (default: {TRAINING.batch_size})",
    )
    parser.add_argument(
        "--scar-free-share",
        type=unit_float,
        default=TRAINING.scar_free_share,
        help="share of the slices without scar the segmenter sees each epoch "
        f"(0..1) (default: {TRAINING.scar_free_share})",
    )
    parser.add_argument(
        "--lr",
        type=positive_float,
        default=TRAINING.lr,
        help=f"segmenter learning rate (AdamW, cosine schedule) (default: {TRAINING.lr:g})",
    )
    parser.add_argument(
        "--mode",
        choices=TRAIN_MODES,
        default=TRAINING.mode,
        help="full: train the encoder too; stage: its last stage and neck on cached inputs "
        "(TinyViT encoders); neck: the encoder's neck on cached trunk features; "
        "decoder: frozen encoder, cached embeddings; auto: full for a random encoder, else "
        f"decoder (default: {TRAINING.mode})",
    )
    parser.add_argument(
        "--targets",
        choices=TARGETS,
        default=TRAINING.targets,
        help="labels: learn scar as labelled; extent: learn each label's scar with the extent "
        "of the enhanced regions it touches (mean + 2 SD of the remote myocardium), for "
        f"threshold labels whose extent is as noisy as their threshold (default: {TRAINING.targets})",
    )
    add_look_closer_option(
        parser,
        "the label's myocardium and blood pool, jittered; the detector learns on the same windows",
        TRAINING.look_closer,
    )
    parser.add_argument(
        "--heart-steps",
        type=non_negative_int,
        default=TRAINING.heart_steps,
        help="steps of each head that finds the heart and reads its anatomy, trained on labels "
        f"with a myocardium and kept in the checkpoint; 0: none (default: {TRAINING.heart_steps})",
    )
    parser.add_argument(
        "--cached-variants",
        type=int,
        default=TRAINING.cached_variants,
        help="decoder, neck and stage modes: versions of each slice, the first as it is and "
        "the others augmented once (flips, rotation, scale, gamma) and cached like it; each "
        "costs an encoder pass per slice the first time it is drawn "
        f"(default: {TRAINING.cached_variants})",
    )
    parser.add_argument(
        "--val-fraction",
        type=unit_float,
        default=TRAINING.val_fraction,
        help=f"share of cases held out for validation (default: {TRAINING.val_fraction})",
    )
    parser.add_argument(
        "--val-cases", help="comma-separated validation cases (instead of a random share)"
    )
    parser.add_argument(
        "--seed", type=int, default=TRAINING.seed, help=f"random seed (default: {TRAINING.seed})"
    )


def load_models(args: argparse.Namespace):
    """Detector (or ``None``) and segmenter named by ``--detector`` / ``--segmenter``."""
    from ..models import load_models as load

    return load(
        args.detector, args.segmenter, args.device, args.trust_detector, args.encoder_backend
    )


def sam_config_from_args(args: argparse.Namespace):
    """The segmenter's training settings from ``yolosam train`` (or the DDP entry's) options."""
    from ..training.sam import SamTrainConfig

    val_cases = getattr(args, "val_cases", None)
    return SamTrainConfig(
        epochs=args.epochs,
        batch_size=args.batch,
        lr=args.lr,
        mode=args.mode,
        targets=getattr(args, "targets", TRAINING.targets),
        val_fraction=args.val_fraction,
        val_cases=tuple(val_cases.split(",")) if val_cases else (),
        seed=args.seed,
        max_steps_per_epoch=getattr(args, "max_steps_per_epoch", None),
        scar_free_share=getattr(args, "scar_free_share", 1.0),
        cached_variants=getattr(args, "cached_variants", TRAINING.cached_variants),
        look_closer=getattr(args, "look_closer", TRAINING.look_closer),
        heart_steps=getattr(args, "heart_steps", TRAINING.heart_steps),
    )


def add_detector_prompt_options(parser: argparse.ArgumentParser) -> None:
    """``--conf`` (detector thresholds), ``--lv-scar`` and ``--intensity`` (more scar prompts),
    ``--no-extent`` (SAM's masks as they are, not the enhanced regions they touch)."""
    parser.add_argument(
        "--conf",
        type=unit_float,
        help="one detector confidence threshold for all classes (default: the per-class "
        "thresholds validated in training, kept in the detector checkpoint; else 0.25)",
    )
    parser.add_argument(
        "--lv-conf",
        type=lv_conf_choice,
        default=LV_CONF,
        help="keep the detector's LV boxes above this score, the slice's best being its "
        "anatomy (every short-axis slice crosses the LV); 'validated': the LV class's own "
        f"threshold (default: {LV_CONF})",
    )
    parser.add_argument(
        "--lv-scar",
        action="store_true",
        help="prompt SAM for scar with the detector's LV box too (segmenters trained with LV boxes)",
    )
    parser.add_argument(
        "--intensity",
        action="store_true",
        help="prompt SAM for scar with a box round each enhanced region of the myocardium too "
        "(mean + 2 SD of the remote myocardium; the label's myocardium, else the proposed one)",
    )
    parser.add_argument(
        "--head-scar",
        action=argparse.BooleanOptionalAction,
        default=HEAD_SCAR,
        help="proposing without labels, prompt SAM with a box round each scar region the "
        "anatomy head of a segmenter trained looking closer reads in the window "
        f"(default: {'on' if HEAD_SCAR else 'off'})",
    )
    add_extent_option(parser)
    add_look_closer_option(parser, "the label's anatomy, else the segmenter's heart finder")


def add_look_closer_option(
    parser: argparse.ArgumentParser, where: str, default: bool = LOOK_CLOSER
) -> None:
    """``--look-closer/--no-look-closer``: SAM looks at a window round the heart (``where``
    says where the window comes from) or at the whole slice."""
    parser.add_argument(
        "--look-closer",
        action=argparse.BooleanOptionalAction,
        default=default,
        help=f"SAM looks at a square window round the heart ({where}), resized to its input, "
        f"instead of the whole slice (default: {'on' if default else 'off'})",
    )


def lv_conf_choice(text: str) -> float | None:
    """An argparse type: a score in 0..1, or ``validated`` (``None``: the class's threshold)."""
    if text.strip().lower() == "validated":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a score in 0..1 or 'validated', got {text!r}")
    return value


def add_extent_option(parser: argparse.ArgumentParser) -> None:
    """``--no-extent``: SAM's masks as they are, not the enhanced regions they touch."""
    parser.add_argument(
        "--no-extent",
        dest="extent",
        action="store_false",
        default=EXTENT,
        help="keep SAM's masks as they are, instead of SAM locating the scar and the image "
        "setting its extent: each mask becomes the enhanced regions of the myocardium (mean + "
        "2 SD of the remote) that it touches (default: the extent)",
    )
