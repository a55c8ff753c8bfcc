"""Regenerate the screenshots in docs/images from a real napari viewer.

Run under a virtual X server (no OpenGL offscreen):

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

HERE = Path(__file__).resolve().parent / "images"


def main() -> None:
    import napari
    from PIL import Image

    from napari_yolosam.viewer import open_viewer

    viewer = open_viewer(sample=True, block=False)
    viewer.window._qt_window.resize(1500, 950)
    viewer.dims.set_current_step(0, 4)
    viewer.layers["labels"].opacity = 0.6
    napari.qt.get_qapp().processEvents()
    HERE.mkdir(parents=True, exist_ok=True)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    Image.fromarray(shot).convert("RGB").save(HERE / "viewer.png", optimize=True)
    viewer.close()
    print(f"wrote {HERE / 'viewer.png'}")


if __name__ == "__main__":
    main()
