"""The heart finder (#27 point 2): a head on the segmenter's embeddings that finds the LV,
trained on the labels' myocardium, saved in the segmenter's checkpoint, placing the
window where no label has a heart."""

import numpy as np
import pytest
import torch

from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.models.heart import HeartFinder
from napari_yolosam.models.segmenter import Segmenter
from napari_yolosam.progress import drive
from napari_yolosam.training.data import bbox
from napari_yolosam.training.heart import train_heart
from napari_yolosam.view import View


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union)


@pytest.fixture(scope="module")
def hearts():
    """Three phantom patients: two to learn from, one the finder has never seen."""
    from napari_yolosam.phantom.make import make_phantom

    ph = make_phantom(n_slices=4, n_cases=3, shape=(128, 128), corrupt=0.0, seed=21)
    return ph.stack.with_labels(ph.truth.copy())


@pytest.fixture(scope="module")
def trained(lite, hearts):
    cache = EmbeddingCache()
    events = []
    learn = [i for i, c in enumerate(hearts.cases) if c != hearts.cases[-1]]
    finder = drive(train_heart(lite, hearts, learn, cache, steps=150), events.append)
    return finder, cache, events


def test_the_finder_finds_the_heart_of_an_unseen_patient(lite, hearts, trained):
    finder, cache, events = trained
    assert {e.stage for e in events} == {"heart-embed", "heart"}
    assert events[-1].values["loss"] < events[len(events) // 2].values["loss"] * 1.5
    unseen = [i for i, c in enumerate(hearts.cases) if c == hearts.cases[-1]]
    ious = []
    for i in unseen:
        image = hearts.crop(i, hearts.images[i])
        box = finder.lv_box(cache.get(lite, image), image.shape, lite.img_size)
        truth = bbox(hearts.spec.lv_mask(hearts.labels[i]))
        ious.append(0.0 if box is None else _iou(box, truth))
    assert np.mean(ious) > 0.6, ious
    assert finder.info["slices"] == 8 and finder.info["steps"] == 150


def test_binary_labels_teach_no_heart(lite, hearts):
    from napari_yolosam.labelspec import LabelSpec

    binary = hearts.with_labels(hearts.scar().astype(np.uint8), LabelSpec.binary())
    assert drive(train_heart(lite, binary, [0, 1])) is None


def test_the_finder_is_saved_in_the_segmenters_checkpoint(tiny_segmenter, tmp_path):
    seg = Segmenter.build("tiny", seed=3)
    seg.heart = HeartFinder.build(256, seed=4)
    path = seg.save(tmp_path / "seg.pth")
    back = Segmenter.load(path)
    assert back.heart is not None
    for (name, a), b in zip(
        seg.heart.net.state_dict().items(), back.heart.net.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert Segmenter.load(tiny_segmenter.save(tmp_path / "plain.pth")).heart is None


def test_a_damaged_finder_is_named_and_refused(tmp_path):
    good = HeartFinder.build(256).to_state()
    bad_channels = {**good, "channels": ["lv"]}
    bad_size = {**good, "in_channels": 64}
    bad_hidden = {**good, "hidden": 10**6}
    nan = {**good, "state_dict": {k: v.clone() for k, v in good["state_dict"].items()}}
    next(iter(nan["state_dict"].values())).fill_(float("nan"))
    cases = [
        (None, "without weights"),
        (bad_channels, "channels"),
        (bad_size, "64-channel"),
        (bad_hidden, "hidden channels"),
        (nan, "non-finite"),
    ]
    for data, words in cases:
        with pytest.raises(CheckpointError, match=words) as caught:
            HeartFinder.from_state(data, tmp_path / "seg.pth", 256)
        assert "seg.pth" in str(caught.value)


def test_without_labels_the_finder_places_the_window(lite, hearts, trained):
    """No labels, no detector: the finder's LV box places each window (source ``heart``),
    and SAM's myocardium is proposed from that box."""
    from napari_yolosam.proposals.core import propose

    finder, cache, _ = trained
    seg = Segmenter.from_spec("lite_medsam")
    seg.heart = finder
    blind = hearts.with_labels(None)
    unseen = [i for i, c in enumerate(hearts.cases) if c == hearts.cases[-1]]
    found = drive(propose(blind, seg, None, cache, indices=unseen, look_closer=True))
    for i in unseen:
        view = View.from_dict(found.slices[i].view)
        assert view.source == "heart"
        heart = bbox(hearts.spec.lv_mask(hearts.labels[i]))
        x0, y0, x1, y1 = view.box
        cx, cy = (heart[0] + heart[2]) / 2, (heart[1] + heart[3]) / 2
        assert x0 < cx < x1 and y0 < cy < y1, "the heart is in its window"
        assert found.slices[i].myocardium is not None and found.slices[i].myocardium.any()
    plain = drive(propose(blind, lite, None, EmbeddingCache(), indices=unseen, look_closer=True))
    assert all(plain.slices[i].view is None for i in unseen), "no finder, no detector: whole"
