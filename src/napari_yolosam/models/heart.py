"""Finding the heart in a slice's embedding: a small convolutional head on the segmenter's
image embedding that maps each embedding cell to the left ventricle (myocardium and blood
pool) and to its blood pool.

The detector boxes the LV from pixels it learns from scratch; on a 2-core CPU it learns
little in the minutes it has (its LV box meets the true one at IoU 0.27-0.31 on EMIDEC).
The segmenter's encoder already describes every cell of the slice; a head of three
convolutions learns from it in a couple of minutes where the heart is (IoU about 0.66,
the whole heart inside the window round it on 86-88% of slices; docs/benchmarks.md). It
is the first, coarse look of look closer: its LV box places the window that the
segmenter then encodes at full resolution.

The head belongs to the encoder whose embeddings it read, so it is saved inside the
segmenter's checkpoint (:meth:`HeartFinder.to_state`, read back and checked by
:meth:`HeartFinder.from_state`); a segmenter without one (the packaged LiteMedSAM) leaves
the heart to the labels and the detector.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..geometry import mask_box
from ..view import View
from .checkpoints import CheckpointError, load_state_checked
from .preprocess import logits_to_image

#: What each output channel of the head maps.
CHANNELS = ("lv", "blood_pool")
#: Hidden channels of the head (two 3x3 convolutions and a 1x1 one).
HIDDEN = 32
#: A cell is the heart's when the head gives it at least this probability.
THRESHOLD = 0.5


def build_net(in_channels: int, hidden: int = HIDDEN):
    """The head: embedding ``(B, C, s, s)`` -> logits ``(B, len(CHANNELS), s, s)``."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, len(CHANNELS), 1),
    )


class HeartFinder:
    """The head and what it was trained on (``info``: slices, steps, loss, encoder name)."""

    def __init__(self, net, in_channels: int, hidden: int = HIDDEN, info: dict | None = None):
        self.net = net.eval()
        self.in_channels = int(in_channels)
        self.hidden = int(hidden)
        self.info = dict(info or {})

    @classmethod
    def build(cls, in_channels: int, hidden: int = HIDDEN, seed: int = 0) -> HeartFinder:
        """A fresh head (random weights, seeded)."""
        import torch

        torch.manual_seed(seed)
        return cls(build_net(in_channels, hidden), in_channels, hidden)

    # -- use --------------------------------------------------------------------------
    def probabilities(self, embedding, shape: tuple[int, int], img_size: int) -> np.ndarray:
        """``(len(CHANNELS), H, W)`` probabilities at the slice's ``shape`` from its embedding
        (the slice encoded as a whole, resized to the model's ``img_size``)."""
        import torch

        with torch.inference_mode():
            logits = self.net(embedding.to(torch.float32))[0]
            return torch.sigmoid(logits_to_image(logits, tuple(shape), img_size)).numpy()

    def anatomy(self, embedding, view: View, img_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The LV (its most probable connected region) and its blood pool, boolean masks in
        slice pixels, from the embedding of ``view`` of the slice (empty: no heart found)."""
        probs = self.probabilities(embedding, view.view_shape, img_size)
        lv, blood = view.paste(probs[0], 0.0), view.paste(probs[1], 0.0)
        regions, count = ndi.label(lv >= THRESHOLD)
        if not count:
            return np.zeros(lv.shape, bool), np.zeros(lv.shape, bool)
        mass = ndi.sum(lv, regions, index=np.arange(1, count + 1))
        lv_mask = regions == 1 + int(np.argmax(mass))
        return lv_mask, lv_mask & (blood >= THRESHOLD)

    def lv_box(self, embedding, shape: tuple[int, int], img_size: int) -> np.ndarray | None:
        """``x0 y0 x1 y1`` round the most probable LV region of the whole slice encoded as
        ``embedding`` (``None``: no heart found)."""
        return mask_box(self.anatomy(embedding, View.whole(shape), img_size)[0])

    # -- saving -------------------------------------------------------------------------
    def to_state(self) -> dict:
        """Plain form, kept in the segmenter's checkpoint (``extra["heart"]``)."""
        return {
            "channels": list(CHANNELS),
            "in_channels": self.in_channels,
            "hidden": self.hidden,
            "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
            "info": self.info,
        }

    @classmethod
    def from_state(cls, data: object, path: str | Path | None, in_channels: int) -> HeartFinder:
        """A head from :meth:`to_state`'s form, read from ``path`` (untrusted: every field,
        name, shape and value is checked) for an encoder of ``in_channels`` channels."""
        if not isinstance(data, dict) or not isinstance(data.get("state_dict"), dict):
            raise CheckpointError(path, "holds a heart finder without weights")
        if data.get("channels") != list(CHANNELS):
            raise CheckpointError(
                path, f"holds a heart finder of channels {data.get('channels')!r}, not {CHANNELS}"
            )
        hidden = data.get("hidden")
        if data.get("in_channels") != in_channels or not isinstance(hidden, int):
            raise CheckpointError(
                path,
                f"holds a heart finder for {data.get('in_channels')!r}-channel embeddings "
                f"(hidden {hidden!r}); its segmenter's have {in_channels}",
            )
        if not 1 <= hidden <= 1024:
            raise CheckpointError(path, f"holds a heart finder of {hidden} hidden channels")
        net = build_net(in_channels, hidden)
        load_state_checked(net, data["state_dict"], path)
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        return cls(net, in_channels, hidden, info)
