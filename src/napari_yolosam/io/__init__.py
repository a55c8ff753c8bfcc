"""Stack I/O: read folders, TIFF, DICOM and NIfTI; write labels; YOLO box labels."""

from __future__ import annotations

from pathlib import Path

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError
from .folder import find_layout, read_folder
from .images import IMAGE_SUFFIXES, list_image_files
from .nifti import is_nifti, read_nifti
from .tiff import read_tiff
from .writers import LABEL_FORMATS, write_labels
from .yolo_boxes import (
    boxes_to_yolo,
    mask_to_boxes,
    read_yolo_file,
    regions_to_boxes,
    write_yolo_labels,
    yolo_to_boxes,
)

__all__ = [
    "LABEL_FORMATS",
    "StackError",
    "boxes_to_yolo",
    "can_read",
    "mask_to_boxes",
    "read_labels_only",
    "read_stack",
    "read_yolo_file",
    "regions_to_boxes",
    "write_labels",
    "write_yolo_labels",
    "yolo_to_boxes",
]


def can_read(path: str | Path) -> bool:
    """Whether :func:`read_stack` knows this kind of path (cheap; reads no pixels)."""
    from .dicom import looks_like_dicom_folder

    path = Path(path)
    if path.is_dir():
        images_dir, _ = find_layout(path)
        return (
            bool(list_image_files(images_dir))
            or (path / "dicom").is_dir()
            or looks_like_dicom_folder(path)
        )
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in IMAGE_SUFFIXES or suffix == ".dcm" or is_nifti(path))


def read_stack(
    path: str | Path,
    labels: str | Path | None = None,
    spec: LabelSpec | None = None,
    series: str | None = None,
) -> Stack:
    """Read any supported input into a :class:`~napari_yolosam.stack.Stack`.

    Parameters
    ----------
    path
        A folder with ``images/`` (+ ``masks/``), a folder of images, a folder
        with ``dicom/`` (+ ``masks/``), a DICOM series folder, a TIFF stack, a
        NIfTI file or a single 2D image.
    labels
        Labels kept elsewhere: a mask folder (folders, DICOM) or a label file
        (TIFF, NIfTI, a single image's mask).
    spec
        Label specification (default: EMIDEC values, automatic binary detection).
    series
        For DICOM folders holding several series: which one.

    Raises
    ------
    StackError
        With the offending file and the problem, for any unusable input.
    """
    path = Path(path)
    if not path.exists():
        raise StackError(path, "does not exist")
    if labels is not None and not Path(labels).exists():
        raise StackError(labels, "does not exist")
    stack = _read_any(path, labels, spec, series)
    _check_finite(stack, path)
    return stack


def _check_finite(stack: Stack, path: Path) -> None:
    """NaN or infinite pixels would silently change every threshold: refuse them, by name."""
    import numpy as np

    bad = ~np.isfinite(stack.images)
    if bad.any():
        counts = bad.reshape(len(stack), -1).sum(axis=1)
        where = [f"{stack.names[i]} ({int(counts[i])} px)" for i in np.flatnonzero(counts)[:5]]
        raise StackError(
            path, f"images hold NaN or infinite pixels: {', '.join(where)}; fix or mask them first"
        )


def _read_any(path: Path, labels, spec: LabelSpec | None, series: str | None) -> Stack:
    """Dispatch on the kind of input (folder, DICOM, TIFF, NIfTI, 2D image)."""
    from .dicom import looks_like_dicom_folder, read_dicom

    if path.is_dir():
        if (path / "dicom").is_dir() and not (path / "images").is_dir():
            masks = (
                labels
                if labels is not None
                else (path / "masks" if (path / "masks").is_dir() else None)
            )
            return read_dicom(path / "dicom", masks=masks, spec=spec, series=series)
        images_dir, _ = find_layout(path)
        if not list_image_files(images_dir) and looks_like_dicom_folder(path):
            return read_dicom(path, masks=labels, spec=spec, series=series)
        return read_folder(path, spec=spec, masks_dir=labels)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return read_tiff(path, labels=labels, spec=spec)
    if is_nifti(path):
        return read_nifti(path, labels=labels, spec=spec)
    if suffix == ".dcm":
        return read_dicom(path.parent, masks=labels, spec=spec, series=series)
    if suffix in IMAGE_SUFFIXES:
        return _read_single(path, labels, spec)
    raise StackError(
        path, "unsupported file type (expected a folder, TIFF, NIfTI, DICOM or 2D image)"
    )


def read_labels_only(path: str | Path, spec: LabelSpec | None = None) -> Stack:
    """A stack of label maps alone (a mask folder, label TIFF or NIfTI), with empty images.

    For quantification without images; spacing comes from TIFF/NIfTI headers
    where present.
    """
    import numpy as np

    path = Path(path)
    if not path.exists():
        raise StackError(path, "does not exist")
    if path.is_dir():
        files = list_image_files(path)
        if not files:
            raise StackError(path, "no mask files found in this folder")
        from .folder import read_masks_for
        from .images import pad_to_common, read_raw_mask

        shapes = [read_raw_mask(f).shape for f in files]
        _, padded = pad_to_common([np.zeros(s, np.uint8) for s in shapes])
        names = [f.name for f in files]
        height, width = max(s[0] for s in shapes), max(s[1] for s in shapes)
        masks = read_masks_for(names, padded, path, spec or LabelSpec(), (height, width))
        return Stack(
            np.zeros((len(files), height, width), np.float32),
            masks.labels,
            names,
            masks.spec,
            original_shapes=padded,
            layout="folder",
            label_source=path,
            label_files=masks.files,
            binary_on_disk=masks.binary_on_disk,
        )
    stack = read_stack(path, labels=path, spec=spec)
    stack.images = np.zeros(stack.shape, np.float32)
    return stack


def _read_single(path: Path, labels: str | Path | None, spec: LabelSpec | None) -> Stack:
    import numpy as np

    from .images import decide_binary, decode_mask, read_image, read_raw_mask

    spec = spec or LabelSpec()
    image = read_image(path)
    label_map = None
    on_disk = None
    if labels is not None:
        raw = read_raw_mask(Path(labels))
        if raw.shape != image.shape:
            raise StackError(
                labels, f"mask shape {raw.shape} differs from image shape {image.shape}"
            )
        binary, on_disk = decide_binary([raw], spec)
        spec = spec.as_binary() if binary else spec
        label_map = decode_mask(raw, spec, binary, Path(labels))[None]
    return Stack(
        images=image[None].astype(np.float32),
        labels=label_map,
        names=[path.name],
        spec=spec,
        layout="folder",
        source=path,
        label_source=None if labels is None else Path(labels),
        label_files=[None if labels is None else Path(labels)],
        binary_on_disk=on_disk,
    )
