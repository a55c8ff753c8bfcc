"""The heart finder (#27 point 2): a head on the segmenter's embeddings that finds the LV,
trained on the labels' myocardium, saved in the segmenter's checkpoint, placing the
window where no label has a heart."""

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi

from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.models.heart import CHANNELS, SCAR_CHANNELS, HeartFinder
from napari_yolosam.models.segmenter import Segmenter
from napari_yolosam.progress import drive
from napari_yolosam.training.data import Augmentation, bbox
from napari_yolosam.training.heart import train_anatomy, train_heart
from napari_yolosam.view import View


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union)


def _blind(hearts, trained):
    """LiteMedSAM with the trained finder, its cache, the stack without labels, and the
    slices of the patient the finder never saw."""
    finder, cache, _ = trained
    seg = Segmenter.from_spec("lite_medsam")
    seg.heart = finder
    unseen = [i for i, c in enumerate(hearts.cases) if c == hearts.cases[-1]]
    return seg, cache, hearts.with_labels(None), unseen


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
    seg.anatomy = HeartFinder.build(256, hidden=8, seed=5, channels=SCAR_CHANNELS)
    path = seg.save(tmp_path / "seg.pth")
    back = Segmenter.load(path)
    for head in ("heart", "anatomy"):
        mine, theirs = getattr(seg, head).net.state_dict(), getattr(back, head).net.state_dict()
        for (name, a), b in zip(mine.items(), theirs.values(), strict=True):
            assert torch.equal(a, b), (head, name)
    assert back.anatomy.hidden == 8
    assert back.anatomy.channels == SCAR_CHANNELS and back.anatomy.reads_scar
    assert back.heart.channels == CHANNELS and not back.heart.reads_scar
    plain = Segmenter.load(tiny_segmenter.save(tmp_path / "plain.pth"))
    assert plain.heart is None and plain.anatomy is None


def test_a_damaged_finder_is_named_and_refused(tmp_path):
    good = HeartFinder.build(256).to_state()
    bad_channels = {**good, "channels": ["lv"]}
    scar_first = {**HeartFinder.build(256, channels=SCAR_CHANNELS).to_state()}
    scar_first["channels"] = ["scar", "lv", "blood_pool"]
    three_weights_two_names = {**HeartFinder.build(256, channels=SCAR_CHANNELS).to_state()}
    three_weights_two_names["channels"] = list(CHANNELS)
    bad_size = {**good, "in_channels": 64}
    bad_hidden = {**good, "hidden": 10**6}
    nan = {**good, "state_dict": {k: v.clone() for k, v in good["state_dict"].items()}}
    next(iter(nan["state_dict"].values())).fill_(float("nan"))
    cases = [
        (None, "without weights"),
        (bad_channels, "channels"),
        (scar_first, "channels"),
        (three_weights_two_names, "shape"),
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

    seg, cache, blind, unseen = _blind(hearts, trained)
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


@pytest.fixture(scope="module")
def reader(lite, hearts, trained):
    """The anatomy head: the same head trained on jittered windows round the labelled hearts."""
    _, cache, _ = trained
    learn = [i for i, c in enumerate(hearts.cases) if c != hearts.cases[-1]]
    before = cache.stats.encoded
    head = drive(train_anatomy(lite, hearts, learn, Augmentation(), cache, steps=150))
    assert cache.stats.encoded - before == len(learn), "one window a training slice"
    return head


def test_the_anatomy_head_reads_the_myocardium_inside_the_window(lite, hearts, trained, reader):
    """Without labels, the myocardium read inside the finder's window by the head trained on
    windows beats SAM's myocardium from the finder's LV box in the same window (phantom:
    about 0.85 against 0.45), and its LV box is what prompts SAM for scar (``lv_scar``)."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.proposals.core import propose

    seg, cache, blind, unseen = _blind(hearts, trained)
    sam = drive(propose(blind, seg, None, cache, indices=unseen, lv_scar=True))
    seg.anatomy = reader
    read = drive(propose(blind, seg, None, cache, indices=unseen, lv_scar=True))
    sam_dice, read_dice = [], []
    for i in unseen:
        assert read.slices[i].view == sam.slices[i].view, "the same window: no extra pass"
        truth = hearts.spec.myocardium_mask(hearts.labels[i])
        sam_dice.append(dice(sam.slices[i].myocardium, truth))
        read_dice.append(dice(read.slices[i].myocardium, truth))
        view = View.from_dict(read.slices[i].view)
        image = hearts.crop(i, hearts.images[i])
        lv, blood = reader.anatomy(cache.get(seg, view.crop(image)), view, seg.img_size)
        assert np.array_equal(read.slices[i].myocardium, lv & ~blood)
        lv_prompt = read.slices[i].boxes[read.slices[i].sources.index("lv")]
        np.testing.assert_array_equal(lv_prompt, bbox(lv))
    assert np.mean(read_dice) > 0.75 and np.mean(read_dice) > np.mean(sam_dice) + 0.2, (
        read_dice,
        sam_dice,
    )


def test_the_anatomy_head_reads_the_scar_without_labels(lite, hearts, trained, reader):
    """The anatomy head's scar channel: the one "is there scar here" decision made without
    labels. On the unseen patient with no labels, each scar region it reads (inside its LV's
    rim) prompts SAM (source ``head``); ``head_scar=False`` turns it off. With labels the
    head prompts nothing, even where a label missed its slice's scar."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.proposals.core import label_boxes, propose

    assert reader.channels == SCAR_CHANNELS
    seg, cache, blind, unseen = _blind(hearts, trained)
    seg.anatomy = reader
    found = drive(propose(blind, seg, None, cache, indices=unseen, head_scar=True))
    prompted = [i for i in unseen if "head" in found.slices[i].sources]
    assert len(prompted) >= 3, [found.slices[i].sources for i in unseen]  # all 4 have scar
    for i in prompted:
        record = found.slices[i]
        view = View.from_dict(record.view)
        reading = reader.read(cache.get(seg, view.crop(blind.images[i])), view, seg.img_size)
        assert not (reading.scar & ~ndi.binary_dilation(reading.lv, iterations=2)).any()
        np.testing.assert_array_equal(record.boxes, label_boxes(reading.scar))
        assert np.allclose(record.scores, reading.scar_peak) and reading.scar_peak >= 0.5
    scores = [dice(found.slices[i].mask, hearts.scar()[i]) for i in unseen]
    assert np.mean(scores) > 0.4, scores
    off = drive(propose(blind, seg, None, cache, indices=unseen, head_scar=False))
    assert not any(off.slices[i].mask.any() for i in unseen)
    assert found.settings["head_scar"] is True and off.settings["head_scar"] is False

    missed = prompted[0]
    labels = hearts.labels.copy()
    labels[missed][hearts.scar()[missed]] = 2  # the label missed this slice's scar
    labelled = drive(
        propose(hearts.with_labels(labels), seg, None, cache, indices=unseen, head_scar=True)
    )
    for i in unseen:
        assert set(labelled.slices[i].sources) == (set() if i == missed else {"label"})


def test_binary_labels_take_the_anatomy_from_the_heads(lite, hearts, trained, reader):
    """Scar-only labels go through the same path (#27 point 5): the finder places each
    window, the anatomy head gives the myocardium, the label's scar regions prompt SAM
    inside the window, and the scar stays inside the head's myocardium."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.proposals.core import propose

    seg, cache, _, unseen = _blind(hearts, trained)
    seg.anatomy = reader
    binary = hearts.with_labels(hearts.scar().astype(np.uint8), LabelSpec.binary())
    found = drive(propose(binary, seg, None, cache, indices=unseen, look_closer=True))
    scarred = [i for i in unseen if hearts.scar()[i].any()]
    assert scarred
    for i in unseen:
        record = found.slices[i]
        assert View.from_dict(record.view).source == "heart"
        truth = hearts.spec.myocardium_mask(hearts.labels[i])
        assert dice(record.myocardium, truth) > 0.6
        assert not (record.mask & ~ndi.binary_dilation(record.myocardium, iterations=2)).any()
    assert np.mean([dice(found.slices[i].mask, hearts.scar()[i]) for i in scarred]) > 0.5


def test_the_anatomy_head_is_not_used_on_the_whole_slice(lite, hearts, reader):
    """Trained on windows, the head reads nothing where SAM sees the whole slice."""
    from napari_yolosam.proposals.core import read_window

    seg = Segmenter.from_spec("lite_medsam")
    seg.anatomy = reader
    image = hearts.crop(0, hearts.images[0])
    assert read_window(seg, EmbeddingCache(), image, View.whole(image.shape)) is None


@pytest.mark.parametrize("mode", ["decoder", "neck"])
def test_binary_labels_keep_heads_only_while_the_encoder_stays(hearts, mode, tmp_path):
    """Binary labels teach no heads. Decoder training keeps the segmenter's heads (the
    embeddings they read do not change); training the encoder drops them from the best
    checkpoint and says so, rather than saving heads that read the old embeddings."""
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    binary = hearts.with_labels(hearts.scar().astype(np.uint8), LabelSpec.binary())
    seg = Segmenter.build("tiny", seed=6)
    seg.random_encoder = False  # stands for a pretrained encoder
    seg.heart, seg.anatomy = HeartFinder.build(256, seed=1), HeartFinder.build(256, seed=2)
    weights = seg.heart.net.state_dict()["0.weight"].clone()
    config = SamTrainConfig(
        epochs=1, batch_size=4, mode=mode, val_fraction=0.34, max_steps_per_epoch=2
    )
    events = []
    result = drive(train_segmenter(binary, seg, config, tmp_path, cache=EmbeddingCache()),
                   events.append)  # fmt: skip
    best = Segmenter.load(result.best_path)
    dropped = [e for e in events if "heads dropped" in e.message]
    if mode == "decoder":
        assert best.heart is not None and best.anatomy is not None and not dropped
        assert torch.equal(best.heart.net.state_dict()["0.weight"], weights)
    else:
        assert best.heart is None and best.anatomy is None and len(dropped) == 1
        assert dropped[0].values == {"heads": "dropped"}, "what the CLI's bar shows"
