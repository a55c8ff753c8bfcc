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


def test_every_plugins_menu_entry_opens_the_one_workspace(make_napari_viewer, qtbot):
    """#30 point 3: each entry opens (or brings up) the same tabbed workspace at its tab;
    never a column of docks."""
    import napari
    from qtpy.QtWidgets import QDockWidget

    from napari_yolosam.widgets.workflow import WorkflowWidget

    viewer = make_napari_viewer(show=True)
    pages = {
        "Open stack": "Open",
        "Models and proposals": "Propose",
        "Review queue": "Review",
        "Fine-tuning": "Train",
        "Scar quantification": "Quantify",
    }
    for name, page in [
        *pages.items(),
        ("Whole workflow (tabs)", "Propose"),
        ("Review queue", "Review"),
    ]:
        viewer.window.add_plugin_dock_widget("napari-yolosam", name)
        for _ in range(5):
            napari.qt.get_qapp().processEvents()
        docks = [d for d in viewer.window._qt_window.findChildren(QDockWidget) if d.isVisible()]
        ours = [d for d in docks if d.findChild(WorkflowWidget) is not None]
        assert len(ours) == 1, [d.windowTitle() for d in docks]
        workspace = ours[0].findChild(WorkflowWidget)
        assert workspace.tabText(workspace.currentIndex()) == page, name
        assert all(d.widget() is not None and d.widget().isVisible() for d in docks)
    _fits(viewer, qtbot)


def test_the_review_page_fits_its_dock_after_an_audit_with_long_names(
    make_napari_viewer, qtbot, phantom_folder, monkeypatch, tmp_path
):
    """#31 point 6: long slice names in the queue and the status never widen the Review
    page past its dock: every button stays whole on a 1280x800 screen."""
    import napari

    from napari_yolosam.viewer import dock_workflow

    monkeypatch.setenv("YOLOSAM_HOME", str(tmp_path / "home"))
    long = "Hospital_site_A_patient_0001_LGE_short_axis_PSIR_series_1204_"
    for folder in ("images", "masks", "truth"):
        for path in (phantom_folder / folder).iterdir():
            path.rename(path.with_name(long + path.name))
    viewer = make_napari_viewer(show=True)
    flow = dock_workflow(viewer, phantom_folder)
    assert viewer.layers.selection.active.name == "labels", "the brush paints the labels"
    flow.proposals.segmenter_spec.value = "tiny"
    _fits(viewer, qtbot)
    flow.widget.show_page("Review")
    flow.review.run_audit()  # no proposals yet: proposed in the background, then audited
    qtbot.waitUntil(lambda: "proposing" in flow.review.status.value, timeout=60000)
    qtbot.waitUntil(lambda: flow.review.session is not None, timeout=120000)
    assert viewer.layers.selection.active.name == "labels", "proposing keeps the labels active"
    flow.review.act("next")
    for _ in range(5):
        napari.qt.get_qapp().processEvents()
    assert long in flow.review.table.item(0, 1).text()
    buttons = [flow.review.audit_button, flow.review.cancel_button, flow.review.save_button]
    for button in [*buttons, *flow.review.buttons.values()]:
        widget = button.native
        shown = widget.visibleRegion().boundingRect()
        assert widget.isVisible() and shown.width() == widget.width(), (
            f"{widget.text()!r}: {shown.width()} of {widget.width()} px visible"
        )
