"""Where the plugin keeps its caches: ``$YOLOSAM_HOME`` or ``~/.cache/napari-yolosam``."""

from __future__ import annotations

import os
from pathlib import Path


def yolosam_home() -> Path:
    """The cache root (model weights, embeddings, ultralytics settings); created on demand."""
    root = os.environ.get("YOLOSAM_HOME")
    path = (
        Path(root)
        if root
        else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "napari-yolosam"
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(*parts: str) -> Path:
    """A sub-folder of :func:`yolosam_home`, created on demand."""
    path = yolosam_home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
