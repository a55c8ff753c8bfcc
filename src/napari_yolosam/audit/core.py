"""The label audit: per-slice agreement, component matching, checks, quality and issue types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import ndimage as ndi

from ..proposals import DETECTOR_SOURCES, Proposals
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
    EIGHT,
    continuity,
    enhancement,
    inconsistent_slices,
    outside_fraction,
    specks_and_holes,
    wall_region,
)
from .issues import HARD_ISSUES, ISSUE_TYPES
from .metrics import dice, hd95_and_msd, iou, soft_dice

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
)


@dataclass(frozen=True)
class AuditConfig:
    """Thresholds of the audit (pixels are at the stack's resolution)."""

    flag_quality: float = 0.5
    # agreement is scaled so that this share of the labelled slices' median agreement, where
    # lower than flag_quality, scores flag_quality (0: off; see agreement_power)
    relative_flag: float = 1.0
    support: float = 0.2  # a label component is supported if this share of it is proposed
    missed_min_area: int = 10
    # the detector's thresholds (validated per class, or --conf) already chose its boxes;
    # raise this to demand more of a box before it counts as missed scar
    missed_min_confidence: float = 0.0
    outside_fraction: float = 0.2
    enhancement_sd: float = 1.0
    size_change: float = 0.35  # |corrected relative area difference| for over/under segmentation
    min_component: int = 5
    consistency_area: int = 20
    bias_correction: bool = True
    cleanlab: bool = True
    pixel_issue_confidence: float = 0.2  # cleanlab self-confidence below which a pixel is an issue


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
        return sorted(self.rows, key=lambda r: (r["quality"], r["image"]))

    def flagged(self) -> list[dict]:
        """Flagged rows, worst first."""
        return [r for r in self.ranked() if r["flag"]]


def _components(mask: np.ndarray):
    labels, count = ndi.label(mask, structure=EIGHT)
    return labels, count


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
    config: AuditConfig = AuditConfig(),
) -> AuditResult:
    """Compare a stack's labels with proposals; score, flag and type every slice.

    Parameters
    ----------
    stack
        Images and the labels being audited (scar and, where present, myocardium).
    proposals
        From :func:`~napari_yolosam.proposals.propose` or loaded from files;
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
    if myocardium is None:
        if (
            stack.spec.has_myocardium
        ):  # the label's own wall: its myocardium connected to healthy muscle
            labelled = stack.myocardium()
            myocardium = np.stack([wall_region(labelled[i], scar[i]) for i in range(len(stack))])
        else:
            myocardium = proposals.myocardium()
    blood = stack.spec.blood_pool_mask(stack.labels) if stack.spec.blood_pool else None
    has_probs = proposals.settings.get("probabilities", True)
    spacing = stack.spacing
    pixel_area = stack.pixel_area_mm2 or 1.0
    units = "mm" if spacing else "px"

    crops = [_roi(scar[i], proposals.slices[i].probability) for i in range(n)]
    labels_c = [scar[i][crops[i]] for i in range(n)]
    probs_c = [proposals.slices[i].probability[crops[i]] for i in range(n)]
    label_areas = np.array([float(x.sum()) for x in labels_c])
    curves = area_curves(labels_c, probs_c)
    proposal_areas = np.array([float(s.mask.sum()) for s in proposals.slices])
    usable = (label_areas > 0) & (proposal_areas > 0)
    # the bias is measured and reported always; the proposals are shifted only when asked
    # and when the shift explains it
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
    common = common if np.isfinite(common) else 0.0
    clean_scores, pixel_maps = (
        _cleanlab_scores(labels_c, shifted)
        if config.cleanlab and has_probs
        else (np.ones(n), [np.ones(p.shape, np.float32) for p in probs_c])
    )
    consistency = inconsistent_slices(label_areas, stack.cases, config.consistency_area)
    q_continuity, continuity_rates, scar_neighbours = continuity(
        label_areas, stack.cases, config.consistency_area
    )
    issue_map = np.zeros(stack.shape, bool)
    rows: list[dict] = []
    evidence: list[tuple[dict, set]] = []  # per slice: what was found, and by which source
    for i in range(n):
        sp = proposals.slices[i]
        label, mask = scar[i], sp.mask
        myo = None if myocardium is None else myocardium[i]
        corrected = shifted[i] > 0.5
        label_c = labels_c[i]
        hd95, msd = hd95_and_msd(label, mask, spacing)
        # -- components: label components without support, detector components without label
        sources: set[str] = set()
        label_prompted = sp.from_source("label") if "label" in sp.sources else mask
        comps, count = _components(label)
        spurious, spurious_area, spurious_prob = 0, 0, 0.0
        for c in range(1, count + 1):
            comp = comps == c
            support = (label_prompted & comp).sum() / comp.sum()
            if support < config.support and comp.sum() >= config.min_component:
                spurious += 1
                spurious_area += int(comp.sum())
                spurious_prob += float(sp.probability[comp].sum())
        if sp.sources:
            detector_mask = sp.from_source(*DETECTOR_SOURCES)
        else:  # another model's masks: any proposed scar the label lacks counts as missed
            detector_mask = mask if sp.status == "external" else np.zeros_like(mask)
        missed, missed_area, missed_conf = 0, 0, 0.0
        dcomps, dcount = _components(detector_mask & ~ndi.binary_dilation(label, iterations=2))
        for c in range(1, dcount + 1):
            comp = dcomps == c
            if comp.sum() < config.missed_min_area:
                continue
            conf = _box_confidence(sp, comp)
            if conf >= config.missed_min_confidence or not np.isfinite(conf):
                missed += 1
                missed_area += int(comp.sum())
                missed_conf = max(missed_conf, conf if np.isfinite(conf) else 1.0)
        out_frac = outside_fraction(label, myo)
        enh = enhancement(stack.images[i], label, myo, None if blood is None else blood[i])
        specks, holes = specks_and_holes(label, config.min_component)
        # -- quality: bias-corrected soft agreement, missed scar, and cleanlab's pixel confidence
        q_shape = (
            soft_dice(label_c.astype(np.float32), shifted[i])
            if has_probs
            else dice(label_c, probs_c[i] > 0.5)
        )
        total = label_c.sum() + missed_area
        q_missed = 1.0 - (missed_conf * missed_area / total if total else 0.0)
        agreement = float(np.clip(min(q_shape, q_missed) * (0.5 + 0.5 * clean_scores[i]), 0, 1))
        if not label.any() and not mask.any():
            agreement = 1.0
        corrected_rel = corrected_rels[i]
        # -- primary issue, in the fixed order of ISSUE_TYPES
        found: dict[str, str] = {}
        if np.isfinite(out_frac) and out_frac > config.outside_fraction:
            found["outside_myocardium"] = f"{out_frac:.0%} of labelled scar outside the myocardium"
            sources.add("anatomy")
        if spurious and spurious_area >= config.support * max(label.sum(), 1):
            found["spurious_scar"] = (
                f"{spurious} label component(s), {spurious_area} px, not supported by SAM "
                f"(mean scar probability there {spurious_prob / spurious_area:.2f})"
            )
            sources.add("label-prompted")
        if missed:
            found["missed_scar"] = (
                f"{missed} detector component(s), {missed_area} px, confidence {missed_conf:.2f}"
            )
            sources.add("detector")
        if label.any() and corrected.any() and np.isfinite(corrected_rel):
            excess = corrected_rel - common
            size = (
                f"label {corrected_rel:+.0%} against the proposal"
                f"{f' at {t_star:.2f}' if t_star != 0.5 else ''}, data set's median {common:+.0%}"
            )
            if excess > config.size_change:
                found["over_segmented"] = size
                sources.add("label-prompted")
            elif excess < -config.size_change:
                found["under_segmented"] = size
                sources.add("label-prompted")
        if np.isfinite(enh) and enh < config.enhancement_sd:
            found["not_enhanced"] = f"labelled scar is {enh:.1f} SD above remote myocardium"
            sources.add("anatomy")
        if consistency[i] or q_continuity[i] < config.flag_quality:
            k = int(scar_neighbours[i])
            found["inconsistent_slices"] = (
                f"scar {consistency[i]} between neighbouring slices"
                if consistency[i]
                else f"{'scar' if label.any() else 'no scar'} here, while "
                f"{continuity_rates.get(k, float('nan')):.0%} of the data set's slices with "
                f"{k} scar-bearing neighbour(s) carry scar"
            )
            sources.add("consistency")
        if specks:
            found["specks"] = f"{specks} component(s) under {config.min_component} px"
        if holes:
            found["holes"] = f"{holes} hole pixel(s)"
        evidence.append((found, sources))
        r0, c0 = crops[i][0].start or 0, crops[i][1].start or 0
        if pixel_maps[i].size:
            issue_map[i, r0 : r0 + pixel_maps[i].shape[0], c0 : c0 + pixel_maps[i].shape[1]] = (
                pixel_maps[i] < config.pixel_issue_confidence
            )
        rows.append(
            {
                "image": stack.names[i],
                "case": stack.cases[i],
                "label_area": float(label.sum() * pixel_area),
                "proposal_area": float(mask.sum() * pixel_area),
                "dice": dice(label, mask),
                "iou": iou(label, mask),
                "hd95": hd95,
                "msd": msd,
                "area_diff": float((label.sum() - mask.sum()) * pixel_area),
                "corrected_dice": dice(label_c, corrected),
                "corrected_area_diff": float((label_c.sum() - corrected.sum()) * pixel_area),
                "quality": float("nan"),  # set below, on the data set's scale of agreement
                "agreement": agreement,
                "flag": False,  # set below, with the data set's scale
                "issue": "ok",
                "flagged_by": "",
                "evidence": "",
                "spurious_components": spurious,
                "missed_components": missed,
                "missed_confidence": missed_conf,
                "outside_fraction": out_frac,
                "enhancement_sd": enh,
                "specks": specks,
                "holes": holes,
                "consistency": consistency[i],
                "continuity": float(q_continuity[i]),
                "cleanlab_score": float(clean_scores[i]),
                "units": "mm2|mm" if spacing else "px",
            }
        )
    power, typical = agreement_power(rows, config)
    flag_at = config.flag_quality
    for row, (found, sources) in zip(rows, evidence, strict=True):
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
    flagged = [r for r in rows if r["flag"]]
    summary = {
        "slices": n,
        "cases": len(set(stack.cases)),
        "flagged": len(flagged),
        "flag_threshold": flag_at,
        "median_labelled_agreement": typical,
        "agreement_power": power,
        "issues": {k: sum(r["issue"] == k for r in rows) for k in (*ISSUE_TYPES, "ok")},
        "continuity": {
            f"P(label | {k} scar-bearing neighbours)": rate for k, rate in continuity_rates.items()
        },
        "bias": {
            "median_relative_area_difference": bias,
            "threshold": t_star,
            "fitted_threshold": fitted,
            "median_dice_at_0.5": dice_at_half,
            "median_dice_at_fitted": dice_at_fit,
            "corrected": bool(t_star != 0.5),
            "correction": (
                f"proposals compared at {t_star:.2f}, where their median size matches the labels'"
                if t_star != 0.5
                else "none: no probability maps to shift"
                if not has_probs
                else "none: switched off"
                + (
                    f" (the proposals at {fitted:.2f} would match the labels' median size)"
                    if fitted != 0.5
                    else ""
                )
                if not config.bias_correction
                else "none: the proposals at 0.50 already match the labels' median size"
                if fitted == 0.5
                else f"none: taking the proposals at {fitted:.2f} would match the sizes but "
                f"lower the median Dice ({dice_at_half:.2f} to {dice_at_fit:.2f}); labels and "
                "proposals differ in place, not only in size"
            ),
            "meaning": "labels larger than proposals"
            if np.isfinite(bias) and bias > 0.1
            else "labels smaller than proposals"
            if np.isfinite(bias) and bias < -0.1
            else "no consistent size bias",
        },
        "probabilities": bool(has_probs),
        "note": "; ".join(
            text
            for text, applies in (
                (
                    "proposals without probability maps: the audit used the masks alone",
                    not has_probs,
                ),
                (
                    "no slice has a proposal although labels have scar: check the proposals "
                    "(mask files must hold binary scar masks, 0 and 1 or 255)",
                    not proposal_areas.any() and label_areas.any(),
                ),
                (
                    f"labels and proposals agree at a median of only {typical:.2f}: weak models "
                    f"or many wrong labels. Quality rates agreement against that common level "
                    f"(agreement {typical:.2f} scores {flag_at:.2f}); with weak models, retrain "
                    "them on the cleaned labels and audit again",
                    typical < config.flag_quality,
                ),
            )
            if applies
        ),
        "config": asdict(config),
        "issue_types": ISSUE_TYPES,
        "proposal_settings": {k: v for k, v in proposals.settings.items() if k != "config"},
    }
    cases = case_rows(rows, scar, proposals.masks(), pixel_area)
    return AuditResult(rows, summary, issue_map, config, cases)


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
    labelled = [r["agreement"] for r in rows if r["label_area"] > 0]
    typical = float(np.median(labelled)) if labelled else float("nan")
    level = config.relative_flag * typical
    if not 0 < level < config.flag_quality < 1:
        return 1.0, typical
    return float(np.log(config.flag_quality) / np.log(level)), typical


def _box_confidence(sp, component: np.ndarray) -> float:
    """Highest detector confidence among prompts whose mask overlaps ``component``."""
    best = float("nan")
    for k, source in enumerate(sp.sources):
        if (
            source in DETECTOR_SOURCES
            and k < len(sp.prompt_masks)
            and (sp.prompt_masks[k] & component).any()
        ):
            score = float(sp.scores[k])
            best = score if not np.isfinite(best) else max(best, score)
    return best
