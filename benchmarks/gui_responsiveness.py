"""Qt event-loop delay in napari while the fine-tuning widget trains tiny SAM on the CPU.

A 10 ms QTimer on the GUI thread records how late each tick fires while the
worker trains; the 99th percentile of the lateness is the number to keep
under 100 ms. Run under a virtual X server:

    xvfb-run -a .venv/bin/python benchmarks/gui_responsiveness.py [--threads 1] [--epochs 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-gui-bench-"))


def main() -> None:
    import napari
    import numpy as np
    import torch
    from qtpy.QtCore import QTimer

    from napari_yolosam.napari_hooks.layers import stack_to_layer_data
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.widgets._layers import replace_layers
    from napari_yolosam.widgets.workflow import Workflow

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--threads", type=int, default=torch.get_num_threads(), help="torch threads for training"
    )
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    viewer = napari.Viewer(show=True)
    phantom = make_phantom(n_slices=6, n_cases=3, shape=(192, 192), seed=0)
    replace_layers(viewer, stack_to_layer_data(phantom.stack))
    flow = Workflow(viewer)
    flow.finetune.what.value = "segmenter"
    flow.finetune.epochs.value = args.epochs
    flow.finetune.out.value = tempfile.mkdtemp(prefix="run-")
    app = napari.qt.get_qapp()
    late: list[float] = []
    last = [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        late.append(max(0.0, now - last[0] - 0.010))
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(tick)
    timer.start(10)
    started = time.perf_counter()
    flow.finetune.start()
    while flow.finetune.result is None and "cancelled" not in flow.finetune.status.value:
        app.processEvents()
        time.sleep(0.001)
        if time.perf_counter() - started > 1800:
            break
    timer.stop()
    delays = np.array(late[5:]) * 1000
    print("| torch threads | training s | ticks | median ms late | p99 ms late | max ms late |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {args.threads} | {time.perf_counter() - started:.1f} | {len(delays)} | {np.median(delays):.1f} | "
        f"{np.percentile(delays, 99):.1f} | {delays.max():.1f} |"
    )
    viewer.close()


if __name__ == "__main__":
    main()
