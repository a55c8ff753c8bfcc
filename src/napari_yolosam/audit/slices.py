"""One slice's evidence: the slice cut to a window round its masks, the label components SAM
does not support, the scar the label misses, and the findings in words."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from ..proposals.types import INDEPENDENT_SOURCES
from .checks import EIGHT, enhancement, outside_fraction, specks_and_holes
from .config import AuditConfig
from .metrics import dice, hd95_and_msd, iou, soft_dice


def _components(mask: np.ndarray):
    labels, count = ndi.label(mask, structure=EIGHT)
    return labels, count


#: Pixels kept round a slice's masks when it is cropped: more than any dilation of the checks.
WINDOW_MARGIN = 4


def slice_window(label, sp, myocardium, blood, i: int) -> tuple[slice, slice]:
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
class SliceCrop:
    """One slice's image, label, proposal and anatomy, cut to its window."""

    image: np.ndarray
    label: np.ndarray
    proposal: object  # SliceProposal with cropped arrays
    myocardium: np.ndarray | None
    blood: np.ndarray | None
    spacing: tuple[float, float] | None
    pixel_area: float

    @classmethod
    def of(cls, stack, i, window, scar, proposals, myocardium, blood) -> SliceCrop:
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


def _unsupported(crop: SliceCrop, config: AuditConfig) -> tuple[int, int, float]:
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


def _missed(crop: SliceCrop, config: AuditConfig) -> tuple[int, int, float]:
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


def slice_row(crop: SliceCrop, label_c, prob_c, i: int, context: dict, config) -> tuple:
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
    nothing = bool(label.any() and not mask.any())
    if nothing or (not label.any() and not mask.any()):
        agreement = 1.0  # absence is not evidence: the image and the neighbours judge alone
        spurious = (0, 0, 0.0)
    found = _findings(label, corrected, spurious, missed, checks, i, context, config)
    if nothing:
        found[0]["model_found_nothing"] = (
            f"the models found no scar here; the label's {int(label.sum())} px are judged by "
            "the image and the neighbouring slices only"
        )
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
