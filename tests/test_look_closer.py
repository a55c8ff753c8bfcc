"""Look closer: each slice's window round the heart, and proposals made through it."""

import json

import numpy as np
from scipy import ndimage as ndi

from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.progress import drive
from napari_yolosam.proposals.core import prompt_slice, propose
from napari_yolosam.proposals.heart import find_views, mask_box
from napari_yolosam.view import View

SHAPE = (256, 256)


def _box(cx, cy, side=40):
    return np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)


def test_label_anatomy_comes_first_then_the_detector():
    heart = np.zeros(SHAPE, bool)
    heart[100:150, 90:130] = True
    views = find_views([SHAPE] * 2, ["a", "a"], [heart, None], [_box(20, 20), _box(120, 125)])
    assert views[0].source == "label" and views[1].source == "detector"
    assert np.array_equal(mask_box(heart), [90, 100, 130, 150])
    x0, y0, x1, y1 = views[0].box
    assert x0 <= 90 and y0 <= 100 and x1 >= 130 and y1 >= 150, "the window holds the heart"


def test_one_bad_detector_box_does_not_lose_the_heart():
    boxes = [_box(120, 125), _box(122, 124), _box(30, 220), _box(121, 127), _box(119, 126)]
    views = find_views([SHAPE] * 5, ["a"] * 5, [None] * 5, boxes)
    centre = views[2].box[:2] + views[2].size / 2
    assert np.hypot(*(centre - (121, 125))) < 4, "the stray box is outvoted by its neighbours"
    assert all(v.source == "detector" for v in views)


def test_slices_without_a_box_borrow_a_neighbours_window_within_their_case():
    boxes = [None, _box(120, 125), None, None]
    views = find_views([SHAPE] * 4, ["a", "a", "a", "b"], [None] * 4, boxes)
    assert views[0].source == "neighbours" and views[0].box.tolist() == views[1].box.tolist()
    assert views[2].source == "neighbours"
    assert views[3].is_whole, "another patient's heart is never borrowed"


def test_propose_looks_closer_with_the_labels_anatomy(tiny_segmenter, phantom, tmp_path):
    from napari_yolosam.proposals.io import save_proposals

    stack = phantom.stack
    cache = EmbeddingCache()
    close = drive(propose(stack, tiny_segmenter, None, cache=cache, look_closer=True))
    whole = drive(propose(stack, tiny_segmenter, None, cache=EmbeddingCache(), look_closer=False))
    myocardium = stack.spec.myocardium_mask(stack.labels)
    for i, (near, far) in enumerate(zip(close.slices, whole.slices, strict=True)):
        assert near.mask.shape == far.mask.shape == stack.shape[1:]
        assert far.view is None
        if myocardium[i].any():
            view = View.from_dict(near.view)
            assert view.source == "label" and view.zoom > 1
            allowed = ndi.binary_dilation(myocardium[i], iterations=2)
            assert not (near.mask & ~allowed).any(), "scar stays in the label's myocardium"
    assert close.settings["look_closer"] is True
    assert any(
        not np.array_equal(a.mask, b.mask) for a, b in zip(close.slices, whole.slices, strict=True)
    )
    save_proposals(close, stack, tmp_path / "props")
    records = json.loads((tmp_path / "props" / "prompts.json").read_text())["slices"]
    assert [r["view"] for r in records] == [s.view for s in close.slices]


def test_whole_slice_proposals_are_unchanged_by_the_view_path(tiny_segmenter, phantom):
    image = phantom.stack.images[1]
    box = np.array([[30, 30, 90, 90]], np.float32)
    cache = EmbeddingCache()
    plain = prompt_slice(tiny_segmenter, cache, image, boxes=box)
    through = prompt_slice(tiny_segmenter, cache, image, boxes=box, view=View.whole(image.shape))
    assert np.array_equal(plain.logits, through.logits)
    view = View(16, 20, 64, image.shape, "label")
    close = prompt_slice(tiny_segmenter, cache, image, boxes=box, view=view)
    assert close.masks.shape == plain.masks.shape
    assert cache.stats.encoded == 2, "one encoder pass for the slice, one for its window"


def test_cli_propose_records_each_slices_window(phantom_folder, tmp_path):
    from napari_yolosam.cli import main

    out = tmp_path / "props"
    args = [
        "propose",
        "--images",
        str(phantom_folder),
        "--detector",
        "none",
        "--segmenter",
        "tiny",
    ]
    assert (
        main([*args, "--look-closer", "--no-head-scar", "--no-disk-cache", "--out", str(out)]) == 0
    )
    records = json.loads((out / "prompts.json").read_text())
    assert records["settings"]["look_closer"] is True
    assert records["settings"]["head_scar"] is False  # on by default (defaults.HEAD_SCAR)
    assert any(r["view"] and r["view"]["source"] == "label" for r in records["slices"])


def test_embedding_the_windows_serves_propose_without_another_pass(tiny_segmenter, phantom):
    from napari_yolosam.models.embeddings import embed_stack
    from napari_yolosam.proposals.heart import stack_views

    stack = phantom.stack
    cache = EmbeddingCache()
    views = stack_views(stack)
    assert all(v.source == "label" for v in views)
    images = [stack.crop(i, stack.images[i]) for i in range(len(stack))]
    assert drive(embed_stack(tiny_segmenter, images, cache, views=views)) == len(stack)
    before = cache.stats.encoded
    drive(propose(stack, tiny_segmenter, None, cache=cache, look_closer=True))
    assert cache.stats.encoded == before, "propose reads the windows embed encoded"


def test_cli_embed_looks_closer(phantom_folder, tmp_path, capsys):
    from napari_yolosam.cli import main

    args = ["embed", "--images", str(phantom_folder), "--segmenter", "tiny"]
    assert main([*args, "--look-closer", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    windows = int(out.split("; ")[-1].split(" windows round the heart")[0])
    assert windows > 0, out


def test_a_click_looks_through_the_window_its_proposal_used(tiny_segmenter, phantom):
    """The annotator's prompt on a slice reads the embedding its proposal made (no new
    encoder pass) and records that window; slice_windows prefers the proposals' windows."""
    from napari_yolosam.proposals.heart import heart_view, slice_windows
    from napari_yolosam.proposals.prompts import user_proposal

    stack = phantom.stack
    cache = EmbeddingCache()
    close = drive(propose(stack, tiny_segmenter, None, cache=cache, look_closer=True))
    i = next(k for k, s in enumerate(close.slices) if s.view)
    view = heart_view(stack, i, close.slices[i])
    assert view == View.from_dict(close.slices[i].view)
    before = cache.stats.encoded
    image = stack.crop(i, stack.images[i])
    box = np.array([[100, 100, 140, 140]], np.float32)
    output = prompt_slice(tiny_segmenter, cache, image, boxes=box, view=view)
    assert cache.stats.encoded == before, "the proposal's window was encoded already"
    proposal = user_proposal(output, box, stack.shape[1:], view)
    assert proposal.view == close.slices[i].view and proposal.mask.shape == stack.shape[1:]
    assert user_proposal(output, box, stack.shape[1:]).view is None
    moved = View(view.top + 3, view.left - 2, view.size + 5, view.shape, "detector")
    close.slices[i].view = moved.to_dict()
    windows = slice_windows(stack, close)
    assert windows[i] == moved, "a slice's proposal window comes before the label's"
    assert all(w.source == "label" for k, w in enumerate(windows) if k != i)


def test_a_patient_without_any_heart_box_stays_whole():
    views = find_views([SHAPE] * 3, ["a"] * 3, [None] * 3, [None] * 3)
    assert all(v.is_whole for v in views), "a whole slice is never lent as a window"


def test_embed_encodes_the_heart_finders_windows_for_propose(phantom):
    """Without labels, embed encodes the whole slices the heart finder reads and then the
    windows round the heart it finds: propose then reads both without another pass."""
    import torch

    from napari_yolosam.models.heart import HeartFinder
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.proposals.heart import embed_views

    seg = Segmenter.build("tiny", seed=5)
    seg.heart = HeartFinder.build(seg.embedding_shape[1])
    with torch.no_grad():  # a finder that sees the heart everywhere: the window is placed
        seg.heart.net[-1].bias.fill_(10.0)
    blind = phantom.stack.with_labels(None)
    n = len(blind)
    cache = EmbeddingCache()
    passes, views = drive(embed_views(blind, seg, cache, first=2))
    assert passes == cache.stats.encoded == 2 * n, "each slice whole, then its window"
    assert all(v.source == "heart" for v in views)
    found = drive(propose(blind, seg, None, cache, look_closer=True))
    assert cache.stats.encoded == 2 * n, "propose read what embed encoded"
    assert [View.from_dict(s.view) for s in found.slices] == views
