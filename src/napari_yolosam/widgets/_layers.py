"""Adding layer-data tuples to a viewer, replacing layers of the same fixed name."""

from __future__ import annotations


def replace_layers(viewer, layer_data: list[tuple]) -> list:
    """Add ``(data, kwargs, type)`` tuples, first removing layers with the same names."""
    added = []
    for data, kwargs, layer_type in layer_data:
        name = kwargs.get("name")
        if name in viewer.layers:
            viewer.layers.remove(name)
        added.append(getattr(viewer, f"add_{layer_type}")(data, **kwargs))
    return added
