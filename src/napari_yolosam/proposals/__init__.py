"""Proposals: YOLO boxes (and the label's scar regions) as SAM prompts, and their files.

The data (:mod:`.types`) and the files (:mod:`.io`) load at once; making
proposals (:mod:`.core`, which needs the models and torch) on first use.
"""

from importlib import import_module

from .io import SUMMARY_COLUMNS, load_proposals, save_proposals
from .types import (
    DETECTOR_SOURCES,
    INDEPENDENT_SOURCES,
    INTENSITY_N,
    SCAR_BOX_SOURCES,
    SOURCES,
    Proposals,
    SliceProposal,
    label_boxes,
)

_CORE = (
    "enhanced_extent",
    "intensity_boxes",
    "model_myocardium",
    "prompt_slice",
    "propose",
    "segment_slice",
)

__all__ = [
    "DETECTOR_SOURCES",
    "INDEPENDENT_SOURCES",
    "INTENSITY_N",
    "SCAR_BOX_SOURCES",
    "SOURCES",
    "SUMMARY_COLUMNS",
    "Proposals",
    "SliceProposal",
    "label_boxes",
    "load_proposals",
    "save_proposals",
    "propagate",
    *_CORE,
]


def __getattr__(name: str):
    if name in _CORE:
        return getattr(import_module(".core", __name__), name)
    if name == "propagate":
        return import_module(".propagate", __name__).propagate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
