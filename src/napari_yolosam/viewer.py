"""Opening napari with the plugin's widgets and a stack (``yolosam view``)."""

from __future__ import annotations

from pathlib import Path

from .labelspec import LabelSpec


def open_viewer(
    path: str | Path | None = None,
    sample: bool = False,
    spec: LabelSpec | None = None,
    block: bool = True,
):
    """Start napari with the plugin docked, showing ``path`` or the phantom sample."""
    import napari

    from .io import read_stack
    from .napari_hooks.layers import stack_to_layer_data
    from .napari_hooks.sample import phantom_sample
    from .widgets._layers import replace_layers
    from .widgets.open_stack import OpenStackWidget
    from .widgets.workflow import Workflow

    viewer = napari.Viewer(title="napari-yolosam")
    viewer.window.add_dock_widget(OpenStackWidget(viewer), name="Open stack", area="right")
    if path is not None:
        replace_layers(viewer, stack_to_layer_data(read_stack(path, spec=spec)))
    elif sample:
        replace_layers(viewer, phantom_sample())
    viewer.window.yolosam_workflow = Workflow(viewer)
    if block:
        napari.run()
    return viewer
