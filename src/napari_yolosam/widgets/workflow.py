"""The whole annotator workflow in one dock: open, propose, review, train, quantify, as tabs.

Each tab scrolls on its own, so the dock fits a 1280x800 screen beside the
canvas and its slice slider; the widgets are wired together (new models
re-score the review queue). Every Plugins-menu entry opens this one workspace
at its tab, or brings it up when it is open: never a second dock beside it.
"""

from __future__ import annotations

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QDockWidget, QScrollArea, QTabWidget, QWidget

from ._session import find_widget, register
from .finetune import FinetuneWidget
from .open_stack import OpenStackWidget
from .proposals import ProposalsWidget
from .quantify import QuantifyWidget
from .review import ReviewWidget

#: Dock title of the tabbed workflow.
TITLE = "YoloSAM"


def scrolling(widget) -> QScrollArea:
    """``widget`` in a scroll area: a dock that fits any screen height, however tall it is."""
    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(widget.native)
    area.yolosam_widget = widget  # the magicgui object lives as long as its dock
    return area


def _dock_of(widget):
    """The ``QDockWidget`` holding ``widget`` (``None`` when it is not docked)."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QDockWidget):
        parent = parent.parentWidget()
    return parent


class _Redirect(QWidget):
    """A Plugins-menu entry chosen while the workspace is open: it brings the workspace up at
    its tab, and its own (empty) dock goes again at once."""

    def __init__(self, viewer, workspace: WorkflowWidget, page: str) -> None:
        super().__init__()
        workspace.show_page(page)
        dock = _dock_of(workspace)
        if dock is not None:
            dock.show()
            dock.raise_()
        QTimer.singleShot(0, lambda: _remove(viewer, self))


def _remove(viewer, widget) -> None:
    try:
        viewer.window.remove_dock_widget(widget)
    except (KeyError, LookupError, RuntimeError, AttributeError):  # already gone
        pass


def _workspace_at(page: str) -> type:
    """The Plugins-menu entry for ``page``: the viewer's one tabbed workspace at that tab (a
    new one the first time; never a second dock beside it). A class, as napari expects:
    making it makes (or brings up) the workspace."""

    class Entry:
        def __new__(cls, napari_viewer):
            existing = find_widget(napari_viewer, WorkflowWidget)
            if existing is not None and _dock_of(existing) is not None:
                return _Redirect(napari_viewer, existing, page)
            workspace = WorkflowWidget(napari_viewer)
            workspace.show_page(page)
            return workspace

        def __init__(self, napari_viewer) -> None:  # napari reads the viewer parameter here
            raise AssertionError("never made: __new__ returns the workspace")

    Entry.__name__ = Entry.__qualname__ = f"Workspace{page}"
    Entry.__doc__ = f"The workspace at its {page} tab."
    return Entry


class WorkflowWidget(QTabWidget):
    """Tabs Open, Propose, Review, Train, Quantify (napari passes ``napari_viewer``)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        register(napari_viewer, self)
        self.open_stack = OpenStackWidget(napari_viewer)
        self.proposals = ProposalsWidget(napari_viewer)
        self.review = ReviewWidget(napari_viewer, self.proposals)
        self.finetune = FinetuneWidget(napari_viewer, self.proposals, self.review)
        self.quantify = QuantifyWidget(napari_viewer)
        self.pages = {
            "Open": self.open_stack,
            "Propose": self.proposals,
            "Review": self.review,
            "Train": self.finetune,
            "Quantify": self.quantify,
        }
        for title, widget in self.pages.items():
            self.addTab(scrolling(widget), title)
            self.setTabToolTip(self.count() - 1, widget.__doc__.splitlines()[0])
        self.setUsesScrollButtons(False)  # every title whole
        self.setMinimumWidth(360)

    def show_page(self, title: str) -> None:
        """Bring tab ``title`` (``Open``, ``Propose``, ``Review``, ``Train``, ``Quantify``) up."""
        self.setCurrentIndex(list(self.pages).index(title))


class Workflow:
    """The tabbed workflow docked on the right of ``viewer``; its widgets as attributes."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.widget = WorkflowWidget(viewer)
        for name in ("open_stack", "proposals", "review", "finetune", "quantify"):
            setattr(self, name, getattr(self.widget, name))
        viewer.window.add_dock_widget(self.widget, name=TITLE, area="right")
        self.widget.show_page("Propose")

    def show_page(self, title: str) -> None:
        """Bring a tab up (see :meth:`WorkflowWidget.show_page`)."""
        self.widget.show_page(title)


#: The Plugins-menu entries (napari.yaml): each opens or brings up the one workspace.
WorkspaceDock = _workspace_at("Propose")
OpenStackDock = _workspace_at("Open")
ProposalsDock = _workspace_at("Propose")
ReviewDock = _workspace_at("Review")
FinetuneDock = _workspace_at("Train")
QuantifyDock = _workspace_at("Quantify")
