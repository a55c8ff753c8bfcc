import numpy as np
import pytest
import torch

from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.detector import Detector


def test_predict_several_boxes_per_slice(tiny_detector, phantom):
    results = tiny_detector.predict(list(phantom.stack.images[:2]), conf=0.001, max_det=30)
    assert len(results) == 2
    for found in results:
        assert found.boxes.shape[1] == 4 and len(found) > 1, "no one-box limit"
        assert found.scores.shape == found.classes.shape == (len(found),)
        assert set(found.classes) <= {0, 1}
        assert (found.boxes[:, 2] <= 128.5).all()
    # an untrained detector is not confident: the default threshold finds nothing
    assert all(len(r) == 0 for r in tiny_detector.predict([phantom.stack.images[0]], conf=0.5))


def test_torch_threads_kept(tiny_detector, phantom):
    before = torch.get_num_threads()
    tiny_detector.predict([phantom.stack.images[0]])
    assert torch.get_num_threads() == before


def test_round_trip_and_safe_loading(tiny_detector, phantom, tmp_path):
    path = tiny_detector.save(tmp_path / "det.pt")
    loaded = Detector.load(path)
    assert loaded.names == ["scar", "lv"] and loaded.imgsz == 128
    a = tiny_detector.predict([phantom.stack.images[3]], conf=0.001)[0]
    b = loaded.predict([phantom.stack.images[3]], conf=0.001)[0]
    np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-4)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-6)
    assert loaded.fingerprint == tiny_detector.fingerprint


def test_pickled_ultralytics_checkpoint_needs_trust(tiny_detector, tmp_path):
    path = tmp_path / "ultra.pt"
    torch.save({"model": tiny_detector.yolo.model}, path)  # whole module: unpickling runs code
    with pytest.raises(CheckpointError, match="trust"):
        Detector.load(path)


def test_shape_mismatch_refused(tiny_detector, tmp_path):
    path = tiny_detector.save(tmp_path / "det.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["names"] = ["scar"]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="shape mismatch"):
        Detector.load(path)


def test_unknown_config():
    with pytest.raises(CheckpointError, match="not a configuration"):
        Detector.from_spec("nonexistent.pt")
    with pytest.raises(ValueError, match="unknown detector configuration"):
        Detector.build("yolo99z.yaml")


def test_yolov8_config_builds():
    det = Detector.build("yolov8n.yaml", names=("scar",), imgsz=64)
    assert det.names == ["scar"] and det.predict([np.zeros((64, 64), np.float32)], conf=0.9)[
        0
    ].boxes.shape == (0, 4)


def test_validated_thresholds_per_class(tiny_detector, phantom, tmp_path):
    det = Detector.load(tiny_detector.save(tmp_path / "det.pt"))
    assert det.thresholds == {}
    image = phantom.stack.images[0]
    everything = det.predict([image], conf=0.001, max_det=300)[0]
    assert len(everything) > 4
    thresholds = {}  # between the lowest and highest score of each class (else 0.5)
    for k, name in enumerate(det.names):
        scores = everything.scores[everything.classes == k]
        thresholds[name] = float(scores.min() + scores.max()) / 2 if len(scores) else 0.5
    det.thresholds = thresholds
    found = det.predict([image], max_det=300)[0]  # conf=None: each class its own threshold
    for k, name in enumerate(det.names):
        ours = found.scores[found.classes == k]
        assert (ours > thresholds[name]).all()
        assert len(ours) == (everything.scores[everything.classes == k] > thresholds[name]).sum()
    assert len(det.predict([image], conf=0.001, max_det=300)[0]) == len(everything)  # one for all
    first = det.names[0]  # one class's threshold set by name, the others their own
    some = det.predict([image], max_det=300, class_conf={first: 0.001, "no such class": 0.9})[0]
    for k, name in enumerate(det.names):
        floor = 0.001 if name == first else thresholds[name]
        expected = (everything.scores[everything.classes == k] > floor).sum()
        assert (some.classes == k).sum() == expected
    loaded = Detector.load(det.save(tmp_path / "det2.pt"))
    assert loaded.thresholds == pytest.approx(thresholds)
    payload = torch.load(tmp_path / "det2.pt", weights_only=True)
    payload["config"]["thresholds"] = {"scar": 7.0}
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="invalid confidence thresholds"):
        Detector.load(tmp_path / "bad.pt")


def test_thresholds_from_validation_curves():
    from types import SimpleNamespace

    from napari_yolosam.training.yolo import MIN_THRESHOLD, _per_class_thresholds

    px = np.linspace(0, 1, 1000)
    scar = np.exp(-(((px - 0.08) / 0.05) ** 2))  # F1 peaks at confidence 0.08
    lv = np.exp(-(((px - 0.6) / 0.1) ** 2))
    box = SimpleNamespace(
        f1_curve=np.stack([scar, lv]),
        p_curve=np.stack([0.6 + 0.4 * px, 0.9 + 0.1 * px]),
        px=px,
        ap_class_index=np.array([0, 1]),
    )
    trainer = SimpleNamespace(validator=SimpleNamespace(metrics=SimpleNamespace(box=box)))
    found = _per_class_thresholds(trainer, ("scar", "lv"))
    assert found == pytest.approx({"scar": 0.08, "lv": 0.6}, abs=0.01)
    box.f1_curve = np.stack([np.zeros(1000), lv])  # scar never found: no threshold for it
    assert set(_per_class_thresholds(trainer, ("scar", "lv"))) == {"lv"}
    box.f1_curve = np.stack([0.6 * (1 - px), lv])  # F1 best with every box
    assert _per_class_thresholds(trainer, ("scar", "lv"))["scar"] == MIN_THRESHOLD
    box.p_curve[0] = 0.16  # boxes mostly wrong at any threshold: keep the default
    assert set(_per_class_thresholds(trainer, ("scar", "lv"))) == {"lv"}
