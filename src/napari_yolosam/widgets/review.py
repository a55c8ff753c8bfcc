"""Dock widget: the review queue. Audit, jump to the worst slices, decide, undo, save."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from magicgui.widgets import CheckBox, Container, FileEdit, Label, ProgressBar, PushButton
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
)

from .. import layer_names
from ..audit import AuditConfig
from ..paths import cache_dir
from ..proposals.heart import heart_view
from ..review import ReviewSaveError, ReviewSession
from . import _work
from ._disagreement import (
    DISAGREEMENT,
    LEGEND,
    disagreement,
    disagreement_colours,
    review_with_disagreement,
)
from ._layers import replace_layers, show_slice, zoom_to
from ._session import find_widget, register
from ._stack_from_layers import MissingLayer, layers_of_viewer

COLUMNS = ("slice", "image", "quality", "issue", "dice", "label_area", "proposal_area")
#: (action, button text, napari key binding); the tooltips say what each does
TIPS = {
    "next": "the next flagged slice, worst first",
    "previous": "the previous flagged slice",
    "accept": "the proposal as shown becomes the scar (inside the labelled myocardium)",
    "keep": "the label stays as it is",
    "union": "scar = label or proposal",
    "intersection": "scar = label and proposal",
    "edit": "keep what you painted in the labels layer",
    "undo": "undo the last decision (any slice)",
    "redo": "redo the last undone decision",
}
SHORTCUTS = (
    ("next", "Next", "Alt-Down"),
    ("previous", "Previous", "Alt-Up"),
    ("accept", "Accept", "Alt-A"),
    ("keep", "Keep label", "Alt-K"),
    ("union", "Union", "Alt-U"),
    ("intersection", "Intersect", "Alt-I"),
    ("edit", "Keep my edit", "Alt-E"),
    ("undo", "Undo", "Alt-Z"),
    ("redo", "Redo", "Alt-Y"),
)


class ReviewWidget(Container):
    """Runs the audit and walks the flagged slices, worst first.

    Selecting a row shows that slice with the label, the proposal and their
    disagreement. Each decision (accept, keep, union, intersection, or a
    hand edit in the ``labels`` layer) marks the slice reviewed, is logged
    and autosaved; undo and redo work across slices.
    """

    def __init__(self, napari_viewer, proposals_widget=None) -> None:
        super().__init__(labels=False)
        self.viewer = napari_viewer
        register(napari_viewer, self)
        self.proposals_widget = proposals_widget
        self.audit_button = PushButton(
            text="Run audit", tooltip="compare labels with proposals; rank and flag"
        )
        self.cancel_button = PushButton(
            text="Cancel audit", tooltip="stop the audit; the queue shown before stays"
        )
        self.cancel_button.changed.connect(self.cancel_audit)
        self.progress = ProgressBar(value=0, max=1, tooltip="the audit's progress")
        self.buttons = {}
        for action, text, key in SHORTCUTS:
            button = PushButton(text=text, tooltip=f"{TIPS[action]} [{key.replace('-', '+')}]")
            button.changed.connect(lambda *a, action=action: self.act(action))
            self.buttons[action] = button
        self._checkboxes()
        self.out = FileEdit(
            label="save to", mode="d", tooltip="a new folder for the cleaned labels"
        )
        self.save_button = PushButton(
            text="Save cleaned set", tooltip="labels + decisions.jsonl + summary.json"
        )
        self.status = Label(value="")
        self.status.native.setWordWrap(True)
        # long slice names never widen the page past its dock: the text wraps, the table scrolls
        self.status.native.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.legend = Label(value=LEGEND)
        self.legend.native.setToolTip("the 'disagreement' layer: where label and proposal differ")
        rows = [list(self.buttons.values())[k : k + 3] for k in range(0, len(self.buttons), 3)]
        self.extend(
            [
                Container(
                    widgets=[self.audit_button, self.cancel_button],
                    layout="horizontal",
                    labels=False,
                ),
                self.progress,
                self.to_heart,
                self.restore,
                self.bias_shift,
                *[Container(widgets=row, layout="horizontal", labels=False) for row in rows],
                self.legend,
                self.out,
                self.save_button,
                self.status,
            ]
        )
        self.table = self._queue_table()
        self.session: ReviewSession | None = None
        self.stack = None
        self.audit_worker = self._stop_audit = None  # the audit running in the background
        self._before_audit = None  # the session shown before the audit started
        self.save_worker = None  # the cleaned set being written in the background
        self.saved: list[Path] = []
        self.after_save: list = []  # called with the folder of each cleaned set saved
        self.untrained = False  # the proposals come from a model with random weights
        self._asked = None  # (slice, action) awaiting a second press to confirm
        self.current: int | None = None
        self.audit_button.changed.connect(lambda: self.run_audit(restore=bool(self.restore.value)))
        self.save_button.changed.connect(lambda: self.save(self.out.value))
        for action, _, key in SHORTCUTS:
            self.viewer.bind_key(
                key, lambda viewer, action=action: self.act(action), overwrite=True
            )

    def _checkboxes(self) -> None:
        """Go to the heart, restore an autosave, compare at the data set's bias."""
        self.to_heart = CheckBox(
            text="go to the heart",
            value=True,
            tooltip="centre and zoom on the heart of each slice the queue shows (the window "
            "the proposals used); untick for the whole slice",
        )
        self.to_heart.changed.connect(self._frame)
        self.restore = CheckBox(
            text="restore an autosaved session of this stack",
            value=True,
            tooltip="untick to start the review afresh (the autosave is then replaced)",
        )
        self.bias_shift = CheckBox(
            text="compare at the data set's bias threshold",
            value=True,
            tooltip="where the labels are uniformly larger or smaller than the proposals, "
            "compare each label with the proposals taken where their median size matches "
            "(untick where label size varies from case to case; the bias is reported either way)",
        )

    def _queue_table(self) -> QTableWidget:
        """The queue table under the controls: sortable, whole rows, columns fit their text."""
        table = QTableWidget(0, len(COLUMNS))
        table.setHorizontalHeaderLabels(list(COLUMNS))
        table.setSortingEnabled(True)
        table.setSelectionBehavior(QAbstractItemView.SelectRows)
        table.setToolTip("Flagged slices, worst first; click a row to go there")
        table.setMinimumHeight(160)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setStretchLastSection(True)
        table.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Expanding)  # scrolls, never widens
        table.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
        table.itemSelectionChanged.connect(self._row_selected)
        self.native.layout().addWidget(table)
        return table

    # -- audit and queue ---------------------------------------------------------------
    def _proposals(self, n_slices: int):
        if self.proposals_widget is None:
            from .proposals import ProposalsWidget

            self.proposals_widget = find_widget(self.viewer, ProposalsWidget)
        widget = self.proposals_widget
        if (
            widget is not None
            and widget.proposals is not None
            and len(widget.proposals) == n_slices
        ):
            return widget.proposals, widget.segmenter, widget.detector
        if widget is None:
            raise MissingLayer("no proposals: open the proposals widget and propose first")
        return None  # not proposed yet: run_audit starts the proposals widget's worker first

    def run_audit(self, restore: bool = True, rescore: bool = False):
        """Audit the current labels against the proposals in a worker, then fill the queue.

        An autosaved session of the same stack is restored (``restore``); ``rescore`` keeps
        the open review and its decisions and only renews proposals and queue (after
        fine-tuning). Returns the worker (``None`` when nothing could start; the status
        says why)."""
        try:
            shown = layers_of_viewer(self.viewer)  # the stack is copied in the worker
            n_slices = len(shown[0])
            found = self._proposals(n_slices)
            made_by = self.proposals_widget.made_by()
            if found is None and not (restore and not rescore):
                return self._propose_first(restore, rescore)
            proposals, segmenter, detector = found or (None, None, None)  # None: kept ones
        except (MissingLayer, ValueError) as exc:
            self.status.value = str(exc)
            return None
        if self.audit_worker is not None:
            self.status.value = "the audit is already running"
            return None
        config = AuditConfig(bias_correction=bool(self.bias_shift.value))
        models = {
            "segmenter": getattr(segmenter, "name", made_by["segmenter"]),
            "segmenter_fingerprint": getattr(segmenter, "fingerprint", None),
            "detector": getattr(detector, "config", made_by["detector"]),
        }
        self.untrained = bool(getattr(segmenter, "random_encoder", False))
        previous = self.session if rescore else None
        self._before_audit, self.session = self.session, None  # no decisions meanwhile
        self.audit_button.enabled = False
        self.status.value = f"auditing {n_slices} slice(s) ..."
        self.progress.max, self.progress.value = n_slices, 0
        work = review_with_disagreement(
            shown, proposals, config, models, cache_dir("autosave"), restore, previous, made_by
        )
        self.audit_worker, self._stop_audit = _work.start(
            work,
            on_event=lambda event: setattr(self.progress, "value", event.step),
            on_done=lambda out: self._show_audit(out, config, previous),
            on_error=self._audit_failed,
            total=n_slices,
            desc="auditing",
            owner=self.native,
        )
        return self.audit_worker

    def _propose_first(self, restore: bool, rescore: bool) -> None:
        """Propose every slice in the background, then audit (never on the GUI thread)."""
        self.proposals_widget.after_propose.append(lambda: self.run_audit(restore, rescore))
        self.proposals_widget.propose(current_only=False)
        self.status.value = "proposing all slices first ..."

    def cancel_audit(self) -> None:
        """Stop the running audit; the queue shown before it stays."""
        if self._stop_audit is not None:
            self._stop_audit.set()

    def _audit_failed(self, exc: Exception) -> None:
        self.audit_worker = self._stop_audit = None
        self.session = self._before_audit
        self.audit_button.enabled = True
        self.status.value = f"audit failed: {exc}"

    def _show_audit(self, out, config, previous) -> None:
        """Show an audit's queue (GUI thread): labels if restored, table, status, worst slice."""
        self.audit_worker = self._stop_audit = None
        self.audit_button.enabled = True
        if out is None:  # stopped: the queue of before stays
            self.session = self._before_audit
            self.status.value = "audit cancelled: the queue shown before stays"
            return
        stack, opened = out
        if opened is None:  # no proposals kept with the review, or the models changed
            self.session = self._before_audit
            self._propose_first(bool(self.restore.value), False)
            self.status.value = (
                "no proposals kept for these models: proposing all slices first ..."
            )
            return
        session, result, restored, disagreement, proposals = opened
        reused = self.proposals_widget.proposals is None
        if reused:  # the proposals kept with the review: shown, and used from now on
            self.proposals_widget.proposals = proposals
            self.proposals_widget.show()
        kept = session is previous and bool(session.decisions)
        self.session, self.stack = session, stack
        self._show_disagreement(disagreement)
        if restored and layer_names.LABELS in self.viewer.layers:
            self.viewer.layers[layer_names.LABELS].data = session.labels.copy()
        self.fill_table()
        bias = result.summary["bias"]
        self.status.value = (
            f"{result.summary['flagged']} flagged of {len(stack)}; bias "
            f"{bias['median_relative_area_difference']:+.2f} ({bias['meaning']}"
            + (
                f", proposals compared at {bias['threshold']:.2f})"
                if bias["corrected"]
                else ", not shifted: switched off)"
                if not config.bias_correction
                else ")"
            )
            + (f"; restored {len(session.decisions)} decision(s)" if restored else "")
            + ("; the proposals kept with the review (same models)" if reused else "")
            + (f"; {len(session.decisions)} earlier decision(s) kept" if kept else "")
            + (f". Note: {result.summary['note']}" if result.summary.get("note") else "")
        )
        queue = session.queue()
        if queue:
            self.go_to(queue[0])

    def fill_table(self) -> None:
        """Show the queue (flagged, unreviewed slices) worst first."""
        self.table.setSortingEnabled(False)
        queue = self.session.queue()
        self.table.setRowCount(len(queue))
        for r, index in enumerate(queue):
            self._set_row(r, index)
        self.table.setSortingEnabled(True)
        self.table.sortItems(COLUMNS.index("quality"), Qt.AscendingOrder)  # worst first

    def _set_row(self, r: int, index: int) -> None:
        row = self.session.rows[self.stack.names[index]]
        values = (index, *(row[c] for c in COLUMNS[1:]))
        for c, value in enumerate(values):
            item = QTableWidgetItem()
            item.setData(0, round(value, 3) if isinstance(value, float) else value)
            self.table.setItem(r, c, item)

    def _put_row(self, index: int) -> None:
        """Put slice ``index``'s row back in the queue table (after an undo), in order."""
        self.table.setSortingEnabled(False)
        r = self.table.rowCount()
        self.table.insertRow(r)
        self._set_row(r, index)
        self.table.setSortingEnabled(True)
        self.table.sortItems(COLUMNS.index("quality"), Qt.AscendingOrder)

    def _drop_row(self, image: str) -> None:
        """Take a decided slice's row out of the queue table (the rest stays as it is)."""
        for r in range(self.table.rowCount()):
            item = self.table.item(r, 1)
            if item is not None and item.data(0) == image:
                self.table.removeRow(r)
                return

    def _row_selected(self) -> None:
        rows = self.table.selectionModel().selectedRows()
        if rows:
            item = self.table.item(rows[0].row(), 0)
            if item is not None:
                self.go_to(int(item.data(0)))

    def go_to(self, index: int) -> None:
        """Show slice ``index`` with its disagreement layer."""
        self.current = int(index)
        if (
            layer_names.LABELS not in self.viewer.layers
            or layer_names.IMAGE not in self.viewer.layers
        ):
            self.status.value = (
                f"the '{layer_names.LABELS}' or '{layer_names.IMAGE}' layer is gone"
            )
            return
        if DISAGREEMENT not in self.viewer.layers:  # removed by the annotator: made again
            session = self.session
            self._show_disagreement(
                disagreement(self.stack.spec, session.labels, session.proposals)
            )
        show_slice(self.viewer, self.current)
        self._highlight_row(self.current)
        self.viewer.layers.selection.active = self.viewer.layers[layer_names.LABELS]
        self._frame()

    def _frame(self, *_) -> None:
        """Centre and zoom the view on the current slice's heart (``to the heart`` ticked), or
        show the whole slice (unticked)."""
        if not self.to_heart.value or self.current is None or self.stack is None:
            self.viewer.reset_view()
            return
        proposals = getattr(self.proposals_widget, "proposals", None)
        proposal = proposals.slices[self.current] if proposals is not None else None
        zoom_to(self.viewer, heart_view(self.stack, self.current, proposal))

    def _highlight_row(self, index: int) -> None:
        """Select the queue row of slice ``index`` (none when it is not queued), quietly."""
        self.table.blockSignals(True)
        try:
            self.table.clearSelection()
            for r in range(self.table.rowCount()):
                item = self.table.item(r, 0)
                if item is not None and int(item.data(0)) == index:
                    self.table.selectRow(r)
                    self.table.scrollToItem(item)
                    break
        finally:
            self.table.blockSignals(False)

    def _show_disagreement(self, disagreement: np.ndarray) -> None:
        """The disagreement layer for the whole stack (computed in the audit's worker)."""
        image = self.viewer.layers[layer_names.IMAGE]
        labels = np.asarray(self.viewer.layers[layer_names.LABELS].data)
        if labels.ndim == 2:
            disagreement = disagreement[0]
        replace_layers(
            self.viewer,
            [
                (
                    disagreement,
                    {
                        "name": DISAGREEMENT,
                        "opacity": 0.6,
                        "scale": image.scale,
                        "colormap": disagreement_colours(),
                    },
                    "labels",
                )
            ],
            in_place=True,
        )

    def _update_disagreement(self, index: int, refresh: bool = True) -> None:
        """Recompute the disagreement of slice ``index`` only, in place."""
        layer = self.viewer.layers[DISAGREEMENT]
        labels = np.asarray(self.viewer.layers[layer_names.LABELS].data)
        label = labels if labels.ndim == 2 else labels[index]
        values = disagreement(self.stack.spec, label, self.session.proposals[index])
        data = layer.data
        if np.ndim(data) == 2:
            data[...] = values
        else:
            data[index] = values
        if refresh:
            layer.refresh()

    # -- decisions -----------------------------------------------------------------------
    def _shown_proposal(self, index: int):
        """The proposal the annotator sees on slice ``index`` (the proposal layer) and where it
        came from: the audit's proposal, a prompt of the annotator's, or a hand edit of the layer.
        ``(None, None)`` without the layer: the audit's proposal is used."""
        layer = (
            self.viewer.layers[layer_names.PROPOSAL]
            if layer_names.PROPOSAL in self.viewer.layers
            else None
        )
        if layer is None:
            return None, None
        data = np.asarray(layer.data)
        shown = (data if data.ndim == 2 else data[index]) > 0
        if shown.shape != self.session.proposals[index].shape:
            return None, None
        if np.array_equal(shown, self.session.proposals[index]):
            return shown, "audit proposal"
        widget = self.proposals_widget
        prompted = widget is not None and widget.proposals is not None
        slice_ = widget.proposals.slices[index] if prompted else None
        if (
            slice_ is not None
            and slice_.sources == ["user"]
            and np.array_equal(shown, slice_.mask)
        ):
            return shown, "user prompt"
        return shown, "hand edit of the proposal layer"

    def act(self, action: str):
        """Apply a queue action to the current slice (or move through the queue)."""
        if self.session is None:
            self.status.value = "run the audit first"
            return None
        if self.save_worker is not None and action not in ("next", "previous"):
            self.status.value = "the cleaned set is being saved: decide again in a moment"
            return None
        session = self.session
        if action in ("next", "previous"):
            target = (
                session.next_slice(self.current)
                if action == "next"
                else session.previous_slice(self.current)
            )
            if target is not None:
                self.go_to(target)
            return target
        if action in ("undo", "redo"):
            try:
                decision = session.undo() if action == "undo" else session.redo()
            except ReviewSaveError as exc:
                self.status.value = f"not saved, nothing changed: {exc}"
                return None
            if decision is not None:
                self._sync_labels(decision.slice, refresh=decision.slice == self.current)
                self._drop_row(decision.image)  # one row in or out, never the whole table
                if decision.slice in session.queue():
                    self._put_row(decision.slice)
                self.go_to(decision.slice)
            self.status.value = (
                f"nothing to {action}"
                if decision is None
                else f"{decision.image}: {decision.action} "
                f"{'undone' if action == 'undo' else 'redone'}; {len(session.queue())} left"
            )
            return decision
        if self.current is None:
            return None
        edited = None
        if action == "edit":
            if layer_names.LABELS not in self.viewer.layers:
                self.status.value = f"no '{layer_names.LABELS}' layer to take the edit from"
                return None
            data = np.asarray(self.viewer.layers[layer_names.LABELS].data)
            edited = data if data.ndim == 2 else data[self.current]
        proposal, source = self._shown_proposal(self.current) if edited is None else (None, None)
        if action in ("accept", "union") and not self._confirmed(action, proposal):
            return None
        try:
            decision = session.decide(
                self.current, action, edited, proposal=proposal, source=source
            )
        except ReviewSaveError as exc:  # the session is as it was: so is what is shown
            self._sync_labels(self.current, refresh=True)
            self.status.value = f"not saved, nothing changed: {exc}"
            return None
        following = session.next_slice(self.current)
        self._sync_labels(self.current, refresh=following in (None, self.current))
        self._drop_row(decision.image)
        if following is not None:
            self.go_to(following)
        outside = decision.after.get("outside_myocardium_px", 0)
        self.status.value = f"{decision.image}: {action}; {len(session.queue())} left" + (
            f"; {outside} proposed px outside the myocardium left out" if outside else ""
        )
        return decision

    def _confirmed(self, action: str, proposal) -> bool:
        """Whether the proposal may replace the scar: at once when nothing is wrong with it,
        else on the same action asked a second time (the status says why)."""
        concerns = self.session.proposal_concerns(self.current, proposal, self.untrained, action)
        if not concerns or self._asked == (self.current, action):
            self._asked = None
            return True
        self._asked = (self.current, action)
        self.status.value = (
            f"Check this proposal: {'; '.join(concerns)}. "
            f"Press {action} again to use it anyway, keep the label, or Next if unsure."
        )
        return False

    def _sync_labels(self, index: int, refresh: bool = True) -> None:
        """Show slice ``index``'s labels from the session: that slice only, in place. Without
        ``refresh`` the layers are redrawn by the move to another slice that follows."""
        if layer_names.LABELS not in self.viewer.layers:
            self.status.value = (
                f"no '{layer_names.LABELS}' layer: decisions are kept in the session"
            )
            return
        layer = self.viewer.layers[layer_names.LABELS]
        data = layer.data
        if np.ndim(data) == 2:  # a single 2D slice
            data[...] = self.session.labels[0]
        else:
            data[index] = self.session.labels[index]
        if refresh:
            layer.refresh()
        if DISAGREEMENT in self.viewer.layers:
            self._update_disagreement(index, refresh)

    def save(self, out):
        """Write the cleaned set to ``out`` (a new folder) in a worker; returns the worker."""
        if self.session is None or not str(out) or str(out) == ".":
            self.status.value = "run the audit and choose a new folder first"
            return None
        if self.save_worker is not None:
            self.status.value = "the cleaned set is being saved"
            return None
        self.save_button.enabled = False
        self.status.value = f"saving the cleaned set to {out} ..."
        self.save_worker = _work.call(
            self.session.save_cleaned,
            out,
            on_done=lambda written: self._saved(out, written),
            on_error=lambda exc: self._saved(out, None, exc),
            owner=self.native,
        )
        return self.save_worker

    def _saved(self, out, written: list[Path] | None, error: Exception | None = None) -> None:
        self.save_worker = None
        self.save_button.enabled = True
        self.saved = written or []
        self.status.value = (
            f"saved {len(written)} files to {out}: a data set, offered on the Train tab"
            if written is not None
            else f"not saved: {error}"
        )
        if written is not None:
            for callback in self.after_save:  # the Train tab offers the cleaned set
                callback(out)
