"""How long the review widget holds the GUI thread per action, on a large stack.

A real napari viewer (run under a virtual X server) with an N-slice phantom
(labels with 30% corrupted, proposals = the truth, so no model is needed),
the review widget's audit run once, then each action repeated: decide
(accept / keep, alternately), undo, redo, selecting a queue row, next
flagged. Each call runs on the GUI thread, so its duration is the time the
viewer is frozen; the table gives the median, 99th percentile and maximum
per action (the goal: under 100 ms per click). The long steps (run audit,
save the cleaned set, propose this slice with a model that must load first)
run in workers: for them a 10 ms heartbeat timer gives the longest time the
event loop was held from the click until the work had finished. The same
heartbeat also watches decisions for a second after each click, so work a
click defers (a timer, a redraw, a worker's result shown) is counted too.

    xvfb-run -a .venv/bin/python benchmarks/review_responsiveness.py --slices 1000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-review-bench-"))


def timed(app, call) -> float:
    """Milliseconds ``call`` holds the GUI thread (pending events processed first)."""
    app.processEvents()
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def longest_block(app, start, finished) -> float:
    """Milliseconds of the longest stall of the event loop from ``start()`` until
    ``finished()``: the longest gap between the ticks of a 10 ms timer."""
    from qtpy.QtCore import QTimer

    ticks = [time.perf_counter()]
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    app.processEvents()
    start()
    while not finished():
        app.processEvents()
        time.sleep(0.002)
    app.processEvents()
    ticks.append(time.perf_counter())
    timer.stop()
    return 1000 * float(np.diff(ticks).max())


def heartbeat_gaps(app, call, seconds: float) -> float:
    """Milliseconds of the longest stall of the event loop during ``call()`` and the
    ``seconds`` after it (work the click deferred: timers, redraws, worker results)."""
    end: list[float] = []

    def start() -> None:
        call()
        end.append(time.perf_counter() + seconds)

    return longest_block(app, start, lambda: time.perf_counter() >= end[0])


def main() -> None:
    import napari

    from napari_yolosam.napari_hooks.layers import stack_to_layer_data
    from napari_yolosam.phantom import make_phantom
    from napari_yolosam.proposals import Proposals, SliceProposal
    from napari_yolosam.widgets._layers import replace_layers
    from napari_yolosam.widgets.workflow import Workflow

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    phantom = make_phantom(
        n_slices=10, n_cases=args.slices // 10, shape=(args.size, args.size), corrupt=0.3, seed=0
    )
    viewer = napari.Viewer(show=True)
    replace_layers(viewer, stack_to_layer_data(phantom.stack))
    flow = Workflow(viewer)
    truth = np.isin(phantom.truth, (3, 4))
    slices = [SliceProposal.of_mask(m) for m in truth]
    flow.proposals.proposals = Proposals(phantom.stack.names, slices, {"probabilities": True})
    flow.proposals.show()
    app = napari.qt.get_qapp()
    review = flow.review
    times: dict[str, list[float]] = {}
    for _ in range(3):
        times.setdefault("run audit (worker)", []).append(
            longest_block(
                app, lambda: review.run_audit(restore=False), lambda: review.audit_worker is None
            )
        )

    def record(name: str, call) -> None:
        times.setdefault(name, []).append(timed(app, call))

    for k in range(args.repeats):
        record("decide (accept / keep)", lambda k=k: review.act("accept" if k % 2 else "keep"))
        record("undo", lambda: review.act("undo"))
        record("redo", lambda: review.act("redo"))
        record("next flagged", lambda: review.act("next"))
        step = (int(viewer.dims.current_step[0]) + 7) % args.slices
        record(
            "move the slider (napari alone, for reference)",
            lambda step=step: viewer.dims.set_current_step(0, step),
        )
        row = min(k + 1, review.table.rowCount() - 1)
        record("select a queue row", lambda row=row: review.table.selectRow(row))
    for k in range(max(3, args.repeats // 3)):
        times.setdefault("decide, then 1 s looking (longest stall)", []).append(
            heartbeat_gaps(app, lambda k=k: review.act("accept" if k % 2 else "keep"), 1.0)
        )
    out = Path(tempfile.mkdtemp(prefix="yolosam-review-save-"))
    for k in range(3):
        times.setdefault("save cleaned set (worker)", []).append(
            longest_block(
                app,
                lambda k=k: review.save(out / f"cleaned{k}"),
                lambda: review.save_worker is None,
            )
        )
    proposals = flow.proposals
    proposals.detector_spec.value = "none"
    for k in range(3):  # another model each time: it loads first, in the worker
        proposals.segmenter_spec.value = ("lite_medsam", "tiny")[k % 2]
        times.setdefault("propose this slice, model loading (worker)", []).append(
            longest_block(
                app,
                lambda: proposals.propose(current_only=True),
                lambda: proposals.status.value.startswith(("proposed", "no ", "could")),
            )
        )
    print(f"{args.slices} slices of {args.size} px\n")
    print("| action | median ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in times.items():
        v = np.array(values)
        print(f"| {name} | {np.median(v):.0f} | {np.percentile(v, 99):.0f} | {v.max():.0f} |")
    viewer.close()


if __name__ == "__main__":
    main()
