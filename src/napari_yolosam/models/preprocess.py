"""THE intensity normalisation and resizing, shared by training and inference.

Every model input (SAM encoder, YOLO detector, training batches) is made by
the functions here from a :class:`PreprocessConfig` that is stored in each
checkpoint, so training and inference can never preprocess differently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

#: The largest model input side a configuration may ask for.
MAX_IMG_SIZE = 4096
SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class PreprocessConfig:
    """How a raw slice becomes a model input.

    Attributes
    ----------
    img_size
        Square model input side; the slice's longest side is resized to it
        and the rest padded (bottom/right).
    intensity
        ``"percentile"``: clip to the ``low``/``high`` percentiles and scale to
        0..255; ``"minmax"``: scale min..max to 0..255.
    low, high
        Percentiles for ``"percentile"``.
    mean, std
        Per-channel normalisation applied after scaling to 0..255 (SAM's
        ImageNet constants by default; MedSAM uses 0 and 255, i.e. 0..1).
    """

    img_size: int = 1024
    intensity: str = "percentile"
    low: float = 0.5
    high: float = 99.5
    mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    std: tuple[float, float, float] = SAM_PIXEL_STD

    def __post_init__(self) -> None:
        if self.intensity not in ("percentile", "minmax"):
            raise ValueError(f"unknown intensity normalisation {self.intensity!r}")
        if not isinstance(self.img_size, int) or not 16 <= self.img_size <= MAX_IMG_SIZE:
            raise ValueError(
                f"img_size must be an integer in 16..{MAX_IMG_SIZE}, got {self.img_size!r}"
            )
        for name in ("mean", "std"):
            value = getattr(self, name)
            try:
                channels = tuple(float(v) for v in value)
            except TypeError:
                raise ValueError(
                    f"{name} must be 3 numbers (one per channel), got {value!r}"
                ) from None
            if len(channels) != 3 or not all(math.isfinite(v) for v in channels):
                raise ValueError(f"{name} must be 3 finite numbers, got {value!r}")
            object.__setattr__(self, name, channels)
        if min(self.std) <= 0:
            raise ValueError(f"std must be positive, got {self.std}")
        if not 0 <= float(self.low) < float(self.high) <= 100:
            raise ValueError(
                f"percentiles must satisfy 0 <= low < high <= 100, got {self.low}, {self.high}"
            )

    def to_dict(self) -> dict:
        """JSON/checkpoint-friendly form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreprocessConfig:
        """Inverse of :meth:`to_dict`; a ``ValueError`` for anything it cannot hold."""
        if not isinstance(data, dict):
            raise ValueError(f"preprocessing must be a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown preprocessing field(s) {unknown}")
        return cls(**data)


def scale_intensity(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Slice intensities scaled to float32 0..255 (robust to outliers and scanner units)."""
    image = np.asarray(image, dtype=np.float32)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return np.zeros_like(image)
    if config.intensity == "percentile":
        lo, hi = np.percentile(finite, (config.low, config.high))
    else:
        lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-6:
        return np.zeros_like(image)
    out = (np.nan_to_num(image, nan=lo) - lo) / (hi - lo)
    return (np.clip(out, 0, 1) * 255).astype(np.float32)


def to_uint8_rgb(image: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """``(H, W, 3)`` uint8 for the detector (same intensity scaling as SAM's input)."""
    scaled = np.rint(scale_intensity(image, config)).astype(np.uint8)
    return np.repeat(scaled[..., None], 3, axis=2)


def resized_shape(shape: tuple[int, int], img_size: int) -> tuple[int, int]:
    """Shape of a ``shape`` slice after resizing its longest side to ``img_size``."""
    h, w = shape
    scale = img_size / max(h, w)
    return int(round(h * scale)), int(round(w * scale))


def prepare_image(image: np.ndarray, config: PreprocessConfig):
    """A slice as the encoder's input: ``(3, S, S)`` float32 torch tensor.

    Intensities are scaled (:func:`scale_intensity`), the longest side resized
    to ``config.img_size`` (bilinear, antialiased), channels normalised with
    ``mean``/``std``, and the bottom/right padded with zeros (after
    normalisation, as SAM does).
    """
    import torch
    import torch.nn.functional as F

    scaled = torch.from_numpy(scale_intensity(image, config))[None, None]
    new_h, new_w = resized_shape(scaled.shape[-2:], config.img_size)
    resized = F.interpolate(
        scaled, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True
    )
    rgb = resized[0].expand(3, -1, -1)
    mean = torch.tensor(config.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(config.std, dtype=torch.float32)[:, None, None]
    normed = (rgb - mean) / std
    out = torch.zeros((3, config.img_size, config.img_size), dtype=torch.float32)
    out[:, :new_h, :new_w] = normed
    return out


def transform_coords(coords: np.ndarray, shape: tuple[int, int], img_size: int) -> np.ndarray:
    """Pixel ``(x, y)`` coordinates (or ``x0 y0 x1 y1`` boxes) of a slice into model input space."""
    new_h, new_w = resized_shape(shape, img_size)
    coords = np.asarray(coords, dtype=np.float32).copy()
    coords[..., 0::2] *= new_w / shape[1]
    coords[..., 1::2] *= new_h / shape[0]
    return coords


def logits_to_image(low_res, shape: tuple[int, int], img_size: int):
    """Mask-decoder logits ``(..., h, w)`` back to the slice's ``shape`` (torch, bilinear).

    Upsamples to the model input size, removes the padding, then resizes to
    the original shape, as SAM's own post-processing does.
    """
    import torch.nn.functional as F

    lead = low_res.shape[:-2]
    x = low_res.reshape(-1, 1, *low_res.shape[-2:])
    x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
    new_h, new_w = resized_shape(shape, img_size)
    x = x[..., :new_h, :new_w]
    x = F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)
    return x.reshape(*lead, *shape)
