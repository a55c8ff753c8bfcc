"""The review's disagreement layer (where only the label, or only the proposal, has scar),
and the audit worker's work that opens the review and computes it."""

from __future__ import annotations

import numpy as np

from ..palette import LABEL_ONLY, PROPOSAL_ONLY
from ..review import ReviewSession, open_review
from ..review_store import saved_proposals
from ._stack_from_layers import stack_of_layers

DISAGREEMENT = "disagreement"
#: Disagreement colours (palette.py): apart from the labels' own and from each other.
LEGEND = (
    f'disagreement: <span style="color:{LABEL_ONLY}">&#9632;</span> label only &nbsp; '
    f'<span style="color:{PROPOSAL_ONLY}">&#9632;</span> proposal only'
)


def disagreement(spec, labels: np.ndarray, proposals: np.ndarray) -> np.ndarray:
    """Label only (1) and proposal only (2), for a slice or the whole stack."""
    scar = spec.scar_mask(labels)
    values = np.zeros(scar.shape, np.uint8)
    values[scar & ~proposals] = 1
    values[~scar & proposals] = 2
    return values


def disagreement_colours():
    """The disagreement layer's colours (napari's direct label colormap)."""
    from napari.utils.colormaps import DirectLabelColormap

    return DirectLabelColormap(
        color_dict={None: "transparent", 0: "transparent", 1: LABEL_ONLY, 2: PROPOSAL_ONLY}
    )


def review_with_disagreement(shown, proposals, config, models, root, restore, previous, made_by):
    """The stack copied from the layers' arrays ``shown``, :func:`open_review` of it and the
    disagreement of its labels (all in the audit's worker). Without ``proposals``, those
    kept with the review's autosave when the same models made them; ``(stack, None)`` when
    there are none (the models changed): they are to be proposed first."""
    stack = stack_of_layers(*shown)
    if proposals is None:
        proposals = saved_proposals(ReviewSession.autosave_for(stack, root), stack, made_by)
        if proposals is None:
            return stack, None
    session, result, restored = yield from open_review(
        stack, proposals, config, models, root, restore, previous, made_by
    )
    whole = disagreement(stack.spec, session.labels, session.proposals)
    return stack, (session, result, restored, whole, proposals)
