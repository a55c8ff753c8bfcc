"""The whole annotator workflow in one dock: open, propose, review, train, quantify, as tabs.

Each tab scrolls on its own, so the dock fits a 1280x800 screen beside the
canvas and its slice slider; the widgets are the same ones the Plugins menu
offers one by one, wired together (new models re-score the review queue).
"""

from __future__ import annotations

from qtpy.QtWidgets import QScrollArea, QTabWidget

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


class _Dock(QScrollArea):
    """A Plugins-menu dock: one widget in a scroll area (napari passes ``napari_viewer``)."""

    widget_class: type = OpenStackWidget

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.setWidgetResizable(True)
        self.yolosam_widget = self.widget_class(napari_viewer)
        self.setWidget(self.yolosam_widget.native)


class OpenStackDock(_Dock):
    """Open stack."""

    widget_class = OpenStackWidget


class ProposalsDock(_Dock):
    """Models and proposals."""

    widget_class = ProposalsWidget


class ReviewDock(_Dock):
    """Review queue."""

    widget_class = ReviewWidget


class FinetuneDock(_Dock):
    """Fine-tuning."""

    widget_class = FinetuneWidget


class QuantifyDock(_Dock):
    """Scar quantification."""

    widget_class = QuantifyWidget


class WorkflowWidget(QTabWidget):
    """Tabs Open, Propose, Review, Train, Quantify (napari passes ``napari_viewer``)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
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
