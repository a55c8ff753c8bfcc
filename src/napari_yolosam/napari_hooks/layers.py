"""Stacks to napari layer-data tuples and back (no napari import needed)."""

from __future__ import annotations

import numpy as np

from .. import layer_names
from ..palette import label_colours
from ..proposals.types import Proposals
from ..stack import Stack


def layer_scale(stack: Stack) -> tuple[float, float, float] | None:
    """napari ``scale`` in mm (slice step, row, column) when spacing is known."""
    if stack.spacing is None:
        return None
    return (float(stack.slice_step_mm or 1.0), *stack.spacing)


def stack_to_layer_data(stack: Stack, truth: np.ndarray | None = None) -> list[tuple]:
    """Image and labels layer-data tuples, each carrying the stack's metadata."""
    meta = {layer_names.METADATA_KEY: stack.metadata()}
    common: dict = {"metadata": meta}
    scale = layer_scale(stack)
    if scale is not None:
        common["scale"] = scale
    low, high = np.percentile(stack.images, (0.5, 99.5)) if stack.images.size else (0, 1)
    layers = [
        (
            stack.images,
            {
                **common,
                "name": layer_names.IMAGE,
                "colormap": "gray",
                "contrast_limits": (float(low), float(max(high, low + 1e-3))),
            },
            "image",
        )
    ]
    if len(stack.phases) > 1 and stack.layout == "dicom" and stack.source is not None:
        layers.append(phase_layer_data(stack, common))
    if truth is not None:
        layers.append(
            (
                truth,
                {**common, "name": layer_names.TRUTH, "opacity": 0.5, "visible": False},
                "labels",
            )
        )
    if stack.labels is not None:  # last: napari selects the last layer added (the brush's)
        colours = {"colormap": label_colours(stack.spec)}
        layers.append(
            (
                stack.labels,
                {**common, "name": layer_names.LABELS, "opacity": 0.5, **colours},
                "labels",
            )
        )
    return layers


def phase_layer_data(stack: Stack, common: dict) -> tuple:
    """Every phase of a cine series as an image layer with a time axis (napari's first slider),
    under the stack's own phase (the one proposals, audit and labels work on)."""
    from ..io.dicom import read_phase_images

    cine = read_phase_images(stack.source)
    low, high = np.percentile(cine, (0.5, 99.5))
    scale = common.get("scale")
    return (
        cine,
        {
            **common,
            "name": layer_names.PHASES,
            "colormap": "gray",
            "contrast_limits": (float(low), float(max(high, low + 1e-3))),
            "visible": False,
            "axis_labels": ("phase", "slice", "y", "x"),
            **({"scale": (1.0, *scale)} if scale is not None else {}),
        },
        "image",
    )


def stack_from_layer(data: np.ndarray, metadata: dict) -> Stack:
    """A :class:`Stack` describing a labels layer written by this plugin (images not kept)."""
    labels = np.asarray(data)
    if labels.ndim == 2:
        labels = labels[None]
    meta = (metadata or {}).get(layer_names.METADATA_KEY) or {}
    images = np.broadcast_to(np.zeros((1, 1, 1), np.float32), labels.shape)
    if meta.get("names") and len(meta["names"]) != labels.shape[0]:
        meta = {}
    if meta.get("original_shapes") and any(
        h > labels.shape[1] or w > labels.shape[2] for h, w in meta["original_shapes"]
    ):
        meta = {**meta, "original_shapes": []}
    return Stack.from_metadata(
        images, labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8), meta
    )


#: Values of the proposal layers (the label values, so napari draws them in the labels' colours).
SCAR_VALUE, MYOCARDIUM_VALUE = 3, 2


def proposal_layers(props: Proposals, scale) -> list[tuple]:
    """The proposal, probability and proposed-myocardium layers' data (stack-sized arrays:
    built in a worker when the stack is large)."""
    layers = [
        (
            props.masks().astype(np.uint8) * SCAR_VALUE,
            {"name": layer_names.PROPOSAL, "opacity": 0.5, "scale": scale},
            "labels",
        ),
        (
            props.probabilities(),
            {
                "name": layer_names.PROBABILITY,
                "visible": False,
                "colormap": "magma",
                "contrast_limits": (0, 1),
                "scale": scale,
            },
            "image",
        ),
    ]
    myo = props.myocardium()
    if myo is not None:
        layers.append(
            (
                myo.astype(np.uint8) * MYOCARDIUM_VALUE,
                {
                    "name": layer_names.MYOCARDIUM_PROPOSAL,
                    "opacity": 0.3,
                    "visible": False,
                    "scale": scale,
                },
                "labels",
            )
        )
    return layers
