"""Saving a phantom as a folder the readers take (images/, masks/, truth/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write, atomic_write_text
from ..io.writers import write_labels
from .make import Phantom


def save_phantom(phantom: Phantom, out: str | Path) -> Path:
    """Write ``images/`` (8-bit PNG), ``masks/`` (the noisy labels), ``truth/`` and
    ``corruptions.json`` under ``out``; returns ``out``."""
    from PIL import Image

    out = Path(out)
    stack = phantom.stack
    for name, image in zip(stack.names, stack.images, strict=True):
        pixels = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        atomic_write(
            out / "images" / name, lambda tmp, a=pixels: Image.fromarray(a).save(tmp, format="PNG")
        )
    write_labels(stack, out / "masks", fmt="png")
    write_labels(stack, out / "truth", labels=phantom.truth, fmt="png")
    atomic_write_text(out / "corruptions.json", json.dumps(phantom.corruption_records(), indent=1))
    return out
