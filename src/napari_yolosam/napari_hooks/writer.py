"""npe2 writer for labels layers: PNG folder in the stack's own layout, TIFF or NIfTI."""

from __future__ import annotations

from pathlib import Path

from ..io import write_labels
from ..io.manifest import Provenance
from ..io.nifti import is_nifti
from ..io.outputs import check_output, staged_folder
from .layers import stack_from_layer


def write_labels_layer(path: str, data, meta: dict) -> list[str]:
    """Write a labels layer; the format follows ``path`` (.tif, .nii.gz, else a folder).

    The original label files recorded in the layer's metadata are never
    written over, and every file is written atomically.
    """
    stack = stack_from_layer(data, meta.get("metadata", {}))
    target = Path(path)
    if target.suffix.lower() in (".tif", ".tiff"):
        fmt = "tiff"
    elif is_nifti(target):
        fmt = "nifti"
    else:
        fmt = "png"
    # napari's save dialog has asked before replacing an existing path; inputs, data sets
    # and folders this project did not write are refused all the same
    check_output(target, (stack.source, stack.label_source), overwrite=True)
    if fmt != "png":
        return [str(p) for p in write_labels(stack, target, fmt=fmt)]  # one file, atomic
    made = Provenance("labels layer", (str(stack.source), str(stack.label_source or "")))
    with staged_folder(target, made) as folder:
        written = write_labels(stack, folder, fmt=fmt)
    return [str(target.resolve() / Path(p).relative_to(folder)) for p in written]
