"""Regenerate the screenshots in docs/images from a real napari viewer.

Run under a virtual X server (no OpenGL offscreen):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py
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


def _raise(viewer, title: str) -> None:
    viewer.window._dock_widgets[title].raise_()


def main() -> None:
    import argparse

    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.viewer import open_viewer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--segmenter",
        default="tiny",
        help="segmenter for the proposal screenshots (e.g. demo/run/segmenter.pth from yolosam demo)",
    )
    args = parser.parse_args()
    HERE.mkdir(parents=True, exist_ok=True)
    viewer = open_viewer(sample=True, block=False)
    viewer.window._qt_window.resize(1500, 950)
    viewer.dims.set_current_step(0, 4)
    viewer.layers["labels"].opacity = 0.6
    flow = viewer.window.yolosam_workflow
    _raise(viewer, "Scar quantification")
    _shot(viewer, "viewer.png")
    # proposals with label prompts
    flow.proposals.detector_spec.value = "none"
    flow.proposals.segmenter_spec.value = args.segmenter
    _, segmenter = flow.proposals.models()
    from napari_yolosam.widgets._stack_from_layers import stack_from_viewer

    stack = stack_from_viewer(viewer)
    flow.proposals.merge(drive(propose(stack, segmenter, None, cache=flow.proposals.cache)), None)
    _raise(viewer, "Models and proposals")
    _shot(viewer, "proposals.png")
    flow.review.run_audit(restore=False)
    _raise(viewer, "Review queue")
    viewer.layers["scar probability"].visible = False
    viewer.layers["disagreement"].opacity = 0.8
    _shot(viewer, "review.png")
    _raise(viewer, "Fine-tuning")
    _shot(viewer, "finetune.png")
    viewer.close()


if __name__ == "__main__":
    main()
