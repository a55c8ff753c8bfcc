"""The review keeps its proposals (#31 point 3): saved with the autosave, found again for
the same models and options, never for others."""

import numpy as np

from napari_yolosam.io import read_stack
from napari_yolosam.progress import drive
from napari_yolosam.proposals.core import propose
from napari_yolosam.review import ReviewSession, open_review
from napari_yolosam.review_store import saved_proposals


def test_proposals_are_kept_with_the_review_for_the_same_models(
    phantom_folder, tiny_segmenter, tmp_path
):
    stack = read_stack(phantom_folder)
    proposals = drive(propose(stack, tiny_segmenter))
    made_by = {"segmenter": "tiny", "detector": "none", "options": {"extent": True}}
    session, _, _ = drive(open_review(stack, proposals, autosave_root=tmp_path, made_by=made_by))
    session.decide(session.queue()[0] if session.queue() else 0, "keep")
    folder = ReviewSession.autosave_for(stack, tmp_path)
    kept = saved_proposals(folder, stack, made_by)
    assert kept is not None
    np.testing.assert_array_equal(kept.masks(), proposals.masks())
    np.testing.assert_allclose(kept.probabilities(), proposals.probabilities(), atol=1e-3)
    assert [s.status for s in kept.slices] == [s.status for s in proposals.slices]
    other = {**made_by, "segmenter": "tiny_hr"}
    assert saved_proposals(folder, stack, other) is None, "other models: proposed again"
    # reopened (a restart): the decisions and the proposals come back together
    session2, _, restored = drive(
        open_review(stack, kept, autosave_root=tmp_path, made_by=made_by)
    )
    assert restored and len(session2.decisions) == 1
    np.testing.assert_array_equal(session2.proposals, proposals.masks())
