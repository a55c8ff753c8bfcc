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


def _fill_screen(viewer) -> None:
    """The window at the screen's available size (a plain X server opens it smaller)."""
    from qtpy.QtWidgets import QApplication

    screen = QApplication.primaryScreen()
    if screen is not None:
        area = screen.availableGeometry()
        viewer.window.resize(area.width(), area.height())


def open_viewer(
    path: str | Path | None = None,
    sample: bool = False,
    spec: LabelSpec | None = None,
    block: bool = True,
):
    """Start napari with the plugin docked, showing ``path`` or the phantom sample.

    With ``block`` (``yolosam view``) Ctrl-C closes the viewer cleanly at any moment, while
    napari starts too: Qt's event loop does not let Python see the signal by itself, so a
    timer wakes the interpreter a few times a second.
    """
    check_window_libraries()
    interrupt = _Interrupt.install() if block else None
    import napari

    viewer = napari.Viewer(title="napari-yolosam")
    _fill_screen(viewer)
    dock_workflow(viewer, path, sample, spec)
    if interrupt is not None:
        interrupt.watch(viewer)
        if not interrupt.stopped:
            napari.run()
    return viewer


def dock_workflow(
    viewer, path: str | Path | None = None, sample: bool = False, spec: LabelSpec | None = None
):
    """What ``yolosam view`` shows in ``viewer``: the stack at ``path`` (or the phantom
    sample) and the tabbed workflow dock (kept as ``viewer.window.yolosam_workflow``)."""
    from .io import read_stack
    from .napari_hooks.layers import stack_to_layer_data
    from .napari_hooks.sample import phantom_sample
    from .widgets._layers import replace_layers
    from .widgets.workflow import Workflow

    if path is not None:
        replace_layers(viewer, stack_to_layer_data(read_stack(path, spec=spec)))
    elif sample:
        replace_layers(viewer, phantom_sample())
    viewer.window.yolosam_workflow = Workflow(viewer)
    return viewer.window.yolosam_workflow


class _Interrupt:
    """Ctrl-C for a Qt application: closes the viewer (or, before it exists, keeps it from
    starting) instead of raising KeyboardInterrupt inside Qt, which aborts the process."""

    def __init__(self) -> None:
        self.viewer = None
        self.stopped = False
        self.timer = None

    @classmethod
    def install(cls) -> _Interrupt:
        import signal

        interrupt = cls()
        signal.signal(signal.SIGINT, interrupt.handle)
        return interrupt

    def handle(self, *_) -> None:
        self.stopped = True
        if self.viewer is not None:
            _finish_workers()
            self.viewer.close()

    def watch(self, viewer) -> None:
        from qtpy.QtCore import QTimer

        self.viewer = viewer
        if self.stopped:
            _finish_workers()
            viewer.close()
            return
        self.timer = QTimer()
        self.timer.timeout.connect(lambda: None)
        self.timer.start(250)
        from qtpy.QtWidgets import QApplication

        QApplication.instance().aboutToQuit.connect(_finish_workers)
        viewer.window.yolosam_interrupt = self  # kept as long as the window


def _finish_workers(timeout_ms: int = 10000) -> None:
    """Let running background workers end before their widgets go: a worker that reports to a
    deleted widget makes Qt abort the process. Long work (training) was asked to stop by its
    widget's cancel; this waits at most ``timeout_ms``."""
    from qtpy.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(timeout_ms)
