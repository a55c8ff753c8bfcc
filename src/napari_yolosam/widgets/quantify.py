"""Dock widget: per-case scar quantification, a per-slice plot, and n-SD / FWHM / Otsu layers."""

from __future__ import annotations

import contextlib

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
)
from qtpy.QtCore import QEvent, QObject, QTimer
from qtpy.QtWidgets import QTableWidget, QTableWidgetItem

from .. import layer_names
from ..quantify import compare_sources, units_note
from ..semiauto import METHODS, semiauto_stack
from ._session import register
from ._stack_from_layers import (
    MissingLayer,
    layer_or_none,
    layers_of_viewer,
    stack_of_layers,
)
from ._work import call

TABLE_COLUMNS = (
    "case",
    "source",
    "scar_volume",
    "myocardium_volume",
    "scar_burden_pct",
    "no_reflow_volume",
    "scar_components",
    "mean_transmurality",
)


class _OnShow(QObject):
    """Calls ``callback`` whenever the watched widget is shown."""

    def __init__(self, widget, callback) -> None:
        super().__init__(widget)
        self._callback = callback
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            self._callback()
        return False


class QuantifyWidget(Container):
    """Scar size per case for the labels (and proposals and semi-automatic layers), updated on edits."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        register(napari_viewer, self)
        self.method = ComboBox(
            label="method",
            choices=list(METHODS),
            value="nsd",
            tooltip="n-SD: mean + n SD of remote myocardium; FWHM: half the maximum; Otsu",
        )
        self.n = FloatSpinBox(
            label="n (SD)",
            min=1,
            max=10,
            step=0.5,
            value=5,
            tooltip="n of the n-SD threshold (2..8 in the literature)",
        )
        self.min_size = SpinBox(
            label="min size (px)",
            min=0,
            max=1000,
            value=0,
            tooltip="drop scar components smaller than this",
        )
        self.fill_holes = CheckBox(
            text="fill holes", value=False, tooltip="fill holes in the thresholded scar"
        )
        self.run_button = PushButton(
            text="Add semi-automatic layer",
            tooltip="threshold inside the labelled myocardium, as a new labels layer",
        )
        self.refresh_button = PushButton(text="Refresh table", tooltip="recompute the table now")
        self.status = Label(value="")
        self.extend(
            [
                self.method,
                self.n,
                self.min_size,
                self.fill_holes,
                self.run_button,
                self.refresh_button,
                self.status,
            ]
        )
        self.table = QTableWidget(0, len(TABLE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(TABLE_COLUMNS))
        self.table.setSortingEnabled(True)
        self.table.setToolTip(
            "Per-case volumes (mL, or pixels when spacing is unknown) for each source"
        )
        self.native.layout().addWidget(self.table)
        self._canvas, self._axes = self._make_plot()
        self.rows: list[dict] = []
        self._timer = QTimer(self.native)  # goes with the widget
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.refresh_in_background)
        self._watched = None
        self.run_button.changed.connect(self.add_semiauto_layer)
        self.refresh_button.changed.connect(self.refresh_in_background)
        self._closed = False
        self._requests = 0
        self.viewer.layers.events.inserted.connect(self._watch_labels)
        self.viewer.layers.events.removed.connect(self._watch_labels)
        self.native.destroyed.connect(self._teardown)
        self._watch_labels()
        self.refresh_in_background()

    def _teardown(self, *args) -> None:
        """Stop reacting to the viewer once the widget is gone (viewer closed, dock removed)."""
        self._closed = True
        with contextlib.suppress(RuntimeError):  # Qt may have deleted the timer already
            self._timer.stop()
        for signal in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            signal.disconnect(self._watch_labels)
        if self._watched is not None:
            for signal in (self._watched.events.data, self._watched.events.paint):
                signal.disconnect(self._schedule)
            self._watched = None

    def _make_plot(self):
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
            from matplotlib.figure import Figure
        except ImportError:  # pragma: no cover - matplotlib comes with ultralytics
            return None, None
        figure = Figure(figsize=(4, 2.2), tight_layout=True)
        canvas = FigureCanvasQTAgg(figure)
        canvas.setToolTip("Scar area per slice for each source")
        canvas.setMinimumHeight(200)
        self.native.layout().addWidget(canvas)
        self._plot_stale = False
        self._on_show = _OnShow(canvas, self._draw_plot)  # a plot changed while hidden
        return canvas, figure.add_subplot(111)

    # -- keeping up with edits -------------------------------------------------
    def _watch_labels(self, event=None) -> None:
        if self._closed:
            return
        layer = layer_or_none(self.viewer, layer_names.LABELS)
        if layer is self._watched:
            return
        if self._watched is not None:
            for signal in (self._watched.events.data, self._watched.events.paint):
                signal.disconnect(self._schedule)
        self._watched = layer
        if layer is not None:
            layer.events.data.connect(self._schedule)
            layer.events.paint.connect(self._schedule)
        self._schedule()

    def _schedule(self, event=None) -> None:
        if self._closed:
            return
        try:
            self._timer.start()
        except RuntimeError:  # the viewer is closing: its layers go before this widget
            self._closed = True

    # -- computing ---------------------------------------------------------------
    def sources(self, shape) -> dict[str, np.ndarray]:
        """Other scar layers to compare with the labels (their arrays, not copies): the
        proposal and every semi-automatic layer of the stack's ``shape``."""
        sources = {}
        for layer in self.viewer.layers:
            if layer.name == layer_names.PROPOSAL or layer.name.startswith(
                layer_names.SEMIAUTO_PREFIX
            ):
                data = np.asarray(layer.data)
                if data.shape == tuple(shape):
                    sources[layer.name] = data
        return sources

    def _gather(self):
        """The shown layers' arrays and metadata, or ``None`` (GUI thread: no copies)."""
        try:
            images, labels, meta = layers_of_viewer(self.viewer)
        except MissingLayer as exc:
            self.status.value = str(exc)
            self.rows = []
            self.table.setRowCount(0)
            return None
        return images, labels, meta, self.sources(labels.shape)

    @staticmethod
    def _compute(images, labels, meta, others):
        """The stack, its scar sources and the table rows (copies and sums: in a worker)."""
        stack = stack_of_layers(images, labels, meta)
        sources = {"label": stack.scar(), **{k: v > 0 for k, v in others.items()}}
        myocardium = stack.myocardium() if stack.spec.has_myocardium else stack.scar()
        rows = compare_sources(stack, sources, myocardium)
        scale = stack.pixel_area_mm2 or 1.0
        areas = {name: mask.sum(axis=(1, 2)) * scale for name, mask in sources.items()}
        return stack, areas, rows

    def _show(self, result) -> None:
        if self._closed or result is None:
            return
        stack, areas, rows = result
        self.rows = rows
        self._fill_table()
        self._plot(areas, "scar area (mm²)" if stack.pixel_area_mm2 else "scar area (px)")
        note = units_note(stack)
        self.status.value = note or f"{len(stack)} slices, {len(set(stack.cases))} case(s)"

    def refresh(self) -> list[dict]:
        """Recompute the table and plot now (blocking); returns the table rows."""
        if self._closed:
            return self.rows
        self._requests += 1  # results of earlier background requests are stale now
        gathered = self._gather()
        if gathered is not None:
            self._show(self._compute(*gathered))
        return self.rows

    def refresh_in_background(self):
        """Recompute in a worker (on opening, after label edits, on the button), so the
        viewer never waits for the table; only the latest request's result is shown."""
        if self._closed:
            return None
        gathered = self._gather()
        if gathered is None:
            return None
        self._requests += 1
        request = self._requests

        def show(result) -> None:
            if request == self._requests:
                self._show(result)

        return call(
            self._compute,
            *gathered,
            on_done=show,
            on_error=lambda exc: setattr(self.status, "value", str(exc)),
            owner=self.native,
        )

    def _fill_table(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, key in enumerate(TABLE_COLUMNS):
                value = row.get(key, "")
                text = f"{value:.3g}" if isinstance(value, float) else str(value)
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.setSortingEnabled(True)

    def _plot(self, areas: dict[str, np.ndarray], ylabel: str) -> None:
        """Scar area per slice for each source; drawn when the plot is on screen (drawing
        1,000 slices takes a quarter second, so a hidden plot waits until it is shown)."""
        if self._axes is None:
            return
        self._axes.clear()
        for name, values in areas.items():
            self._axes.plot(values, marker="." if len(values) <= 60 else None, label=name)
        self._axes.set_xlabel("slice")
        self._axes.set_ylabel(ylabel)
        self._axes.legend(fontsize=7)
        self._plot_stale = True
        if self._canvas.isVisible():
            self._draw_plot()

    def _draw_plot(self) -> None:
        if self._plot_stale:
            self._plot_stale = False
            self._canvas.draw_idle()

    def user_inputs(self, shape):
        """What the user drew: remote myocardium, a myocardium and FWHM seeds (each optional)."""

        def labels_of(name):
            layer = layer_or_none(self.viewer, name)
            if layer is None or np.shape(layer.data) != tuple(shape):
                return None
            data = np.asarray(layer.data) > 0
            return data if data.any() else None

        seeds = None
        points = layer_or_none(self.viewer, layer_names.FWHM_SEEDS)
        if points is not None and len(points.data):
            seeds = {
                int(round(p[0])): (int(round(p[-2])), int(round(p[-1])))
                for p in np.asarray(points.data)
            }
        return labels_of(layer_names.REMOTE), labels_of(layer_names.MYOCARDIUM_DRAWN), seeds

    def add_semiauto_layer(self):
        """Run the chosen method in a worker and add its result as a labels layer."""
        try:
            shown = layers_of_viewer(self.viewer)  # the stack is copied in the worker
        except MissingLayer as exc:
            self.status.value = str(exc)
            return None
        method, n = self.method.value, float(self.n.value)
        name = layer_names.semiauto_layer(method, n)

        remote, myocardium, seeds = self.user_inputs(shown[0].shape)

        def work():
            return semiauto_stack(
                stack_of_layers(*shown),
                method,
                n=n,
                myocardium=myocardium,
                min_size=int(self.min_size.value),
                fill_holes=bool(self.fill_holes.value),
                remote=remote,
                seeds=seeds,
            )

        def show(mask):
            data = mask.astype(np.uint8) * 3
            if name in self.viewer.layers:
                self.viewer.layers[name].data = data
            else:
                self.viewer.add_labels(
                    data, name=name, opacity=0.5, scale=self.viewer.layers[layer_names.IMAGE].scale
                )
            self.refresh_in_background()

        def fail(exc):
            self.status.value = str(exc)

        self.status.value = f"running {name} ..."
        return call(work, on_done=show, on_error=fail, owner=self.native)
