"""Process-wide guards against crashes found on CPU-only machines (see docs/install.md).

- ``triton``: the CUDA torch wheel ships it; importing it after a napari
  canvas has loaded Mesa's software OpenGL (as under Xvfb) segfaults. On
  machines without an NVIDIA driver we keep it from being imported (torch
  checks for it with ``find_spec``, which then answers "absent"). Set
  ``YOLOSAM_ALLOW_TRITON=1`` to opt out.
- opencv (through ultralytics) points ``QT_QPA_PLATFORM_PLUGIN_PATH`` at its
  own Qt plugins on import, which aborts Qt; :func:`drop_cv2_qt_plugin_path`
  removes it again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def has_nvidia_driver() -> bool:
    """Whether an NVIDIA kernel driver is loaded (no CUDA import needed)."""
    return Path("/proc/driver/nvidia/version").exists()


def guard_triton() -> bool:
    """Hide ``triton`` on machines without an NVIDIA driver; return whether it is hidden."""
    if os.environ.get("YOLOSAM_ALLOW_TRITON") == "1" or "triton" in sys.modules:
        return sys.modules.get("triton", 0) is None
    if has_nvidia_driver():
        return False
    sys.modules["triton"] = None  # type: ignore[assignment]
    return True


def drop_cv2_qt_plugin_path() -> None:
    """Undo opencv's ``QT_QPA_PLATFORM_PLUGIN_PATH`` (it points into cv2's own Qt)."""
    value = os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", "")
    if "cv2" in value:
        del os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"]
