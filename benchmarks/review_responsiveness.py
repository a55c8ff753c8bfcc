"""How long the review widget holds the GUI thread per action, on a large stack.

A real napari viewer (run under a virtual X server) with an N-slice phantom
(labels with 30% corrupted, proposals = the truth, so no model is needed),
the review widget's audit run once, then each action repeated: decide
(accept / keep, alternately), undo, redo, selecting a queue row, next
flagged. Each call runs on the GUI thread, so its duration is the time the
viewer is frozen; the table gives the median, 99th percentile and maximum
per action (the goal: under 100 ms per click).

    xvfb-run -a .venv/bin/python benchmarks/review_responsiveness.py --slices 1000
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-review-bench-"))


def timed(app, call) -> float:
    """Milliseconds ``call`` holds the GUI thread (pending events processed first)."""
    app.processEvents()
    start = time.perf_counter()
    call()
    return 1000 * (time.perf_counter() - start)


def main() -> None:
    import napari
    import numpy as np

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
    slices = [
        SliceProposal(
            m,
            m.astype(np.float32),
            np.zeros((1, 4), np.float32),
            np.array([np.nan], np.float32),
            np.ones(1, np.float32),
            ["label"],
            m[None],
        )
        for m in truth
    ]
    flow.proposals.proposals = Proposals(phantom.stack.names, slices, {"probabilities": True})
    flow.proposals.show()
    app = napari.qt.get_qapp()
    audit_ms = timed(app, lambda: flow.review.run_audit(restore=False))  # starts the worker
    while flow.review.audit_worker is not None:
        app.processEvents()
    review = flow.review
    times: dict[str, list[float]] = {}

    def record(name: str, call) -> None:
        times.setdefault(name, []).append(timed(app, call))

    for k in range(args.repeats):
        record("decide (accept / keep)", lambda k=k: review.act("accept" if k % 2 else "keep"))
        record("undo", lambda: review.act("undo"))
        record("redo", lambda: review.act("redo"))
        record("next flagged", lambda: review.act("next"))
        row = min(k + 1, review.table.rowCount() - 1)
        record("select a queue row", lambda row=row: review.table.selectRow(row))
    print(
        f"{args.slices} slices of {args.size} px; run audit: the GUI blocked {audit_ms:.0f} ms (the audit runs in a worker)\n"
    )
    print("| action | median ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for name, values in times.items():
        v = np.array(values)
        print(f"| {name} | {np.median(v):.0f} | {np.percentile(v, 99):.0f} | {v.max():.0f} |")
    viewer.close()


if __name__ == "__main__":
    main()
