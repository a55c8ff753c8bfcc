"""napari-yolosam: YOLO + SAM scar proposals and label audit for LGE cardiac MRI.

The core (everything outside ``widgets``, ``viewer`` and ``cli``) imports
neither Qt nor napari and is usable from scripts and notebooks::

    from napari_yolosam import read_stack, propose, audit, train

The light names load at once; the ones that need torch (models, proposals,
training) load on first use, so that napari's plugin discovery stays fast.
"""

from importlib import import_module

from .runtime import guard_triton

guard_triton()

from .audit import AuditConfig, audit, save_audit  # noqa: E402
from .io import read_stack, write_labels  # noqa: E402
from .labelspec import LabelSpec  # noqa: E402
from .phantom import make_phantom  # noqa: E402
from .stack import Stack, case_of  # noqa: E402

__version__ = "0.1.0"

#: Public names loaded on first use: name -> module.
_LAZY = {
    "Detector": ".models.detector",
    "Segmenter": ".models.segmenter",
    "EmbeddingCache": ".models.embeddings",
    "embed_stack": ".models.embeddings",
    "Proposals": ".proposals",
    "propose": ".proposals",
    "propagate": ".proposals",
    "prompt_slice": ".proposals",
    "load_proposals": ".proposals",
    "save_proposals": ".proposals",
    "ReviewSession": ".review",
    "train": ".training.run",
    "SamTrainConfig": ".training.sam",
    "train_segmenter": ".training.sam",
    "quantify_labels": ".quantify",
    "compare_sources": ".quantify",
    "semiauto_stack": ".semiauto",
    "drive": ".progress",
}

__all__ = [
    "AuditConfig",
    "Detector",
    "EmbeddingCache",
    "LabelSpec",
    "Proposals",
    "ReviewSession",
    "SamTrainConfig",
    "Segmenter",
    "Stack",
    "audit",
    "case_of",
    "compare_sources",
    "drive",
    "embed_stack",
    "load_proposals",
    "make_phantom",
    "prompt_slice",
    "propagate",
    "propose",
    "quantify_labels",
    "read_stack",
    "save_audit",
    "save_proposals",
    "semiauto_stack",
    "train",
    "train_segmenter",
    "write_labels",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
