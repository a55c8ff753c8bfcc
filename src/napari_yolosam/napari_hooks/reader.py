"""npe2 reader: folders (images/ + masks/), DICOM series, TIFF stacks, NIfTI."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..io import can_read, read_study
from .layers import stack_to_layer_data


def get_reader(path: str | list[str]) -> Callable | None:
    """Return a reader for ``path`` if this plugin can read it, else ``None``."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    try:
        readable = can_read(Path(path))
    except OSError:
        return None
    return read_layers if readable else None


def read_layers(path: str | list[str]) -> list[tuple]:
    """Image and (where masks exist) labels layers for ``path`` (a study: every patient in
    one stack, each slice's case its patient).

    Bad input raises :class:`~napari_yolosam.io.StackError`, whose message names
    the file and the problem; napari shows it as a notification.
    """
    if isinstance(path, list):
        path = path[0]
    return stack_to_layer_data(read_study(path))  # one stack, or a study's patients together
