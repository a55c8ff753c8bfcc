import numpy as np

from napari_yolosam.embeddings import EmbeddingCache, image_key
from napari_yolosam.segmenter import Segmenter


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
    config = SamTrainConfig(
        epochs=1, batch_size=4, mode="neck", val_fraction=0.25, max_steps_per_epoch=2
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
