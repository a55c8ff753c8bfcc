"""Studies: a folder of many patients, each one stack (per-patient folders, NIfTI files, a
DICOM tree of several series).

:func:`find_patients` lists a study's patients (an empty list for a path that is one
stack); commands run once per patient on them, and
:func:`napari_yolosam.io.read_study` reads them all into one stack (training on every
patient).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import StackError
from .images import list_image_files, natural_key
from .nifti import is_nifti

#: Label files beside a NIfTI image: ``<stem>_labels.nii.gz`` and the like.
LABEL_SUFFIXES = ("_labels", "_label", "_seg", "_mask", "_gt")


@dataclass(frozen=True)
class Patient:
    """One patient's stack in a study: ``name`` is its path in the study (outputs mirror
    it), ``images`` / ``labels`` / ``series`` what :func:`~napari_yolosam.io.read_stack`
    takes."""

    name: str
    images: Path
    labels: Path | None = None
    series: str | None = None


def _nifti_stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _is_label_file(path: Path) -> bool:
    return _nifti_stem(path).lower().endswith(LABEL_SUFFIXES)


def is_one_stack(folder: Path) -> bool:
    """Whether ``folder`` is one stack (images/, dicom/, image files or DICOM files)."""
    from .dicom import looks_like_dicom_folder
    from .folder import find_layout

    images_dir, _ = find_layout(folder)
    return (
        images_dir != folder
        or (folder / "dicom").is_dir()
        or bool(list_image_files(folder))
        or looks_like_dicom_folder(folder)
    )


def _nifti_patients(folder: Path, labels: Path | None) -> list[Patient]:
    images = sorted(
        (p for p in folder.iterdir() if is_nifti(p) and not _is_label_file(p)),
        key=lambda p: natural_key(p.name),
    )
    patients = []
    for image in images:
        stem = _nifti_stem(image)
        candidates = [labels / image.name] if labels is not None else []
        candidates += [folder / f"{stem}{s}{image.name[len(stem) :]}" for s in LABEL_SUFFIXES]
        found = next((c for c in candidates if c.is_file()), None)
        patients.append(Patient(stem, image, found))
    return patients


def _dicom_series(folder: Path) -> list[tuple[str, str]]:
    """``(name, SeriesInstanceUID)`` of each series in a DICOM folder (headers only)."""
    from .dicom import _headers, _lenient_validation

    with _lenient_validation():
        slices = _headers(folder, None)
    seen: dict[str, object] = {}
    for s in slices:
        seen.setdefault(s.series, s)
    return [
        (f"{s.patient or 'series'}_{s.series_number}", uid)
        for uid, s in sorted(seen.items(), key=lambda kv: (kv[1].patient, kv[1].series_number))
    ]


def find_patients(path: str | Path, labels: str | Path | None = None) -> list[Patient]:
    """The patients of a study at ``path``; ``[]`` when ``path`` is one stack.

    A study is a folder of NIfTI files (labels: the same name in ``labels``, or
    ``<name>_labels.nii.gz`` beside), or a folder of patient folders, each one stack
    (``images/`` + ``masks/``, ``dicom/``, image or DICOM files; labels: its own masks,
    or ``labels/<patient>/``), at any depth. A DICOM folder of several series gives a
    patient per series (``<PatientID>_<SeriesNumber>``).
    """
    path = Path(path)
    labels = None if labels is None else Path(labels)
    if not path.is_dir() or is_one_stack(path):
        return []
    if any(is_nifti(p) for p in path.iterdir()):
        return _nifti_patients(path, labels)
    patients: list[Patient] = []
    for sub in sorted(
        (p for p in path.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)
    ):
        if sub.name.startswith("."):
            continue
        own = None if labels is None else labels / sub.name
        if is_one_stack(sub):
            patients += _stack_patients(sub, sub.name, own)
        else:
            patients += [
                Patient(f"{sub.name}/{p.name}", p.images, p.labels, p.series)
                for p in find_patients(sub, own)
            ]
    return patients


def _stack_patients(folder: Path, name: str, labels: Path | None) -> list[Patient]:
    from .dicom import looks_like_dicom_folder

    labels = labels if labels is not None and labels.exists() else None
    dicom = folder / "dicom" if (folder / "dicom").is_dir() else folder
    if looks_like_dicom_folder(dicom):
        series = _dicom_series(dicom)
        if len(series) > 1:
            return [Patient(f"{name}/{n}", folder, labels, uid) for n, uid in series]
    return [Patient(name, folder, labels)]


def study_or_raise(path: str | Path, labels: str | Path | None = None) -> list[Patient]:
    """:func:`find_patients`, with a clear error for a folder that holds neither."""
    patients = find_patients(path, labels)
    if not patients and Path(path).is_dir() and not is_one_stack(Path(path)):
        raise StackError(
            path,
            "holds no stack and no patients: expected images/ (+ masks/), dicom/, image or "
            "DICOM files, NIfTI files, or folders of patients",
        )
    return patients
