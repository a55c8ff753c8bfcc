"""The audit's data-set summary: counts, issue types, continuity, the size bias in words."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from ..proposals.types import Proposals
from ..stack import Stack
from .config import AuditConfig
from .issues import ISSUE_TYPES


def data_set_summary(
    stack: Stack, proposals: Proposals, rows: list[dict], context: dict, config
) -> dict:
    """The data set's summary: counts, issues, continuity rates, size bias and notes."""
    power, typical = context["power"], context["typical"]
    has_probs = context["has_probs"]
    continuity_rates = context["continuity"][1]
    flagged = [r for r in rows if r["flag"]]
    return {
        "slices": len(stack),
        "cases": len(set(stack.cases)),
        "flagged": len(flagged),
        "not_proposed": sum(not r.get("proposed", True) for r in rows),
        "model_found_nothing": sum("model_found_nothing" in r["evidence"] for r in rows),
        "flag_threshold": config.flag_quality,
        "median_labelled_agreement": typical,
        "agreement_power": power,
        "issues": {
            k: sum(r["issue"] == k for r in rows) for k in (*ISSUE_TYPES, "not_proposed", "ok")
        },
        "continuity": {
            f"P(label | {k} scar-bearing neighbours)": rate for k, rate in continuity_rates.items()
        },
        "bias": _bias_summary(context["size"], has_probs, config),
        "probabilities": bool(has_probs),
        "note": "; ".join(n for n in (_note(context, typical, config), _absences(rows)) if n),
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


def _absences(rows: list[dict]) -> str:
    """Plain words on slices the audit could not judge by the models."""
    unproposed = sum(not r.get("proposed", True) for r in rows)
    nothing = sum("model_found_nothing" in r["evidence"] for r in rows)
    return "; ".join(
        text
        for text, count in (
            (
                f"{unproposed} slice(s) without a proposal were left out: propose them to audit them",
                unproposed,
            ),
            (
                f"on {nothing} labelled slice(s) the models found no scar: not evidence against "
                "the label, so those are flagged only by the image or the neighbouring slices",
                nothing,
            ),
        )
        if count
    )


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
