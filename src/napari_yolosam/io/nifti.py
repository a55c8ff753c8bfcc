"""NIfTI volumes (nibabel): stored ``(X, Y, Z)``, held as ``(Z, Y, X)`` slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError, check_size
from .images import decide_binary, decode_mask

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _load(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        check_size(path, img.shape)
        data = np.asanyarray(img.dataobj)
    except StackError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StackError(path, f"cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    data = np.squeeze(data)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise StackError(path, f"expected a 2D or 3D volume, got shape {data.shape}")
    return img, data


def _stored_zooms(path: Path, img) -> list[float]:
    """Voxel sizes as the file stores them. nibabel's loaded header turns a stored 0 into
    1 mm; a 0 (or missing) size must stay unknown, never become an invented 1 mm."""
    from nibabel.openers import ImageOpener

    try:
        with ImageOpener(str(path)) as handle:
            stored = type(img.header).from_fileobj(handle, check=False)
        zooms = [float(z) for z in stored.get_zooms()[:3]]
    except Exception:  # noqa: BLE001 - a header nibabel read once reads again; else trust it
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
    return [z if np.isfinite(z) and z > 0 else 0.0 for z in zooms]


def read_nifti(
    path: str | Path, labels: str | Path | None = None, spec: LabelSpec | None = None
) -> Stack:
    """Read a NIfTI image (and optionally a NIfTI label map of the same grid)."""
    path = Path(path)
    spec = spec or LabelSpec()
    img, data = _load(path)
    zooms = _stored_zooms(path, img) + [0.0] * 3
    images = np.transpose(data, (2, 1, 0)).astype(np.float32)
    spacing = (zooms[1], zooms[0]) if zooms[0] > 0 and zooms[1] > 0 else None
    thickness = zooms[2] if zooms[2] > 0 else None
    stem = path.name[: -len(".nii.gz")] if path.name.lower().endswith(".gz") else path.stem
    names = [f"{stem}_slice{i:03d}.png" for i in range(images.shape[0])]
    label_map = None
    on_disk = None
    if labels is not None:
        labels = Path(labels)
        _, raw = _load(labels)
        raw = np.transpose(raw, (2, 1, 0))
        if raw.shape != images.shape:
            raise StackError(
                labels, f"label shape {raw.shape} differs from image shape {images.shape}"
            )
        if np.issubdtype(raw.dtype, np.floating):
            if np.any(raw != np.rint(raw)):
                raise StackError(labels, "label volume holds non-integer values")
            raw = raw.astype(np.int64)
        if raw.min(initial=0) < 0:
            raise StackError(labels, "label volume holds negative values")
        binary, on_disk = decide_binary(
            list(raw), spec, [f"{labels} slice {k}" for k in range(len(raw))]
        )
        spec = spec.as_binary() if binary else spec
        label_map = decode_mask(raw, spec, binary, labels)
    return Stack(
        images=images,
        labels=label_map,
        names=names,
        spec=spec,
        spacing=spacing,
        thickness=thickness,
        slice_spacing=thickness,
        layout="nifti",
        source=path,
        label_source=labels,
        binary_on_disk=on_disk,
        affine=np.asarray(img.affine),
    )
