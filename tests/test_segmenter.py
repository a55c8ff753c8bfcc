import numpy as np
import pytest
import torch

from napari_yolosam.models.checkpoints import CheckpointError
from napari_yolosam.models.segmenter import Segmenter


def test_encode_decode_shapes(tiny_segmenter, phantom):
    image = phantom.stack.images[0][:120, :100]
    embedding = tiny_segmenter.encode(image)
    assert embedding.shape == (1, 256, 16, 16)
    boxes = np.array([[10, 10, 60, 50], [40, 30, 90, 110], [0, 0, 100, 120]], np.float32)
    out = tiny_segmenter.decode(embedding, image.shape, boxes=boxes)
    assert out.masks.shape == out.logits.shape == (3, 120, 100)
    assert out.masks.dtype == bool and out.logits.dtype == np.float32 and out.iou.shape == (3,)
    np.testing.assert_array_equal(out.masks, out.logits > 0)
    prob = out.probability
    assert prob.shape == (120, 100) and 0 <= prob.min() and prob.max() <= 1
    assert (out.union == out.masks.any(0)).all()
    none = tiny_segmenter.decode(embedding, image.shape)
    assert none.masks.shape == (0, 120, 100) and none.probability.max() == 0
    pts = tiny_segmenter.decode(
        embedding,
        image.shape,
        points=np.array([[[30, 30], [70, 80]]]),
        point_labels=np.array([[1, 0]]),
    )
    assert pts.masks.shape == (1, 120, 100)
    myo = tiny_segmenter.decode(embedding, image.shape, boxes=boxes[:1], target="myocardium")
    assert not np.allclose(myo.logits, out.logits[:1]), (
        "the two targets use different decoder outputs"
    )
    with pytest.raises(ValueError, match="unknown target"):
        tiny_segmenter.decode(embedding, image.shape, boxes=boxes, target="liver")


def test_checkpoint_round_trip_identical(tiny_segmenter, phantom, tmp_path):
    path = tiny_segmenter.save(tmp_path / "seg.pth", extra={"epoch": 3})
    loaded = Segmenter.load(path)
    image = phantom.stack.images[1]
    box = np.array([[30, 30, 90, 90]], np.float32)
    a = tiny_segmenter.decode(tiny_segmenter.encode(image), image.shape, boxes=box)
    b = loaded.decode(loaded.encode(image), image.shape, boxes=box)
    np.testing.assert_array_equal(a.logits, b.logits)
    assert (
        loaded.preprocess == tiny_segmenter.preprocess
        and loaded.fingerprint == tiny_segmenter.fingerprint
    )
    payload = torch.load(path, weights_only=True)
    assert (
        payload["extra"] == {"epoch": 3, "random_encoder": True} and payload["versions"]["torch"]
    )
    assert loaded.random_encoder, "a fresh network stays known as random across save and load"
    # from_spec: a path or a configuration name
    assert Segmenter.from_spec(str(path)).fingerprint == tiny_segmenter.fingerprint
    assert Segmenter.from_spec("tiny").name == "tiny"


def test_raw_official_style_state_dict_is_recognised(tiny_segmenter, tmp_path):
    torch.save(tiny_segmenter.model.state_dict(), tmp_path / "raw.pth")
    loaded = Segmenter.load(tmp_path / "raw.pth")
    assert loaded.name == "tiny"


class _Evil:
    def __reduce__(self):
        return (print, ("this would run code",))


@pytest.mark.parametrize(
    "case", ["garbage", "pickle_code", "wrong_kind", "shape_mismatch", "missing", "other_dict"]
)
def test_bad_checkpoints_are_refused(tiny_segmenter, tmp_path, case):
    path = tmp_path / "bad.pth"
    if case == "garbage":
        path.write_bytes(b"\x00not a checkpoint" * 20)
        match = "cannot be loaded safely"
    elif case == "pickle_code":
        torch.save({"format": "napari-yolosam", "payload": _Evil()}, path)
        match = "cannot be loaded safely"
    elif case == "wrong_kind":
        from napari_yolosam.models.checkpoints import save_checkpoint

        save_checkpoint(path, "detector", {}, {}, {})
        match = "is a detector checkpoint, not a segmenter"
    elif case == "shape_mismatch":
        tiny_segmenter.save(path)
        payload = torch.load(path, weights_only=True)
        payload["config"]["embed_dim"] = 96
        payload["config"]["num_heads"] = 3
        torch.save(payload, path)
        match = "does not match the model architecture: .*shape mismatch"
    elif case == "missing":
        match = "does not exist"
    else:
        torch.save({"weights": torch.zeros(3)}, path)
        match = "neither a napari-yolosam checkpoint nor SAM"
    with pytest.raises(CheckpointError, match=match) as info:
        Segmenter.load(path)
    assert str(path) in str(info.value)


def test_unknown_spec():
    with pytest.raises(CheckpointError, match="not a configuration name"):
        Segmenter.from_spec("vit_q")
    with pytest.raises(CheckpointError, match="has no weights on this machine"):
        Segmenter.from_spec("sam_vit_b")


@pytest.mark.slow
def test_mobile_sam_and_vit_b_build():
    mobile = Segmenter.build("mobile_sam")
    emb = mobile.encode(np.zeros((64, 64), np.float32))
    assert emb.shape == (1, 256, 64, 64)
    vit_b = Segmenter.build("vit_b")
    assert sum(p.numel() for p in vit_b.model.parameters()) > 90e6


@pytest.mark.slow
def test_official_vit_b_layout_and_medsam_load(tmp_path):
    """A raw vit_b state dict (the official file's layout) loads as vit_b, or as MedSAM when named."""
    vit_b = Segmenter.build("vit_b", seed=3)
    torch.save(vit_b.model.state_dict(), tmp_path / "sam_vit_b.pth")
    loaded = Segmenter.load(tmp_path / "sam_vit_b.pth")
    assert loaded.name == "vit_b" and loaded.preprocess.intensity == "percentile"
    medsam = Segmenter.from_spec(f"medsam:{tmp_path / 'sam_vit_b.pth'}")
    assert medsam.name == "medsam" and medsam.preprocess.intensity == "minmax"
    a = next(iter(vit_b.model.image_encoder.parameters()))
    b = next(iter(medsam.model.image_encoder.parameters()))
    assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="holds vit_b weights, not vit_l"):
        Segmenter.from_spec(f"vit_l:{tmp_path / 'sam_vit_b.pth'}")


@pytest.mark.parametrize("target", ["scar", "myocardium"])
def test_fast_decoder_equals_stock(tiny_segmenter, phantom, target):
    from napari_yolosam.models.preprocess import logits_to_image, transform_coords

    image = phantom.stack.images[2]
    embedding = tiny_segmenter.encode(image)
    boxes = np.array([[20, 30, 90, 100], [50, 50, 70, 80]], np.float32)
    fast = tiny_segmenter.decode(embedding, image.shape, boxes=boxes, target=target)
    again = tiny_segmenter.decode(
        embedding.clone(), image.shape, boxes=boxes[::-1].copy(), target=target
    )
    with torch.inference_mode():
        box_t = torch.as_tensor(transform_coords(boxes, image.shape, tiny_segmenter.img_size))
        low, iou = tiny_segmenter.predict_low_res(embedding, box_t, None, target)
        stock = logits_to_image(low, image.shape, tiny_segmenter.img_size).numpy()
    np.testing.assert_allclose(fast.logits, stock, atol=1e-4)
    np.testing.assert_allclose(fast.iou, iou.numpy(), atol=1e-5)
    np.testing.assert_allclose(again.logits[::-1], fast.logits, atol=1e-4)
    matching = [p for p in tiny_segmenter._prepared_cache if p.matches(embedding)]
    assert len(matching) == 1, "the same embedding is prepared once"


def test_tiny_hr_has_finer_masks_and_trains_whole(phantom, tmp_path):
    """8-pixel patches: a 32x32 embedding and 128x128 low-resolution masks; the fast
    decoder matches the stock one there too, and it is trained whole by default."""
    from napari_yolosam.models.preprocess import logits_to_image, transform_coords
    from napari_yolosam.training.sam import SamTrainConfig

    seg = Segmenter.build("tiny_hr", seed=1)
    image = phantom.stack.images[2]
    embedding = seg.encode(image)
    assert embedding.shape == (1, 256, 32, 32)
    boxes = np.array([[20, 30, 90, 100]], np.float32)
    fast = seg.decode(embedding, image.shape, boxes=boxes)
    with torch.inference_mode():
        box_t = torch.as_tensor(transform_coords(boxes, image.shape, seg.img_size))
        low, _ = seg.predict_low_res(embedding, box_t, None, "scar")
        stock = logits_to_image(low, image.shape, seg.img_size).numpy()
    assert low.shape[-2:] == (128, 128)
    np.testing.assert_allclose(fast.logits, stock, atol=1e-4)
    assert SamTrainConfig().resolved_mode(seg) == "full"
    loaded = Segmenter.load(seg.save(tmp_path / "hr.pth"))
    assert loaded.name == "tiny_hr" and loaded.encode(image).shape == (1, 256, 32, 32)
