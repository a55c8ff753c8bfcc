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
    "read_study",
    "read_yolo_file",
    "regions_to_boxes",
    "write_labels",
    "write_yolo_labels",
    "yolo_to_boxes",
]


def can_read(path: str | Path) -> bool:
    """Whether :func:`read_stack` knows this kind of path (cheap; reads no pixels)."""
    from .dicom import looks_like_dicom_folder
    from .study import find_patients

    path = Path(path)
    if path.is_dir():
        images_dir, _ = find_layout(path)
        return (
            bool(list_image_files(images_dir))
            or (path / "dicom").is_dir()
            or looks_like_dicom_folder(path)
            or bool(find_patients(path))
        )
    suffix = path.suffix.lower()
    return path.is_file() and (suffix in IMAGE_SUFFIXES or suffix == ".dcm" or is_nifti(path))


def read_stack(
    path: str | Path,
    labels: str | Path | None = None,
    spec: LabelSpec | None = None,
    series: str | None = None,
    phase: int | None = None,
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
    phase
        For a DICOM series with several phases (cine): which one (0-based, in time
        order; default the first, end-diastole for an ECG-triggered cine).

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
    stack = _read_with_labels(path, labels, spec, series, phase)
    if phase is not None and stack.layout != "dicom":
        raise StackError(path, "phases are read from DICOM series only (--phase)")
    _check_finite(stack, path)
    return stack


def read_study(
    path: str | Path, labels: str | Path | None = None, spec=None, phase: int | None = None
):
    """Every patient of a study as one stack (slices padded to a common size; each slice's
    case is its patient; names ``<patient>/<file>``): for training on all of them. Pixel
    spacing is kept where all patients share it, else dropped with a warning."""
    from dataclasses import replace

    import numpy as np

    from .images import pad_to_common
    from .study import study_or_raise

    patients = study_or_raise(path, labels)
    if not patients:
        return read_stack(path, labels=labels, spec=spec, phase=phase)
    stacks = [read_stack(p.images, p.labels, spec, p.series, phase) for p in patients]
    images, _ = pad_to_common([im for s in stacks for im in s.images])
    shapes = [shape for s in stacks for shape in s.original_shapes]
    labelled = all(s.labels is not None for s in stacks)
    labels_all = None
    if labelled:
        labels_all, _ = pad_to_common([lab for s in stacks for lab in s.labels])
        labels_all = labels_all.astype(np.uint16 if labels_all.max() > 255 else np.uint8)
    spacings = {s.spacing for s in stacks}
    warnings = [
        f"{p.name}: {w}" for p, s in zip(patients, stacks, strict=True) for w in s.warnings
    ]
    if len(spacings) > 1:
        warnings.append("the patients' pixel spacings differ: areas and volumes are in pixels")
    return replace(
        stacks[0],
        images=images,
        labels=labels_all,
        names=[f"{p.name}/{n}" for p, s in zip(patients, stacks, strict=True) for n in s.names],
        cases=[p.name for p, s in zip(patients, stacks, strict=True) for _ in s.names],
        original_shapes=shapes,
        spacing=stacks[0].spacing if len(spacings) == 1 else None,
        layout="memory",
        source=Path(path),
        label_source=None if labels is None else Path(labels),
        label_files=[f for s in stacks for f in (s.label_files or [None] * len(s))],
        affine=None,
        warnings=warnings,
        phases=(),
        phase=None,
    )


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


def _read_with_labels(path: Path, labels, spec, series: str | None, phase: int | None) -> Stack:
    """The stack, its labels read from a DICOM Segmentation file when ``labels`` is one."""
    from dataclasses import replace

    from .dicom_seg import is_dicom_seg, read_dicom_seg

    if labels is None or not is_dicom_seg(labels):
        _check_label_format(path, labels)
        return _read_any(path, labels, spec, series, phase)
    stack = _read_any(path, None, spec, series, phase)
    return replace(stack, labels=read_dicom_seg(labels, stack), label_source=Path(labels))


def _file_format(path: Path) -> str | None:
    from .nifti import is_nifti

    if is_nifti(path):
        return "NIfTI"
    if path.suffix.lower() in (".tif", ".tiff"):
        return "TIFF"
    return None


def _check_label_format(path: Path, labels) -> None:
    """A volume file's labels must be a file of its format (NIfTI with NIfTI, TIFF with TIFF)."""
    if labels is None or not Path(labels).is_file():
        return
    images, given = _file_format(Path(path)), _file_format(Path(labels))
    if images and given and images != given:
        raise StackError(
            labels,
            f"is a {given} file but the images {Path(path).name} are {images}: give labels in "
            f"the images' format (yolosam convert --format writes them)",
        )


def _read_any(path: Path, labels, spec, series: str | None, phase: int | None = None) -> Stack:
    """Dispatch on the kind of input (folder, DICOM, TIFF, NIfTI, 2D image)."""
    from .dicom import read_dicom

    folder = _dicom_folder(path)
    if folder is not None:
        beside = path / "masks" if folder == path / "dicom" else None  # dicom/ + masks/
        if labels is None and beside is not None and beside.is_dir():
            labels = beside
        return read_dicom(folder, masks=labels, spec=spec, series=series, phase=phase)
    if path.is_dir():
        return read_folder(path, spec=spec, masks_dir=labels)
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        return read_tiff(path, labels=labels, spec=spec)
    if is_nifti(path):
        return read_nifti(path, labels=labels, spec=spec)
    if suffix in IMAGE_SUFFIXES:
        return _read_single(path, labels, spec)
    raise StackError(
        path, "unsupported file type (expected a folder, TIFF, NIfTI, DICOM or 2D image)"
    )


def _dicom_folder(path: Path) -> Path | None:
    """The DICOM folder ``path`` stands for (``dicom/`` beside ``masks/``, a DICOM folder, a
    ``.dcm`` file's folder), or ``None`` for any other input."""
    from .dicom import looks_like_dicom_folder

    if path.is_dir():
        if (path / "dicom").is_dir() and not (path / "images").is_dir():
            return path / "dicom"
        images_dir, _ = find_layout(path)
        if not list_image_files(images_dir) and looks_like_dicom_folder(path):
            return path
        return None
    return path.parent if path.suffix.lower() == ".dcm" else None


def phase_count(path: str | Path, series: str | None = None) -> int:
    """How many phases the DICOM series at ``path`` holds, from its headers alone (1 for a
    series of one phase and for any other input)."""
    from .dicom import count_phases

    folder = _dicom_folder(Path(path))
    return 1 if folder is None else count_phases(folder, series)


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
