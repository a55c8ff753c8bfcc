"""Background work in the GUI: workers never starve Qt's own thread pool."""

import os
import subprocess
import sys
import textwrap

import pytest

# Qt 5.15 converts and smooth-scales large images on its global thread pool and
# waits for those tasks on the GUI thread (napari's activity indicator does it
# when a progress bar appears). With every pool thread taken by a worker, the GUI
# thread waited forever (seen in CI: 2 cores, a training and a quantification
# worker). Run in a child process: a regression deadlocks it, and the parent's
# timeout turns that into a failure instead of a hung suite.
SCRIPT = textwrap.dedent(
    """
    import threading
    from qtpy.QtCore import QThreadPool, Qt
    from qtpy.QtGui import QImage
    from qtpy.QtWidgets import QApplication

    app = QApplication([])
    from napari_yolosam.widgets._work import call

    release = threading.Event()
    pool = QThreadPool.globalInstance()
    count = pool.maxThreadCount()
    done = []
    workers = [call(release.wait, on_done=done.append) for _ in range(count)]
    while pool.activeThreadCount() < count:
        app.processEvents()
    image = QImage(3000, 3000, QImage.Format_RGB888)
    image.fill(7)
    scaled = image.scaled(1000, 1000, Qt.IgnoreAspectRatio, Qt.SmoothTransformation)
    release.set()
    while len(done) < count:
        app.processEvents()
    pool.waitForDone(10000)  # the workers' last signals go before Qt does (PyQt6 aborts else)
    print("scaled", scaled.width(), "workers", len(done), "pool", pool.maxThreadCount())
    """
)


def test_busy_workers_leave_qt_its_thread_pool():
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    try:
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the GUI thread deadlocked waiting for Qt's thread pool")
    assert run.returncode == 0, run.stderr[-2000:]
    assert "scaled 1000" in run.stdout
