"""The audit's thresholds, in one frozen dataclass every part of the audit reads."""

from __future__ import annotations

from dataclasses import dataclass


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
