"""Writing label stacks: PNG folders in the stack's own layout, TIFF, NIfTI, DICOM-SEG. Always
atomic."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..stack import Stack
from .atomic import atomic_write
from .nifti import is_nifti

LABEL_FORMATS = ("png", "tiff", "nifti", "dicom-seg")


def _encode(stack: Stack, labels: np.ndarray) -> np.ndarray:
    """Label maps in the encoding their source used (binary masks as 0/255 or 0/1)."""
    if stack.spec.mode == "binary" and stack.binary_on_disk:
        hit = labels == stack.spec.binary_value
        return (hit * stack.binary_on_disk).astype(np.uint8)
    if labels.max(initial=0) > 255:
        return labels.astype(np.uint16)
    return labels.astype(np.uint8)


def protected_paths(stack: Stack) -> set[Path]:
    """Paths a label write must never touch: the original labels and images."""
    paths = {p for p in stack.label_files if p is not None}
    for p in (stack.label_source, stack.source):
        if p is not None:
            paths.add(Path(p))
    return {p.resolve() for p in paths}


def _check_target(stack: Stack, target: Path) -> None:
    resolved = target.resolve()
    protected = protected_paths(stack)
    if resolved in protected or resolved.parent in {p for p in protected if p.is_dir()}:
        raise PermissionError(
            f"{target}: refusing to write over the original data; choose a new output folder"
        )


def default_format(stack: Stack) -> str:
    """The label format matching the stack's own layout."""
    return {"tiff": "tiff", "nifti": "nifti"}.get(stack.layout, "png")


def write_labels(
    stack: Stack,
    out: str | Path,
    labels: np.ndarray | None = None,
    fmt: str | None = None,
) -> list[Path]:
    """Write label maps for ``stack`` to a new location, never over the originals.

    Parameters
    ----------
    stack
        The stack the labels belong to (names, original shapes, spacing, spec).
    out
        A folder for ``png`` (one file per slice, original names and sizes);
        a file or folder for ``tiff`` and ``nifti``.
    labels
        ``(N, H, W)`` label maps; defaults to ``stack.labels``.
    fmt
        ``"png"``, ``"tiff"``, ``"nifti"`` or ``"dicom-seg"`` (a DICOM Segmentation of a
        DICOM series: a ``.dcm`` file, or ``<series>_labels.seg.dcm`` in a folder);
        defaults to the stack's layout.

    Returns
    -------
    list of Path
        The files written (each atomically: temp file + rename).
    """
    labels = stack.labels if labels is None else np.asarray(labels)
    if labels is None:
        raise ValueError("no labels to write")
    if labels.shape != stack.shape:
        raise ValueError(f"labels shape {labels.shape} does not match the stack {stack.shape}")
    fmt = (fmt or default_format(stack)).lower()
    if fmt in ("tif",):
        fmt = "tiff"
    if fmt not in LABEL_FORMATS:
        raise ValueError(f"unknown label format {fmt!r}; choose from {LABEL_FORMATS}")
    out = Path(out)
    if fmt == "dicom-seg":
        from .dicom_seg import write_dicom_seg

        target = out if out.suffix.lower() == ".dcm" else out / f"{_stem(stack)}_labels.seg.dcm"
        _check_target(stack, target)
        return [write_dicom_seg(stack, labels, target)]
    encoded = _encode(stack, labels)
    if fmt == "png":
        return _write_png_folder(stack, encoded, out)
    if fmt == "tiff":
        target = (
            out if out.suffix.lower() in (".tif", ".tiff") else out / f"{_stem(stack)}_labels.tif"
        )
        _check_target(stack, target)
        return [atomic_write(target, lambda tmp: _write_tiff(stack, encoded, tmp))]
    target = out if is_nifti(out) else out / f"{_stem(stack)}_labels.nii.gz"
    _check_target(stack, target)
    return [atomic_write(target, lambda tmp: _write_nifti(stack, encoded, tmp))]


def _stem(stack: Stack) -> str:
    if stack.source is None:
        return "stack"
    name = Path(stack.source).name
    for suffix in (".nii.gz", ".nii", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _write_png_folder(stack: Stack, encoded: np.ndarray, out: Path) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, name in enumerate(stack.names):
        target = out / Path(name).with_suffix(".png")  # a study's names keep their folders
        _check_target(stack, target)
        array = np.ascontiguousarray(stack.crop(i, encoded[i]))
        written.append(
            atomic_write(target, lambda tmp, a=array: Image.fromarray(a).save(tmp, format="PNG"))
        )
    return written


def _write_tiff(stack: Stack, encoded: np.ndarray, tmp: Path) -> None:
    import tifffile

    kwargs: dict = {"imagej": True, "metadata": {"axes": "ZYX"}}
    if stack.spacing is not None:
        kwargs["resolution"] = (1.0 / stack.spacing[1], 1.0 / stack.spacing[0])
        kwargs["metadata"]["unit"] = "mm"
        if stack.slice_step_mm:
            kwargs["metadata"]["spacing"] = stack.slice_step_mm
    data = encoded if encoded.dtype != np.uint16 else encoded.astype(np.uint16)
    tifffile.imwrite(tmp, data, **kwargs)


def _write_nifti(stack: Stack, encoded: np.ndarray, tmp: Path) -> None:
    import nibabel as nib

    volume = np.transpose(encoded, (2, 1, 0))
    if stack.affine is not None:
        affine = np.asarray(stack.affine, dtype=float)
    else:
        row, col = stack.spacing or (1.0, 1.0)
        affine = np.diag([col, row, stack.slice_step_mm or 1.0, 1.0])
    image = nib.Nifti1Image(volume, affine)
    if stack.spacing is not None:
        image.header.set_zooms((stack.spacing[1], stack.spacing[0], stack.slice_step_mm or 1.0))
    nib.save(image, str(tmp))
