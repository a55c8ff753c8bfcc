"""What accepting a proposal is expected to gain, from what the audit knows (no truth).

Where the audit agrees with a label (not flagged, label and proposal both with scar), the
label is taken as right, so the models' Dice with it there is their accuracy: ``level``
(the median over those slices). A proposal elsewhere is expected to be that accurate; a
label whose Dice with it is ``d`` is then about ``d / level`` accurate (both miss the truth
independently). Accepting is expected to gain ``level - d / level``. Rules accept only
where that gain is at least :data:`MIN_GAIN`, and do not run at all where too few slices
agree for the level to be known, or the level is too low to correct anyone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .audit.metrics import dice

#: The least expected gain (Dice against the truth) a rule accepts a proposal for.
MIN_GAIN = 0.05
#: Agreed slices needed before the models' level counts as known.
MIN_AGREED = 5
#: Below this level the models correct nobody: rules refuse to run.
MIN_LEVEL = 0.3


class RuleRefused(ValueError):
    """An automatic rule the data say would not improve the labels (run it with force)."""


@dataclass(frozen=True)
class GainModel:
    """The models' accuracy where the audit agrees with the labels, and how many slices."""

    level: float
    agreed: int

    @classmethod
    def of(cls, session) -> GainModel:
        """Measured on ``session``'s agreed slices (see the module's text)."""
        scores = [
            agreement(session, i)
            for i, name in enumerate(session.stack.names)
            if not session.rows.get(name, {}).get("flag", True)
            and _scar(session, i).any()
            and session.proposals[i].any()
        ]
        return cls(float(np.median(scores)) if scores else float("nan"), len(scores))

    def check(self) -> None:
        """Refuse a rule where the level is unknown or too low to correct any label."""
        if self.agreed < MIN_AGREED:
            raise RuleRefused(
                f"only {self.agreed} slice(s) where the audit agrees with the label: too few "
                f"(at least {MIN_AGREED}) to know how good the proposals are; review by eye, "
                "or force the rule"
            )
        if not self.level >= MIN_LEVEL:
            raise RuleRefused(
                f"the proposals reach only Dice {self.level:.2f} with the labels the audit "
                f"agrees with (under {MIN_LEVEL}): accepting them would make labels worse; "
                "review by eye, or force the rule"
            )

    def gain(self, agreement_with_label: float) -> float:
        """The expected Dice gain of accepting a proposal whose Dice with the label is given."""
        label = min(1.0, agreement_with_label / self.level)
        return self.level - label


def agreement(session, index: int) -> float:
    """Dice of the label's scar with what Accept would write on slice ``index``."""
    accepted, _ = session.stack.spec.replace_scar(session.labels[index], session.proposals[index])
    return dice(_scar(session, index), session.stack.spec.scar_mask(accepted))


def _scar(session, index: int) -> np.ndarray:
    return session.stack.spec.scar_mask(session.labels[index])
