"""Training looks closer (#27 point 4): each slice seen through a jittered window round its
labelled heart, validation through the window itself; binary labels keep the whole slice."""

import numpy as np
import pytest
import torch

from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.models.checkpoints import read_payload
from napari_yolosam.models.embeddings import EmbeddingCache
from napari_yolosam.models.segmenter import Segmenter
from napari_yolosam.phantom.make import make_phantom
from napari_yolosam.progress import drive
from napari_yolosam.training.data import (
    Augmentation,
    bbox,
    build_items,
    make_samples,
    slice_view,
)
from napari_yolosam.training.sam import SamTrainConfig, train_segmenter
from napari_yolosam.view import View


@pytest.fixture(scope="module")
def train_phantom():
    return make_phantom(n_slices=4, n_cases=4, shape=(96, 96), seed=12)


def _heart_box(stack, i):
    labels = stack.crop(i, stack.labels[i])
    return bbox(stack.spec.myocardium_mask(labels) | stack.spec.blood_pool_mask(labels))


def test_a_training_window_is_the_hearts_jittered_and_binary_labels_keep_the_slice(
    train_phantom,
):
    stack = train_phantom.stack
    i = next(k for k in range(len(stack)) if _heart_box(stack, k) is not None)
    heart = _heart_box(stack, i)
    shape = stack.crop(i, stack.images[i]).shape
    exact = slice_view(stack, i, None, Augmentation())
    assert exact == View.around(heart, shape, "label"), "unjittered: inference's window"
    rng = np.random.default_rng(0)
    jittered = [slice_view(stack, i, rng, Augmentation()) for _ in range(20)]
    assert len({(v.top, v.left, v.size) for v in jittered}) > 10, "each draw its own window"
    for view in jittered:  # off by a box prompt's jitter: the heart's centre stays inside
        x0, y0, x1, y1 = view.box
        cx, cy = (heart[0] + heart[2]) / 2, (heart[1] + heart[3]) / 2
        assert x0 < cx < x1 and y0 < cy < y1
    assert slice_view(stack, i, rng, Augmentation(enabled=False)) == exact
    binary = stack.with_labels(stack.scar().astype(np.uint8), LabelSpec.binary())
    assert slice_view(binary, i, rng, Augmentation()).is_whole


def test_samples_through_the_window_carry_the_window_pixels_and_targets(train_phantom):
    stack = train_phantom.stack
    i = next(k for k in range(len(stack)) if stack.scar()[k].any())
    items = [it for it in build_items(stack, [i], negative_fraction=0.0) if it.slice == i]
    seg = Segmenter.build("tiny", seed=1)
    args = (Augmentation(), 256, 256, False, seg.preprocess)

    def prepare(variant, closer):
        return make_samples(
            stack, items, np.random.default_rng(5), *args, variant=variant, look_closer=closer
        )

    plain, close, again = prepare(None, False), prepare(None, True), prepare(None, True)
    np.testing.assert_array_equal(close[0].raw, again[0].raw)  # one window: cached once
    size = close[0].raw.shape
    assert size[0] == size[1] < plain[0].raw.shape[0], "the window, not the slice"
    other = prepare((0, 1), True)
    assert not np.array_equal(other[0].raw, close[0].raw), "another version, another window"
    for near, far in zip(close, plain, strict=True):
        assert near.token == far.token
        if far.target.sum() > 0:  # the heart is magnified: its targets fill more of the grid
            assert near.target.sum() > 1.5 * far.target.sum()
    geometric = make_samples(
        stack, items, np.random.default_rng(5), Augmentation(), 256, 256, True, seg.preprocess,
        look_closer=True,
    )  # fmt: skip
    assert geometric[0].image.shape == (3, 256, 256)


def test_training_on_windows_encodes_each_slice_once_and_records_it(train_phantom, tmp_path):
    stack = train_phantom.stack
    seg = Segmenter.build("tiny", seed=1)
    seg.random_encoder = False  # stands for a pretrained encoder
    cache = EmbeddingCache()
    config = SamTrainConfig(
        epochs=2, batch_size=4, mode="decoder", val_fraction=0.25, look_closer=True, heart_steps=5
    )
    before = torch.cat([p.detach().flatten() for p in seg.model.mask_decoder.parameters()])
    result = drive(train_segmenter(stack, seg, config, tmp_path, cache=cache))
    after = torch.cat([p.detach().flatten() for p in seg.model.mask_decoder.parameters()])
    assert not torch.equal(before, after)
    trained = sum(c in result.train_cases for c in stack.cases)
    assert seg.anatomy is not None
    # a training slice: whole (the heart finder) and one jittered window (the anatomy head and
    # the segmenter share it); a validation slice: its window
    assert cache.stats.encoded <= len(stack) + trained, "two passes a slice at most, once each"
    for row in result.history:
        assert np.isfinite(row["val_myo_dice"])
    payload = read_payload(result.best_path)
    assert payload["extra"]["config"]["look_closer"] is True
    import json

    from napari_yolosam.training.sam import WINDOWS_NAME

    record = json.loads((tmp_path / WINDOWS_NAME).read_text())
    assert record["jitter"]["box_shift"] == Augmentation().box_shift
    named = {n: w for n, w in record["windows"].items() if w}
    assert named and all(View.from_dict(w).source == "label" for w in named.values())


def test_neck_training_on_windows_caches_each_window_trunk_once(train_phantom, tmp_path):
    stack = train_phantom.stack
    seg = Segmenter.build("tiny", seed=3)
    seg.random_encoder = False  # stands for a pretrained encoder
    cache = EmbeddingCache()
    neck_before = [p.detach().clone() for p in seg.model.image_encoder.neck.parameters()]
    config = SamTrainConfig(
        epochs=2, batch_size=4, mode="neck", val_fraction=0.25, look_closer=True, heart_steps=0
    )
    result = drive(train_segmenter(stack, seg, config, tmp_path, cache=cache))
    after = list(seg.model.image_encoder.neck.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(neck_before, after, strict=True))
    assert cache.stats.encoded <= len(stack), "one window (or whole slice) a slice, once"
    assert all(np.isfinite(row["val_dice"]) for row in result.history)
