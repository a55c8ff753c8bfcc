"""The label audit: per-slice agreement, component matching, checks, quality and issue types."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
from scipy import ndimage as ndi

from ..proposals.types import INDEPENDENT_SOURCES, Proposals
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
        window = _window(scar[i], proposals.slices[i], myocardium, blood, i)
        crop = _SliceCrop.of(stack, i, window, scar, proposals, myocardium, blood)
        row, found = _slice_row(crop, labels_c[i], probs_c[i], i, context, config)
        rows.append({"image": stack.names[i], "case": stack.cases[i], **row})
        evidence.append(found)
        r0, c0 = crops[i][0].start or 0, crops[i][1].start or 0
        if pixel_maps[i].size:
            issue_map[i, r0 : r0 + pixel_maps[i].shape[0], c0 : c0 + pixel_maps[i].shape[1]] = (
                pixel_maps[i] < config.pixel_issue_confidence
            )
    context["power"], context["typical"] = _scale_and_flag(stack, rows, evidence, config)
    summary = _summary(stack, proposals, rows, context, config)
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


#: Pixels kept round a slice's masks when it is cropped: more than any dilation of the checks.
WINDOW_MARGIN = 4


def _window(label, sp, myocardium, blood, i: int) -> tuple[slice, slice]:
    """The part of slice ``i`` that holds every mask the checks look at (plus a margin).

    Every check is local (components, dilations by at most 2 px, hole filling,
    sectors round the blood pool's centre), so on this window it gives what it
    gives on the whole slice, at a fraction of the pixels.
    """
    masks = [
        label,
        sp.mask,
        *(m[i] for m in (myocardium, blood) if m is not None),
    ]
    rows = np.zeros(label.shape[0], bool)
    cols = np.zeros(label.shape[1], bool)
    for mask in masks:
        rows |= mask.any(1)
        cols |= mask.any(0)
    if len(sp.prompt_masks) == len(sp.sources):
        rows |= sp.prompt_masks.any((0, 2))
        cols |= sp.prompt_masks.any((0, 1))
    if not rows.any():
        return slice(0, 1), slice(0, 1)
    r, c = np.flatnonzero(rows), np.flatnonzero(cols)
    m = WINDOW_MARGIN
    return slice(max(r[0] - m, 0), r[-1] + m + 1), slice(max(c[0] - m, 0), c[-1] + m + 1)


@dataclass
class _SliceCrop:
    """One slice's image, label, proposal and anatomy, cut to its window."""

    image: np.ndarray
    label: np.ndarray
    proposal: object  # SliceProposal with cropped arrays
    myocardium: np.ndarray | None
    blood: np.ndarray | None
    spacing: tuple[float, float] | None
    pixel_area: float

    @classmethod
    def of(cls, stack, i, window, scar, proposals, myocardium, blood) -> _SliceCrop:
        sp = proposals.slices[i]
        keep = len(sp.prompt_masks) == len(sp.sources)
        cropped = replace(
            sp,
            mask=sp.mask[window],
            probability=sp.probability[window],
            prompt_masks=sp.prompt_masks[(slice(None), *window)] if keep else sp.prompt_masks,
        )
        return cls(
            stack.images[i][window],
            scar[i][window],
            cropped,
            None if myocardium is None else myocardium[i][window],
            None if blood is None else blood[i][window],
            stack.spacing,
            stack.pixel_area_mm2 or 1.0,
        )


def _unsupported(crop: _SliceCrop, config: AuditConfig) -> tuple[int, int, float]:
    """Label components SAM does not support: count, pixels, summed scar probability there."""
    sp, label = crop.proposal, crop.label
    label_prompted = sp.from_source("label") if "label" in sp.sources else sp.mask
    comps, count = _components(label)
    spurious, spurious_area, spurious_prob = 0, 0, 0.0
    for c in range(1, count + 1):
        comp = comps == c
        support = (label_prompted & comp).sum() / comp.sum()
        if support < config.support and comp.sum() >= config.min_component:
            spurious += 1
            spurious_area += int(comp.sum())
            spurious_prob += float(sp.probability[comp].sum())
    return spurious, spurious_area, spurious_prob


def _missed(crop: _SliceCrop, config: AuditConfig) -> tuple[int, int, float]:
    """Independently proposed scar the label lacks: components, pixels, highest confidence."""
    sp, label = crop.proposal, crop.label
    if sp.sources:
        detector_mask = sp.from_source(*INDEPENDENT_SOURCES)
    else:  # another model's masks: any proposed scar the label lacks counts as missed
        detector_mask = sp.mask if sp.status == "external" else np.zeros_like(sp.mask)
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
    return missed, missed_area, missed_conf


def _slice_row(crop: _SliceCrop, label_c, prob_c, i: int, context: dict, config) -> tuple:
    """One slice's report row (quality and flag set later) and its evidence ``(found, sources)``."""
    size = context["size"]
    label, mask, area = crop.label, crop.proposal.mask, crop.pixel_area
    shifted = size["shifted"][i]
    corrected = shifted > 0.5
    hd95, msd = hd95_and_msd(label, mask, crop.spacing)
    spurious = _unsupported(crop, config)
    missed = _missed(crop, config)
    checks = {
        "outside": outside_fraction(label, crop.myocardium),
        "enhancement": enhancement(crop.image, label, crop.myocardium, crop.blood),
        "specks_holes": specks_and_holes(label, config.min_component),
    }
    # -- agreement: bias-corrected soft agreement, missed scar, and cleanlab's pixel confidence
    q_shape = (
        soft_dice(label_c.astype(np.float32), shifted)
        if context["has_probs"]
        else dice(label_c, prob_c > 0.5)
    )
    total = label_c.sum() + missed[1]
    q_missed = 1.0 - (missed[2] * missed[1] / total if total else 0.0)
    agreement = float(
        np.clip(min(q_shape, q_missed) * (0.5 + 0.5 * context["clean_scores"][i]), 0, 1)
    )
    if not label.any() and not mask.any():
        agreement = 1.0
    found = _findings(label, corrected, spurious, missed, checks, i, context, config)
    q_continuity = context["continuity"][0]
    row = {
        "label_area": float(label.sum() * area),
        "proposal_area": float(mask.sum() * area),
        "dice": dice(label, mask),
        "iou": iou(label, mask),
        "hd95": hd95,
        "msd": msd,
        "area_diff": float((label.sum() - mask.sum()) * area),
        "corrected_dice": dice(label_c, corrected),
        "corrected_area_diff": float((label_c.sum() - corrected.sum()) * area),
        "quality": float("nan"),  # set by _scale_and_flag, on the data set's scale of agreement
        "agreement": agreement,
        "flag": False,
        "issue": "ok",
        "flagged_by": "",
        "evidence": "",
        "spurious_components": spurious[0],
        "missed_components": missed[0],
        "missed_confidence": missed[2],
        "outside_fraction": checks["outside"],
        "enhancement_sd": checks["enhancement"],
        "specks": checks["specks_holes"][0],
        "holes": checks["specks_holes"][1],
        "consistency": context["consistency"][i],
        "continuity": float(q_continuity[i]),
        "cleanlab_score": float(context["clean_scores"][i]),
        "units": "mm2|mm" if crop.spacing else "px",
    }
    return row, found


def _findings(label, corrected, spurious, missed, checks, i, context, config) -> tuple:
    """What is wrong with slice ``i``'s label, in the order of ISSUE_TYPES: ``(found, sources)``."""
    found: dict[str, str] = {}
    sources: set[str] = set()
    out_frac, enh = checks["outside"], checks["enhancement"]
    if np.isfinite(out_frac) and out_frac > config.outside_fraction:
        found["outside_myocardium"] = f"{out_frac:.0%} of labelled scar outside the myocardium"
        sources.add("anatomy")
    if spurious[0] and spurious[1] >= config.support * max(label.sum(), 1):
        found["spurious_scar"] = (
            f"{spurious[0]} label component(s), {spurious[1]} px, not supported by SAM "
            f"(mean scar probability there {spurious[2] / spurious[1]:.2f})"
        )
        sources.add("label-prompted")
    if missed[0]:
        found["missed_scar"] = (
            f"{missed[0]} detector component(s), {missed[1]} px, confidence {missed[2]:.2f}"
        )
        sources.add("detector")
    size = context["size"]
    corrected_rel, common, t_star = size["corrected_rels"][i], size["common"], size["t_star"]
    if label.any() and corrected.any() and np.isfinite(corrected_rel):
        excess = corrected_rel - common
        text = (
            f"label {corrected_rel:+.0%} against the proposal"
            f"{f' at {t_star:.2f}' if t_star != 0.5 else ''}, data set's median {common:+.0%}"
        )
        if excess > config.size_change:
            found["over_segmented"] = text
            sources.add("label-prompted")
        elif excess < -config.size_change:
            found["under_segmented"] = text
            sources.add("label-prompted")
    if np.isfinite(enh) and enh < config.enhancement_sd:
        found["not_enhanced"] = f"labelled scar is {enh:.1f} SD above remote myocardium"
        sources.add("anatomy")
    _continuity_finding(label, i, context, config, found, sources)
    specks, holes = checks["specks_holes"]
    if specks:
        found["specks"] = f"{specks} component(s) under {config.min_component} px"
    if holes:
        found["holes"] = f"{holes} hole pixel(s)"
    return found, sources


def _continuity_finding(label, i, context, config, found: dict, sources: set) -> None:
    """Scar that appears or vanishes between neighbours, or that its neighbours make unusual."""
    consistency = context["consistency"]
    q_continuity, continuity_rates, scar_neighbours = context["continuity"]
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


def _scale_and_flag(stack: Stack, rows: list[dict], evidence: list, config: AuditConfig) -> tuple:
    """Quality on the data set's scale of agreement, then each row's flag, issue and evidence.

    Returns the agreement's power and the labelled slices' median agreement.
    """
    power, typical = agreement_power(rows, config)
    units = "mm" if stack.spacing else "px"
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
    return power, typical


def _summary(stack: Stack, proposals: Proposals, rows: list[dict], context: dict, config) -> dict:
    """The data set's summary: counts, issues, continuity rates, size bias and notes."""
    power, typical = context["power"], context["typical"]
    has_probs = context["has_probs"]
    continuity_rates = context["continuity"][1]
    flagged = [r for r in rows if r["flag"]]
    return {
        "slices": len(stack),
        "cases": len(set(stack.cases)),
        "flagged": len(flagged),
        "flag_threshold": config.flag_quality,
        "median_labelled_agreement": typical,
        "agreement_power": power,
        "issues": {k: sum(r["issue"] == k for r in rows) for k in (*ISSUE_TYPES, "ok")},
        "continuity": {
            f"P(label | {k} scar-bearing neighbours)": rate for k, rate in continuity_rates.items()
        },
        "bias": _bias_summary(context["size"], has_probs, config),
        "probabilities": bool(has_probs),
        "note": _note(context, typical, config),
        "config": asdict(config),
        "issue_types": ISSUE_TYPES,
        "proposal_settings": {k: v for k, v in proposals.settings.items() if k != "config"},
    }


def _bias_summary(size: dict, has_probs: bool, config: AuditConfig) -> dict:
    """The size bias, the threshold the proposals were compared at, and why."""
    t_star, fitted, bias = size["t_star"], size["fitted"], size["bias"]
    dice_at_half, dice_at_fit = size["dice_at_half"], size["dice_at_fit"]
    return {
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
    }


def _note(context: dict, typical: float, config: AuditConfig) -> str:
    """Plain words on what limits this audit (no probabilities, no proposals, weak models)."""
    has_probs, flag_at = context["has_probs"], config.flag_quality
    proposal_areas, label_areas = context["size"]["proposal_areas"], context["size"]["label_areas"]
    return "; ".join(
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
    )


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
            source in INDEPENDENT_SOURCES
            and k < len(sp.prompt_masks)
            and (sp.prompt_masks[k] & component).any()
        ):
            score = float(sp.scores[k])
            if source == "intensity":  # no detector score: SAM's own confidence there
                score = float(sp.probability[component].mean())
            best = score if not np.isfinite(best) else max(best, score)
    return best
