"""The docks fit a 1280x800 screen: `yolosam view`'s tabs and the Plugins menu's five widgets."""

import pytest

pytestmark = pytest.mark.gui

SCREEN = (1280, 800)
PLUGIN_WIDGETS = (
    "Open stack",
    "Models and proposals",
    "Review queue",
    "Fine-tuning",
    "Scar quantification",
)


def _fits(viewer, qtbot) -> None:
    """The window's minimum size fits the screen, it takes the screen's size, and the slice
    slider lies inside it."""
    import napari

    window = viewer.window._qt_window
    window.showNormal()
    window.resize(*SCREEN)
    for _ in range(5):
        napari.qt.get_qapp().processEvents()
    hint = window.minimumSizeHint()
    assert hint.width() <= SCREEN[0] and hint.height() <= SCREEN[1], hint
    assert window.width() <= SCREEN[0] and window.height() <= SCREEN[1], window.size()
    slider = viewer.window._qt_viewer.dims
    assert slider.isVisible()
    bottom = slider.mapTo(window, slider.rect().bottomLeft()).y()
    assert 0 < bottom <= window.height(), "the slice slider is on screen"


def test_yolosam_view_fits_1280x800_with_whole_tab_titles(make_napari_viewer, qtbot):
    from napari_yolosam.viewer import dock_workflow

    viewer = make_napari_viewer(show=True)
    dock_workflow(viewer, sample=True)  # what `yolosam view` shows
    _fits(viewer, qtbot)
    tabs = viewer.window.yolosam_workflow.widget
    bar = tabs.tabBar()
    for i in range(tabs.count()):  # each title drawn whole
        assert bar.tabRect(i).width() >= bar.fontMetrics().horizontalAdvance(tabs.tabText(i))
    assert bar.sizeHint().width() <= tabs.width(), "no tab scrolls out of sight"
    tabs.show_page("Review")
    table = viewer.window.yolosam_workflow.review.table
    assert table.viewport().height() >= 5 * table.verticalHeader().defaultSectionSize(), (
        "the queue table shows at least 5 rows"
    )


def test_the_plugins_menu_widgets_fit_1280x800(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    for name in PLUGIN_WIDGETS:
        viewer.window.add_plugin_dock_widget("napari-yolosam", name)
    _fits(viewer, qtbot)
