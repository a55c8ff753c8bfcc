"""A real napari viewer (under Xvfb) opening stacks through the plugin."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_viewer_opens_folder_through_plugin(make_napari_viewer, phantom_folder, phantom):
    viewer = make_napari_viewer()
    layers = viewer.open(str(phantom_folder), plugin="napari-yolosam")
    assert [layer.name for layer in layers] == ["LGE image", "labels"]
    image, labels = viewer.layers["LGE image"], viewer.layers["labels"]
    assert image.data.shape == labels.data.shape == phantom.stack.shape
    assert labels.data.dtype.kind == "u"
    np.testing.assert_array_equal(labels.data, phantom.stack.labels)
    assert tuple(image.scale) == (1.0, 1.0, 1.0)  # PNG folders carry no spacing


def test_sample_and_writer(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-yolosam", "lge_phantom")
    assert {"LGE image", "labels", "phantom truth"} <= {layer.name for layer in viewer.layers}
    assert viewer.layers["LGE image"].scale[1] == pytest.approx(1.4)
    viewer.layers["labels"].data[0, :5, :5] = 3
    written = viewer.layers["labels"].save(str(tmp_path / "saved"), plugin="napari-yolosam")
    assert len(written) == 16
    from PIL import Image

    assert np.array(Image.open(tmp_path / "saved" / "Phantom_C01_slice000.png"))[0, 0] == 3


def test_open_stack_widget_reads_in_worker_and_reports_errors(
    make_napari_viewer, qtbot, phantom_folder, tmp_path
):
    from napari_yolosam.widgets.open_stack import OpenStackWidget

    viewer = make_napari_viewer()
    widget = OpenStackWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.preset.value = "binary"
    assert widget.scar.value == "1" and widget.spec().mode == "binary"
    widget.preset.value = "emidec"
    widget.scar.value = "3"
    assert widget.spec().scar == (3,)
    widget.open(phantom_folder)
    qtbot.waitUntil(lambda: "labels" in viewer.layers, timeout=30000)
    assert viewer.layers["labels"].data.shape == (8, 128, 128)
    assert viewer.layers["labels"].metadata["yolosam"]["spec"]["scar"] == [3]
    assert "8 slices" in widget.status.value
    (tmp_path / "images").mkdir()
    (tmp_path / "images/bad.png").write_bytes(b"\x89PNG broken")
    widget.open(tmp_path)
    qtbot.waitUntil(lambda: "bad.png" in widget.status.value, timeout=30000)
    assert "cannot be read" in widget.status.value
    assert viewer.layers["labels"].data.shape == (8, 128, 128), "the loaded stack is kept"


def test_bad_folder_gives_a_clear_error_not_a_crash(make_napari_viewer, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images/a.png").write_bytes(b"not a png")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match=r"a.png: cannot be read as an image"):
        viewer.open(str(tmp_path), plugin="napari-yolosam")
    assert len(viewer.layers) == 0


def test_yolosam_view_opens_the_sample_with_widgets(qtbot):
    from napari_yolosam.viewer import open_viewer

    viewer = open_viewer(sample=True, block=False)
    try:
        assert {"LGE image", "labels", "phantom truth"} <= {layer.name for layer in viewer.layers}
        from napari_yolosam.widgets.workflow import TITLE

        assert TITLE in viewer.window._dock_widgets
        tabs = viewer.window.yolosam_workflow.widget
        titles = [tabs.tabText(i) for i in range(tabs.count())]
        assert titles == ["Open", "Propose", "Review", "Train", "Quantify"]
        from qtpy.QtWidgets import QApplication

        area = QApplication.primaryScreen().availableGeometry()
        window = viewer.window._qt_window
        assert (window.width(), window.height()) == (area.width(), area.height()), "the screen"
        assert viewer.layers.selection.active.name == "labels", "not the hidden truth layer"
    finally:
        viewer.close()


def test_open_button_reads_the_path_field_and_activates_the_labels(
    make_napari_viewer, qtbot, phantom_folder
):
    """The Open button (which passes its checked state) opens the path field's stack; with an
    empty field it says so; after opening, the labels layer is the one painting goes to."""
    from napari_yolosam.widgets.open_stack import OpenStackWidget

    viewer = make_napari_viewer()
    widget = OpenStackWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.open_button.native.click()  # nothing chosen yet
    assert "choose a stack first" in widget.status.value
    widget.path.value = str(phantom_folder)
    widget.open_button.native.click()
    qtbot.waitUntil(lambda: "labels" in viewer.layers, timeout=30000)
    qtbot.waitUntil(lambda: "8 slices" in widget.status.value, timeout=30000)
    assert viewer.layers.selection.active is viewer.layers["labels"]
    from napari_yolosam.proposals.heart import heart_view
    from napari_yolosam.widgets._stack_from_layers import layers_of_viewer, stack_of_layers

    view = heart_view(stack_of_layers(*layers_of_viewer(viewer)), 0)  # #30 point 4
    scale = viewer.layers["LGE image"].scale[-2:]
    y, x = viewer.camera.center[-2:]
    assert view.size < max(view.shape), "a window round the heart, not the slice"
    assert view.top * scale[0] <= y <= (view.top + view.size) * scale[0], "centred on the heart"
    assert view.left * scale[1] <= x <= (view.left + view.size) * scale[1]


@pytest.mark.parametrize("delay", [2, 10])
def test_yolosam_view_ends_cleanly(tmp_path, delay):
    """`yolosam view` in its own process: Ctrl-C closes it with no traceback (a deleted QTimer
    used to raise in the quantification widget, then Qt aborted)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "YOLOSAM_HOME": str(tmp_path / "home")}
    code = "from napari_yolosam.cli import main; import sys; sys.exit(main(['view']))"
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, stdout=subprocess.PIPE
    )
    time.sleep(delay)  # while napari starts (2 s) or once it runs (10 s)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    process.send_signal(signal.SIGINT)
    try:
        _, err = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    text = err.decode()
    assert process.returncode == 0, text[-2000:]
    assert "Traceback" not in text and "RuntimeError" not in text, text[-2000:]


def test_a_cine_series_opens_with_a_phase_slider_and_one_phase_to_work_on(
    make_napari_viewer, qtbot, tmp_path
):
    from _dicom import write_series
    from napari_yolosam.widgets.workflow import Workflow

    phases, positions = 5, 3
    k = np.arange(phases * positions)
    volume = (
        np.ones((len(k), 16, 20)) * (100 * (k // positions) + 10 * (k % positions))[:, None, None]
    )
    write_series(tmp_path / "cine", volume, slope=1.0, intercept=0.0, phases=phases)
    viewer = make_napari_viewer()
    flow = Workflow(viewer)
    flow.open_stack.phase.value = 2
    flow.open_stack.open(tmp_path / "cine")
    qtbot.waitUntil(lambda: "LGE image" in viewer.layers, timeout=30000)
    cine = viewer.layers["all phases"]
    assert cine.data.shape == (phases, positions, 16, 20)
    assert np.allclose(cine.data[:, :, 0, 0], (100 * np.arange(phases))[:, None] + [0, 10, 20])
    assert viewer.dims.ndim == 4 and viewer.dims.axis_labels[0] == "phase"
    image = viewer.layers["LGE image"].data
    assert np.allclose(image[:, 0, 0], [200, 210, 220])  # the chosen phase to work on
    assert "phase 2 of 5" in flow.open_stack.status.value
    viewer.dims.set_current_step(0, 4)  # another phase on the time slider ...
    viewer.dims.set_current_step(1, 1)  # ... and the second slice
    assert flow.proposals.current_slice() == 1  # slices are the third axis from the end
    meta = viewer.layers["LGE image"].metadata["yolosam"]
    assert meta["phase"] == 2 and len(meta["phases"]) == phases


def test_a_study_folder_opens_every_patient_in_one_stack(make_napari_viewer, qtbot, tmp_path):
    from napari_yolosam.io import read_stack
    from napari_yolosam.phantom.io import save_phantom
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.widgets.open_stack import OpenStackWidget

    for k, name in enumerate(["P01", "P02"]):
        phantom = make_phantom(n_slices=3, n_cases=1, shape=(64, 64), corrupt=0.3, seed=k)
        save_phantom(phantom, tmp_path / "study" / name)
    viewer = make_napari_viewer()
    widget = OpenStackWidget(viewer)
    widget.open(tmp_path / "study")
    qtbot.waitUntil(lambda: "labels" in viewer.layers, timeout=30000)
    labels = viewer.layers["labels"]
    assert labels.data.shape == (6, 64, 64)
    np.testing.assert_array_equal(labels.data[3:], read_stack(tmp_path / "study" / "P02").labels)
    assert labels.metadata["yolosam"]["cases"] == ["P01"] * 3 + ["P02"] * 3
    assert "6 slices of 2 patients" in widget.status.value
    layers = viewer.open(str(tmp_path / "study"), plugin="napari-yolosam")  # File > Open too
    assert layers[0].data.shape == (6, 64, 64)
