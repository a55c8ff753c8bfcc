"""Progress events for long work, and driving a work generator to its result.

Long work (encoding, proposing, training) is a generator that yields
:class:`Progress` events and *returns* its result. napari drives it with
``thread_worker`` (``yielded`` / ``returned`` signals; ``quit()`` stops it at
the next yield), the CLI with :func:`drive` and a progress bar, tests plainly.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass
class Progress:
    """One step of long work: ``step`` of ``total`` in ``stage``, with optional numbers."""

    step: int
    total: int
    stage: str = ""
    message: str = ""
    values: dict = field(default_factory=dict)

    @property
    def fraction(self) -> float:
        """Done fraction in 0..1."""
        return 0.0 if self.total <= 0 else min(1.0, self.step / self.total)


class Stopped(Exception):
    """Raised by :func:`drive` when ``should_stop`` asked the work to end early."""


def drive(
    work: Generator[Progress, None, T],
    on_progress: Callable[[Progress], Any] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> T:
    """Run a work generator to its end and return its result.

    ``on_progress`` sees every event; when ``should_stop()`` turns true the
    generator is closed (its ``finally`` blocks run) and :class:`Stopped` is raised.
    """
    while True:
        try:
            event = next(work)
        except StopIteration as done:
            return done.value
        if on_progress is not None:
            on_progress(event)
        if should_stop is not None and should_stop():
            work.close()
            raise Stopped(f"stopped at {event.stage} {event.step}/{event.total}")


def cli_progress(prefix: str = "") -> Callable[[Progress], None]:
    """A progress bar on stderr for :func:`drive` (tqdm: rate and time left, one bar per stage).

    Where stderr is not a terminal (a log file, CI), tqdm writes a line now
    and then instead of redrawing one.
    """
    import sys

    from tqdm import tqdm

    bars: dict = {}

    def show(event: Progress) -> None:
        key = event.stage
        bar = bars.get(key)
        if bar is None or event.total != bar.total or event.step < bar.n:
            if bar is not None:
                bar.close()
            bar = bars[key] = tqdm(
                total=event.total,
                desc=f"{prefix}{event.stage}",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30,
                leave=True,
            )
        bar.update(event.step - bar.n)
        bar.set_postfix(
            {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in event.values.items()},
            refresh=False,
        )
        if event.step >= event.total:
            bar.close()
            bars.pop(key, None)

    return show
