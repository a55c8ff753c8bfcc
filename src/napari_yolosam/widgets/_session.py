"""What the plugin's widgets in one viewer share, kept with that viewer.

Widgets docked from napari's Plugins menu are made one by one, without
references to each other; each registers here under its viewer and finds
its partners here (no napari private API). The registry lets a viewer go:
it is keyed weakly, so a closed viewer takes its widgets' entries with it.
"""

from __future__ import annotations

import weakref

_WIDGETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def register(viewer, widget) -> None:
    """Record ``widget`` as its viewer's widget of its type (the newest of a type wins)."""
    _WIDGETS.setdefault(viewer, {})[type(widget)] = widget


def find_widget(viewer, cls):
    """The viewer's widget of type ``cls`` (or a subclass), or ``None``."""
    for kind, widget in _WIDGETS.get(viewer, {}).items():
        if issubclass(kind, cls):
            return widget
    return None
