"""The label audit: per-slice agreement, component matching, checks, quality and issue types."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ..progress import Progress, drive
from ..proposals.types import Proposals
from ..stack import Stack
from .bias import (
    area_curves,
    explains_bias,
    fit_threshold,
    relative_difference,
    shift_probability,
)
from .cases import case_rows
from .checks import (
    continuity,
    inconsistent_slices,
    wall_region,
)
from .config import AuditConfig
from .issues import HARD_ISSUES, ISSUE_TYPES
from .slices import SliceCrop, slice_row, slice_window
from .summary import data_set_summary

REPORT_COLUMNS = (
    "image",
    "case",
    "label_area",
    "proposal_area",
    "dice",
    "iou",
    "hd95",
    "msd",
    "area_diff",
    "corrected_dice",
    "corrected_area_diff",
    "quality",
    "agreement",
    "flag",
    "issue",
    "flagged_by",
    "evidence",
    "spurious_components",
    "missed_components",
    "missed_confidence",
    "outside_fraction",
    "enhancement_sd",
    "specks",
    "holes",
    "consistency",
    "continuity",
    "cleanlab_score",
    "units",
    "proposed",
)


@dataclass
class AuditResult:
    """One row per slice (``rows``), the data-set ``summary``, per-pixel ``issue_map``, and one
    row per case (``cases``, :data:`~napari_yolosam.audit.cases.CASE_COLUMNS`)."""

    rows: list[dict]
    summary: dict
    issue_map: np.ndarray
    config: AuditConfig = field(default_factory=AuditConfig)
    cases: list[dict] = field(default_factory=list)

    def ranked(self) -> list[dict]:
        """Rows from the most to the least likely wrong."""
        return sorted(self.rows, key=_rank_key)

    def flagged(self) -> list[dict]:
        """Flagged rows, worst first."""
        return [r for r in self.ranked() if r["flag"]]


def _rank_key(row: dict) -> tuple:
    """Worst quality first; slices left out of the audit (no quality) last."""
    quality = row["quality"]
    finite = bool(np.isfinite(quality))
    return (not finite, quality if finite else 0.0, row["image"])


def _cleanlab_scores(
    labels: list[np.ndarray], probs: list[np.ndarray]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """cleanlab's segmentation label quality (softmin) per slice and its per-pixel self-confidence."""
    from cleanlab.segmentation.rank import get_label_quality_scores

    scores = np.ones(len(labels))
    pixel_maps = [np.ones(p.shape, np.float32) for p in probs]
    for i, (label, prob) in enumerate(zip(labels, probs, strict=True)):
        if not label.any() and prob.max(initial=0) < 0.5:
            continue
        pred = np.stack([1 - prob, prob])[None].astype(np.float32)
        image_scores, pixel_scores = get_label_quality_scores(
            label[None].astype(int), pred, verbose=False
        )
        scores[i] = float(image_scores[0])
        pixel_maps[i] = pixel_scores[0].astype(np.float32)
    return scores, pixel_maps


def _roi(label: np.ndarray, prob: np.ndarray, margin: int = 8) -> tuple[slice, slice]:
    mask = label | (prob > 0.02)
    if not mask.any():
        return slice(0, 0), slice(0, 0)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )


def audit(
    stack: Stack,
    proposals: Proposals,
    myocardium: np.ndarray | None = None,
    config: AuditConfig = AuditConfig(),  # noqa: B008 (frozen: immutable)
) -> AuditResult:
    """Compare a stack's labels with proposals; score, flag and type every slice
    (:func:`audit_steps` run to its end; see there)."""
    return drive(audit_steps(stack, proposals, myocardium, config))


def audit_steps(
    stack: Stack,
    proposals: Proposals,
    myocardium: np.ndarray | None = None,
    config: AuditConfig = AuditConfig(),  # noqa: B008 (frozen: immutable)
) -> Generator[Progress, None, AuditResult]:
    """Compare a stack's labels with proposals; score, flag and type every slice. Yields a
    :class:`Progress` every few slices (``stage="audit"``), so that it can be shown and
    stopped; returns the result.

    Parameters
    ----------
    stack
        Images and the labels being audited (scar and, where present, myocardium).
    proposals
        From :func:`~napari_yolosam.proposals.core.propose` or loaded from files;
        without probability maps (``settings["probabilities"] is False``) the
        audit works from the masks alone.
    myocardium
        ``(N, H, W)`` myocardium to check scar against, when the labels carry
        none (default: the labels', else the proposed myocardium).

    Returns
    -------
    AuditResult
        ``rows`` have :data:`REPORT_COLUMNS`; lower ``quality`` = more likely wrong.
    """
    if not stack.has_labels:
        raise ValueError("the audit needs labels")
    if len(proposals) != len(stack):
        raise ValueError(f"{len(proposals)} proposals for {len(stack)} slices")
    n = len(stack)
    scar = stack.scar()
    myocardium, blood = _anatomy(stack, proposals, scar, myocardium)
    has_probs = proposals.settings.get("probabilities", True)
    crops = [_roi(scar[i], proposals.slices[i].probability) for i in range(n)]
    labels_c = [scar[i][crops[i]] for i in range(n)]
    probs_c = [proposals.slices[i].probability[crops[i]] for i in range(n)]
    size = _size_bias(labels_c, probs_c, proposals, has_probs, config)
    clean_scores, pixel_maps = (
        _cleanlab_scores(labels_c, size["shifted"])
        if config.cleanlab and has_probs
        else (np.ones(n), [np.ones(p.shape, np.float32) for p in probs_c])
    )
    areas = size["label_areas"]
    context = {
        "consistency": inconsistent_slices(areas, stack.cases, config.consistency_area),
        "continuity": continuity(areas, stack.cases, config.consistency_area),
        "size": size,
        "clean_scores": clean_scores,
        "has_probs": has_probs,
    }
    issue_map = np.zeros(stack.shape, bool)
    rows, evidence = [], []
    for i in range(n):
        window = slice_window(scar[i], proposals.slices[i], myocardium, blood, i)
        crop = SliceCrop.of(stack, i, window, scar, proposals, myocardium, blood)
        row, found = slice_row(crop, labels_c[i], probs_c[i], i, context, config)
        proposed = proposals.slices[i].status != "not_proposed"
        rows.append({"image": stack.names[i], "case": stack.cases[i], **row, "proposed": proposed})
        evidence.append(found)
        if i % 16 == 15 or i == n - 1:
            yield Progress(i + 1, n, "audit", f"slice {i + 1} of {n}")
        r0, c0 = crops[i][0].start or 0, crops[i][1].start or 0
        if pixel_maps[i].size:
            issue_map[i, r0 : r0 + pixel_maps[i].shape[0], c0 : c0 + pixel_maps[i].shape[1]] = (
                pixel_maps[i] < config.pixel_issue_confidence
            )
    context["power"], context["typical"] = _scale_and_flag(stack, rows, evidence, config)
    summary = data_set_summary(stack, proposals, rows, context, config)
    cases = case_rows(
        rows, scar, [sp.mask for sp in proposals.slices], stack.pixel_area_mm2 or 1.0
    )
    return AuditResult(rows, summary, issue_map, config, cases)


def _anatomy(stack: Stack, proposals: Proposals, scar: np.ndarray, myocardium):
    """The myocardium scar is checked against, and the blood pool (``None`` where unknown)."""
    if myocardium is None:
        if (
            stack.spec.has_myocardium
        ):  # the label's own wall: its myocardium joined to healthy muscle
            labelled = stack.myocardium()
            myocardium = np.stack([wall_region(labelled[i], scar[i]) for i in range(len(stack))])
        else:
            myocardium = proposals.myocardium()
    blood = stack.spec.blood_pool_mask(stack.labels) if stack.spec.blood_pool else None
    return myocardium, blood


def _size_bias(labels_c, probs_c, proposals: Proposals, has_probs: bool, config) -> dict:
    """The labels' common size difference from the proposals, and the proposals shifted to it.

    The bias is measured and reported always; the proposals are shifted only
    when asked and when the shift explains it.
    """
    label_areas = np.array([float(x.sum()) for x in labels_c])
    curves = area_curves(labels_c, probs_c)
    proposal_areas = np.array([float(s.mask.sum()) for s in proposals.slices])
    usable = (label_areas > 0) & (proposal_areas > 0)
    t_star, bias = fit_threshold(label_areas, curves, usable) if has_probs else (0.5, float("nan"))
    fitted, dice_at_half, dice_at_fit = t_star, float("nan"), float("nan")
    if fitted != 0.5:
        dice_at_half, dice_at_fit = explains_bias(labels_c, probs_c, usable, fitted)
    if not (config.bias_correction and dice_at_fit >= dice_at_half):
        t_star = 0.5  # switched off, or no threshold explains it: keep the proposals
    if not has_probs:
        bias = (
            float(np.nanmedian(relative_difference(label_areas[usable], proposal_areas[usable])))
            if usable.any()
            else float("nan")
        )
    shifted = [shift_probability(p, t_star) for p in probs_c]
    # the size difference left after the shift (about 0 when it was applied, the bias when
    # not): a slice is over/under-segmented against the rest of the data set, not absolutely
    corrected_rels = relative_difference(
        label_areas, np.array([float((p > 0.5).sum()) for p in shifted])
    )
    common = float(np.nanmedian(corrected_rels[usable])) if usable.any() else 0.0
    return {
        "label_areas": label_areas,
        "proposal_areas": proposal_areas,
        "t_star": t_star,
        "bias": bias,
        "fitted": fitted,
        "dice_at_half": dice_at_half,
        "dice_at_fit": dice_at_fit,
        "shifted": shifted,
        "corrected_rels": corrected_rels,
        "common": common if np.isfinite(common) else 0.0,
    }


def _scale_and_flag(stack: Stack, rows: list[dict], evidence: list, config: AuditConfig) -> tuple:
    """Quality on the data set's scale of agreement, then each row's flag, issue and evidence.

    Returns the agreement's power and the labelled slices' median agreement.
    """
    power, typical = agreement_power(rows, config)
    units = "mm" if stack.spacing else "px"
    flag_at = config.flag_quality
    for row, (found, sources) in zip(rows, evidence, strict=True):
        if not row.get("proposed", True):  # compared with nothing: left out, and said so
            row.update(quality=float("nan"), flag=False, issue="not_proposed", flagged_by="")
            row["evidence"] = "no proposal was made for this slice: left out of the audit"
            continue
        row["quality"] = min(row["agreement"] ** power, row["continuity"])
        if (
            row["label_area"] > 0
            and row["quality"] < flag_at
            and not set(found) - {"specks", "holes"}  # nothing else explains the low quality
        ):
            found["boundary"] = (
                f"outline disagrees (HD95 {row['hd95']:.1f} {units}) with similar areas"
            )
            sources.add("label-prompted")
        flag = bool(row["quality"] < flag_at or any(k in HARD_ISSUES for k in found))
        issue = next((k for k in ISSUE_TYPES if k in found), "ok") if flag else "ok"
        if flag and issue == "ok":
            issue = next(iter(found), "boundary")
        row["flag"], row["issue"] = flag, issue
        row["flagged_by"] = ",".join(sorted(sources)) if flag else ""
        row["evidence"] = "; ".join(f"{k}: {v}" for k, v in found.items())
    return power, typical


def agreement_power(rows: list[dict], config: AuditConfig) -> tuple[float, float]:
    """The power that puts agreement on the data set's scale, and the labelled median agreement.

    With weak models every label agrees poorly with its proposal, and that
    common level is the models', not the labels' (as a common size difference
    is the bias). ``agreement ** power`` keeps 0, 1 and the order and maps
    ``config.relative_flag`` times the labelled slices' median agreement to
    ``config.flag_quality``, so that quality compares with model-free evidence
    (``continuity``) and one threshold flags every kind. With models that
    agree well (that level at or above ``flag_quality``) the power is 1.
    """
    labelled = [r["agreement"] for r in rows if r["label_area"] > 0 and r.get("proposed", True)]
    typical = float(np.median(labelled)) if labelled else float("nan")
    level = config.relative_flag * typical
    if not 0 < level < config.flag_quality < 1:
        return 1.0, typical
    return float(np.log(config.flag_quality) / np.log(level)), typical
