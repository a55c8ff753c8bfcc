"""The detector looks closer (#27 point 4): trained on the windows round the labelled hearts
that the segmenter's training sees, it reads each slice through its window and answers in
slice pixels; the checkpoint says so and proposals record it."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from napari_yolosam.io.yolo_boxes import read_yolo_file, yolo_to_boxes
from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.detector import Detector
from napari_yolosam.phantom.make import make_phantom
from napari_yolosam.progress import drive
from napari_yolosam.proposals import propose
from napari_yolosam.training.data import Augmentation, fixed_view
from napari_yolosam.training.yolo import detector_classes, slice_boxes, train_detector
from napari_yolosam.view import View


@pytest.fixture(scope="module")
def train_phantom():
    return make_phantom(n_slices=4, n_cases=4, shape=(96, 96), seed=12)


@pytest.fixture
def closer_detector():
    """An untrained yolo11n that reads windows (its boxes at a low threshold are many)."""
    det = Detector.build("yolo11n.yaml", names=("scar", "lv"), imgsz=128, seed=0)
    det.looks_closer = True
    return det


def test_reading_through_a_window_answers_in_slice_pixels(closer_detector, phantom):
    image = phantom.stack.images[0]
    h, w = image.shape
    for view in (View(20, 30, 64, (h, w), "heart"), View(-12, 80, 60, (h, w), "heart")):
        found = closer_detector.detect_in(image, view, conf=0.001)
        raw = closer_detector.predict([view.crop(image)], conf=0.001)[0]
        assert len(found) > 3 and len(raw) >= len(found)
        expected = np.clip(raw.boxes + [view.left, view.top] * 2, 0, [w, h, w, h])
        keep = (expected[:, 2] > expected[:, 0]) & (expected[:, 3] > expected[:, 1])
        np.testing.assert_allclose(found.boxes, expected[keep], atol=1e-4)
        np.testing.assert_array_equal(found.scores, raw.scores[keep])
        x0, y0, x1, y1 = view.box  # every box inside the window and the slice
        assert (found.boxes[:, [0, 2]] >= max(x0, 0) - 1e-3).all()
        assert (found.boxes[:, [1, 3]] >= max(y0, 0) - 1e-3).all()
        assert (found.boxes[:, 2] <= min(x1, w) + 1e-3).all()
        assert (found.boxes[:, 3] <= min(y1, h) + 1e-3).all()
    whole = closer_detector.detect_in(image, View.whole((h, w)), conf=0.001)
    np.testing.assert_allclose(
        whole.boxes, closer_detector.predict([image], conf=0.001)[0].boxes, atol=1e-4
    )


def test_a_whole_slice_detector_ignores_the_window(tiny_detector, phantom):
    image = phantom.stack.images[1]
    assert not tiny_detector.looks_closer
    found = tiny_detector.detect_in(image, View(20, 30, 64, image.shape, "heart"), conf=0.001)
    np.testing.assert_allclose(
        found.boxes, tiny_detector.predict([image], conf=0.001)[0].boxes, atol=1e-4
    )


def test_the_checkpoint_keeps_what_the_detector_reads(closer_detector, tmp_path):
    loaded = Detector.load(closer_detector.save(tmp_path / "det.pt"))
    assert loaded.looks_closer and "windows round the heart" in loaded.origin
    same_weights = Detector.load(closer_detector.save(tmp_path / "det.pt"))
    same_weights.looks_closer = False
    same_weights.weights_changed()
    assert same_weights.fingerprint != loaded.fingerprint, "caches must not mix the two"
    payload = torch.load(tmp_path / "det.pt", weights_only=True)
    payload["config"]["looks_closer"] = "yes"
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="looks_closer"):
        Detector.load(tmp_path / "bad.pt")
    del payload["config"]["looks_closer"]  # checkpoints from before: the whole slice
    torch.save(payload, tmp_path / "old.pt")
    assert not Detector.load(tmp_path / "old.pt").looks_closer


def _exported(folder: Path, split: str, stem: str):
    image = np.asarray(Image.open(folder / "images" / split / f"{stem}.png"))
    classes, yolo = read_yolo_file(folder / "labels" / split / f"{stem}.txt")
    return image, classes, yolo_to_boxes(yolo, image.shape[:2])


def test_training_looking_closer_learns_on_the_windows(train_phantom, tmp_path):
    stack = train_phantom.stack
    det = Detector.build(names=detector_classes(stack), imgsz=96)
    result = drive(
        train_detector(
            stack,
            det,
            list(range(12)),
            list(range(12, 16)),
            tmp_path,
            epochs=1,
            batch=8,
            look_closer=True,
        )
    )
    assert Detector.load(result.path).looks_closer
    windows = 0
    for split, indices in (("train", range(12)), ("val", range(12, 16))):
        for i in indices:
            view = fixed_view(stack, i, Augmentation())
            image, classes, boxes = _exported(
                tmp_path / "yolo_data", split, Path(stack.names[i]).stem
            )
            assert image.shape[:2] == view.view_shape
            windows += not view.is_whole
            want_classes, want = slice_boxes(stack, i, detector_classes(stack))
            kept = []  # the slice's boxes that stay in the window, in its pixels
            for c, box in zip(want_classes, want, strict=True):
                moved = view.to_view(box)
                side = view.view_shape[0]
                clipped = np.clip(moved, 0, side)
                if np.prod(clipped[2:] - clipped[:2]) >= 0.5 * np.prod(moved[2:] - moved[:2]):
                    kept.append((c, clipped))
            assert list(classes) == [c for c, _ in kept]
            if kept:
                np.testing.assert_allclose(boxes, [b for _, b in kept], atol=1e-3 * side)
    assert windows >= 12, "the slices with a labelled heart are seen through their windows"


def test_binary_labels_keep_the_whole_slice_for_the_detector(train_phantom, tmp_path):
    stack = train_phantom.stack
    binary = stack.with_labels(stack.scar().astype(np.uint8), LabelSpec.binary())
    det = Detector.build(names=detector_classes(binary), imgsz=96)
    work = train_detector(
        binary, det, list(range(12)), [], tmp_path, epochs=1, batch=8, look_closer=True
    )
    assert not Detector.load(drive(work).path).looks_closer
    image, _, _ = _exported(tmp_path / "yolo_data", "train", Path(stack.names[0]).stem)
    assert image.shape[:2] == stack.shape[1:]


def test_proposals_prompt_with_the_windows_boxes_and_record_it(
    closer_detector, tiny_segmenter, phantom
):
    stack = phantom.stack
    work = propose(stack, tiny_segmenter, closer_detector, conf=0.001, look_closer=True)
    proposals = drive(work)
    assert proposals.settings["detector_looks_closer"] is True
    prompted = 0
    for proposal in proposals.slices:
        view = View.from_dict(proposal.view)
        boxes = proposal.boxes[[s == "detector" for s in proposal.sources]]
        prompted += len(boxes)
        x0, y0, x1, y1 = view.box
        assert (boxes[:, :2] >= [x0 - 1e-3, y0 - 1e-3]).all()
        assert (boxes[:, 2:] <= [x1 + 1e-3, y1 + 1e-3]).all()
    assert prompted > 0


def test_yolosam_train_look_closer_trains_both_models_on_windows(tmp_path):
    import json

    from napari_yolosam.cli import main
    from napari_yolosam.models.checkpoints import read_payload

    data, run = tmp_path / "data", tmp_path / "run"
    assert (
        main(["phantom", "--out", str(data), "--cases", "3", "--slices", "3", "--size", "96"]) == 0
    )
    train = ["train", "--images", str(data), "--out", str(run), "--epochs", "1", "--batch", "4"]
    train += ["--imgsz", "96", "--segmenter", "tiny", "--look-closer", "--heart-steps", "2"]
    assert main(train + ["--val-fraction", "0.34"]) == 0
    assert Detector.load(run / "detector.pt").looks_closer
    assert read_payload(run / "segmenter.pth")["extra"]["config"]["look_closer"] is True
    images = list((run / "yolo_data" / "images" / "train").glob("*.png"))
    assert any(np.asarray(Image.open(p)).shape[:2] != (96, 96) for p in images), "windows"
    propose_args = ["propose", "--images", str(data), "--detector", str(run / "detector.pt")]
    propose_args += ["--segmenter", str(run / "segmenter.pth"), "--out", str(tmp_path / "props")]
    assert main(propose_args + ["--look-closer"]) == 0
    saved = json.loads((tmp_path / "props" / "prompts.json").read_text())
    assert saved["settings"]["detector_looks_closer"] is True
