"""Opening napari with the plugin's widgets and a stack (``yolosam view``)."""

from __future__ import annotations

from pathlib import Path

from .labelspec import LabelSpec

#: What Qt's xcb platform plugin loads on Linux: library name -> Debian/Ubuntu package.
XCB_LIBRARIES = {
    "xcb-cursor": "libxcb-cursor0",
    "xcb-icccm": "libxcb-icccm4",
    "xcb-keysyms": "libxcb-keysyms1",
    "xcb-image": "libxcb-image0",
    "xcb-randr": "libxcb-randr0",
    "xcb-render-util": "libxcb-render-util0",
    "xcb-shape": "libxcb-shape0",
    "xkbcommon-x11": "libxkbcommon-x11-0",
    "EGL": "libegl1",
    "fontconfig": "libfontconfig1",
    "dbus-1": "libdbus-1-3",
}


def missing_window_libraries() -> list[str]:
    """The Debian/Ubuntu packages Qt needs to open a window here and cannot find (Linux, X11)."""
    import ctypes.util
    import os
    import sys

    if not sys.platform.startswith("linux") or os.environ.get("YOLOSAM_SKIP_WINDOW_CHECK") == "1":
        return []
    if os.environ.get("QT_QPA_PLATFORM", "xcb") not in ("xcb", ""):
        return []  # offscreen, wayland, ...: another plugin with other needs
    return [pkg for lib, pkg in XCB_LIBRARIES.items() if ctypes.util.find_library(lib) is None]


def check_window_libraries() -> None:
    """Fail with the install line, before Qt aborts the process, when window libraries lack."""
    missing = missing_window_libraries()
    if missing:
        raise RuntimeError(
            "napari cannot open a window: Qt's X11 (xcb) support needs system libraries this "
            f"machine lacks ({', '.join(missing)}); install them with: "
            f"sudo apt-get install -y {' '.join(missing)} (YOLOSAM_SKIP_WINDOW_CHECK=1 skips this check)"
        )


def open_viewer(
    path: str | Path | None = None,
    sample: bool = False,
    spec: LabelSpec | None = None,
    block: bool = True,
):
    """Start napari with the plugin docked, showing ``path`` or the phantom sample."""
    check_window_libraries()
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
        _quit_on_interrupt(viewer)
        napari.run()
    return viewer


def _quit_on_interrupt(viewer) -> None:
    """Ctrl-C (SIGINT) closes the viewer cleanly: Qt's event loop does not let Python see the
    signal by itself, so a timer wakes the interpreter a few times a second."""
    import signal

    from qtpy.QtCore import QTimer

    signal.signal(signal.SIGINT, lambda *_: viewer.close())
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(250)
    viewer.window.yolosam_interrupt_timer = timer  # kept as long as the window
