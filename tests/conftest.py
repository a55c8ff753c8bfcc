"""Shared fixtures: phantom data, ../shared/data (skipped when absent), GUI setup."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

# GUI tests need a real X server (napari has no OpenGL under "offscreen");
# pytest-xvfb starts Xvfb and sets DISPLAY. Keep cv2's Qt plugins out of Qt.
os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
os.environ.setdefault("YOLO_OFFLINE", "1")
# Caches (ultralytics settings, embeddings, weights) go to a private folder,
# never the user's home; downloads are off unless a test serves one locally.
os.environ["YOLOSAM_HOME"] = tempfile.mkdtemp(prefix="yolosam-test-home-")
os.environ["YOLOSAM_OFFLINE"] = "1"

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY")) or shutil.which("Xvfb") is not None


def pytest_collection_modifyitems(config, items):
    # In CI a missing X server must fail loudly, not skip: .ci/run installs Xvfb.
    if _has_display() or os.environ.get("CI"):
        return
    reason = "GUI test needs Xvfb (apt-get install xvfb) or a DISPLAY"
    for item in items:
        if "gui" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real MRI beside the checkout; tests using it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom():
    """A small phantom: 2 cases x 4 slices of 128 px, 50% corrupted labels."""
    from napari_yolosam.phantom.make import make_phantom

    return make_phantom(n_slices=4, n_cases=2, shape=(128, 128), corrupt=0.5, seed=7)


@pytest.fixture
def phantom_folder(phantom, tmp_path) -> Path:
    """The small phantom saved as images/ + masks/ (+ truth/)."""
    from napari_yolosam.phantom.io import save_phantom

    return save_phantom(phantom, tmp_path / "phantom")


@pytest.fixture(scope="session")
def tiny_segmenter():
    """A freshly initialised tiny SAM (shared; tests must not train it)."""
    from napari_yolosam.models.segmenter import Segmenter

    return Segmenter.build("tiny", seed=0)


@pytest.fixture(scope="session")
def lite():
    """The packaged pretrained LiteMedSAM (shared; tests must not train or change it)."""
    from napari_yolosam.models.segmenter import Segmenter

    return Segmenter.from_spec("lite_medsam")


@pytest.fixture(scope="session")
def tiny_detector():
    """A freshly initialised yolo11n with scar and LV classes (shared; not trained)."""
    from napari_yolosam.models.detector import Detector

    return Detector.build("yolo11n.yaml", names=("scar", "lv"), imgsz=128, seed=0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item, nextitem):
    """GUI tests: background workers finish before the test's viewer and widgets are deleted
    (the fixtures' teardown follows this hook; a worker reporting to a deleted widget makes Qt
    abort the whole test process)."""
    if "gui" in item.keywords:
        from qtpy.QtCore import QThreadPool

        QThreadPool.globalInstance().waitForDone(60000)
