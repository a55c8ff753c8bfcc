"""Rules with a guarantee (#30 point 2): a rule accepts only what the audit expects to
improve, and does not run where the data cannot say so."""

import numpy as np
import pytest

from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.proposals.types import Proposals, SliceProposal
from napari_yolosam.review import ReviewSession
from napari_yolosam.review_batch import apply, rule_decisions
from napari_yolosam.review_gain import MIN_GAIN, GainModel, RuleRefused
from napari_yolosam.stack import Stack


def _case(n_agreed: int, model_error: int = 0):
    """Slices with a ring of myocardium and scar in it; the first ``n_agreed`` labels right
    (the proposal is the truth shifted by ``model_error`` px); then a label missing half its
    scar, a label right but flagged, and a label with scar where there is none."""
    n = n_agreed + 3
    labels = np.zeros((n, 64, 64), np.uint8)
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(rows - 32, cols - 32)
    ring = (radius > 12) & (radius < 20)
    truth = ring & (cols > 36)
    labels[:] = np.where(ring, 2, 0)
    labels[:, truth] = 3
    labels[n_agreed][truth & (rows > 32)] = 2  # half the scar missed
    labels[n_agreed + 2][ring & (cols < 28)] = 3  # spurious scar on the other side
    proposal = np.roll(truth, model_error, axis=1) & ring
    stack = Stack(np.zeros((n, 64, 64), np.float32), labels, spec=LabelSpec.emidec())
    rows_ = [
        {"image": name, "flag": i >= n_agreed, "quality": 0.9 if i < n_agreed else 0.1}
        for i, name in enumerate(stack.names)
    ]
    slices = [SliceProposal.of_mask(proposal) for _ in range(n)]
    for sp in slices:
        sp.probability = sp.mask.astype(np.float32)
    proposals = Proposals(stack.names, slices, {"probabilities": True})
    return stack, truth, ReviewSession(stack, proposals.masks(), rows_), proposals


def test_a_rule_accepts_only_what_is_expected_to_improve_the_label():
    stack, truth, session, proposals = _case(n_agreed=8)
    model = GainModel.of(session)
    assert model.agreed == 8 and model.level == pytest.approx(1.0)
    skipped = []
    planned = rule_decisions(session, proposals, 0.5, 0.5, skipped)
    accepted = {p.index for p in planned}
    assert accepted == {8, 10}, "the wrong labels are accepted"
    assert all(p.gain >= MIN_GAIN for p in planned)
    assert stack.names[9] in dict(skipped) and "expected gain" in dict(skipped)[stack.names[9]]
    before = [np.logical_and(stack.scar()[i], truth).sum() for i in (8, 10)]
    apply(session, planned)
    after = stack.spec.scar_mask(session.labels)
    from napari_yolosam.audit.metrics import dice

    for i in (8, 10):
        assert dice(after[i], truth) > dice(stack.scar()[i], truth), "better, never worse"
    assert before  # the labels changed only where accepted
    assert np.array_equal(session.labels[9], stack.labels[9])


def test_a_rule_does_not_run_without_evidence_unless_forced():
    _, _, session, proposals = _case(n_agreed=3)
    with pytest.raises(RuleRefused, match="too few"):
        rule_decisions(session, proposals, 0.5, 0.5)
    assert rule_decisions(session, proposals, 0.5, 0.5, force=True), "forced: it runs"


def test_weak_models_are_refused():
    _, _, session, proposals = _case(n_agreed=8, model_error=9)  # proposals far off
    model = GainModel.of(session)
    assert model.level < 0.3
    with pytest.raises(RuleRefused, match="would make labels worse"):
        rule_decisions(session, proposals, 0.5, 0.5)
