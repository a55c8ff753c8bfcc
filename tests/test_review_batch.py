"""Headless review (yolosam review): the widget's decisions from a file or a rule."""

import json

import numpy as np
import pytest

from napari_yolosam.cli import main
from napari_yolosam.io import read_stack


@pytest.fixture
def proposed(phantom_folder, tmp_path):
    out = tmp_path / "proposals"
    argv = ["propose", "--images", str(phantom_folder), "--detector", "none"]
    assert main([*argv, "--segmenter", "tiny", "--out", str(out)]) == 0
    return phantom_folder, out


def _session(folder, proposals_dir):
    from napari_yolosam.audit import audit
    from napari_yolosam.proposals import load_proposals
    from napari_yolosam.review import ReviewSession

    stack = read_stack(folder)
    proposals = load_proposals(proposals_dir, stack)
    return ReviewSession(stack, proposals.masks(), audit(stack, proposals).rows), proposals


def test_list_decisions_file_and_provenance(proposed, tmp_path, capsys):
    folder, props = proposed
    base = ["review", "--images", str(folder), "--proposals", str(props)]
    assert main([*base, "--list"]) == 0
    listing = capsys.readouterr().out
    session, _ = _session(folder, props)
    queue = session.queue()
    assert len(queue) >= 3 and f"{len(queue)} of {len(session.stack)} slices" in listing
    names = [session.stack.names[i] for i in queue]
    assert listing.index(names[0]) < listing.index(names[1]), "worst first"
    assert not (tmp_path / "clean").exists(), "--list writes nothing"
    shape = session.stack.original_shapes[queue[2]]
    from PIL import Image

    Image.fromarray(np.zeros(shape, np.uint8)).save(tmp_path / "empty.png")
    (tmp_path / "d.csv").write_text(
        f"image,action,mask\n{names[0]},accept,\n{names[1]},keep,\n{names[2]},mask,empty.png\n"
    )
    out = tmp_path / "clean"
    assert main([*base, "--decisions", str(tmp_path / "d.csv"), "--out", str(out)]) == 0
    cleaned = read_stack(folder, labels=out / "masks")
    # the same decisions through the session the widget uses
    session.decide(queue[0], "accept")
    session.decide(queue[1], "keep")
    session.decide(queue[2], "accept", proposal=np.zeros(session.labels.shape[1:], bool))
    np.testing.assert_array_equal(cleaned.labels, session.labels)
    assert not cleaned.scar()[queue[2]].any(), "the given (empty) mask became the scar"
    log = [json.loads(line) for line in (out / "decisions.jsonl").read_text().splitlines()]
    assert [d["action"] for d in log] == ["accept", "keep", "accept"]
    assert log[0]["source"] == "audit proposal" and log[2]["source"] == "mask file empty.png"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["reviewed"] == 3 and summary["models"]["segmenter"] == "tiny"


def test_rule_accepts_low_quality_confident_proposals(proposed, tmp_path):
    folder, props = proposed
    base = ["review", "--images", str(folder), "--proposals", str(props)]
    out = tmp_path / "rule"
    refused = main([*base, "--accept-below", "0.99", "--out", str(tmp_path / "refused")])
    assert refused == 2, "an untrained tiny agrees with too few labels: the rule does not run"
    assert main([*base, "--accept-below", "0.99", "--force", "--out", str(out)]) == 0
    session, proposals = _session(folder, props)
    from napari_yolosam.review_batch import apply, rule_decisions

    planned = rule_decisions(session, proposals, 0.99, force=True)
    assert planned and all(
        session.rows[session.stack.names[p.index]]["quality"] < 0.99 for p in planned
    )
    apply(session, planned)
    np.testing.assert_array_equal(read_stack(folder, labels=out / "masks").labels, session.labels)
    strict = rule_decisions(*_session(folder, props), 0.99, min_confidence=1.01, force=True)
    assert strict == [], "no proposal is more than certain"


def test_rule_never_accepts_an_implausible_proposal(proposed):
    """A proposal the widget would ask about (here: larger than the slice's myocardium) is
    not accepted by a rule; the CLI names the slice and the reason."""
    from napari_yolosam.review_batch import rule_decisions

    folder, props = proposed
    session, proposals = _session(folder, props)
    index = session.queue()[0]
    huge = np.ones(session.proposals[index].shape, bool)
    session.proposals[index] = huge
    proposals.slices[index].mask = huge
    proposals.slices[index].probability = np.ones(huge.shape, np.float32)
    assert "of the myocardium's area" in " ".join(session.proposal_concerns(index))
    skipped: list = []
    forced = rule_decisions(session, proposals, 0.99, 0.0, skipped, force=True)
    assert index not in [p.index for p in forced], "not even a forced rule"
    assert session.stack.names[index] in dict(skipped)


def test_an_empty_proposal_never_erases_the_labels_scar_unasked(proposed):
    """A model that found nothing is no evidence against the label's scar: accepting an empty
    proposal (or one that drops most of the scar) is a concern that names what it removes,
    so a rule skips it and the widget asks; a proposal that keeps most of it is no concern."""
    from napari_yolosam.review_batch import apply, rule_decisions

    folder, props = proposed
    session, proposals = _session(folder, props)
    scar = session.stack.spec.scar_mask(session.labels)
    index = next(i for i in session.queue() if scar[i].sum() >= 20)
    before = session.labels[index].copy()
    empty = np.zeros(scar[index].shape, bool)
    session.proposals[index] = empty
    proposals.slices[index].mask = empty
    proposals.slices[index].probability = np.ones(empty.shape, np.float32)  # sure of itself
    concerns = " ".join(session.proposal_concerns(index))
    total = int(scar[index].sum())
    assert f"removes {total} of the label's {total} px of scar (100%)" in concerns
    assert "found no scar here" in concerns
    assert not any("removes" in c for c in session.proposal_concerns(index, action="union"))
    elsewhere = np.zeros_like(empty)  # a confident proposal away from the label's scar
    free = np.argwhere(~scar[index])[len(np.argwhere(~scar[index])) // 2]
    elsewhere[free[0] : free[0] + 3, free[1] : free[1] + 3] = True
    elsewhere &= ~scar[index]
    session.proposals[index] = elsewhere
    proposals.slices[index].mask = elsewhere
    assert "removes" in " ".join(session.proposal_concerns(index))
    skipped: list = []
    apply(session, rule_decisions(session, proposals, 1.01, 0.0, skipped, force=True))
    assert "removes" in dict(skipped)[session.stack.names[index]]
    assert np.array_equal(session.labels[index], before), "the label's scar is untouched"
    most = scar[index].copy()
    most[np.argwhere(most)[0][0]] = False  # drops one row of the scar: most of it stays
    assert not any("removes" in c for c in session.proposal_concerns(index, most))


def test_bad_decisions_are_one_line_errors(proposed, tmp_path, capsys):
    folder, props = proposed
    base = ["review", "--images", str(folder), "--proposals", str(props)]
    (tmp_path / "bad.csv").write_text("image,action\nno_such_slice,accept\n")
    assert (
        main([*base, "--decisions", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "o")]) == 2
    )
    err = capsys.readouterr().err
    assert "bad.csv" in err and "no slice of that name" in err and "Traceback" not in err
    (tmp_path / "bad.json").write_text('[{"image": "x"')
    assert (
        main([*base, "--decisions", str(tmp_path / "bad.json"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "not valid JSON" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o")]) == 2, "a decision source is required"
    assert not (tmp_path / "o").exists()
