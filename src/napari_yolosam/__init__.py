"""napari-yolosam: YOLO + SAM scar proposals and label audit for LGE cardiac MRI.

The core (everything outside ``widgets`` and ``napari_hooks``) imports neither
Qt nor napari and is usable from scripts and notebooks.
"""

from .runtime import guard_triton

guard_triton()

from .io import read_stack, write_labels  # noqa: E402
from .labelspec import LabelSpec  # noqa: E402
from .phantom import make_phantom  # noqa: E402
from .stack import Stack, case_of  # noqa: E402

__version__ = "0.1.0"

__all__ = ["LabelSpec", "Stack", "case_of", "make_phantom", "read_stack", "write_labels"]
