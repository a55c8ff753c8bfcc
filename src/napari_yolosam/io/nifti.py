"""NIfTI volumes (nibabel): stored ``(X, Y, Z)``, held as ``(Z, Y, X)`` slices."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError
from .images import decide_binary, decode_mask

NIFTI_SUFFIXES = (".nii", ".nii.gz")


def is_nifti(path: str | Path) -> bool:
    """Whether ``path`` names a NIfTI file."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _load(path: Path):
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise StackError(path, f"cannot be read as NIfTI ({type(exc).__name__}: {exc})") from exc
    data = np.squeeze(data)
    if data.ndim == 2:
        data = data[:, :, None]
    if data.ndim != 3:
        raise StackError(path, f"expected a 2D or 3D volume, got shape {data.shape}")
    return img, data


def read_nifti(
    path: str | Path, labels: str | Path | None = None, spec: LabelSpec | None = None
) -> Stack:
    """Read a NIfTI image (and optionally a NIfTI label map of the same grid)."""
    path = Path(path)
    spec = spec or LabelSpec()
    img, data = _load(path)
    zooms = [float(z) for z in img.header.get_zooms()[:3]] + [0.0] * 3
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
        binary, on_disk = decide_binary([raw], spec)
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
