"""Propagating a mask through the stack with the pretrained LiteMedSAM (phantom)."""

import numpy as np
import pytest

from napari_yolosam.audit.metrics import dice
from napari_yolosam.progress import drive
from napari_yolosam.proposals.propagate import propagate, region_prompts


@pytest.fixture(scope="module")
def case_stack():
    """One phantom patient of 6 slices (scar on each), labels = the truth."""
    from napari_yolosam.phantom.make import make_phantom

    ph = make_phantom(n_slices=6, n_cases=2, shape=(128, 128), corrupt=0.0, seed=0)
    return ph.stack.with_labels(ph.truth.copy())


def test_region_prompts_box_and_click_inside_each_region():
    mask = np.zeros((64, 64), bool)
    mask[5:15, 5:25] = True
    mask[40:60, 40:50] = True
    boxes, points = region_prompts(mask)
    assert boxes.shape == (2, 4) and points.shape == (2, 1, 2)
    for (x0, y0, x1, y1), ((x, y),) in zip(boxes, points, strict=True):
        assert x0 <= x < x1 and y0 <= y < y1 and mask[int(y), int(x)]
    assert sorted(map(tuple, boxes.astype(int).tolist())) == [(5, 5, 25, 15), (40, 40, 50, 60)]


def test_propagation_follows_the_scar_and_stays_in_the_patient(lite, case_stack):
    stack = case_stack
    scar = np.isin(stack.labels, (3, 4))
    first = [i for i, c in enumerate(stack.cases) if c == stack.cases[0]]
    start = first[len(first) // 2]
    events = []
    work = propagate(stack, lite, start, scar[start])
    proposals = drive(work, lambda e: events.append(e))
    masks = proposals.masks()
    assert np.array_equal(masks[start], scar[start])  # the start slice keeps its own mask
    others = [i for i in first if i != start]
    scores = [dice(masks[i], scar[i]) for i in others]
    copied = [dice(scar[start], scar[i]) for i in others]
    reached = [i for i in others if masks[i].any()]
    assert len(reached) >= 3, scores  # the phantom's scar moves between slices: not all
    assert all(dice(masks[i], scar[i]) > 0.75 for i in reached), scores
    assert np.mean(scores) > np.mean(copied) + 0.2, (scores, copied)
    assert all(set(proposals.slices[i].sources) == {"propagated"} for i in reached)
    second = [i for i in range(len(stack)) if i not in first]
    assert not masks[second].any()  # never crosses into the next patient
    assert all(proposals.slices[i].status == "not_proposed" for i in second)
    assert {e.stage for e in events} == {"propagate"} and events[-1].total == len(others)
    assert [e.step for e in events] == list(range(1, len(events) + 1))


def test_propagation_stops_where_the_heart_ends_and_goes_one_way(lite, case_stack):
    stack = case_stack
    scar = np.isin(stack.labels, (3, 4))
    labels = stack.labels.copy()
    labels[1] = 0  # no myocardium on slice 1: the heart ends there
    cut = stack.with_labels(labels)
    proposals = drive(propagate(cut, lite, 3, scar[3], direction="down"))
    masks = proposals.masks()
    assert masks[2].any() and not masks[1].any() and not masks[0].any()
    assert not masks[4:].any()  # "down" only: the higher slices are left alone


def test_propagation_stops_where_the_scar_vanishes(lite, case_stack):
    stack = case_stack
    scar = np.isin(stack.labels, (3, 4))
    proposals = drive(propagate(stack, lite, 3, scar[3], min_area=10**6))
    statuses = [s.status for s in proposals.slices[:6]]
    assert statuses == ["not_proposed"] * 3 + ["ok"] + ["not_proposed"] * 2


def test_propagation_rejects_bad_requests(lite, case_stack):
    scar = np.isin(case_stack.labels, (3, 4))
    with pytest.raises(ValueError, match="empty"):
        drive(propagate(case_stack, lite, 1, np.zeros_like(scar[1])))
    with pytest.raises(ValueError, match="direction"):
        drive(propagate(case_stack, lite, 1, scar[1], direction="sideways"))
    with pytest.raises(ValueError, match="outside the stack"):
        drive(propagate(case_stack, lite, 99, scar[1]))
    with pytest.raises(ValueError, match="shape"):
        drive(propagate(case_stack, lite, 1, scar[1][:10]))


def test_propagate_command_writes_what_the_function_returns(lite, case_stack, tmp_path, capsys):
    from napari_yolosam.cli import main
    from napari_yolosam.io import read_stack
    from napari_yolosam.phantom.io import save_phantom
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.proposals.io import load_proposals

    ph = make_phantom(n_slices=6, n_cases=2, shape=(128, 128), corrupt=0.0, seed=0)
    folder = save_phantom(ph, tmp_path / "ph")
    truth = folder / "truth"
    stack = read_stack(folder, labels=truth)
    name = stack.names[3]
    out = tmp_path / "prop"
    args = ["propagate", "--images", str(folder), "--labels", str(truth), "--slice", name]
    assert main([*args, "--direction", "down", "--out", str(out)]) == 0
    assert "slice(s) reached" in capsys.readouterr().out
    saved = load_proposals(out, stack).masks()
    scar = stack.scar()
    expected = drive(propagate(stack, lite, 3, scar[3], direction="down")).masks()
    assert np.array_equal(saved, expected) and saved[2].any() and not saved[4:].any()
    assert main([*args[:-1], "99", "--out", str(tmp_path / "bad")]) == 2
    assert "the stack has 12 slices" in capsys.readouterr().err
    assert main([*args[:-1], "nonsense.png", "--out", str(tmp_path / "bad")]) == 2
    assert "names no slice" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_propagation_looks_closer_through_each_slices_window(lite, case_stack, tmp_path):
    """With ``look_closer`` SAM reads each slice's window round the labelled heart: the
    masks stay in slice pixels, each proposal records its window, the scar is followed as
    well as on the whole slice, and windows given (the proposals') are the ones read."""
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.proposals.heart import stack_views
    from napari_yolosam.view import View

    stack = case_stack
    scar = np.isin(stack.labels, (3, 4))
    whole = drive(propagate(stack, lite, 3, scar[3], look_closer=False)).masks()
    cache = EmbeddingCache()
    close = drive(propagate(stack, lite, 3, scar[3], cache=cache, look_closer=True))
    masks = close.masks()
    reached = [i for i in range(6) if i != 3 and masks[i].any()]
    assert len(reached) >= 3
    for i in reached:
        view = View.from_dict(close.slices[i].view)
        assert view.source == "label" and view.zoom > 1.5
        assert masks[i].shape == stack.shape[1:]
    near = np.mean([dice(masks[i], scar[i]) for i in reached])
    far = np.mean([dice(whole[i], scar[i]) for i in reached if whole[i].any()])
    assert near > 0.75 and near > far - 0.05, (near, far)
    assert close.settings["look_closer"] is True
    # the windows given are the ones read: the proposals' own, with no new encoder pass
    views = stack_views(stack)
    before = cache.stats.encoded
    again = drive(propagate(stack, lite, 3, scar[3], cache=cache, views=views, look_closer=True))
    assert cache.stats.encoded == before and np.array_equal(again.masks(), masks)
    shifted = [View(v.top + 4, v.left, v.size, v.shape, v.source) for v in views]
    drive(propagate(stack, lite, 3, scar[3], cache=cache, views=shifted, look_closer=True))
    assert cache.stats.encoded > before, "other windows, other pixels: encoded"
    with pytest.raises(ValueError, match="windows for a stack"):
        drive(propagate(stack, lite, 3, scar[3], views=views[:2], look_closer=True))
