"""Embedding cache: each slice is encoded once per model, kept in memory and on disk.

Keys combine the image content (a hash of its pixels), the model's
fingerprint (architecture, preprocessing and encoder weights) and the
preprocessing, so a changed image or model never reuses a stale embedding;
embeddings of an encoder backend whose outputs differ from PyTorch float32's
(``half``) carry its name too (``onnx`` shares PyTorch's: they are equal).
Embeddings are stored as float16; memory use is bounded (least recently
used entries are dropped first), and the disk store is bounded too.

The cache is shared between threads (a background :func:`embed_stack` and
the viewer's proposals): a slice being encoded by one thread is waited for
by another, never encoded twice.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write, remove_partials
from ..io.errors import StackError
from ..progress import Progress

#: What the cache holds per slice: the image embedding, the features entering the
#: encoder's neck (neck training), or the tokens entering its last stage (stage
#: training); the embedding follows from either without the slow part of the encoder.
KINDS = ("embedding", "trunk", "stage")
_FINGERPRINTS = {
    "embedding": "fingerprint",
    "trunk": "trunk_fingerprint",
    "stage": "stage_fingerprint",
}


def image_key(image: np.ndarray) -> str:
    """Content hash of a 2D slice (pixels, shape and dtype)."""
    array = np.ascontiguousarray(image)
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(array.data)
    return digest.hexdigest()


@dataclass
class CacheStats:
    """Counters: ``encoded`` = encoder passes, ``memory_hits``, ``disk_hits``."""

    encoded: int = 0
    memory_hits: int = 0
    disk_hits: int = 0


class EmbeddingCache:
    """Bounded memory + disk cache of image embeddings.

    Parameters
    ----------
    max_bytes
        Memory bound (float16 bytes held); least recently used entries go first.
    disk_dir
        Folder for the disk store (``None``: memory only).
    max_disk_bytes
        Disk bound; the oldest files go first.
    """

    def __init__(
        self,
        max_bytes: int = 1 << 30,
        disk_dir: str | Path | None = None,
        max_disk_bytes: int = 8 << 30,
    ) -> None:
        self.max_bytes = int(max_bytes)
        self.disk_dir = None if disk_dir is None else Path(disk_dir)
        self.max_disk_bytes = int(max_disk_bytes)
        if self.disk_dir is not None:
            if self.disk_dir.exists() and not self.disk_dir.is_dir():
                raise StackError(self.disk_dir, "is not a folder; the embedding cache needs one")
            remove_partials(self.disk_dir, recursive=True)  # left by a killed writer
        self._memory: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bytes = 0
        self._disk_bytes: int | None = None  # measured on the first write
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self.stats = CacheStats()

    def __len__(self) -> int:
        return len(self._memory)

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return self._bytes

    @staticmethod
    def key(segmenter, image: np.ndarray, kind: str = "embedding") -> str:
        """Cache key of ``image`` under ``segmenter`` (``kind``: one of :data:`KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown cache entry kind {kind!r} ({', '.join(KINDS)})")
        model = getattr(segmenter, _FINGERPRINTS[kind])
        tag = segmenter.embedding_tag if kind == "embedding" else ""
        return f"{model}{'.' + tag if tag else ''}-{image_key(image)}"

    def get(self, segmenter, image: np.ndarray, kind: str = "embedding"):
        """The embedding (or the trunk features or last-stage inputs, ``kind``) of ``image``
        under ``segmenter`` (torch, float32), computed only on a miss.

        A missing embedding whose trunk features (or last-stage inputs) are cached comes
        from the encoder's neck (or last stage) alone: after neck or stage training the
        slow part of the encoder never runs again. A
        slice another thread is encoding is waited for, not encoded again.
        """
        import torch

        key = self.key(segmenter, image, kind)
        expected = segmenter.embedding_shape if kind == "embedding" else None
        while True:
            with self._lock:
                array = self._lookup(key, expected)
                event = self._pending.get(key) if array is None else None
                owner = array is None and event is None
                if owner:
                    event = self._pending[key] = threading.Event()
            if array is not None:
                break
            if not owner:
                event.wait()
                continue
            try:
                array = self._compute(segmenter, image, kind, key)
            finally:
                with self._lock:
                    self._pending.pop(key).set()
            break
        return torch.from_numpy(array.astype(np.float32)).to(segmenter.device)

    def _compute(self, segmenter, image: np.ndarray, kind: str, key: str) -> np.ndarray:
        """Encode one slice (or finish the encoder on its cached trunk or last-stage input),
        store and return it."""
        import torch

        cached = None  # trunk features or last-stage inputs the embedding is finished from
        if kind == "embedding" and self.contains(segmenter, image, "trunk"):
            cached = self.get(segmenter, image, "trunk")
            computed = segmenter.neck(cached)  # the neck alone: cheap, kept in memory only
        elif kind == "embedding" and self._has_stage(segmenter, image):
            cached = self.get(segmenter, image, "stage")
            computed = segmenter.from_stage(cached)  # the last stage: kept in memory only
        else:
            encode = {"trunk": segmenter.encode_trunk, "stage": segmenter.encode_stage}
            computed = encode.get(kind, segmenter.encode)(image)
        array = computed.detach().to("cpu", torch.float16).contiguous().numpy()
        if cached is None:
            self._write_disk(key, array)
        with self._lock:
            if cached is None:
                self.stats.encoded += 1
            self._remember(key, array)
        return array

    def _has_stage(self, segmenter, image: np.ndarray) -> bool:
        """Whether last-stage inputs are cached (only TinyViT encoders have stages)."""
        return hasattr(segmenter.model.image_encoder, "layers") and self.contains(
            segmenter, image, "stage"
        )

    def contains(self, segmenter, image: np.ndarray, kind: str = "embedding") -> bool:
        """Whether ``image`` is cached (memory or disk) for ``segmenter``."""
        key = self.key(segmenter, image, kind)
        with self._lock:
            if key in self._memory:
                return True
        return self._disk_path(key) is not None and self._disk_path(key).exists()

    def _lookup(self, key: str, expected: tuple | None = None) -> np.ndarray | None:
        """A cached entry from memory, else from disk (remembered, when it has the
        ``expected`` shape and finite values), else ``None``."""
        array = self._memory.get(key)
        if array is not None:
            self._memory.move_to_end(key)
            self.stats.memory_hits += 1
            return array
        array = self._read_disk(key, expected)
        if array is not None:
            self.stats.disk_hits += 1
            self._remember(key, array)
        return array

    def clear(self) -> None:
        """Drop the memory store (the disk store stays)."""
        with self._lock:
            self._memory.clear()
            self._bytes = 0

    # -- internals -----------------------------------------------------------
    def _remember(self, key: str, array: np.ndarray) -> None:
        if array.nbytes > self.max_bytes:
            return
        self._memory[key] = array
        self._bytes += array.nbytes
        while self._bytes > self.max_bytes and self._memory:
            _, dropped = self._memory.popitem(last=False)
            self._bytes -= dropped.nbytes

    def _disk_path(self, key: str) -> Path | None:
        if self.disk_dir is None:
            return None
        model, image = key.split("-", 1)
        fingerprint, _, tag = model.partition(".")
        return self.disk_dir / (fingerprint[:24] + (f".{tag}" if tag else "")) / f"{image}.npy"

    def _read_disk(self, key: str, expected: tuple | None = None) -> np.ndarray | None:
        """A disk entry, or ``None``; a damaged one (unreadable, another type or shape,
        NaN or infinite values) is removed, logged and computed again, never used."""
        path = self._disk_path(key)
        if path is None or not path.exists():
            return None
        try:
            array = np.load(path, allow_pickle=False)
            problem = _damage(array, expected)
        except (OSError, ValueError) as exc:
            problem = f"unreadable ({exc})"
        if problem:
            logging.getLogger("napari_yolosam").warning(
                "embedding cache entry %s is damaged (%s): removed, encoding again", path, problem
            )
            path.unlink(missing_ok=True)
            return None
        path.touch()
        return array

    def _write_disk(self, key: str, array: np.ndarray) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        atomic_write(path, lambda tmp: np.save(tmp, array, allow_pickle=False))
        with self._lock:
            if self._disk_bytes is None:
                self._disk_bytes = sum(p.stat().st_size for p in self.disk_dir.glob("*/*.npy"))
            else:
                self._disk_bytes += path.stat().st_size
            if self._disk_bytes > self.max_disk_bytes:
                self._trim_disk()

    def _trim_disk(self) -> None:
        """Remove the oldest files until the store is within its bound (under the lock)."""
        files = sorted(self.disk_dir.glob("*/*.npy"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for path in files:
            if total <= self.max_disk_bytes:
                break
            total -= path.stat().st_size
            path.unlink(missing_ok=True)
        self._disk_bytes = total


def _damage(array: np.ndarray, expected: tuple | None) -> str:
    """What is wrong with a cache entry read from disk (empty when nothing)."""
    if array.dtype != np.float16:
        return f"type {array.dtype}, not float16"
    if expected is not None and tuple(array.shape) != tuple(expected):
        return f"shape {tuple(array.shape)}, not {tuple(expected)}"
    if not np.isfinite(array).all():
        return "NaN or infinite values"
    return ""


def embed_stack(
    segmenter,
    images: Sequence[np.ndarray],
    cache: EmbeddingCache,
    first: int = 0,
    kind: str = "embedding",
    names: Sequence[str] | None = None,
    views: Sequence | None = None,
) -> Generator[Progress, None, int]:
    """Encode every slice once, the slice ``first`` first and then outward from it; with
    ``views`` (:class:`~napari_yolosam.view.View` per slice) each slice's window is encoded,
    as ``propose(..., look_closer=True)`` reads it.

    What the viewer shows is ready after one encoder pass and its neighbours
    next, while the rest of the stack follows in the background; slices
    already cached (in memory or on disk) cost nothing. Yields
    :class:`~napari_yolosam.progress.Progress` after each slice (close the
    generator to stop) and returns the number of encoder passes it made.
    """
    n = len(images)
    if n and not 0 <= int(first) < n:
        raise ValueError(
            f"the first slice to encode, {first}, is not one of the stack's 0..{n - 1}"
        )
    order = slice_order(n, first)
    before = cache.stats.encoded
    for done, i in enumerate(order, start=1):
        cache.get(segmenter, images[i] if views is None else views[i].crop(images[i]), kind)
        yield Progress(
            done,
            n,
            "embed",
            names[i] if names is not None else str(i),
            {"encoded": cache.stats.encoded - before},
        )
    return cache.stats.encoded - before


def slice_order(n: int, first: int) -> list[int]:
    """``first``, then its neighbours outward: ``first, first+1, first-1, first+2, ...``."""
    first = min(max(int(first), 0), max(n - 1, 0))
    order = [first] if n else []
    for step in range(1, n):
        order += [i for i in (first + step, first - step) if 0 <= i < n]
    return order
