"""Regenerate the screenshots in docs/images from a real napari viewer at 1280x800.

Run under a virtual X server (no OpenGL offscreen):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py

Each step runs through the widgets' own workers (proposals, audit, a two-epoch
fine-tuning of ``tiny`` on the phantom for a loss plot with data), and any
notification toast is closed before a screenshot.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("YOLOSAM_HOME", tempfile.mkdtemp(prefix="yolosam-shots-"))

HERE = Path(__file__).resolve().parent / "images"


def _shot(viewer, name: str) -> None:
    import napari
    from PIL import Image

    napari.qt.get_qapp().processEvents()
    image = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(image).convert("RGB").save(HERE / name, optimize=True)
    print(f"wrote {HERE / name}")


def _wait(condition, timeout: float = 600) -> None:
    import time

    import napari

    app, end = napari.qt.get_qapp(), time.time() + timeout
    while not condition():
        if time.time() > end:
            raise TimeoutError("the viewer did not finish in time")
        app.processEvents()
        time.sleep(0.02)


def _no_toasts(viewer) -> None:
    """Close notification toasts so that none covers the canvas."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def main() -> None:
    import argparse

    from napari_yolosam.viewer import open_viewer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--segmenter",
        default="lite_medsam",
        help="segmenter for the proposal screenshots (a checkpoint, e.g. from yolosam demo)",
    )
    args = parser.parse_args()
    HERE.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer(sample=True, block=False)
    viewer.window._qt_window.resize(1280, 800)
    viewer.dims.set_current_step(0, 4)
    viewer.layers["labels"].opacity = 0.6
    flow = viewer.window.yolosam_workflow
    flow.show_page("Quantify")
    _wait(lambda: flow.quantify.table.rowCount() > 0, 60)
    _no_toasts(viewer)
    _shot(viewer, "viewer.png")
    flow.proposals.detector_spec.value = "none"  # label prompts
    flow.proposals.segmenter_spec.value = args.segmenter
    flow.show_page("Propose")
    flow.proposals.propose(current_only=False)
    _wait(lambda: flow.proposals.proposals is not None)
    _no_toasts(viewer)
    _shot(viewer, "proposals.png")
    flow.show_page("Review")
    flow.review.run_audit(restore=False)
    _wait(lambda: flow.review.session is not None)
    viewer.layers["scar probability"].visible = False
    viewer.layers["disagreement"].opacity = 0.8
    _no_toasts(viewer)
    _shot(viewer, "review.png")
    flow.show_page("Train")
    flow.finetune.what.value = "segmenter"
    flow.finetune.segmenter.value = "tiny"
    flow.finetune.epochs.value = 3
    flow.finetune.start()
    _wait(lambda: flow.finetune.result is not None)
    _no_toasts(viewer)
    _shot(viewer, "finetune.png")
    viewer.close()


if __name__ == "__main__":
    main()
