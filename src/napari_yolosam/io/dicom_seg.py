"""DICOM Segmentation objects (highdicom): labels and proposals of a DICOM series, and back.

A label map becomes one binary segment per label value of the specification
(EMIDEC: blood pool 1, myocardium 2, scar 3, no-reflow 4; a scar-only mask:
scar), each frame referencing the source slice's SOP Instance UID, so a
viewer (3D Slicer, OHIF) lays it over the series. Reading maps frames back to
slices by those references and segments back to label values by their
labels, so a SEG written here reads back to the same label map.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .atomic import atomic_write
from .errors import StackError

#: Type 2 attributes a SEG copies from its source; written empty when the source lacks them.
_TYPE2 = (
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
    "AccessionNumber",
)


def _codes(role: str):
    """(category, type) codes of a structure (SNOMED CT)."""
    from highdicom.sr import CodedConcept
    from pydicom.sr.codedict import codes

    anatomy, abnormal = codes.SCT.AnatomicalStructure, codes.SCT.MorphologicallyAbnormalStructure
    return {
        "blood pool": (anatomy, codes.SCT.LeftVentricle),
        "myocardium": (anatomy, codes.SCT.LeftVentricleMyocardium),
        "scar": (abnormal, codes.SCT.Scar),
        "no-reflow": (abnormal, CodedConcept("6574001", "SCT", "Necrosis")),
    }[role]


def segment_values(spec: LabelSpec) -> dict[str, int]:
    """The segment label of each label value the spec knows (one structure per value: the
    most specific of no-reflow, scar, myocardium, blood pool)."""
    if spec.mode == "binary" or not spec.myocardium:
        return {"scar": spec.scar[0] if spec.scar else spec.binary_value}
    roles: dict[str, int] = {}
    for value in sorted({*spec.blood_pool, *spec.myocardium, *spec.scar, *spec.no_reflow}):
        role = (
            "no-reflow"
            if value in spec.no_reflow
            else "scar"
            if value in spec.scar
            else "myocardium"
            if value in spec.myocardium
            else "blood pool"
        )
        roles.setdefault(role, value)
    return roles


def source_files(stack: Stack) -> list[Path]:
    """The DICOM file of each slice of a stack read from a DICOM folder."""
    from .dicom import list_dicom_files

    if stack.layout != "dicom" or stack.source is None:
        raise StackError(stack.source, "is not a DICOM series: DICOM-SEG needs DICOM input")
    by_stem = {p.stem: p for p in list_dicom_files(Path(stack.source))}
    missing = [n for n in stack.names if Path(n).stem not in by_stem]
    if missing:
        raise StackError(stack.source, f"the DICOM file of slice {missing[0]} is gone")
    return [by_stem[Path(n).stem] for n in stack.names]


def _sources(stack: Stack):
    import pydicom

    from .dicom import _lenient_validation

    with _lenient_validation():
        datasets = [pydicom.dcmread(p) for p in source_files(stack)]
    if len({ds.SeriesInstanceUID for ds in datasets}) > 1:
        raise StackError(
            stack.source, "holds several series: write one DICOM-SEG per series (--series)"
        )
    if any("FrameOfReferenceUID" not in ds for ds in datasets):
        raise StackError(
            stack.source, "has no FrameOfReferenceUID, which a DICOM-SEG must reference"
        )
    frames = {str(ds.FrameOfReferenceUID) for ds in datasets}
    if len(frames) > 1:  # one series, several frames of reference: seen in anonymised data
        warnings.warn(
            f"{stack.source}: the series' slices carry {len(frames)} different "
            "FrameOfReferenceUIDs; the DICOM-SEG refers to the first slice's, and its frames "
            "map to the slices by their SOP Instance UIDs",
            stacklevel=3,
        )
    with _lenient_validation():  # the source's own non-conformant values stay as they are
        for ds in datasets:
            ds.FrameOfReferenceUID = datasets[0].FrameOfReferenceUID
            for name in _TYPE2:
                if name not in ds or not _valid(ds, name):
                    setattr(ds, name, "")  # (anonymised dates like 00000000 become empty)
    return datasets


def _valid(ds, name: str) -> bool:
    """Whether a date or time attribute parses (other attributes always do)."""
    from pydicom.valuerep import DA, TM

    kind = {"PatientBirthDate": DA, "StudyDate": DA, "StudyTime": TM}.get(name)
    value = ds.get(name)
    if kind is None or not value:
        return True
    try:
        kind(str(value))
    except ValueError:
        return False
    return True


def write_dicom_seg(
    stack: Stack,
    labels: np.ndarray,
    target: str | Path,
    description: str = "cleaned labels",
    algorithm: str | None = None,
    segments: tuple[str, ...] | None = None,
) -> Path:
    """Write ``labels`` (the stack's ``(N, H, W)`` label maps) as a DICOM Segmentation of the
    stack's series at ``target`` (atomically). ``algorithm``: the name of the model that
    made them (an automatic segmentation), or ``None`` for labels a person checked.
    ``segments``: only these structures (e.g. ``("scar",)`` for proposals)."""
    from .dicom import _lenient_validation

    with _lenient_validation():  # the source's own non-conformant values, read lazily
        return _write_seg(stack, labels, target, description, algorithm, segments)


def _write_seg(stack, labels, target, description, algorithm, segments) -> Path:
    import highdicom as hd

    datasets = _sources(stack)
    roles = segment_values(stack.spec)
    if segments is not None:
        roles = {role: value for role, value in roles.items() if role in segments}
    frames = np.stack([stack.crop(i, labels[i]) for i in range(len(stack))])
    pixels = np.stack([frames == value for value in roles.values()], axis=-1)
    automatic = algorithm is not None
    identification = (
        hd.AlgorithmIdentificationSequence(name=algorithm, version=_version(), family=_ai_family())
        if automatic
        else None
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=k,
            segment_label=role,
            segmented_property_category=_codes(role)[0],
            segmented_property_type=_codes(role)[1],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
            if automatic
            else hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            algorithm_identification=identification,
        )
        for k, role in enumerate(roles, start=1)
    ]
    try:
        seg = _segmentation(datasets, pixels, descriptions, description)
    except ValueError as exc:
        raise StackError(stack.source, f"cannot be referenced by a DICOM-SEG ({exc})") from exc
    return atomic_write(Path(target), lambda tmp: seg.save_as(tmp, enforce_file_format=True))


def _segmentation(datasets, pixels, descriptions, description: str):
    import highdicom as hd

    return hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=int(getattr(datasets[0], "SeriesNumber", 0) or 0) + 1000,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="napari-yolosam",
        manufacturer_model_name="napari-yolosam",
        software_versions=_version(),
        device_serial_number="0",
        series_description=description[:64],
        omit_empty_frames=False,
    )


def _version() -> str:
    """The installed napari-yolosam's version (written into the SEG)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-yolosam")
    except PackageNotFoundError:
        return "unknown"


def _ai_family():
    from pydicom.sr.codedict import codes

    return codes.cid7162.ArtificialIntelligence


def dicom_seg_problem(stack: Stack) -> str | None:
    """Why the stack's labels cannot go into one DICOM-SEG (``None`` when they can)."""
    try:
        _sources(stack)
    except StackError as exc:
        return exc.problem
    return None


def is_dicom_seg(path: str | Path) -> bool:
    """Whether ``path`` is a DICOM Segmentation file."""
    import pydicom

    path = Path(path)
    if not path.is_file():
        return False
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - anything unreadable is not a SEG
        return False
    return str(getattr(ds, "Modality", "")) == "SEG"


def read_dicom_seg(path: str | Path, stack: Stack) -> np.ndarray:
    """The label maps ``(N, H, W)`` a DICOM Segmentation holds for ``stack``'s slices (slices
    it does not reference are background); a clear error when it belongs to another series
    or names a segment the stack's label specification has no value for."""
    from .dicom import _lenient_validation

    with _lenient_validation():  # the source's own non-conformant values, read lazily
        return _read_seg(Path(path), stack)


def _read_seg(path: Path, stack: Stack) -> np.ndarray:
    import highdicom as hd
    import pydicom

    try:
        seg = hd.seg.segread(path)
        seg.get_source_image_uids()
    except Exception as exc:  # noqa: BLE001
        raise StackError(
            path,
            f"is a damaged or truncated DICOM Segmentation ({path.stat().st_size:,} bytes; "
            f"{type(exc).__name__}: {str(exc)[:200]}); write it again or use the original",
        ) from exc
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in source_files(stack)]
    series = {str(ds.SeriesInstanceUID) for ds in datasets}
    referenced = {str(s.SeriesInstanceUID) for s in seg.ReferencedSeriesSequence}
    if not referenced & series:
        raise StackError(path, "segments another series than the stack's")
    others = sorted(series - referenced)
    if others:  # their slices would read as background: zero volumes that are not measured
        count = sum(str(ds.SeriesInstanceUID) in others for ds in datasets)
        raise StackError(
            path,
            f"segments {len(referenced & series)} of the stack's {len(series)} series; "
            f"{count} slice(s) of series {', '.join(others)} have no segmentation in it: "
            "choose the segmented series with --series",
        )
    roles = segment_values(stack.spec)
    numbers = {}
    for item in seg.SegmentSequence:
        role = str(item.SegmentLabel)
        if role not in roles:
            raise StackError(
                path, f"segment {role!r} has no value in the labels ({stack.spec.name})"
            )
        numbers[int(item.SegmentNumber)] = roles[role]
    uids = [str(ds.SOPInstanceUID) for ds in datasets]
    referenced_uids = {str(u[2]) for u in seg.get_source_image_uids()}
    present = [i for i, u in enumerate(uids) if u in referenced_uids]
    labels = np.zeros(stack.shape, np.uint16 if max(numbers.values()) > 255 else np.uint8)
    if not present:
        return labels
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[uids[i] for i in present],
        segment_numbers=sorted(numbers),
        ignore_spatial_locations=True,
    )
    for row, i in enumerate(present):
        h, w = stack.original_shapes[i]
        for k, number in enumerate(sorted(numbers)):
            labels[i, :h, :w][pixels[row, :, :, k] > 0] = numbers[number]
    return labels
