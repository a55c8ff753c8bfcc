import json

import numpy as np
import pytest

from napari_yolosam.io import read_stack
from napari_yolosam.review import ReviewSession


def _rows(stack, flagged):
    return [
        {"image": n, "quality": 0.1 * (i + 1) if i in flagged else 0.9, "flag": i in flagged}
        for i, n in enumerate(stack.names)
    ]


def test_queue_decisions_undo_redo_and_save(phantom_folder, phantom, tmp_path):
    stack = read_stack(phantom_folder)
    truth_scar = np.isin(phantom.truth, (3, 4))
    session = ReviewSession(
        stack, truth_scar, _rows(stack, [5, 2, 3]), tmp_path / "autosave", {"segmenter": "tiny"}
    )
    assert session.queue() == [2, 3, 5]
    assert (
        session.next_slice(None) == 2
        and session.next_slice(2) == 3
        and session.previous_slice(2) == 5
    )
    d = session.decide(2, "accept")
    assert d.after["dice_vs_proposal"] == pytest.approx(1.0) and session.queue() == [3, 5]
    np.testing.assert_array_equal(stack.spec.scar_mask(session.labels[2]), truth_scar[2])
    # anatomy kept: blood pool untouched, myocardium only re-split
    assert (session.labels[2] == 1).sum() == (stack.labels[2] == 1).sum()
    session.decide(3, "keep")
    session.undo()
    assert session.queue() == [3, 5]
    session.redo()
    assert session.queue() == [5]
    edited = session.labels[5].copy()
    edited[:3, :3] = 3  # scar painted in the corner, outside the myocardium
    inside = np.argwhere(stack.labels[5] == 2)[0]
    edited[tuple(inside)] = 3  # and on one pixel of healthy myocardium
    d = session.decide(5, "edit", edited)
    assert d.after["outside_myocardium_px"] == 9 and d.after["outside_myocardium"] == "left out"
    assert (session.labels[5][:3, :3] == stack.labels[5][:3, :3]).all(), "Accept's rule"
    assert session.labels[5][tuple(inside)] == 3, "scar painted on the myocardium is kept"
    assert session.queue() == []
    files = session.save_cleaned(tmp_path / "cleaned")
    back = read_stack(phantom_folder, labels=tmp_path / "cleaned/masks")
    np.testing.assert_array_equal(back.labels, session.labels)
    log = [
        json.loads(line)
        for line in (tmp_path / "cleaned/decisions.jsonl").read_text().splitlines()
    ]
    assert [e["action"] for e in log] == ["accept", "keep", "edit"]
    assert log[0]["models"] == {"segmenter": "tiny"} and "before" in log[0] and "after" in log[0]
    summary = json.loads((tmp_path / "cleaned/summary.json").read_text())
    assert summary["reviewed"] == 3 and summary["actions"]["accept"] == 1
    # the originals are untouched
    np.testing.assert_array_equal(read_stack(phantom_folder).labels, stack.labels)
    # the images (linked), the masks, decisions, summary and the manifest: a data set
    assert len(files) == 2 * len(stack) + 3
    np.testing.assert_array_equal(read_stack(tmp_path / "cleaned").images, stack.images)


def test_union_and_intersection(phantom_folder, phantom):
    stack = read_stack(phantom_folder)
    prop = np.zeros(stack.shape, bool)
    prop[0, :, : stack.shape[2] // 2] = stack.spec.myocardium_mask(stack.labels[0])[
        :, : stack.shape[2] // 2
    ]  # half of the myocardium
    session = ReviewSession(stack, prop, _rows(stack, [0]))
    session.decide(0, "union")
    scar = stack.spec.scar_mask(session.labels[0])
    assert prop[0].any() and (scar | prop[0]).sum() == scar.sum()
    session.undo()
    session.decide(0, "intersection")
    assert not (stack.spec.scar_mask(session.labels[0]) & ~prop[0]).any()
    with pytest.raises(ValueError):
        session.decide(0, "merge")


def test_restore_after_a_crash(phantom_folder, phantom, tmp_path):
    stack = read_stack(phantom_folder)
    truth_scar = np.isin(phantom.truth, (3, 4))
    autosave = ReviewSession.autosave_for(stack, tmp_path)
    session = ReviewSession(stack, truth_scar, _rows(stack, [1, 4]), autosave)
    session.decide(1, "accept")
    session.decide(4, "keep")
    session.undo()
    expected = session.labels.copy()
    del session  # the viewer was closed without saving
    restored = ReviewSession.restore(stack, truth_scar, _rows(stack, [1, 4]), autosave)
    assert restored is not None
    np.testing.assert_array_equal(restored.labels, expected)
    assert restored.queue() == [4] and [d.action for d in restored.decisions] == ["accept"]
    other = read_stack(phantom_folder).subset([0, 1])
    assert ReviewSession.restore(other, truth_scar[:2], _rows(other, []), autosave) is None


def test_accept_changes_scar_only_on_multiclass_labels(tmp_path):
    """EMIDEC-style labels (1 blood pool, 2 myocardium, 3 scar, 4 no-reflow): accepting a
    proposal shifted by 6 px keeps no-reflow, blood pool, background and the myocardium's
    extent; scar outside the myocardium is left out unless the annotator allows it."""
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.stack import Stack

    yy, xx = np.mgrid[:96, :96]
    r = np.hypot(yy - 48, xx - 48)
    labels = np.zeros((96, 96), np.uint8)
    labels[r < 30] = 2
    labels[r < 20] = 1
    wedge = (r >= 20) & (r < 30) & (xx > 58)
    labels[wedge] = 3
    labels[wedge & (r < 24) & (np.abs(yy - 48) < 4)] = 4
    stack = Stack(
        images=np.zeros((1, 96, 96), np.float32),
        labels=labels[None].copy(),
        names=["Case_P001_slice000.png"],
        spec=LabelSpec.emidec(),
    )
    proposal = np.roll(stack.scar(), 6, axis=2)  # into the background on the right
    session = ReviewSession(stack, proposal, _rows(stack, [0]))
    decision = session.decide(0, "accept")
    new = session.labels[0]
    assert (new == 4).sum() == (labels == 4).sum() > 0, "no-reflow kept"
    assert (new == 1).sum() == (labels == 1).sum() and (new == 0).sum() == (labels == 0).sum()
    assert np.isin(new, (2, 3, 4)).sum() == np.isin(labels, (2, 3, 4)).sum(), "myocardium kept"
    assert not (np.isin(new, (3, 4)) & ~np.isin(labels, (2, 3, 4))).any(), "scar inside"
    assert decision.after["outside_myocardium_px"] > 0
    assert decision.after["outside_myocardium"] == "left out"
    session.undo()
    allowed = session.decide(0, "accept", allow_outside=True)
    assert allowed.after["outside_myocardium"] == "kept"
    assert (np.isin(session.labels[0], (3, 4)) & (labels == 0)).sum() == allowed.after[
        "outside_myocardium_px"
    ] - (proposal[0] & (labels == 1)).sum()


def test_autosave_keeps_only_the_changed_slices_of_the_original_labels(
    phantom_folder, phantom, tmp_path
):
    """A commit holds the slices that differ from the labels the session started from (so it
    costs the decisions, not the stack); other original labels on disk are not mixed in."""
    from napari_yolosam import review_store

    stack = read_stack(phantom_folder)
    truth_scar = np.isin(phantom.truth, (3, 4))
    autosave = ReviewSession.autosave_for(stack, tmp_path)
    session = ReviewSession(stack, truth_scar, _rows(stack, [1, 4, 6]), autosave)
    session.decide(1, "accept")
    session.decide(4, "keep")  # keeps the label: nothing to store
    session.decide(6, "accept")
    with np.load(autosave / review_store.STATE) as data:
        changed = [int(i) for i in data["changed"]]
        names = [str(n) for n in data["changed_files"]]
        assert "labels" not in data and len(names) == len(changed)
    for i, name in zip(changed, names, strict=True):  # each changed slice in its own file
        stored = np.load(autosave / review_store.SLICES / name)
        np.testing.assert_array_equal(stored, session.labels[i])
    expected = [i for i in (1, 6) if not np.array_equal(session.labels[i], stack.labels[i])]
    assert changed == expected and changed, "only the slices that differ"
    restored = ReviewSession.restore(stack, truth_scar, _rows(stack, [1, 4, 6]), autosave)
    np.testing.assert_array_equal(restored.labels, session.labels)
    # the labels on disk changed since: the autosave is not applied to other originals
    edited = read_stack(phantom_folder)
    edited.labels[0] = 0
    with pytest.warns(UserWarning, match="labels on disk changed"):
        assert ReviewSession.restore(edited, truth_scar, _rows(edited, []), autosave) is None


def test_a_commit_writes_the_decision_s_slices_not_the_earlier_ones(phantom_folder, tmp_path):
    """Hundreds of decisions cost the same per commit: a decision writes its own slice (and
    its undo slice) and a small index; slices written before are not written again."""
    from napari_yolosam import review_store

    stack = read_stack(phantom_folder)
    scar = np.zeros(stack.labels.shape, bool)  # every accept removes the slice's scar
    autosave = ReviewSession.autosave_for(stack, tmp_path)
    session = ReviewSession(stack, scar, _rows(stack, range(len(stack))), autosave)
    slices = autosave / review_store.SLICES
    for i in range(len(stack) - 1):
        session.decide(i, "accept")
    before = {p.name: p.stat().st_mtime_ns for p in slices.glob("*.npy")}
    session.decide(len(stack) - 1, "accept")
    after = {p.name: p.stat().st_mtime_ns for p in slices.glob("*.npy")}
    assert all(after[name] == mtime for name, mtime in before.items()), "none rewritten"
    assert len(set(after) - set(before)) <= 2, "the new slice and its undo copy at most"
    held = stack.labels[0].nbytes * len(stack)  # what the changed slices themselves take
    assert (autosave / review_store.STATE).stat().st_size < held / 2, "an index, not the slices"
    restored = ReviewSession.restore(stack, scar, _rows(stack, range(len(stack))), autosave)
    np.testing.assert_array_equal(restored.labels, session.labels)
    restored.undo()
    np.testing.assert_array_equal(restored.labels[-1], stack.labels[-1])


def test_autosave_of_the_full_labels_format_still_restores(phantom_folder, phantom, tmp_path):
    from napari_yolosam import review_store
    from napari_yolosam.review import stack_key

    stack = read_stack(phantom_folder)
    autosave = tmp_path / "old"
    autosave.mkdir()
    labels = stack.labels.copy()
    labels[2] = 0
    np.savez_compressed(
        autosave / review_store.STATE,
        key=np.array(stack_key(stack)),
        seq=np.array(1),
        labels=labels,
        reviewed=np.array([2]),
        decisions=np.array(
            json.dumps(
                [
                    {
                        "slice": 2,
                        "image": stack.names[2],
                        "action": "edit",
                        "time": 1.0,
                        "before": {},
                        "after": {},
                        "models": {},
                    }
                ]
            )
        ),
        undo=np.array("[]"),
        undo_labels=np.zeros((0, *labels.shape[1:]), labels.dtype),
        redo=np.array("[]"),
        redo_labels=np.zeros((0, *labels.shape[1:]), labels.dtype),
    )
    truth_scar = np.isin(phantom.truth, (3, 4))
    restored = ReviewSession.restore(stack, truth_scar, _rows(stack, []), autosave)
    np.testing.assert_array_equal(restored.labels, labels)
    assert restored.decisions[0].source == "audit proposal"  # older logs had no source


def test_unused_slice_files_go_and_are_written_again_when_needed(phantom_folder, tmp_path):
    """Every 50 commits the slice files no state refers to are deleted; a slice that comes
    back to content whose file went is written again (the state never refers to a gone file)."""
    from napari_yolosam import review_store

    stack = read_stack(phantom_folder)
    scar = np.zeros(stack.labels.shape, bool)
    autosave = ReviewSession.autosave_for(stack, tmp_path)
    session = ReviewSession(stack, scar, _rows(stack, range(len(stack))), autosave)
    for _ in range(30):  # accept, undo, redo ... on one slice: its files come and go
        session.decide(0, "accept")
        session.undo()
    session.decide(0, "accept")
    with np.load(autosave / review_store.STATE) as data:
        referenced = {
            str(n) for key in ("changed_files", "undo_files", "redo_files") for n in data[key]
        }
    assert referenced <= {p.name for p in (autosave / review_store.SLICES).glob("*.npy")}
    restored = ReviewSession.restore(stack, scar, _rows(stack, range(len(stack))), autosave)
    np.testing.assert_array_equal(restored.labels, session.labels)


def test_a_decision_moves_on_in_queue_order_from_where_the_annotator_is(phantom_folder, phantom):
    """#31 point 6: after deciding on a slice in the middle of the queue, Next is the slice
    after it, not the worst one again; Previous is the one before."""
    stack = read_stack(phantom_folder)
    truth_scar = np.isin(phantom.truth, (3, 4))
    rows = _rows(stack, [5, 2, 3, 6])
    session = ReviewSession(stack, truth_scar, rows)
    order = session.queue()
    assert len(order) == 4
    middle = order[1]
    session.decide(middle, "keep")
    assert session.next_slice(middle) == order[2], "the one after, not the worst"
    assert session.previous_slice(middle) == order[0]
    session.decide(order[3], "keep")
    assert session.next_slice(order[3]) == order[0], "past the end it wraps to the start"
