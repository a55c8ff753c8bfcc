"""The review autosave is one atomic state: kills, torn logs, fresh sessions, undo after restore."""

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from napari_yolosam import review_store
from napari_yolosam.review import ReviewSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from autosave_kills import consistent, session_for, trial  # noqa: E402


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_a_random_moment_restores_a_consistent_session(phantom_folder, tmp_path, seed):
    ok, why = trial(phantom_folder, tmp_path / "autosave", seed, max_wait=0.4)
    assert ok, why


def test_undo_redo_history_survives_a_restore(phantom_folder, tmp_path):
    autosave = tmp_path / "autosave"
    stack, session = session_for(phantom_folder, autosave, fresh=True)
    session.decide(0, "accept")
    session.decide(1, "union")
    session.decide(2, "accept")
    session.undo()  # slice 2 back; one redo waiting
    _, restored = session_for(phantom_folder, autosave, fresh=False)
    assert [d.slice for d in restored.decisions] == [0, 1]
    assert restored.redo().slice == 2
    np.testing.assert_array_equal(restored.labels[2], session._redo[-1][1])
    assert restored.undo().slice == 2 and restored.undo().slice == 1
    np.testing.assert_array_equal(restored.labels[1], stack.labels[1])
    assert consistent(phantom_folder, autosave)[0]


def test_a_torn_last_line_is_skipped_with_a_warning(phantom_folder, tmp_path):
    autosave = tmp_path / "autosave"
    _, session = session_for(phantom_folder, autosave, fresh=True)
    session.decide(0, "accept")
    with open(autosave / review_store.LOG, "a") as handle:
        handle.write('{"slice": 3, "image": "x", "act')  # killed while appending
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entries = review_store.read_log(autosave / review_store.LOG)
    assert len(entries) == 1 and any("torn last line" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, restored = session_for(phantom_folder, autosave, fresh=False)
    assert [d.slice for d in restored.decisions] == [0]
    assert review_store.read_log(autosave / review_store.LOG) == [restored.decisions[0].__dict__]


def test_a_fresh_session_archives_the_old_autosave(phantom_folder, tmp_path):
    autosave = tmp_path / "autosave"
    stack, first = session_for(phantom_folder, autosave, fresh=True)
    first.decide(0, "accept")
    first.decide(1, "accept")
    second = ReviewSession(stack, first.proposals, [], autosave)
    assert second.archived is not None and (second.archived / review_store.STATE).exists()
    second.decide(2, "keep")
    _, restored = session_for(phantom_folder, autosave, fresh=False)
    assert [d.slice for d in restored.decisions] == [2], "no decision of the old session mixes in"
    np.testing.assert_array_equal(restored.labels[0], stack.labels[0])
