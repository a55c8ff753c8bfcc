"""Rebuilding a Stack from the viewer's fixed-name layers (a clear error when one is missing)."""

from __future__ import annotations

import numpy as np

from .. import layer_names
from ..stack import Stack


class MissingLayer(LookupError):
    """A layer the widget needs is not in the viewer (deleted or renamed)."""


def layer_or_none(viewer, name: str):
    """The layer called ``name``, or ``None``."""
    return viewer.layers[name] if name in viewer.layers else None


def stack_from_viewer(viewer, labels_name: str = layer_names.LABELS) -> Stack:
    """The stack shown in ``viewer``: the image layer, the labels layer and their metadata."""
    return stack_of_layers(*layers_of_viewer(viewer, labels_name))


def layers_of_viewer(viewer, labels_name: str = layer_names.LABELS):
    """The image and labels arrays (not copies) and the stack metadata shown in ``viewer``:
    cheap enough for the GUI thread; ``stack_of_layers`` copies them (in a worker if slow)."""
    image = layer_or_none(viewer, layer_names.IMAGE)
    labels = layer_or_none(viewer, labels_name)
    if image is None:
        raise MissingLayer(
            f"no '{layer_names.IMAGE}' layer: open a stack first (File > Open, or Open stack)"
        )
    if labels is None:
        raise MissingLayer(
            f"no '{labels_name}' layer: open a stack with labels, or rename your labels layer "
            f"to '{labels_name}'"
        )
    images = np.asarray(image.data)
    data = np.asarray(labels.data)
    if images.ndim == 2:
        images, data = images[None], data[None]
    if images.shape != data.shape:
        raise MissingLayer(
            f"the '{labels_name}' layer {data.shape} does not match the image {images.shape}"
        )
    meta = dict((labels.metadata or {}).get(layer_names.METADATA_KEY) or {})
    if meta.get("names") and len(meta["names"]) != images.shape[0]:
        meta = {}
    return images, data, meta


def stack_of_layers(images: np.ndarray, labels: np.ndarray, meta: dict) -> Stack:
    """A stack of the layers' arrays (the labels copied to the smallest integer type)."""
    dtype = np.uint16 if labels.max(initial=0) > 255 else np.uint8
    return Stack.from_metadata(images, labels.astype(dtype), meta)
