"""A stack written out as a data set every reader opens: its images beside new labels.

:func:`write_dataset` puts the stack's images where its labels complete them to a stack
(``images/`` + ``masks/`` for a folder of slices, ``dicom/`` + ``masks/`` for a DICOM
series, the volume file with ``<name>_labels`` beside it for NIfTI and TIFF). Image files
are hard-linked where the disk allows (no copy; this project never writes an image), else
copied; images held only in memory are written as float32 TIFF slices, exact.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from ..stack import Stack
from .atomic import atomic_write
from .writers import write_labels


def _link_or_copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another disk, or links not allowed: a copy
        atomic_write(target, lambda tmp: shutil.copyfile(source, tmp))
    return target


def _slice_tiff(stack: Stack, i: int, target: Path) -> Path:
    import tifffile

    image = np.ascontiguousarray(stack.crop(i, stack.images[i]), dtype=np.float32)
    return atomic_write(target, lambda tmp: tifffile.imwrite(tmp, image))


def _image_files(stack: Stack, out: Path) -> list[Path]:
    if stack.layout == "dicom":
        from .dicom_seg import source_files

        return [_link_or_copy(p, out / "dicom" / p.name) for p in source_files(stack)]
    if stack.layout in ("nifti", "tiff") and stack.source and Path(stack.source).is_file():
        return [_link_or_copy(Path(stack.source), out / Path(stack.source).name)]
    written = []
    for i, name in enumerate(stack.names):
        source = Path(stack.source) / name if stack.source is not None else None
        if source is not None and source.is_file():
            written.append(_link_or_copy(source, out / "images" / name))
        else:  # only in memory (or moved since): the pixels themselves
            written.append(_slice_tiff(stack, i, out / "images" / Path(name).with_suffix(".tif")))
    return written


def write_dataset(stack: Stack, out: str | Path, labels: np.ndarray | None = None) -> list[Path]:
    """Write ``stack``'s images and ``labels`` (default: its own) into the folder ``out`` as a
    data set :func:`~napari_yolosam.io.read_stack` (or, for NIfTI, a study) opens; returns
    the files written."""
    out = Path(out)
    images = _image_files(stack, out)
    beside = stack.layout in ("nifti", "tiff") and len(images) == 1 and images[0].parent == out
    target = out if beside else out / "masks"
    return [*images, *write_labels(stack, target, labels=labels)]
