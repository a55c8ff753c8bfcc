"""Scar quantification per slice and per case: areas, volumes, burden, no-reflow, transmurality.

Areas are in mm^2 and volumes in mL when the pixel spacing (and, for
volumes, the slice step) is known; otherwise in pixels (and pixel-slices),
with ``units`` saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .geometry import lv_centre, radial_profiles
from .stack import Stack

SLICE_COLUMNS = (
    "image",
    "case",
    "source",
    "units",
    "myocardium_area",
    "scar_area",
    "no_reflow_area",
    "scar_burden_pct",
    "scar_components",
    "mean_transmurality",
    "transmurality_by_sector",
    "labelled",
)
CASE_COLUMNS = (
    "case",
    "source",
    "units",
    "slices",
    "myocardium_volume",
    "scar_volume",
    "no_reflow_volume",
    "scar_burden_pct",
    "scar_components",
    "mean_transmurality",
    "unlabelled_slices",
)


@dataclass
class Units:
    """How areas and volumes are expressed for a stack."""

    area_per_pixel: float
    volume_per_pixel: float
    area: str
    volume: str
    note: str = ""

    @classmethod
    def of(cls, stack: Stack) -> Units:
        """mm^2 / mL when spacing (and slice step) are known, pixels otherwise."""
        if stack.pixel_area_mm2 is None:
            return cls(
                1.0,
                1.0,
                "px",
                "px*slices",
                "pixel spacing unknown: areas in pixels, volumes in pixel-slices",
            )
        if stack.slice_step_mm is None:
            return cls(
                stack.pixel_area_mm2,
                stack.pixel_area_mm2,
                "mm2",
                "mm2*slices",
                "slice thickness unknown: volumes are summed areas (mm2 per slice)",
            )
        return cls(
            stack.pixel_area_mm2, stack.pixel_area_mm2 * stack.slice_step_mm / 1000.0, "mm2", "mL"
        )

    @property
    def label(self) -> str:
        """``area/volume`` units for the table."""
        return f"{self.area}|{self.volume}"


def transmurality(
    scar: np.ndarray,
    myocardium: np.ndarray,
    blood_pool: np.ndarray | None = None,
    n_sectors: int = 6,
    n_rays: int = 360,
) -> tuple[float, list[float]]:
    """Fraction of the wall thickness that is scar, along radial lines from the blood-pool centre.

    Each ray counts myocardial and scar samples; its transmurality is their
    ratio. Returns the mean over rays that cross scar (0 when none does) and
    the mean per sector (``n_sectors`` equal angles from angle 0, counting
    rays without scar as 0).
    """
    centre = lv_centre(myocardium, blood_pool)
    if centre is None or not myocardium.any():
        return 0.0, [0.0] * n_sectors
    angles, (myo_rays, scar_rays) = radial_profiles(
        [myocardium, scar & myocardium], centre, n_rays
    )
    wall = myo_rays.sum(1)
    fraction = np.where(wall > 0, scar_rays.sum(1) / np.maximum(wall, 1), 0.0)
    sector = np.minimum((angles / (2 * np.pi) * n_sectors).astype(int), n_sectors - 1)
    by_sector = [
        float(fraction[sector == s].mean()) if np.any(sector == s) else 0.0
        for s in range(n_sectors)
    ]
    crossing = fraction[scar_rays.any(1)]
    return (float(crossing.mean()) if crossing.size else 0.0), by_sector


def quantify_masks(
    stack: Stack,
    scar: np.ndarray,
    myocardium: np.ndarray,
    no_reflow: np.ndarray | None = None,
    source: str = "label",
    n_sectors: int = 6,
    unlabelled: tuple[int, ...] = (),
) -> tuple[list[dict], list[dict]]:
    """Per-slice and per-case rows for given scar / myocardium / no-reflow masks of ``stack``.

    Slices in ``unlabelled`` (no label file) get empty values and ``labelled`` false, are
    counted in their case's ``unlabelled_slices`` and add nothing to its volumes."""
    units = Units.of(stack)
    blood = stack.spec.blood_pool_mask(stack.labels) if stack.has_labels else None
    rows = []
    for i in range(len(stack)):
        myo, sc = np.asarray(myocardium[i], bool), np.asarray(scar[i], bool)
        nr = np.zeros_like(sc) if no_reflow is None else np.asarray(no_reflow[i], bool)
        mean_t, sectors = transmurality(sc, myo, None if blood is None else blood[i], n_sectors)
        n_comp = ndi.label(sc, structure=np.ones((3, 3)))[1]
        myo_px, scar_px = int(myo.sum()), int(sc.sum())
        rows.append(
            {
                "image": stack.names[i],
                "case": stack.cases[i],
                "source": source,
                "units": units.label,
                "myocardium_area": myo_px * units.area_per_pixel,
                "scar_area": scar_px * units.area_per_pixel,
                "no_reflow_area": int(nr.sum()) * units.area_per_pixel,
                "scar_burden_pct": 100.0 * scar_px / myo_px if myo_px else float("nan"),
                "scar_components": int(n_comp),
                "mean_transmurality": mean_t,
                "transmurality_by_sector": ";".join(f"{t:.3f}" for t in sectors),
                "labelled": i not in unlabelled,
                "_scar_px": scar_px,
                "_myo_px": myo_px,
                "_nr_px": int(nr.sum()),
            }
        )
    for i in unlabelled:  # nothing was read: no value, not zero
        rows[i].update({k: float("nan") for k in SLICE_COLUMNS[4:10]}, transmurality_by_sector="")
    cases = []
    for case in dict.fromkeys(stack.cases):
        members = [r for r in rows if r["case"] == case]
        myo_px = sum(r["_myo_px"] for r in members)
        scar_px = sum(r["_scar_px"] for r in members)
        scarred = [r["mean_transmurality"] for r in members if r["_scar_px"]]
        cases.append(
            {
                "case": case,
                "source": source,
                "units": units.label,
                "slices": len(members),
                "myocardium_volume": myo_px * units.volume_per_pixel,
                "scar_volume": scar_px * units.volume_per_pixel,
                "no_reflow_volume": sum(r["_nr_px"] for r in members) * units.volume_per_pixel,
                "scar_burden_pct": 100.0 * scar_px / myo_px if myo_px else float("nan"),
                "scar_components": sum(r["scar_components"] for r in members),
                "mean_transmurality": float(np.mean(scarred)) if scarred else 0.0,
                "unlabelled_slices": sum(not r["labelled"] for r in members),
            }
        )
    for r in rows:
        for key in ("_scar_px", "_myo_px", "_nr_px"):
            del r[key]
    return rows, cases


def quantify_labels(stack: Stack, n_sectors: int = 6) -> tuple[list[dict], list[dict]]:
    """Quantify the stack's own labels."""
    if n_sectors < 1:
        raise ValueError(f"n_sectors must be at least 1, not {n_sectors}")
    if not stack.has_labels:
        raise ValueError("the stack has no labels to quantify")
    if not stack.spec.has_myocardium:
        myo = stack.scar()  # scar-only labels: burden and transmurality cannot be computed
    else:
        myo = stack.myocardium()
    return quantify_masks(
        stack, stack.scar(), myo, stack.no_reflow(), "label", n_sectors, tuple(stack.unlabelled())
    )


def compare_sources(
    stack: Stack,
    sources: dict[str, np.ndarray],
    myocardium: np.ndarray | None = None,
    n_sectors: int = 6,
) -> list[dict]:
    """One per-case table comparing several scar sources (label, proposal, n-SD, FWHM, Otsu...)."""
    if myocardium is None:
        myocardium = stack.myocardium()
    rows: list[dict] = []
    for name, scar in sources.items():
        rows += quantify_masks(stack, scar, myocardium, None, name, n_sectors)[1]
    return rows


def units_note(stack: Stack) -> str:
    """The note to print beside a table (empty when mm and mL apply)."""
    return Units.of(stack).note
