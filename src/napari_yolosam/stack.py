"""The in-memory model of an image stack with its labels: :class:`Stack`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .labelspec import LabelSpec

DEFAULT_CASE_SEPARATOR = "_slice"


def case_of(name: str, separator: str = DEFAULT_CASE_SEPARATOR) -> str:
    """The case (patient) a slice belongs to: the part of its name before ``separator``.

    >>> case_of("Case_P004_slice_03.png")
    'Case_P004'
    >>> case_of("scan.png")
    'scan'
    """
    stem = Path(name).name
    for suffix in (".nii.gz", ".nii", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if separator and separator in stem:
        return stem[: stem.index(separator)]
    return stem


@dataclass
class Stack:
    """Image slices (slice axis first), optional labels and what is known about them.

    Attributes
    ----------
    images
        ``(N, H, W)`` float32 intensities (DICOM rescale already applied).
    labels
        ``(N, H, W)`` integer label maps decoded under ``spec``, or ``None``.
    names
        One file name per slice (the name labels are written back under).
    spec
        What the label values mean.
    spacing
        In-plane pixel spacing ``(row, column)`` in mm, or ``None`` if unknown.
    thickness
        Slice thickness in mm, or ``None``.
    slice_spacing
        Distance between slice centres in mm where known (DICOM positions, NIfTI).
    original_shapes
        ``(h, w)`` of each slice on disk; slices were padded at the bottom and
        right to the common shape and are cropped back on writing.
    layout
        ``"folder"``, ``"tiff"``, ``"dicom"``, ``"nifti"`` or ``"memory"``.
    source
        Where the images came from.
    label_source
        Where the labels came from (never written to).
    label_files
        Per slice, the file its label came from (or ``None``).
    binary_on_disk
        For binary masks, the value scar had on disk (255 or 1), used to
        write them back the same way; ``None`` for multiclass maps.
    cases
        Per slice, its case (patient); defaults to :func:`case_of` of the names.
    affine
        NIfTI affine, kept so NIfTI labels are written in the same space.
    warnings
        Things the reader noticed that did not stop it (slices without label...).
    phases, phase
        A series with several phases (cine): each phase's trigger time in ms (NaN
        where unknown) and the index of the phase this stack holds; ``()`` and ``None``
        for a series of one phase.
    """

    images: np.ndarray
    labels: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    spec: LabelSpec = field(default_factory=LabelSpec)
    spacing: tuple[float, float] | None = None
    thickness: float | None = None
    slice_spacing: float | None = None
    original_shapes: list[tuple[int, int]] = field(default_factory=list)
    layout: str = "memory"
    source: Path | None = None
    label_source: Path | None = None
    label_files: list[Path | None] = field(default_factory=list)
    binary_on_disk: int | None = None
    cases: list[str] = field(default_factory=list)
    affine: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    phases: tuple[float, ...] = ()
    phase: int | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        if images.ndim == 2:
            images = images[None]
        if images.ndim != 3:
            raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
        self.images = images.astype(np.float32, copy=False)
        n = images.shape[0]
        if self.labels is not None:
            labels = np.asarray(self.labels)
            if labels.ndim == 2:
                labels = labels[None]
            if labels.shape != images.shape:
                raise ValueError(
                    f"labels shape {labels.shape} does not match images shape {images.shape}"
                )
            if not np.issubdtype(labels.dtype, np.integer):
                raise ValueError(f"labels must be integers, got {labels.dtype}")
            self.labels = labels
        if not self.names:
            self.names = [f"slice{i:03d}.png" for i in range(n)]
        if len(self.names) != n:
            raise ValueError(f"{len(self.names)} names for {n} slices")
        if len(set(self.names)) != n:
            raise ValueError("slice names must be unique")
        if not self.original_shapes:
            self.original_shapes = [tuple(images.shape[1:])] * n
        self.original_shapes = [(int(h), int(w)) for h, w in self.original_shapes]
        if not self.cases:
            self.cases = [case_of(name) for name in self.names]
        if not self.label_files:
            self.label_files = [None] * n
        if self.spacing is not None:
            self.spacing = (float(self.spacing[0]), float(self.spacing[1]))
            if min(self.spacing) <= 0 or not np.all(np.isfinite(self.spacing)):
                raise ValueError(f"pixel spacing must be positive, got {self.spacing}")

    # -- shape -------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(N, H, W)``."""
        return tuple(self.images.shape)  # type: ignore[return-value]

    @property
    def has_labels(self) -> bool:
        """Whether the stack carries label maps."""
        return self.labels is not None

    def unlabelled(self) -> list[int]:
        """Slices without a label file where the others have one (their labels are empty
        because nothing was read, not because there is no scar)."""
        if self.labels is None or not any(p is not None for p in self.label_files):
            return []
        return [i for i, p in enumerate(self.label_files) if p is None]

    def crop(self, index: int, array: np.ndarray) -> np.ndarray:
        """Crop a padded 2D ``array`` of slice ``index`` back to its shape on disk."""
        h, w = self.original_shapes[index]
        return array[:h, :w]

    def with_labels(self, labels: np.ndarray | None, spec: LabelSpec | None = None) -> Stack:
        """A copy sharing the images, with other labels (and optionally another spec)."""
        return replace(self, labels=labels, spec=spec or self.spec, warnings=list(self.warnings))

    def subset(self, indices) -> Stack:
        """The slices at ``indices`` as a new stack."""
        idx = np.asarray(indices, dtype=int)
        return replace(
            self,
            images=self.images[idx],
            labels=None if self.labels is None else self.labels[idx],
            names=[self.names[i] for i in idx],
            original_shapes=[self.original_shapes[i] for i in idx],
            label_files=[self.label_files[i] for i in idx],
            cases=[self.cases[i] for i in idx],
            warnings=list(self.warnings),
        )

    # -- structures --------------------------------------------------------
    def _require_labels(self) -> np.ndarray:
        if self.labels is None:
            raise ValueError("this stack has no labels")
        return self.labels

    def scar(self) -> np.ndarray:
        """Boolean ``(N, H, W)`` scar masks under the stack's label specification."""
        return self.spec.scar_mask(self._require_labels())

    def myocardium(self) -> np.ndarray:
        """Boolean ``(N, H, W)`` myocardium masks (all False if the labels carry none)."""
        return self.spec.myocardium_mask(self._require_labels())

    def no_reflow(self) -> np.ndarray:
        """Boolean ``(N, H, W)`` no-reflow masks."""
        return self.spec.no_reflow_mask(self._require_labels())

    # -- units -------------------------------------------------------------
    @property
    def pixel_area_mm2(self) -> float | None:
        """Area of one pixel in mm^2, or ``None`` when spacing is unknown."""
        if self.spacing is None:
            return None
        return self.spacing[0] * self.spacing[1]

    @property
    def slice_step_mm(self) -> float | None:
        """Through-plane step for volumes: slice spacing where known, else thickness."""
        return self.slice_spacing or self.thickness

    def metadata(self) -> dict:
        """JSON-friendly description (napari layer metadata, reports)."""
        return {
            "names": list(self.names),
            "cases": list(self.cases),
            "spec": self.spec.to_dict(),
            "spacing": None if self.spacing is None else list(self.spacing),
            "thickness": self.thickness,
            "slice_spacing": self.slice_spacing,
            "original_shapes": [list(s) for s in self.original_shapes],
            "layout": self.layout,
            "source": None if self.source is None else str(self.source),
            "label_source": None if self.label_source is None else str(self.label_source),
            "label_files": [None if p is None else str(p) for p in self.label_files],
            "binary_on_disk": self.binary_on_disk,
            "affine": None if self.affine is None else np.asarray(self.affine).tolist(),
            "phases": list(self.phases),
            "phase": self.phase,
        }

    @classmethod
    def from_metadata(cls, images: np.ndarray, labels: np.ndarray | None, meta: dict) -> Stack:
        """Rebuild a stack from arrays and :meth:`metadata` (napari layers)."""
        spacing = meta.get("spacing")
        affine = meta.get("affine")
        return cls(
            images=images,
            labels=labels,
            names=list(meta.get("names") or []),
            cases=list(meta.get("cases") or []),
            spec=LabelSpec.from_dict(meta["spec"]) if meta.get("spec") else LabelSpec(),
            spacing=None if spacing is None else tuple(spacing),
            thickness=meta.get("thickness"),
            slice_spacing=meta.get("slice_spacing"),
            original_shapes=[tuple(s) for s in meta.get("original_shapes") or []],
            layout=meta.get("layout", "memory"),
            source=None if meta.get("source") is None else Path(meta["source"]),
            label_source=None if meta.get("label_source") is None else Path(meta["label_source"]),
            label_files=[None if p is None else Path(p) for p in meta.get("label_files") or []],
            binary_on_disk=meta.get("binary_on_disk"),
            affine=None if affine is None else np.asarray(affine),
            phases=tuple(meta.get("phases") or ()),
            phase=meta.get("phase"),
        )
