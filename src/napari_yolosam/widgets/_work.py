"""Running core work generators in napari's thread workers, cancellably."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator


def cancellable(work: Generator, stop: threading.Event) -> Generator:
    """Forward ``work``'s events until ``stop`` is set, then close it (its clean-up runs) and
    return its result (``None`` when stopped)."""
    try:
        while True:
            try:
                event = next(work)
            except StopIteration as done:
                return done.value
            yield event
            if stop.is_set():
                return None
    finally:
        work.close()


def _safe(callback: Callable) -> Callable:
    """A GUI callback that does nothing once its widget is gone (the viewer closed mid-work)."""

    def call(*args):
        try:
            return callback(*args)
        except RuntimeError as exc:
            if "has been deleted" not in str(exc):
                raise
            return None

    return call


#: Threads kept free in Qt's global pool beyond the running workers (see ``_keep_pool_headroom``).
POOL_HEADROOM = 2


def _keep_pool_headroom() -> None:
    """Grow Qt's global thread pool so that workers never take all its threads.

    napari's workers run on ``QThreadPool.globalInstance()``, and Qt 5.15 also
    converts and smooth-scales large images on that pool, waiting for those
    tasks while the GUI thread holds Python's GIL (napari's activity indicator
    does it when a progress bar appears). With every pool thread taken by a
    worker that waits for the GIL, the GUI thread waited forever: seen on a
    2-core machine with a training and a quantification worker running.
    """
    from qtpy.QtCore import QThread, QThreadPool

    pool = QThreadPool.globalInstance()
    wanted = pool.activeThreadCount() + 1 + max(POOL_HEADROOM, QThread.idealThreadCount())
    if pool.maxThreadCount() < wanted:
        pool.setMaxThreadCount(wanted)


def _once(func: Callable, *args) -> Generator:
    yield None
    return func(*args)


def call(
    func: Callable,
    *args,
    on_done: Callable | None = None,
    on_error: Callable | None = None,
    owner=None,
):
    """Run ``func(*args)`` in a worker (the same pool rules as :func:`start`); returns the worker."""
    worker, _ = start(_once(func, *args), on_done=on_done, on_error=on_error, owner=owner)
    return worker


#: How long closing a window waits for its workers to stop (each stops after its step).
CLOSE_WAIT_S = 60.0


class _StopOnClose:
    """Stops a window's workers when the window closes, and waits for them, so that no worker
    signals into widgets Qt has deleted (kept on the window: no global state)."""

    def __init__(self, window) -> None:
        from qtpy.QtCore import QEvent, QObject

        self.running: list[tuple[object, threading.Event]] = []
        close = QEvent.Type.Close

        class Filter(QObject):
            def eventFilter(inner, obj, event):  # noqa: N802, N805 (Qt's name)
                if event.type() == close:
                    self.stop_all()
                return False

        self.filter = Filter(window)
        window.installEventFilter(self.filter)

    @classmethod
    def of(cls, widget) -> _StopOnClose | None:
        window = widget.window() if widget is not None else None
        if window is None:
            return None
        closer = getattr(window, "_yolosam_stop_on_close", None)
        if closer is None:
            closer = cls(window)
            window._yolosam_stop_on_close = closer
        return closer

    def add(self, worker, stop: threading.Event) -> None:
        """Track ``worker`` until it has finished (also while the pool has not started it)."""
        self.running = [(w, s) for w, s in self.running if _unfinished(w)]
        self.running.append((worker, stop))

    def stop_all(self) -> None:
        """Ask every running worker to stop, then wait (events still flow) until they have."""
        import time

        from qtpy.QtWidgets import QApplication

        for worker, stop in self.running:
            stop.set()
            worker.quit()
        deadline = time.monotonic() + CLOSE_WAIT_S
        while any(_unfinished(w) for w, _ in self.running) and time.monotonic() < deadline:
            QApplication.processEvents()
            time.sleep(0.02)
        self.running = []


def _unfinished(worker) -> bool:
    """Whether a started worker has not finished (superqt keeps it in its set until then)."""
    return worker.is_running or worker in type(worker)._worker_set


def start(
    work: Generator,
    on_event: Callable | None = None,
    on_done: Callable | None = None,
    on_error: Callable | None = None,
    total: int | None = None,
    desc: str = "",
    owner=None,
):
    """Run ``work`` in a ``thread_worker``; returns ``(worker, stop_event)``.

    With ``total`` (the number of events expected; 0 when unknown), napari's
    own progress bar (activity dock) follows the work too. Errors go to
    ``on_error`` (never re-raised into the event loop). With ``owner`` (the widget that
    started it), closing its window stops the work and waits for it: closing is clean
    whatever ran.
    """
    from napari.qt.threading import thread_worker

    stop = threading.Event()
    connect = {"errored": _safe(on_error or (lambda exc: None))}
    if on_event is not None:
        connect["yielded"] = _safe(on_event)
    if on_done is not None:
        connect["returned"] = _safe(on_done)
    progress = None if total is None else {"total": int(total), "desc": desc}
    _keep_pool_headroom()
    worker = thread_worker(cancellable, connect=connect, progress=progress)(work, stop)
    closer = _StopOnClose.of(owner)
    if closer is not None:
        closer.add(worker, stop)
    return worker, stop
