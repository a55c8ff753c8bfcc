"""The audit per case (patient): agreement of the whole case, its size difference, its worst slice."""

from __future__ import annotations

import numpy as np

from .bias import relative_difference

CASE_COLUMNS = (
    "case",
    "slices",
    "labelled_slices",
    "flagged",
    "label_area",
    "proposal_area",
    "area_diff",
    "relative_area_diff",
    "dice",
    "iou",
    "median_hd95",
    "min_quality",
    "mean_quality",
    "worst_image",
    "units",
)


def case_rows(
    rows: list[dict], scar: np.ndarray, proposed: np.ndarray, pixel_area: float = 1.0
) -> list[dict]:
    """One row per case, in stack order: the case's slices pooled into one volume.

    Parameters
    ----------
    rows
        The audit's per-slice rows (``case``, ``quality``, ``flag``, ``hd95``, ``image``, ``units``).
    scar, proposed
        Label and proposal masks of the same slices (``(N, H, W)`` arrays or lists of
        slices: nothing is stacked).
    pixel_area
        mm^2 per pixel (1 when the spacing is unknown: areas in pixels).

    Returns
    -------
    list of dict
        :data:`CASE_COLUMNS`. ``dice`` and ``iou`` are over the pooled slices (1.0 when label
        and proposal are both empty); ``relative_area_diff`` is ``(label - proposal) / mean``,
        to set against the data set's median (``report.json``: a case whose labels used
        another threshold stands out from that bias).
    """
    order: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        order.setdefault(row["case"], []).append(i)
    out = []
    for case, idx in order.items():
        la = float(sum(int(scar[i].sum()) for i in idx))
        pa = float(sum(int(proposed[i].sum()) for i in idx))
        both = float(sum(int((scar[i] & proposed[i]).sum()) for i in idx))
        union = la + pa - both
        hd = [rows[i]["hd95"] for i in idx if np.isfinite(rows[i]["hd95"])]
        quality = [rows[i]["quality"] for i in idx]
        worst = idx[int(np.argmin(quality))]
        out.append(
            {
                "case": case,
                "slices": len(idx),
                "labelled_slices": int(sum(bool(scar[i].any()) for i in idx)),
                "flagged": int(sum(rows[i]["flag"] for i in idx)),
                "label_area": la * pixel_area,
                "proposal_area": pa * pixel_area,
                "area_diff": (la - pa) * pixel_area,
                "relative_area_diff": float(
                    relative_difference(np.array([la]), np.array([pa]))[0]
                ),
                "dice": 2 * both / (la + pa) if la + pa else 1.0,
                "iou": both / union if union else 1.0,
                "median_hd95": float(np.median(hd)) if hd else float("nan"),
                "min_quality": float(np.min(quality)),
                "mean_quality": float(np.mean(quality)),
                "worst_image": rows[worst]["image"],
                "units": rows[idx[0]]["units"],
            }
        )
    return out
