import numpy as np
import pytest

from napari_yolosam.io.yolo_boxes import regions_to_boxes
from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.progress import Stopped, drive
from napari_yolosam.proposals.core import label_boxes, prompt_slice, propose
from napari_yolosam.proposals.io import load_proposals, save_proposals
from napari_yolosam.regions import scar_regions
from napari_yolosam.stack import Stack
from test_embeddings import CountingSegmenter


def test_propose_end_to_end(tiny_segmenter, tiny_detector, phantom):
    seg = CountingSegmenter(tiny_segmenter)
    cache = EmbeddingCache()
    events = []
    proposals = drive(
        propose(phantom.stack, seg, tiny_detector, cache=cache, conf=0.001), events.append
    )
    n = len(phantom.stack)
    assert [e.step for e in events] == list(range(1, n + 1)) and events[-1].total == n
    assert len(proposals) == n and seg.calls == n
    masks, probs = proposals.masks(), proposals.probabilities()
    assert masks.shape == probs.shape == phantom.stack.shape
    assert (
        masks.dtype == bool and probs.dtype == np.float32 and 0 <= probs.min() and probs.max() <= 1
    )
    for i, sp in enumerate(proposals.slices):
        assert sp.status == "ok"
        assert (
            len(sp.boxes)
            == len(sp.scores)
            == len(sp.iou)
            == len(sp.sources)
            == len(sp.prompt_masks)
        )
        assert sp.detector_count > 1
        n_label = len(label_boxes(phantom.stack.scar()[i]))
        assert sp.sources.count("label") == n_label
        assert np.isnan(sp.scores[[s == "label" for s in sp.sources]]).all()
        np.testing.assert_array_equal(sp.mask, sp.prompt_masks.any(0))
    assert proposals.settings["segmenter_fingerprint"] == tiny_segmenter.fingerprint


def test_lv_box_prompts_for_scar_on_request(tiny_segmenter, phantom):
    import torch

    from napari_yolosam.models.detector import Detector

    # an untrained YOLO whose LV class scores high everywhere (its class bias raised)
    detector = Detector.build("yolo11n.yaml", names=("scar", "lv"), imgsz=128, seed=0)
    with torch.no_grad():
        for branch in detector.yolo.model.model[-1].cv3:
            branch[-1].bias[1] = 6.0
    detector.weights_changed()
    stack = phantom.stack.with_labels(None)
    plain = drive(propose(stack, tiny_segmenter, detector, conf=0.001))
    with_lv = drive(propose(stack, tiny_segmenter, detector, conf=0.001, lv_scar=True))
    assert not any("lv" in sp.sources for sp in plain.slices)
    assert with_lv.settings["lv_scar"] is True
    found_lv = [b.myocardium is not None for b in with_lv.slices]
    assert any(found_lv), "the LV box is found"
    for a, b, lv in zip(plain.slices, with_lv.slices, found_lv, strict=True):
        assert b.sources.count("lv") == int(lv), "the best LV box, where found, prompts for scar"
        assert b.detector_count == a.detector_count, "the LV prompt is not a scar box"
        if lv:
            k = b.sources.index("lv")
            assert b.scores[k] > 0 and np.isfinite(b.scores[k])


def test_the_best_lv_box_counts_below_the_validated_threshold(tiny_segmenter, phantom):
    """Every short-axis slice crosses the LV: its best box is the anatomy above LV_CONF,
    whatever the class's validated threshold; ``lv_conf=None`` keeps that threshold."""
    import argparse

    import torch

    from napari_yolosam.cli.options import lv_conf_choice
    from napari_yolosam.defaults import LV_CONF
    from napari_yolosam.models.detector import Detector

    detector = Detector.build("yolo11n.yaml", names=("scar", "lv"), imgsz=128, seed=0)
    with torch.no_grad():
        for branch in detector.yolo.model.model[-1].cv3:
            branch[-1].bias[1] = 2.0  # LV scores well above LV_CONF, below 1
    detector.weights_changed()
    detector.thresholds = {"scar": 1.0, "lv": 1.0}  # validated: nothing passes
    stack = phantom.stack.with_labels(None)
    strict = drive(propose(stack, tiny_segmenter, detector, lv_scar=True, lv_conf=None))
    assert all(sp.myocardium is None and "lv" not in sp.sources for sp in strict.slices)
    default = drive(propose(stack, tiny_segmenter, detector, lv_scar=True))
    assert default.settings["lv_conf"] == LV_CONF
    assert all(sp.sources.count("lv") == 1 for sp in default.slices), "one LV box per slice"
    assert all(sp.myocardium is not None for sp in default.slices)
    assert not any("detector" in sp.sources for sp in default.slices), "scar keeps its threshold"
    assert lv_conf_choice("validated") is None and lv_conf_choice("0.3") == 0.3
    with pytest.raises(argparse.ArgumentTypeError, match="0..1"):
        lv_conf_choice("2")


def test_label_prompts_box_scar_regions_as_in_training(tiny_segmenter, phantom):
    labels = np.zeros(phantom.stack.shape, np.uint8)
    labels[0, 10:20, 10:20] = 3
    labels[0, 60:70, 80:90] = 3
    labels[0, 60:70, 91:95] = 3  # a fragment one pixel from the last: the same region
    labels[0, 100, 30] = 3  # a speck: no box, as nobody boxes a speck in training
    stack = phantom.stack.with_labels(labels)
    proposals = drive(propose(stack, tiny_segmenter, None))
    first = proposals.slices[0]
    assert first.sources == ["label", "label"] and first.status == "no_detector"
    np.testing.assert_allclose(first.boxes, [[10, 10, 20, 20], [80, 60, 95, 70]])  # tight
    regions, _ = scar_regions(labels[0] == 3)
    np.testing.assert_allclose(label_boxes(labels[0] == 3), regions_to_boxes(regions))
    np.testing.assert_allclose(label_boxes(labels[0] == 3, margin=3)[0], [7, 7, 23, 23])
    assert proposals.slices[1].sources == [] and not proposals.slices[1].mask.any()


def test_no_detection_and_neighbour_carry(tiny_segmenter, tiny_detector, phantom):
    stack = phantom.stack.with_labels(None)
    plain = drive(propose(stack, tiny_segmenter, tiny_detector, conf=0.99))
    assert {s.status for s in plain.slices} == {"no_detection"}
    assert not plain.masks().any() and plain.probabilities().max() == 0


def test_stop_between_slices(tiny_segmenter, phantom):
    cache = EmbeddingCache()
    seg = CountingSegmenter(tiny_segmenter)
    with pytest.raises(Stopped):
        drive(propose(phantom.stack, seg, None, cache=cache), should_stop=lambda: seg.calls >= 2)
    assert seg.calls == 2


def test_prompting_a_slice_twice_encodes_once(tiny_segmenter, phantom):
    seg = CountingSegmenter(tiny_segmenter)
    cache = EmbeddingCache()
    image = phantom.stack.images[4]
    a = prompt_slice(seg, cache, image, boxes=np.array([[20, 20, 80, 80]]))
    b = prompt_slice(
        seg,
        cache,
        image,
        boxes=np.array([[20, 20, 70, 90]]),
        points=np.array([[50, 50]]),
        point_labels=np.array([0]),
    )
    assert seg.calls == 1 and a.masks.shape == b.masks.shape == (1, 128, 128)


def test_padded_slices_keep_original_frame(tiny_segmenter):
    rng = np.random.default_rng(0)
    images = np.zeros((2, 100, 90), np.float32)
    images[0, :80, :90] = rng.random((80, 90))
    images[1] = rng.random((100, 90))
    labels = np.zeros(images.shape, np.uint8)
    labels[0, 30:40, 30:40] = 3
    stack = Stack(images, labels, names=["a.png", "b.png"], original_shapes=[(80, 90), (100, 90)])
    proposals = drive(propose(stack, tiny_segmenter, None))
    assert (
        not proposals.slices[0].mask[80:].any() and proposals.slices[0].probability[80:].max() == 0
    )


def test_save_and_load(tiny_segmenter, tiny_detector, phantom, tmp_path):
    proposals = drive(propose(phantom.stack, tiny_segmenter, tiny_detector, conf=0.001))
    out = save_proposals(proposals, phantom.stack, tmp_path / "props")
    assert (out / "summary.csv").read_text().splitlines()[0].startswith("image,case,status")
    loaded = load_proposals(out, phantom.stack)
    np.testing.assert_array_equal(loaded.masks(), proposals.masks())
    assert np.abs(loaded.probabilities() - proposals.probabilities()).max() < 1e-3
    assert (
        loaded.settings["probabilities"]
        and loaded.slices[0].sources == proposals.slices[0].sources
    )
    # any folder of masks named like the slices (another model's output)
    external = load_proposals(out / "masks", phantom.stack)
    assert not external.settings["probabilities"]
    np.testing.assert_array_equal(external.masks(), proposals.masks())


def test_lv_box_gives_myocardium_and_bounds_scar(
    tiny_segmenter, tiny_detector, phantom, monkeypatch
):
    from napari_yolosam.models.detector import Detections

    fixed = Detections(
        np.array([[30, 30, 60, 60], [20, 20, 100, 100], [25, 25, 95, 95]], np.float32),
        np.array([0.9, 0.8, 0.6], np.float32),
        np.array([0, 1, 1]),
    )
    monkeypatch.setattr(tiny_detector, "predict", lambda images, **kw: [fixed for _ in images])
    stack = phantom.stack.with_labels(None)
    proposals = drive(propose(stack, tiny_segmenter, tiny_detector, indices=[0, 1]))
    myo = proposals.myocardium()
    assert myo is not None and myo.shape == stack.shape
    first = proposals.slices[0]
    assert first.sources == ["detector"] and first.scores[0] == pytest.approx(0.9)
    if myo[0].any():
        from scipy import ndimage as ndi

        assert not (first.mask & ~ndi.binary_dilation(myo[0], iterations=2)).any()
    assert proposals.slices[2].status == "not_proposed"


def test_neighbour_box_carried(tiny_segmenter, tiny_detector, phantom, monkeypatch):
    from napari_yolosam.models.detector import Detections

    found = Detections(
        np.array([[30, 30, 60, 60]], np.float32), np.array([0.7], np.float32), np.array([0])
    )
    empty = Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, int))
    answers = iter([found, empty, empty])
    monkeypatch.setattr(tiny_detector, "predict", lambda images, **kw: [next(answers)])
    stack = phantom.stack.with_labels(None)
    proposals = drive(
        propose(stack, tiny_segmenter, tiny_detector, carry_neighbour=True, indices=[0, 1, 2])
    )
    assert proposals.slices[1].status == "no_detection" and proposals.slices[1].sources == [
        "neighbour"
    ]
    assert proposals.slices[2].sources == [], "only a real detection is carried on"


def test_intensity_boxes_find_enhanced_myocardium(phantom):
    from napari_yolosam.proposals.core import intensity_boxes

    stack = phantom.stack
    truth = phantom.truth
    for i in range(len(stack)):
        labels = truth[i]
        myo = stack.spec.myocardium_mask(labels)
        scar = stack.spec.scar_mask(labels)
        boxes = intensity_boxes(stack.images[i], myo, stack.spec.blood_pool_mask(labels))
        if scar.sum() >= 50:  # a bright scar in a nulled myocardium is boxed
            covered = np.zeros_like(scar)
            for x0, y0, x1, y1 in boxes.astype(int):
                covered[y0 : y1 + 1, x0 : x1 + 1] = True
            assert (covered & scar).sum() >= 0.8 * scar.sum(), i
    assert intensity_boxes(stack.images[0], np.zeros(stack.shape[1:], bool)).shape == (0, 4)


def test_intensity_prompts_come_from_the_image_not_the_label(tiny_segmenter, phantom):
    from napari_yolosam.proposals import INDEPENDENT_SOURCES, intensity_boxes

    # the label's scar erased: label prompts vanish, intensity prompts remain
    labels = phantom.truth.copy()
    labels[np.isin(labels, (3, 4))] = 2
    stack = phantom.stack.with_labels(labels)
    plain = drive(propose(stack, tiny_segmenter, None, indices=[0, 1]))
    found = drive(propose(stack, tiny_segmenter, None, indices=[0, 1], intensity=True))
    assert "intensity" in INDEPENDENT_SOURCES
    for i in (0, 1):
        assert plain.slices[i].sources == []
        sp = found.slices[i]
        expected = intensity_boxes(stack.images[i], stack.myocardium()[i], labels[i] == 1)
        assert sp.sources == ["intensity"] * len(expected)
        np.testing.assert_allclose(sp.boxes, expected)
        # scar is kept to the label's myocardium (dilated 2 px), not the model's
        from scipy import ndimage as ndi

        allowed = ndi.binary_dilation(stack.myocardium()[i], iterations=2)
        assert not (sp.mask & ~allowed).any()
    assert found.settings["intensity"] is True and plain.settings["intensity"] is False


def test_slice_prompts_from_layer_coordinates():
    from napari_yolosam.proposals.prompts import slice_prompts

    rectangle = np.array([[2, 10, 20], [2, 10, 60], [2, 40, 60], [2, 40, 20]], float)
    other = rectangle.copy()
    other[:, 0] = 3
    positive = np.array([[2, 25, 30], [3, 5, 5]], float)
    negative = np.array([[2, 12, 58]], float)
    box, points, labels = slice_prompts([rectangle, other], positive, negative, 2)
    np.testing.assert_array_equal(box, [[20, 10, 60, 40]])  # x0 y0 x1 y1 of slice 2's shape
    np.testing.assert_array_equal(points, [[30, 25], [58, 12]])  # x, y
    np.testing.assert_array_equal(labels, [1, 0])
    assert slice_prompts([rectangle], None, None, 5) == (None, None, None)
    # a 2D layer: every coordinate is on the slice; the last shape wins
    box2d, pts, _ = slice_prompts(
        [rectangle[:, 1:], rectangle[:2, 1:] + 1], positive[:1, 1:], None, 0
    )
    np.testing.assert_array_equal(box2d, [[21, 11, 61, 11]])
    np.testing.assert_array_equal(pts, [[30, 25]])


def test_user_prompt_becomes_the_slices_proposal(tiny_segmenter, phantom):
    from napari_yolosam.proposals.prompts import user_proposal, with_slice

    stack = phantom.stack
    cache = EmbeddingCache()
    box = np.array([[20, 20, 90, 90]], np.float32)
    output = prompt_slice(tiny_segmenter, cache, stack.images[1], boxes=box)
    proposal = user_proposal(output, box, stack.shape[1:])
    assert proposal.sources == ["user"] and proposal.mask.shape == stack.shape[1:]
    np.testing.assert_array_equal(proposal.mask, output.masks[0])
    proposals = with_slice(None, stack.names, 1, proposal)
    assert len(proposals) == len(stack) and proposals.slices[1] is proposal
    assert all(not s.mask.any() for k, s in enumerate(proposals.slices) if k != 1)
    empty = type(output)(output.masks[:0], output.logits[:0], output.iou[:0])
    assert user_proposal(empty, box, stack.shape[1:]) is None


def test_enhanced_extent_keeps_the_enhanced_regions_sam_touches():
    """SAM locates, the image sets the extent: a mask touching one enhanced region becomes that
    whole region; SAM's pixels on tissue that is not enhanced go; an enhanced region SAM did
    not touch is not added; logits match the masks."""
    from napari_yolosam.models.segmenter import PromptOutput
    from napari_yolosam.proposals import enhanced_extent

    rng = np.random.default_rng(0)
    image = (100 + rng.uniform(-1, 1, (64, 64))).astype(np.float32)  # no pixel above 2 SD
    myocardium = np.zeros((64, 64), bool)
    myocardium[10:54, 10:54] = True
    touched, untouched = np.zeros_like(myocardium), np.zeros_like(myocardium)
    touched[15:25, 15:30] = True
    untouched[40:48, 40:48] = True
    image[touched | untouched] = 200  # enhanced far above mean + 2 SD of the remote
    sam = np.zeros((1, 64, 64), bool)
    sam[0, 20:30, 25:35] = True  # overlaps the touched region, spills onto remote tissue
    logits = np.where(sam, 3.0, -3.0).astype(np.float32)
    out = enhanced_extent(PromptOutput(sam, logits, np.ones(1, np.float32)), image, myocardium)
    np.testing.assert_array_equal(out.union, touched)
    assert not (out.union & untouched).any()
    np.testing.assert_array_equal(out.logits[0] >= 0, out.masks[0])
    empty = PromptOutput(
        np.zeros((0, 64, 64), bool), np.zeros((0, 64, 64), np.float32), np.ones(0)
    )
    assert enhanced_extent(empty, image, myocardium) is empty


def test_propose_with_extent_changes_only_the_extent(tiny_segmenter, phantom):
    stack = phantom.stack
    from napari_yolosam.defaults import EXTENT

    plain = drive(propose(stack, tiny_segmenter, None, indices=[0, 1], extent=False))
    found = drive(propose(stack, tiny_segmenter, None, indices=[0, 1]))
    assert EXTENT and found.settings["extent"] is True and plain.settings["extent"] is False
    for i in (0, 1):
        assert found.slices[i].sources == plain.slices[i].sources, "the same prompts"
        if not plain.slices[i].mask.any():
            assert not found.slices[i].mask.any(), "no scar where SAM saw none"
