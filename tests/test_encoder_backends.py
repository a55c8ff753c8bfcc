"""Encoder backends: the same embeddings from ONNX Runtime, its cached export, the fallbacks,
the cache keys, and the faces that choose one."""

import logging

import numpy as np
import pytest
import torch

from napari_yolosam.cli import main
from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.models.segmenter import Segmenter, backends


def _segmenter(backend: str = "auto", seed: int = 0) -> Segmenter:
    seg = Segmenter.build("tiny", seed=seed)
    seg.encoder_backend = backend
    return seg


def test_onnx_equals_torch_within_tolerance(phantom, tmp_path):
    seg = _segmenter("onnx")
    assert seg.encoder_runner.name == "onnx" and seg.embedding_tag == ""
    for image in phantom.stack.images[:3]:
        fast, reference = seg.encode(image), seg.encode_torch(image)
        assert fast.shape == reference.shape and fast.dtype == torch.float32
        error = float((fast - reference).norm() / reference.norm())
        assert error < backends.EXPORT_TOLERANCE, error


@pytest.mark.slow
def test_lite_medsam_proposals_identical_on_onnx(phantom):
    from napari_yolosam.proposals.types import label_boxes

    seg = Segmenter.from_spec("lite_medsam", encoder_backend="onnx")
    scar = phantom.stack.spec.scar_mask(phantom.truth)
    index = int(np.argmax(scar.reshape(len(scar), -1).sum(1)))
    image, boxes = phantom.stack.images[index], label_boxes(scar[index])
    fast, reference = seg.encode(image), seg.encode_torch(image)
    assert float((fast - reference).norm() / reference.norm()) < 1e-4
    masks = [seg.decode(e, image.shape, boxes=boxes).union for e in (fast, reference)]
    assert masks[0].any() and (masks[0] == masks[1]).mean() > 0.999


def test_export_is_cached_checked_and_redone(tmp_path):
    seg = _segmenter("onnx")
    path = backends.exported_encoder(seg, tmp_path)
    stamp = path.stat().st_mtime_ns
    assert backends.exported_encoder(seg, tmp_path) == path
    assert path.stat().st_mtime_ns == stamp, "the same weights are not exported again"
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # damaged or replaced
    assert backends.exported_encoder(seg, tmp_path) == path
    assert path.stat().st_mtime_ns != stamp, "a file that no longer matches its record is redone"
    other = _segmenter("onnx", seed=1)
    assert backends.exported_encoder(other, tmp_path) != path, "new weights, new export"


def test_weights_changed_gives_a_new_runner(phantom):
    seg = _segmenter("onnx")
    before = seg.encode(phantom.stack.images[0])
    with torch.no_grad():
        next(seg.model.image_encoder.parameters()).add_(0.05)
    seg.weights_changed()
    after = seg.encode(phantom.stack.images[0])
    reference = seg.encode_torch(phantom.stack.images[0])
    assert float((after - before).abs().max()) > 1e-3
    assert float((after - reference).norm() / reference.norm()) < backends.EXPORT_TOLERANCE


def test_missing_package_falls_back_with_one_line(monkeypatch, caplog):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    seg = _segmenter("auto")
    with caplog.at_level(logging.WARNING, logger="napari_yolosam"):
        runner = seg.encoder_runner
    assert runner.name == "torch"
    assert "onnxruntime is not installed" in runner.note
    assert [r.getMessage() for r in caplog.records] == [runner.note]


def test_failed_export_falls_back(monkeypatch, phantom, tmp_path):
    def broken(segmenter, path):
        raise RuntimeError("exporter broke")

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path))  # nothing exported yet
    monkeypatch.setattr(backends, "_export", broken)
    seg = _segmenter("onnx")
    assert seg.encoder_runner.name == "torch"
    assert (
        "ONNX export failed" in seg.encoder_runner.note
        and "exporter broke" in seg.encoder_runner.note
    )
    image = phantom.stack.images[0]
    assert torch.equal(seg.encode(image), seg.encode_torch(image))


def test_export_that_disagrees_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path))
    monkeypatch.setattr(backends, "_export_error", lambda segmenter, path: 0.5)
    seg = _segmenter("onnx")
    assert seg.encoder_runner.name == "torch"
    assert "differs from PyTorch" in seg.encoder_runner.note


def test_cuda_device_keeps_torch_and_offers_half():
    seg = _segmenter("auto")
    seg.device = torch.device("cuda")  # resolving needs no GPU: only the choice is checked
    assert seg.encoder_runner.name == "torch" and seg.encoder_runner.note == ""
    seg.encoder_backend = "half"
    assert seg.encoder_runner.name == "half" and seg.embedding_tag == "half"
    assert "serves the CPU" in backends.onnx_unavailable(seg)


def test_cache_keys_follow_the_outputs(phantom, tmp_path):
    cache = EmbeddingCache(disk_dir=tmp_path)
    image = phantom.stack.images[0]
    seg = _segmenter("torch")
    keys = {}
    for name in ("torch", "onnx", "half"):
        seg.encoder_backend = name
        keys[name] = cache.key(seg, image)
    assert keys["torch"] == keys["onnx"], "equal embeddings share their cache entries"
    assert keys["half"] != keys["torch"]
    assert cache._disk_path(keys["half"]).parent != cache._disk_path(keys["torch"]).parent
    assert cache.key(seg, image, "trunk") == cache.key(_segmenter("torch"), image, "trunk")
    fresh = _segmenter("onnx", seed=3)
    cache.key(fresh, image)
    assert fresh._runner is None, "a cache key never exports or resolves the backend"
    got = cache.get(seg, image)  # half: a bfloat16 pass on this CPU, stored under its own key
    seg.encoder_backend = "torch"
    assert not torch.equal(got, cache.get(seg, image))


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="unknown encoder backend 'fast'"):
        Segmenter.from_spec("tiny", encoder_backend="fast")


def test_full_training_encodes_with_torch_and_restores(phantom, tmp_path):
    from napari_yolosam.progress import drive
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    seg = _segmenter("onnx")
    seen = []
    real = seg.encode

    def watching(image):
        seen.append(seg.encoder_backend)
        return real(image)

    seg.encode = watching
    config = SamTrainConfig(
        epochs=1, batch_size=4, mode="full", max_steps_per_epoch=1, heart_steps=20
    )
    drive(train_segmenter(phantom.stack, seg, config, tmp_path / "run", cache=EmbeddingCache()))
    assert seen and set(seen) == {"torch"}
    assert seg.encoder_backend == "onnx"


def test_cli_embed_with_each_backend(phantom_folder, tmp_path, capsys):
    for name in ("torch", "onnx"):
        cache = tmp_path / f"cache-{name}"
        args = ["embed", "--images", str(phantom_folder), "--segmenter", "tiny"]
        assert main([*args, "--encoder-backend", name, "--cache", str(cache)]) == 0
        assert len(list(cache.glob("*/*.npy"))) > 0
    with pytest.raises(SystemExit):
        main(["embed", "--images", str(phantom_folder), "--encoder-backend", "fast"])
    assert "invalid choice: 'fast'" in capsys.readouterr().err


def test_every_segmenter_command_offers_the_backend():
    from napari_yolosam.cli.parser import build_parser

    parser = build_parser()
    out = ["--out", "y"]
    for command, rest in {
        "embed": [],
        "propose": out,
        "propagate": ["--slice", "0", *out],
        "audit": out,
        "train": out,
    }.items():
        args = parser.parse_args([command, "--images", "x", *rest, "--encoder-backend", "torch"])
        assert args.encoder_backend == "torch", command
        default = parser.parse_args([command, "--images", "x", *rest])
        assert default.encoder_backend == "auto", command
