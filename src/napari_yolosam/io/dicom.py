"""DICOM series folders (pydicom): ordered by position, spacing kept, rescale applied."""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError
from .images import natural_key, pad_to_common

SPACING_TOLERANCE_MM = 1e-3


@dataclass
class _Slice:
    path: Path
    ds: object
    series: str
    patient: str
    series_number: int
    instance: int
    position: np.ndarray | None
    orientation: np.ndarray | None
    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    thickness: float | None
    trigger: float | None = None


def _read_header(path: Path, strict: bool):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path)
    except InvalidDicomError as exc:
        if strict:
            raise StackError(path, f"is not a DICOM file ({exc})") from exc
        return None
    except Exception as exc:  # noqa: BLE001
        raise StackError(path, f"cannot be read as DICOM ({type(exc).__name__}: {exc})") from exc


def _floats(value, n: int) -> np.ndarray | None:
    try:
        array = np.asarray([float(v) for v in value], dtype=float)
    except (TypeError, ValueError):
        return None
    return array if array.size == n and np.all(np.isfinite(array)) else None


def _describe(path: Path, ds) -> _Slice:
    if "PixelData" not in ds:
        raise StackError(path, "DICOM file holds no image (no PixelData)")
    rows, cols = int(getattr(ds, "Rows", 0)), int(getattr(ds, "Columns", 0))
    spacing = _floats(getattr(ds, "PixelSpacing", None) or [], 2)
    thickness = getattr(ds, "SliceThickness", None)
    try:
        thickness = float(thickness) if thickness not in (None, "") else None
    except (TypeError, ValueError):
        thickness = None
    return _Slice(
        path=path,
        ds=ds,
        series=str(getattr(ds, "SeriesInstanceUID", "") or ""),
        patient=str(getattr(ds, "PatientID", "") or ""),
        series_number=int(getattr(ds, "SeriesNumber", 0) or 0),
        instance=int(getattr(ds, "InstanceNumber", 0) or 0),
        position=_floats(getattr(ds, "ImagePositionPatient", None) or [], 3),
        orientation=_floats(getattr(ds, "ImageOrientationPatient", None) or [], 6),
        shape=(rows, cols),
        spacing=None
        if spacing is None or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0)
        else (spacing[0], spacing[1]),
        thickness=thickness if thickness and thickness > 0 else None,
        trigger=_trigger_time(ds),
    )


def _trigger_time(ds) -> float | None:
    """The slice's time in the cardiac cycle (TriggerTime, ms), else its temporal position."""
    for name in ("TriggerTime", "TemporalPositionIdentifier"):
        try:
            value = float(getattr(ds, name))
        except (AttributeError, TypeError, ValueError):
            continue
        if np.isfinite(value):
            return value
    return None


def split_phases(ordered: list[_Slice]) -> list[list[_Slice]]:
    """The phases of a series ordered in space: slices at one position taken in time order
    (trigger time, then instance number); ``[ordered]`` when every position has one slice.
    Phase ``k`` holds the ``k``-th slice of every position."""
    if not all(s.position is not None and s.orientation is not None for s in ordered):
        return [ordered]
    normal = np.cross(ordered[0].orientation[:3], ordered[0].orientation[3:])
    places: dict[float, list[_Slice]] = {}
    for s in ordered:
        places.setdefault(round(float(s.position @ normal), 2), []).append(s)
    counts = {len(v) for v in places.values()}
    if counts == {1}:
        return [ordered]
    if len(counts) > 1:
        few = min(places.values(), key=len)[0]
        raise StackError(
            few.path,
            f"its position holds {min(counts)} slice(s) where others hold {max(counts)}: "
            "a series with phases needs every phase at every position",
        )
    timed = [
        sorted(v, key=lambda s: (np.inf if s.trigger is None else s.trigger, s.instance))
        for _, v in sorted(places.items())
    ]
    return [[place[k] for place in timed] for k in range(counts.pop())]


def _phase_times(phases: list[list[_Slice]]) -> tuple[float, ...]:
    """Each phase's trigger time (ms, the median over positions; NaN where unknown)."""
    return tuple(
        float(np.median([s.trigger for s in p]))
        if all(s.trigger is not None for s in p)
        else float("nan")
        for p in phases
    )


def _order(series: list[_Slice]) -> tuple[list[_Slice], float | None]:
    """Slices of one series in spatial order, and the spacing between their centres."""
    if all(s.position is not None and s.orientation is not None for s in series):
        normal = np.cross(series[0].orientation[:3], series[0].orientation[3:])
        keyed = sorted(series, key=lambda s: (float(s.position @ normal), s.instance))
        depth = np.array([float(s.position @ normal) for s in keyed])
        steps = np.diff(np.unique(np.round(depth, 4)))
        return keyed, float(np.median(steps)) if steps.size else None
    return sorted(series, key=lambda s: (s.instance, natural_key(s.path.name))), None


def _pixels(s: _Slice) -> np.ndarray:
    try:
        array = s.ds.pixel_array
    except Exception as exc:  # noqa: BLE001
        raise StackError(
            s.path, f"pixel data cannot be decoded ({type(exc).__name__}: {exc})"
        ) from exc
    if array.ndim != 2:
        raise StackError(s.path, f"expected one 2D frame, got pixel data of shape {array.shape}")
    slope = float(getattr(s.ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(s.ds, "RescaleIntercept", 0) or 0)
    return array.astype(np.float32) * slope + intercept


def list_dicom_files(folder: Path) -> list[Path]:
    """Files of ``folder`` that may be DICOM (hidden files and DICOMDIR skipped)."""
    return sorted(
        (
            p
            for p in folder.iterdir()
            if p.is_file()
            and not p.name.startswith(".")
            and p.name.upper() != "DICOMDIR"
            and p.suffix.lower() not in (".txt", ".md", ".json", ".csv")
        ),
        key=lambda p: natural_key(p.name),
    )


def looks_like_dicom_folder(folder: Path) -> bool:
    """Whether ``folder`` holds at least one ``.dcm`` file or a DICOM preamble."""
    for p in list_dicom_files(folder)[:20]:
        if p.suffix.lower() == ".dcm":
            return True
        try:
            with open(p, "rb") as handle:
                handle.seek(128)
                if handle.read(4) == b"DICM":
                    return True
        except OSError:
            continue
    return False


@contextlib.contextmanager
def _lenient_validation():
    """Old scanners write non-conformant values (UIDs with leading zeros): read them quietly."""
    from pydicom import config

    previous = config.settings.reading_validation_mode
    config.settings.reading_validation_mode = config.IGNORE
    try:
        with warnings.catch_warnings():  # pydicom's and highdicom's notes on them, not ours
            warnings.filterwarnings("ignore", category=UserWarning, module="(pydicom|highdicom)")
            yield
    finally:
        config.settings.reading_validation_mode = previous


def read_dicom(
    path: str | Path,
    masks: str | Path | None = None,
    spec: LabelSpec | None = None,
    series: str | None = None,
    phase: int | None = None,
) -> Stack:
    """Read a folder of DICOM slices into a stack.

    Slices are grouped by series and ordered along the slice normal (from
    ImagePositionPatient/ImageOrientationPatient), else by InstanceNumber.
    Rescale slope and intercept are applied. Pixel spacing and slice thickness
    are kept; several series in one folder must share the pixel spacing, or be
    chosen with ``series`` (a SeriesInstanceUID, SeriesNumber or PatientID).
    Masks (PNG etc.) are matched to files by name, as for image folders (``read_stack``
    also takes a DICOM Segmentation file of the series as labels: :mod:`.dicom_seg`).

    A series with several phases (cine: several slices per position at different
    trigger times) gives the stack of one phase: ``phase`` (0-based, in time order),
    by default the first, end-diastole for an ECG-triggered cine. ``stack.phases`` holds
    every phase's trigger time and ``stack.phase`` the one read.
    """
    with _lenient_validation():
        return _read_dicom_series(Path(path), masks, spec, series, phase)


def _headers(path: Path, series: str | None) -> list[_Slice]:
    """The DICOM slices of a folder (of one series, patient or series number if given)."""
    if not path.is_dir():
        raise StackError(path, "is not a folder")
    slices = []
    for file in list_dicom_files(path):
        ds = _read_header(file, strict=file.suffix.lower() == ".dcm")
        if ds is not None:
            slices.append(_describe(file, ds))
    if not slices:
        raise StackError(path, "no DICOM files found in this folder")
    if series is not None:
        slices = [s for s in slices if series in (s.series, str(s.series_number), s.patient)]
        if not slices:
            raise StackError(path, f"no series matches {series!r}")
    return slices


def _choose_phase(phase: int | None, count: int, path: Path) -> int:
    if phase is None:
        return 0
    if not 0 <= int(phase) < count:
        raise StackError(path, f"phase {phase}: the series has {count} phase(s) (0-{count - 1})")
    return int(phase)


def _read_dicom_series(path: Path, masks, spec, series: str | None, phase: int | None) -> Stack:
    from .folder import read_masks_for

    spec = spec or LabelSpec()
    slices = _headers(path, series)
    groups: dict[str, list[_Slice]] = {}
    for s in slices:
        groups.setdefault(s.series, []).append(s)
    ordered: list[_Slice] = []
    steps = []
    for members in sorted(
        groups.values(), key=lambda g: (g[0].patient, g[0].series_number, g[0].series)
    ):
        first = members[0]
        for s in members[1:]:
            if s.shape != first.shape:
                raise StackError(
                    s.path,
                    f"image size {s.shape} differs from {first.shape} of the rest of its series "
                    f"({first.path.name})",
                )
        members, step = _order(members)
        phases = split_phases(members)
        chosen = _choose_phase(phase, len(phases), path)
        times = _phase_times(phases) if len(phases) > 1 else ()
        ordered += phases[chosen]
        if step:
            steps.append(step)
    spacings = {s.spacing for s in ordered}
    spacing = None
    if spacings and None not in spacings:
        reference = next(iter(spacings))
        for s in ordered:
            if np.max(np.abs(np.subtract(s.spacing, reference))) > SPACING_TOLERANCE_MM:
                raise StackError(
                    s.path,
                    f"pixel spacing {s.spacing} differs from {reference} of other slices; "
                    "read one series at a time (series=...)",
                )
        spacing = reference
    thicknesses = [s.thickness for s in ordered if s.thickness]
    images, shapes = pad_to_common([_pixels(s) for s in ordered])
    names = [s.path.stem + ".png" for s in ordered]
    labels = None
    label_files: list[Path | None] = []
    on_disk = None
    warnings: list[str] = []
    if masks is not None:
        mask_set = read_masks_for(
            names,
            shapes,
            Path(masks),
            spec,
            images.shape[1:],
            ignore_unmatched=series is not None or bool(times),
        )
        labels, spec, on_disk = mask_set.labels, mask_set.spec, mask_set.binary_on_disk
        label_files, warnings = mask_set.files, mask_set.warnings
    return Stack(
        images=images,
        labels=labels,
        names=names,
        spec=spec,
        spacing=spacing,
        thickness=float(np.median(thicknesses)) if thicknesses else None,
        slice_spacing=float(np.median(steps)) if steps else None,
        original_shapes=shapes,
        layout="dicom",
        source=path,
        label_source=None if masks is None else Path(masks),
        label_files=label_files,
        binary_on_disk=on_disk,
        cases=[s.patient or s.path.stem for s in ordered],
        warnings=warnings,
        phases=times,
        phase=chosen if times else None,
    )


def _series_phases(path: Path, series: str | None) -> list[list[_Slice]]:
    """The phases of the folder's series (its first one when it holds several), from headers."""
    slices = _headers(path, series)
    first = slices[0].series
    members, _ = _order([s for s in slices if s.series == first])
    return split_phases(members)


def count_phases(path: str | Path, series: str | None = None) -> int:
    """How many phases a DICOM series holds (headers only; 1 for a series without phases)."""
    with _lenient_validation():
        return len(_series_phases(Path(path), series))


def read_phase_images(path: str | Path, series: str | None = None) -> np.ndarray:
    """Every phase of a DICOM series as ``(phases, positions, H, W)`` float32 (each file read
    once; the series' first one when a folder holds several): for viewing a cine in time."""
    with _lenient_validation():
        phases = _series_phases(Path(path), series)
        images, _ = pad_to_common([_pixels(s) for phase in phases for s in phase])
    return images.reshape(len(phases), len(phases[0]), *images.shape[1:])
