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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from ..geometry import mask_box
from ..view import View
from .checkpoints import CheckpointError, load_state_checked
from .preprocess import logits_to_image

#: What each output channel of the head maps.
CHANNELS = ("lv", "blood_pool")
#: The anatomy head's channels: the scar too, so that it can say where (and whether) a
#: slice has scar without any label (:meth:`HeartFinder.read`).
SCAR_CHANNELS = (*CHANNELS, "scar")
#: Hidden channels of the head (two 3x3 convolutions and a 1x1 one).
HIDDEN = 32
#: A cell is the heart's when the head gives it at least this probability.
THRESHOLD = 0.5


@dataclass
class HeartReading:
    """What a head reads in a window, boolean masks in slice pixels: the LV (its most probable
    region), its blood pool and, for a head with a scar channel, the scar inside the LV
    (``None`` without that channel) with the channel's peak probability there."""

    lv: np.ndarray
    blood_pool: np.ndarray
    scar: np.ndarray | None = None
    scar_peak: float = 0.0


def build_net(in_channels: int, hidden: int = HIDDEN, out_channels: int = len(CHANNELS)):
    """The head: embedding ``(B, C, s, s)`` -> logits ``(B, out_channels, s, s)``."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(in_channels, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, hidden, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(hidden, out_channels, 1),
    )


class HeartFinder:
    """The head, what its channels map (:data:`CHANNELS` or :data:`SCAR_CHANNELS`) and what
    it was trained on (``info``: slices, steps, loss, encoder name)."""

    def __init__(
        self,
        net,
        in_channels: int,
        hidden: int = HIDDEN,
        info: dict | None = None,
        channels: tuple[str, ...] = CHANNELS,
    ):
        self.net = net.eval()
        self.in_channels = int(in_channels)
        self.hidden = int(hidden)
        self.info = dict(info or {})
        self.channels = tuple(channels)

    @classmethod
    def build(
        cls,
        in_channels: int,
        hidden: int = HIDDEN,
        seed: int = 0,
        channels: tuple[str, ...] = CHANNELS,
    ) -> HeartFinder:
        """A fresh head (random weights, seeded)."""
        import torch

        torch.manual_seed(seed)
        net = build_net(in_channels, hidden, len(channels))
        return cls(net, in_channels, hidden, channels=channels)

    @property
    def reads_scar(self) -> bool:
        """Whether the head has a scar channel."""
        return "scar" in self.channels

    # -- use --------------------------------------------------------------------------
    def probabilities(self, embedding, shape: tuple[int, int], img_size: int) -> np.ndarray:
        """``(len(self.channels), H, W)`` probabilities at the slice's ``shape`` from its embedding
        (the slice encoded as a whole, resized to the model's ``img_size``)."""
        import torch

        with torch.inference_mode():
            logits = self.net(embedding.to(torch.float32))[0]
            return torch.sigmoid(logits_to_image(logits, tuple(shape), img_size)).numpy()

    def anatomy(self, embedding, view: View, img_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The LV (its most probable connected region) and its blood pool, boolean masks in
        slice pixels, from the embedding of ``view`` of the slice (empty: no heart found)."""
        reading = self.read(embedding, view, img_size)
        return reading.lv, reading.blood_pool

    def read(self, embedding, view: View, img_size: int) -> HeartReading:
        """Everything the head reads in the embedding of ``view`` of the slice: the LV and
        blood pool of :meth:`anatomy` and, with a scar channel, the scar (probability at
        least :data:`THRESHOLD`) inside the LV dilated by 2 px (the myocardium's rim)."""
        probs = [
            view.paste(p, 0.0) for p in self.probabilities(embedding, view.view_shape, img_size)
        ]
        lv, blood = probs[0], probs[1]
        regions, count = ndi.label(lv >= THRESHOLD)
        lv_mask = np.zeros(lv.shape, bool)
        if count:
            mass = ndi.sum(lv, regions, index=np.arange(1, count + 1))
            lv_mask = regions == 1 + int(np.argmax(mass))
        reading = HeartReading(lv_mask, lv_mask & (blood >= THRESHOLD))
        if self.reads_scar:
            inside = ndi.binary_dilation(lv_mask, iterations=2)
            scar = probs[self.channels.index("scar")]
            reading.scar = inside & (scar >= THRESHOLD)
            reading.scar_peak = float(scar[inside].max()) if inside.any() else 0.0
        return reading

    def lv_box(self, embedding, shape: tuple[int, int], img_size: int) -> np.ndarray | None:
        """``x0 y0 x1 y1`` round the most probable LV region of the whole slice encoded as
        ``embedding`` (``None``: no heart found)."""
        return mask_box(self.anatomy(embedding, View.whole(shape), img_size)[0])

    # -- saving -------------------------------------------------------------------------
    def to_state(self) -> dict:
        """Plain form, kept in the segmenter's checkpoint (``extra["heart"]``)."""
        return {
            "channels": list(self.channels),
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
        channels = data.get("channels")
        if channels not in (list(CHANNELS), list(SCAR_CHANNELS)):
            raise CheckpointError(
                path,
                f"holds a heart finder of channels {channels!r}, not {list(CHANNELS)} "
                f"or {list(SCAR_CHANNELS)}",
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
        net = build_net(in_channels, hidden, len(channels))
        load_state_checked(net, data["state_dict"], path)
        info = data.get("info") if isinstance(data.get("info"), dict) else {}
        return cls(net, in_channels, hidden, info, tuple(channels))
