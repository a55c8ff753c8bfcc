import numpy as np

from napari_yolosam.models.embeddings import EmbeddingCache, image_key
from napari_yolosam.models.segmenter import Segmenter


class CountingSegmenter:
    """Wraps a segmenter and counts encoder passes."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode(self, image):
        self.calls += 1
        return self.inner.encode(image)


def test_reuse_and_invalidation(tiny_segmenter, phantom):
    seg = CountingSegmenter(tiny_segmenter)
    cache = EmbeddingCache()
    image = phantom.stack.images[0]
    first = cache.get(seg, image)
    second = cache.get(seg, image.copy())
    assert seg.calls == 1 and cache.stats.memory_hits == 1
    assert (first - second).abs().max() == 0
    changed = image.copy()
    changed[10, 10] += 1
    cache.get(seg, changed)
    assert seg.calls == 2, "a changed image is encoded again"
    other = CountingSegmenter(Segmenter.build("tiny", seed=1))
    cache.get(other, image)
    assert other.calls == 1, "another model never reuses this model's embedding"


def test_weights_changed_invalidates(phantom):
    seg = CountingSegmenter(Segmenter.build("tiny", seed=0))
    cache = EmbeddingCache()
    image = phantom.stack.images[2]
    cache.get(seg, image)
    import torch

    with torch.no_grad():
        next(seg.inner.model.image_encoder.parameters()).add_(0.01)
    seg.inner.weights_changed()
    cache.get(seg, image)
    assert seg.calls == 2


def test_float16_and_memory_bound(tiny_segmenter, phantom):
    one = 256 * 16 * 16 * 2  # float16 bytes of a tiny embedding
    cache = EmbeddingCache(max_bytes=int(2.5 * one))
    for image in phantom.stack.images[:4]:
        cache.get(tiny_segmenter, image)
    assert len(cache) == 2 and cache.nbytes == 2 * one
    assert all(a.dtype == np.float16 for a in cache._memory.values())


def test_disk_store_survives_a_new_cache(tiny_segmenter, phantom, tmp_path):
    image = phantom.stack.images[5]
    seg = CountingSegmenter(tiny_segmenter)
    EmbeddingCache(disk_dir=tmp_path).get(seg, image)
    fresh = EmbeddingCache(disk_dir=tmp_path)
    embedding = fresh.get(seg, image)
    assert seg.calls == 1 and fresh.stats.disk_hits == 1
    direct = tiny_segmenter.encode(image)
    assert (embedding - direct).abs().max() < 1e-2  # float16 storage
    files = list(tmp_path.glob("*/*.npy"))
    assert len(files) == 1
    files[0].write_bytes(b"damaged")
    EmbeddingCache(disk_dir=tmp_path).get(seg, image)
    assert seg.calls == 2, "a damaged entry is recomputed"


def test_disk_bound(tiny_segmenter, phantom, tmp_path):
    cache = EmbeddingCache(disk_dir=tmp_path, max_disk_bytes=3 * 256 * 16 * 16 * 2)
    for image in phantom.stack.images[:6]:
        cache.get(tiny_segmenter, image)
    assert len(list(tmp_path.glob("*/*.npy"))) <= 3


def test_image_key_depends_on_content_shape_dtype():
    a = np.zeros((4, 4), np.float32)
    assert image_key(a) == image_key(a.copy())
    assert image_key(a) != image_key(a.reshape(2, 8))
    assert image_key(a) != image_key(a.astype(np.float64))


def test_trunk_features_serve_the_embedding_and_neck_training(phantom, tmp_path):
    """Trunk features (all of the encoder but its neck) are cached once per slice; the
    embedding follows from them through the neck; neck training changes the neck only and
    never runs the trunk again, on disk across caches too."""
    import torch

    from napari_yolosam.progress import drive
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    seg = Segmenter.build("tiny", seed=4)
    seg.random_encoder = False  # stands for a pretrained encoder
    cache = EmbeddingCache(disk_dir=tmp_path / "cache")
    image = phantom.stack.images[1]
    trunk = cache.get(seg, image, "trunk")
    assert trunk.shape[1] == 192 and cache.stats.encoded == 1
    embedding = cache.get(seg, image)
    assert cache.stats.encoded == 1, "the embedding came from the cached trunk"
    torch.testing.assert_close(embedding, seg.encode(image), atol=2e-2, rtol=2e-2)
    trunk_before = {
        k: v.clone() for k, v in seg.model.image_encoder.state_dict().items() if "neck" not in k
    }
    neck_before = [p.detach().clone() for p in seg.model.image_encoder.neck.parameters()]
    config = SamTrainConfig(  # whole slices, no heart finder: one trunk pass a slice
        epochs=1,
        batch_size=4,
        mode="neck",
        val_fraction=0.25,
        max_steps_per_epoch=2,
        heart_steps=0,
        look_closer=False,
    )
    drive(train_segmenter(phantom.stack, seg, config, tmp_path / "run", cache=cache))
    state = seg.model.image_encoder.state_dict()
    assert all(torch.equal(state[k], v) for k, v in trunk_before.items()), "trunk frozen"
    neck_after = list(seg.model.image_encoder.neck.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(neck_before, neck_after, strict=True)), (
        "neck trained"
    )
    passes = cache.stats.encoded
    assert passes <= len(phantom.stack), "at most one trunk pass per slice"
    fresh = EmbeddingCache(disk_dir=tmp_path / "cache")  # a restart: the trunk is on disk
    tuned = fresh.get(seg, image)
    assert fresh.stats.encoded == 0 and fresh.stats.disk_hits == 1
    torch.testing.assert_close(tuned, seg.neck(trunk), atol=2e-2, rtol=2e-2)


def test_slice_order_starts_in_view_and_goes_outward():
    from napari_yolosam.models.embeddings import slice_order

    assert slice_order(5, 2) == [2, 3, 1, 4, 0]
    assert slice_order(4, 0) == [0, 1, 2, 3]
    assert slice_order(3, 9) == [2, 1, 0]
    assert slice_order(0, 0) == []


def test_one_encoder_pass_per_slice_through_the_whole_workflow(
    tiny_segmenter, tiny_detector, phantom, tmp_path
):
    """embed (slice in view first) -> propose -> audit -> review prompts -> decoder fine-tuning
    -> proposals with the tuned decoder -> a restart: one encoder pass per slice, never more."""
    from napari_yolosam.audit import audit
    from napari_yolosam.models.embeddings import embed_stack
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import prompt_slice, propose
    from napari_yolosam.proposals.heart import stack_views
    from napari_yolosam.training.sam import SamTrainConfig, train_segmenter

    seg = Segmenter.build("tiny", seed=5)
    seg.random_encoder = False  # stands for a pretrained encoder: decoder-only fine-tuning
    stack = phantom.stack
    n = len(stack)
    cache = EmbeddingCache(disk_dir=tmp_path / "cache")
    work = embed_stack(seg, list(stack.images), cache, first=3)
    first = next(work)
    assert first.message == "3" and first.values["encoded"] == 1
    assert cache.contains(seg, stack.images[3]) and not cache.contains(seg, stack.images[0])
    assert drive(work) == n, "every slice encoded once, the one in view first"
    whole = {"conf": 0.001, "look_closer": False}  # the whole-slice flow (windows: below)
    proposals = drive(propose(stack, seg, tiny_detector, cache=cache, **whole))
    audit(stack, proposals)
    box = np.array([[20, 20, 90, 90]], np.float32)
    prompt_slice(seg, cache, stack.images[2], boxes=box)
    config = SamTrainConfig(
        epochs=1,
        batch_size=4,
        mode="decoder",
        val_fraction=0.25,
        max_steps_per_epoch=2,
        heart_steps=20,
        look_closer=False,  # whole slices (training on windows: test_training_windows)
    )
    result = drive(train_segmenter(stack, seg, config, tmp_path / "run", cache=cache))
    assert seg.heart is not None, "the heart finder read the same embeddings"
    assert seg.anatomy is not None, "the anatomy head: a window round each training heart"
    hearts = stack.myocardium().any(axis=(1, 2))
    trained = sum(c in result.train_cases and h for c, h in zip(stack.cases, hearts, strict=True))
    assert cache.stats.encoded == n + trained, "one jittered window a training slice, once"
    encoded = cache.stats.encoded
    drive(propose(stack, seg, tiny_detector, cache=cache, **whole))
    assert cache.stats.encoded == encoded, "the whole slices: one encoder pass each"
    drive(propose(stack, seg, tiny_detector, cache=cache, conf=0.001))  # looking closer
    assert cache.stats.encoded == encoded + n, "the windows: a second pass per slice, once"
    drive(propose(stack, seg, tiny_detector, cache=cache, conf=0.001))
    assert cache.stats.encoded == encoded + n
    restarted = EmbeddingCache(disk_dir=tmp_path / "cache")
    assert drive(embed_stack(seg, list(stack.images), restarted)) == 0
    assert restarted.stats.disk_hits == n
    windows = stack_views(stack)
    assert drive(embed_stack(seg, list(stack.images), restarted, views=windows)) == 0
    other = Segmenter.build("tiny", seed=6)  # another model: its own embeddings
    assert drive(embed_stack(other, list(stack.images), restarted)) == n


def test_threads_wait_for_a_slice_being_encoded(tiny_segmenter, phantom):
    import threading
    import time

    class Slow(CountingSegmenter):
        def encode(self, image):
            time.sleep(0.3)
            return super().encode(image)

    seg = Slow(tiny_segmenter)
    cache = EmbeddingCache()
    image = phantom.stack.images[0]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get(seg, image))) for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seg.calls == 1 and cache.stats.encoded == 1 and len(results) == 3
    assert all(np.array_equal(r.numpy(), results[0].numpy()) for r in results)
