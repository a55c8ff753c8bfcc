"""The view a model takes of a slice: the whole slice, or a square window round the heart.

The heart spans about 60 px of a 256 px EMIDEC slice, so LiteMedSAM's 64x64 embedding gives
the myocardium one or two cells; encoding a square window round the LV instead (resized to
the model's input like any slice) gives it three or four. A :class:`View` is that window in
slice pixels. It may reach past the slice (the outside is filled with the slice's minimum),
and maps everything a model reads or returns both ways exactly: the pixels it encodes
(:meth:`View.crop`), boxes and clicks (:meth:`View.to_view`, :meth:`View.to_slice`), and
masks, probabilities and logits (:meth:`View.paste`). Every layer the annotator sees stays
in slice pixels; the whole-slice view is the identity, so it reproduces the
whole-slice behaviour to the bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: A window round the heart is this many times the side of the box it is made from (the LV
#: or the label's myocardium): room for the box's error and for the tissue round the heart.
SCALE = 1.5
#: ... and never smaller than this share of the slice's longer side (at most 4x zoom).
MIN_SHARE = 0.25
#: Where a view came from, most trusted first.
SOURCES = ("label", "heart", "detector", "neighbours", "whole")


@dataclass(frozen=True)
class View:
    """A square window ``top..top+size`` x ``left..left+size`` of an ``(H, W)`` slice.

    ``source`` says where it came from (:data:`SOURCES`). ``View.whole(shape)`` is the slice
    itself.
    """

    top: int
    left: int
    size: int
    shape: tuple[int, int]
    source: str = "whole"

    def __post_init__(self) -> None:
        if self.size < 1 or len(self.shape) != 2 or min(self.shape) < 1:
            raise ValueError(f"a view needs a positive size and a 2-D shape, got {self}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown view source {self.source!r}; known: {SOURCES}")
        object.__setattr__(self, "shape", (int(self.shape[0]), int(self.shape[1])))

    # -- construction --------------------------------------------------------------
    @classmethod
    def whole(cls, shape: tuple[int, int]) -> View:
        """The whole slice (the identity view)."""
        return cls(0, 0, max(shape), tuple(shape), "whole")

    @classmethod
    def around(
        cls, box: np.ndarray, shape: tuple[int, int], source: str, scale: float = SCALE
    ) -> View:
        """The square window centred on ``box`` (``x0 y0 x1 y1``, slice pixels), ``scale``
        times its longer side, at least :data:`MIN_SHARE` of the slice's longer side."""
        x0, y0, x1, y1 = (float(v) for v in box)
        side = max(x1 - x0, y1 - y0) * scale
        size = int(round(max(side, MIN_SHARE * max(shape), 1.0)))
        top = int(round((y0 + y1) / 2 - size / 2))
        left = int(round((x0 + x1) / 2 - size / 2))
        return cls(top, left, size, tuple(shape), source)

    @classmethod
    def from_dict(cls, data: dict) -> View:
        return cls(int(data["top"]), int(data["left"]), int(data["size"]),
                   tuple(data["shape"]), str(data.get("source", "whole")))  # fmt: skip

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape)}

    # -- what it is --------------------------------------------------------------------
    @property
    def is_whole(self) -> bool:
        """Whether this is the slice itself (nothing cropped, nothing padded)."""
        return self.source == "whole"

    @property
    def box(self) -> np.ndarray:
        """The window as ``x0 y0 x1 y1`` in slice pixels (may reach past the slice)."""
        return np.array(
            [self.left, self.top, self.left + self.size, self.top + self.size], np.float32
        )

    @property
    def zoom(self) -> float:
        """How much larger the heart appears to the model than in the whole slice."""
        return max(self.shape) / self.size

    @property
    def view_shape(self) -> tuple[int, int]:
        """The shape of what the model is given (:meth:`crop`)."""
        return self.shape if self.is_whole else (self.size, self.size)

    # -- pixels, coordinates, outputs ---------------------------------------------------
    def crop(self, image: np.ndarray) -> np.ndarray:
        """The window's pixels ``(size, size)``; outside the slice, the slice's minimum."""
        if self.is_whole:
            return image
        fill = np.nanmin(image) if image.size else 0
        out = np.full((self.size, self.size), fill, dtype=image.dtype)
        (sr, sc), (vr, vc) = self._overlap()
        out[vr, vc] = image[sr, sc]
        return out

    def to_view(self, coords: np.ndarray) -> np.ndarray:
        """Slice ``(x, y)`` points or ``x0 y0 x1 y1`` boxes into window pixels."""
        return self._shift(coords, -1)

    def to_slice(self, coords: np.ndarray) -> np.ndarray:
        """Window ``(x, y)`` points or boxes back into slice pixels (inverse of :meth:`to_view`)."""
        return self._shift(coords, +1)

    def paste(self, array: np.ndarray, fill: float | bool = 0) -> np.ndarray:
        """Window-sized outputs ``(..., size, size)`` (masks, probabilities, logits) as
        slice-sized ones ``(..., H, W)``; slice pixels outside the window get ``fill``."""
        if self.is_whole:
            return array
        array = np.asarray(array)
        out = np.full((*array.shape[:-2], *self.shape), fill, dtype=array.dtype)
        (sr, sc), (vr, vc) = self._overlap()
        out[..., sr, sc] = array[..., vr, vc]
        return out

    def take(self, array: np.ndarray, fill: float | bool = 0) -> np.ndarray:
        """Slice-sized masks ``(..., H, W)`` as window-sized ones (the inverse of :meth:`paste`
        inside the slice; ``fill`` where the window leaves it)."""
        if self.is_whole:
            return array
        array = np.asarray(array)
        out = np.full((*array.shape[:-2], self.size, self.size), fill, dtype=array.dtype)
        (sr, sc), (vr, vc) = self._overlap()
        out[..., vr, vc] = array[..., sr, sc]
        return out

    # -- internals ------------------------------------------------------------------------
    def _shift(self, coords: np.ndarray, sign: int) -> np.ndarray:
        coords = np.asarray(coords, dtype=np.float32).copy()
        if not self.is_whole and coords.size:
            coords[..., 0::2] += sign * self.left
            coords[..., 1::2] += sign * self.top
        return coords

    def _overlap(self) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """The slice's and the window's index ranges of the part they share."""
        h, w = self.shape
        r0, c0 = max(self.top, 0), max(self.left, 0)
        r1, c1 = min(self.top + self.size, h), min(self.left + self.size, w)
        r1, c1 = max(r1, r0), max(c1, c0)
        return (
            (slice(r0, r1), slice(c0, c1)),
            (slice(r0 - self.top, r1 - self.top), slice(c0 - self.left, c1 - self.left)),
        )
