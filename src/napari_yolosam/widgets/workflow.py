"""The whole annotator workflow docked in one viewer: proposals, review, fine-tuning, quantification."""

from __future__ import annotations

from .finetune import FinetuneWidget
from .proposals import ProposalsWidget
from .quantify import QuantifyWidget
from .review import ReviewWidget


class Workflow:
    """The four dock widgets, wired together (new models re-score the review queue)."""

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.proposals = ProposalsWidget(viewer)
        self.review = ReviewWidget(viewer, self.proposals)
        self.finetune = FinetuneWidget(viewer, self.proposals, self.review)
        self.quantify = QuantifyWidget(viewer)
        window = viewer.window
        window.add_dock_widget(self.proposals, name="Models and proposals", area="right")
        window.add_dock_widget(self.review, name="Review queue", area="right", tabify=True)
        window.add_dock_widget(self.finetune, name="Fine-tuning", area="right", tabify=True)
        window.add_dock_widget(
            self.quantify, name="Scar quantification", area="right", tabify=True
        )
