"""Multi-page or 3D TIFF stacks (tifffile), with ImageJ spacing where present."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError, check_size
from .images import decide_binary, decode_mask, to_gray

_UNIT_TO_MM = {
    "mm": 1.0,
    "millimeter": 1.0,
    "millimetre": 1.0,
    "cm": 10.0,
    "um": 1e-3,
    "micron": 1e-3,
    "\\u00B5m": 1e-3,
    "µm": 1e-3,
    "m": 1000.0,
}


def _read_tiff_array(path: Path) -> tuple[np.ndarray, tuple | None, float | None]:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            check_size(path, tif.series[0].shape if tif.series else ())
            array = tif.asarray()
            spacing = thickness = None
            meta = tif.imagej_metadata or {}
            unit = str(meta.get("unit", "")).strip().lower()
            page = tif.pages[0]
            if unit in _UNIT_TO_MM:
                scale = _UNIT_TO_MM[unit]
                xres = page.tags.get("XResolution")
                yres = page.tags.get("YResolution")
                if xres is not None and yres is not None:
                    xn, xd = xres.value
                    yn, yd = yres.value
                    if xn and yn:
                        spacing = (yd / yn * scale, xd / xn * scale)
                if meta.get("spacing"):
                    thickness = float(meta["spacing"]) * scale
    except StackError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise StackError(path, f"cannot be read as a TIFF ({type(exc).__name__}: {exc})") from exc
    return array, spacing, thickness


def _as_slices(array: np.ndarray, path: Path, gray: bool) -> np.ndarray:
    array = np.squeeze(array)
    if array.ndim == 2:
        array = array[None]
    if gray and array.ndim == 4 and array.shape[-1] in (3, 4):
        array = np.stack([to_gray(a) for a in array])
    elif gray and array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4:
        array = to_gray(array)[None]
    if array.ndim != 3:
        raise StackError(
            path, f"expected a 2D image or a stack of 2D slices, got shape {array.shape}"
        )
    return array


def read_tiff(
    path: str | Path, labels: str | Path | None = None, spec: LabelSpec | None = None
) -> Stack:
    """Read a multi-page/3D TIFF, slice axis first, with an optional label TIFF."""
    path = Path(path)
    spec = spec or LabelSpec()
    array, spacing, thickness = _read_tiff_array(path)
    images = _as_slices(array, path, gray=True).astype(np.float32)
    stem = path.name.split(".")[0]
    names = [f"{stem}_slice{i:03d}.png" for i in range(images.shape[0])]
    label_map = None
    on_disk = None
    if labels is not None:
        labels = Path(labels)
        raw, _, _ = _read_tiff_array(labels)
        raw = _as_slices(raw, labels, gray=False)
        if raw.shape != images.shape:
            raise StackError(
                labels, f"label shape {raw.shape} differs from image shape {images.shape}"
            )
        if np.issubdtype(raw.dtype, np.floating):
            raise StackError(labels, "label TIFF holds floating-point values; expected integers")
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
        layout="tiff",
        source=path,
        label_source=labels,
        binary_on_disk=on_disk,
    )
