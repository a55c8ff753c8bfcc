"""Adding layer-data tuples to a viewer, replacing layers of the same fixed name."""

from __future__ import annotations

import numpy as np

from .. import layer_names


def replace_layers(viewer, layer_data: list[tuple], in_place: bool = False) -> list:
    """Add ``(data, kwargs, type)`` tuples, first removing layers with the same names.

    ``in_place``: a layer of the same name, type, shape and dtype gets the new data copied
    into its own array instead (a derived layer redrawn: no layer removed and added, which
    takes napari about a second per layer at 1,000 slices).

    The layer the annotator was working on stays the active one (a proposal or a hidden
    probability map never takes the brush); when it is gone, the labels layer is."""
    before = viewer.layers.selection.active
    added = []
    for data, kwargs, layer_type in layer_data:
        name = kwargs.get("name")
        if name in viewer.layers:
            layer = viewer.layers[name]
            if in_place and _same_array(layer, data, layer_type):
                layer.data[...] = data
                layer.refresh()
                added.append(layer)
                continue
            viewer.layers.remove(name)
        added.append(getattr(viewer, f"add_{layer_type}")(data, **kwargs))
    _keep_active(viewer, before)
    return added


def _keep_active(viewer, before) -> None:
    """Make ``before`` the active layer again, else the labels layer (if there is one)."""
    if before is not None and before in viewer.layers:
        active = before
    elif layer_names.LABELS in viewer.layers:
        active = viewer.layers[layer_names.LABELS]
    else:
        return
    viewer.layers.selection.active = active


def _same_array(layer, data, layer_type: str) -> bool:
    current = layer.data
    return (
        type(layer).__name__.lower() == layer_type
        and isinstance(current, np.ndarray)
        and current.shape == np.shape(data)
        and current.dtype == np.asarray(data).dtype
    )


def slice_axis(viewer) -> int | None:
    """napari's slider of the stack's slices (the third axis from the end: a cine's phase
    slider comes before it), or ``None`` for a single 2D slice."""
    ndim = viewer.dims.ndim
    return ndim - 3 if ndim >= 3 else None


def shown_slice(viewer) -> int:
    """Index of the slice shown."""
    axis = slice_axis(viewer)
    return 0 if axis is None else int(viewer.dims.current_step[axis])


def show_slice(viewer, index: int) -> None:
    """Move napari's slice slider to slice ``index``."""
    axis = slice_axis(viewer)
    if axis is not None:
        viewer.dims.set_current_step(axis, int(index))


def zoom_to(viewer, view) -> None:
    """Centre the camera on ``view`` (a :class:`~napari_yolosam.view.View`, slice pixels) and
    zoom so that it fills the canvas (the image layer's scale taken into account)."""
    if layer_names.IMAGE not in viewer.layers:
        return
    scale = np.asarray(viewer.layers[layer_names.IMAGE].scale[-2:], float)
    middle = (np.array([view.top, view.left]) + view.size / 2) * scale
    viewer.camera.center = (*tuple(viewer.camera.center)[:-2], *middle)
    canvas = np.asarray(viewer.canvas.size, float)  # the canvas in screen pixels (h, w)
    viewer.camera.zoom = float(np.min(canvas / (view.size * scale)))
