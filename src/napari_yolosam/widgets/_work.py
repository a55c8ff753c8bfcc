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


def start(
    work: Generator,
    on_event: Callable | None = None,
    on_done: Callable | None = None,
    on_error: Callable | None = None,
    total: int | None = None,
    desc: str = "",
):
    """Run ``work`` in a ``thread_worker``; returns ``(worker, stop_event)``.

    With ``total`` (the number of events expected; 0 when unknown), napari's
    own progress bar (activity dock) follows the work too. Errors go to
    ``on_error`` (never re-raised into the event loop).
    """
    from napari.qt.threading import thread_worker

    stop = threading.Event()
    connect = {"errored": _safe(on_error or (lambda exc: None))}
    if on_event is not None:
        connect["yielded"] = _safe(on_event)
    if on_done is not None:
        connect["returned"] = _safe(on_done)
    progress = None if total is None else {"total": int(total), "desc": desc}
    worker = thread_worker(cancellable, connect=connect, progress=progress)(work, stop)
    return worker, stop
