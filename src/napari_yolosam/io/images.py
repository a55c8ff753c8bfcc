"""Reading single 2D image and mask files, and decoding masks under a label spec."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from .errors import StackError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def natural_key(name: str) -> list:
    """Sort key that orders ``slice2`` before ``slice10``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_image_files(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, in natural order (hidden files skipped)."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    ]
    return sorted(files, key=lambda p: natural_key(p.name))


def read_2d(path: Path) -> np.ndarray:
    """Read one image file as it is stored (2D, or 2D with a channel axis).

    Raises
    ------
    StackError
        If the file cannot be decoded (unreadable, truncated, not an image).
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as img:
                img.load()
                if img.mode in ("I;16", "I;16B", "I;16L"):
                    array = np.array(img, dtype=np.uint16)
                elif img.mode == "P":
                    array = np.array(img.convert("RGB"))
                else:
                    array = np.array(img)
    except Exception as exc:  # noqa: BLE001 - every decoder error becomes one clear message
        raise StackError(
            path, f"cannot be read as an image ({type(exc).__name__}: {exc})"
        ) from exc
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[-1] not in (3, 4):
        array = np.moveaxis(array, 0, -1)
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 2, 3, 4)):
        raise StackError(path, f"expected a 2D grayscale or RGB image, got shape {array.shape}")
    if array.size == 0:
        raise StackError(path, "the image is empty")
    return array


def to_gray(array: np.ndarray) -> np.ndarray:
    """Grayscale float32 from a grayscale or RGB(A) array (equal channels: the first)."""
    if array.ndim == 2:
        return array.astype(np.float32)
    channels = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
    if (
        channels.shape[-1] == 1
        or np.array_equal(channels[..., 0], channels[..., 1])
        and np.array_equal(channels[..., 0], channels[..., 2])
    ):
        return channels[..., 0].astype(np.float32)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return (channels.astype(np.float32) * weights).sum(-1)


def read_image(path: Path) -> np.ndarray:
    """One image slice as 2D float32."""
    return to_gray(read_2d(path))


def read_raw_mask(path: Path) -> np.ndarray:
    """One mask file as a 2D integer array (RGB masks must have equal channels)."""
    array = read_2d(path)
    if array.ndim == 3:
        rgb = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
        if rgb.shape[-1] == 3 and not (
            np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
        ):
            raise StackError(
                path,
                "is an RGB mask whose channels differ; masks must be grayscale label maps "
                "or RGB with three equal channels",
            )
        array = rgb[..., 0]
    if np.issubdtype(array.dtype, np.floating):
        if not np.all(np.isfinite(array)):
            raise StackError(path, "mask holds NaN or infinite values")
        if array.max(initial=0) <= 1.0 and array.min(initial=0) >= 0:
            array = np.rint(array * 255)
        if np.any(array != np.rint(array)) or array.min(initial=0) < 0:
            raise StackError(path, "mask holds non-integer or negative values")
        array = array.astype(np.uint16 if array.max(initial=0) > 255 else np.uint8)
    if array.min(initial=0) < 0:
        raise StackError(path, "mask holds negative values")
    return array


def _looks(values: np.ndarray, counts: np.ndarray, spec: LabelSpec) -> str:
    """What one mask's values look like: ``either`` (0/1), ``multiclass`` (values known to the
    spec), ``binary`` (0..255: reaches the threshold, and most of its non-zero pixels lie
    above every label value; soft edges allowed) or ``other`` (such as label values beside
    a stray 255)."""
    maximum = int(values.max(initial=0))
    if maximum <= 1:
        return "either"
    known = max(spec.known_values)
    if set(int(v) for v in values) <= set(spec.known_values):
        return "multiclass"
    nonzero = int(counts[values > 0].sum())
    beyond = int(counts[values > known].sum())
    if maximum >= spec.threshold and maximum > known and 2 * beyond >= nonzero:
        return "binary"
    return "other"


def decide_binary(
    raw_masks: Sequence[np.ndarray], spec: LabelSpec, names: Sequence | None = None
) -> tuple[bool, int | None]:
    """Whether a set of raw masks is binary under ``spec``, and scar's value on disk.

    Returns ``(is_binary, value_on_disk)``; ``value_on_disk`` is 255 for 0..255
    (soft) masks, 1 for 0/1 masks and ``None`` for multiclass maps. In ``auto``
    mode each mask votes; multi-class maps mixed with masks that reach 0..255
    (stray values, another tool's output) are an error naming those files,
    never a silent switch of the whole set to binary.
    """
    if spec.mode == "multiclass":
        return False, None
    counted = [np.unique(mask, return_counts=True) for mask in raw_masks]
    uniques = [values for values, _ in counted]
    if spec.mode == "binary":
        return True, 1 if max((int(u.max(initial=0)) for u in uniques), default=0) <= 1 else 255
    looks = [_looks(values, counts, spec) for values, counts in counted]
    multi = [i for i, kind in enumerate(looks) if kind == "multiclass"]
    binary = [i for i, kind in enumerate(looks) if kind == "binary"]
    if multi and binary:
        names = list(names) if names is not None else [f"mask {i}" for i in range(len(looks))]
        odd = binary if len(binary) <= len(multi) else multi
        listed = ", ".join(
            f"{Path(str(names[i])).name} ({sorted(int(v) for v in uniques[i])[-3:]})"
            for i in odd[:5]
        )
        raise StackError(
            Path(str(names[odd[0]])),
            f"{len(multi)} mask(s) are multi-class label maps (values {list(spec.known_values)}) "
            f"but {len(binary)} reach values outside them, up to 255: {listed}"
            + (" ..." if len(odd) > 5 else "")
            + "; fix those files, or set --mask-mode binary or multiclass",
        )
    if binary:
        return True, 255
    if all(kind == "either" for kind in looks):
        return True, 1
    return False, None


def decode_mask(
    raw: np.ndarray, spec: LabelSpec, binary: bool, path: Path | None = None
) -> np.ndarray:
    """Decode a raw mask into a label map under ``spec``.

    Binary masks become ``spec.binary_value`` where ``raw >= spec.threshold``
    (on the 0..255 scale; 16-bit masks are scaled), or where ``raw > 0`` for 0/1
    masks. Multiclass maps keep their values, which must all be known to the spec.
    """
    if binary:
        maximum = int(raw.max(initial=0))
        if maximum <= 1:
            hit = raw > 0
        else:
            threshold = spec.threshold if maximum <= 255 else spec.threshold * 257
            hit = raw >= threshold
        return np.where(hit, spec.binary_value, 0).astype(np.uint8)
    values = np.unique(raw)
    unknown = sorted(set(int(v) for v in values) - set(spec.known_values))
    if unknown:
        raise StackError(
            path,
            f"label value(s) {unknown} are not in the label specification "
            f"'{spec.name}' (known values {list(spec.known_values)}); "
            "set the scar/myocardium values or use binary mask mode",
        )
    dtype = np.uint8 if int(values.max(initial=0)) <= 255 else np.uint16
    return raw.astype(dtype)


def pad_to_common(arrays: Sequence[np.ndarray], fill: float = 0) -> tuple[np.ndarray, list]:
    """Stack 2D arrays of different sizes, padding at the bottom and right.

    Returns the ``(N, H, W)`` array and the original ``(h, w)`` of each.
    """
    shapes = [tuple(a.shape[:2]) for a in arrays]
    height = max(s[0] for s in shapes)
    width = max(s[1] for s in shapes)
    out = np.full(
        (len(arrays), height, width), fill, dtype=np.result_type(*[a.dtype for a in arrays])
    )
    for i, a in enumerate(arrays):
        out[i, : a.shape[0], : a.shape[1]] = a
    return out, shapes
