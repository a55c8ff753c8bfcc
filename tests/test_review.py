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
    edited[:3, :3] = 3
    session.decide(5, "edit", edited)
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
    assert len(files) == len(stack) + 2


def test_union_and_intersection(phantom_folder, phantom):
    stack = read_stack(phantom_folder)
    prop = np.zeros(stack.shape, bool)
    prop[0, 60:70, 60:70] = True
    session = ReviewSession(stack, prop, _rows(stack, [0]))
    session.decide(0, "union")
    scar = stack.spec.scar_mask(session.labels[0])
    assert scar[60:70, 60:70].all() and (scar | prop[0]).sum() == scar.sum()
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
