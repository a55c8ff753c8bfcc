"""The quantification widget in a real viewer (Xvfb)."""

import numpy as np
import pytest

pytestmark = pytest.mark.gui


def test_table_updates_on_edit_and_semiauto_layer(make_napari_viewer, qtbot, phantom_folder):
    from napari_yolosam.widgets.quantify import QuantifyWidget

    viewer = make_napari_viewer()
    viewer.open(str(phantom_folder), plugin="napari-yolosam")
    widget = QuantifyWidget(viewer)
    viewer.window.add_dock_widget(widget)
    rows = widget.refresh()
    assert [r["case"] for r in rows] == ["Phantom_C01", "Phantom_C02"]
    assert widget.table.rowCount() == 2
    before = rows[0]["scar_volume"]
    labels = viewer.layers["labels"]
    data = labels.data.copy()
    ring = np.isin(data[0], (2,))
    data[0][ring] = 3  # the annotator marks the whole first ring as scar
    labels.data = data
    qtbot.waitUntil(lambda: widget.rows and widget.rows[0]["scar_volume"] > before, timeout=5000)
    widget.method.value = "nsd"
    widget.n.value = 2
    widget.add_semiauto_layer()
    qtbot.waitUntil(lambda: "semi-auto: nsd 2" in viewer.layers, timeout=20000)
    qtbot.waitUntil(lambda: len(widget.rows) == 4, timeout=5000)
    assert {r["source"] for r in widget.rows} == {"label", "semi-auto: nsd 2"}
    viewer.layers.remove("labels")
    qtbot.waitUntil(lambda: "no 'labels' layer" in widget.status.value, timeout=5000)
    assert widget.table.rowCount() == 0


def test_plot_shows_per_slice_areas_and_waits_while_hidden(
    make_napari_viewer, qtbot, phantom_folder
):
    from napari_yolosam.widgets._stack_from_layers import stack_from_viewer
    from napari_yolosam.widgets.quantify import QuantifyWidget

    viewer = make_napari_viewer()
    viewer.open(str(phantom_folder), plugin="napari-yolosam")
    widget = QuantifyWidget(viewer)
    widget.refresh()
    labels = np.asarray(viewer.layers["labels"].data)
    (line,) = widget._axes.lines
    area = stack_from_viewer(viewer).pixel_area_mm2 or 1.0
    expected = np.isin(labels, (3, 4)).sum(axis=(1, 2)) * area
    np.testing.assert_allclose(line.get_ydata(), expected)
    assert not widget._canvas.isVisible() and widget._plot_stale  # not drawn while hidden
    widget.native.show()
    qtbot.waitUntil(lambda: not widget._plot_stale, timeout=5000)
    widget.native.close()
