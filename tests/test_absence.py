"""Absence is not evidence: an empty proposal never condemns a label by itself, and slices
without a proposal are left out of the audit and said so (#31 points 1 and 2)."""

import numpy as np

from napari_yolosam.audit import audit
from napari_yolosam.proposals.types import Proposals, SliceProposal
from test_audit import _not_enhanced, make_case, proposal


def _unchanged(lab, scar, myo, blood, angle):
    return lab, None


def _with_empty_middle(modify):
    stack, props = make_case(modify)
    slices = list(props.slices)
    slices[1] = proposal(np.zeros_like(slices[1].mask))
    return stack, Proposals(stack.names, slices, props.settings)


def test_an_empty_proposal_does_not_flag_a_label_whose_scar_the_image_supports():
    stack, props = _with_empty_middle(_unchanged)
    assert stack.scar()[1].sum() > 50, "the middle label has real, enhanced scar"
    result = audit(stack, props)
    row = result.rows[1]
    assert not row["flag"] and row["issue"] == "ok", row["evidence"]
    assert "spurious_scar" not in row["evidence"]
    assert "models found no scar here" in row["evidence"]
    assert result.summary["model_found_nothing"] == 1
    assert "not evidence against the label" in result.summary["note"]


def test_independent_evidence_still_flags_when_the_models_found_nothing():
    stack, props = _with_empty_middle(_not_enhanced)
    row = audit(stack, props).rows[1]
    assert row["flag"] and row["issue"] == "not_enhanced", row["evidence"]
    assert "models found no scar here" in row["evidence"]


def test_slices_without_a_proposal_are_left_out_and_counted():
    stack, props = make_case(_unchanged)
    shape = props.slices[0].mask.shape
    slices = [props.slices[0], SliceProposal.empty(shape), SliceProposal.empty(shape)]
    result = audit(stack, Proposals(stack.names, slices, props.settings))
    assert [r["proposed"] for r in result.rows] == [True, False, False]
    for row in result.rows[1:]:
        assert not row["flag"] and row["issue"] == "not_proposed"
        assert np.isnan(row["quality"]) and "left out" in row["evidence"]
    assert result.summary["not_proposed"] == 2 and result.summary["flagged"] == 0
    assert "2 slice(s) without a proposal were left out" in result.summary["note"]
    assert [r["image"] for r in result.ranked()][-2:] == stack.names[1:], "unjudged last"
