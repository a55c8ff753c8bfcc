"""Dock widget: open a stack with its labels under a chosen label specification."""

from __future__ import annotations

from pathlib import Path

from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, SpinBox

from ..io import StackError, read_study
from ..labelspec import MASK_MODES, LabelSpec
from ..napari_hooks.layers import stack_to_layer_data
from ._layers import replace_layers, zoom_to
from ._session import find_widget, register

PRESET_VALUES = {
    "emidec": LabelSpec.emidec(),
    "binary": LabelSpec.binary(),
}


def _fmt(values: tuple[int, ...]) -> str:
    return ",".join(str(v) for v in values)


class OpenStackWidget(Container):
    """Open a folder, DICOM series, TIFF or NIfTI stack with its labels.

    The label specification (which values are scar, myocardium, no-reflow,
    and how mask files are decoded) is set here; reading runs in a worker
    thread so the viewer stays responsive, and a bad file is reported in the
    widget and as a notification, never as a crash.
    """

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        register(napari_viewer, self)
        self.path = FileEdit(
            label="stack",
            mode="d",
            tooltip="Folder with images/ (+ masks/), a DICOM folder, a folder of patients (their "
            "folders or NIfTI files: opened together); or type a .tif/.nii.gz path",
        )
        self.labels_path = FileEdit(
            label="labels (optional)",
            mode="r",
            tooltip="Mask folder, label file or DICOM-SEG kept elsewhere; empty: masks/ beside "
            "images/",
        )
        self.preset = ComboBox(
            label="label values",
            choices=list(PRESET_VALUES),
            value="emidec",
            tooltip="Preset for what label values mean",
        )
        self.scar = LineEdit(
            label="scar values",
            value="3,4",
            tooltip="Comma-separated label values counted as scar",
        )
        self.myocardium = LineEdit(
            label="myocardium values",
            value="2,3,4",
            tooltip="Values counted as myocardium (scar included)",
        )
        self.no_reflow = LineEdit(
            label="no-reflow values", value="4", tooltip="Microvascular obstruction values"
        )
        self.mode = ComboBox(
            label="mask decoding",
            choices=list(MASK_MODES),
            value="auto",
            tooltip="auto: 0/255 or soft masks are binarised, small integer maps kept as classes",
        )
        self.threshold = SpinBox(
            label="binary threshold",
            min=1,
            max=255,
            value=128,
            tooltip="Soft (anti-aliased) masks are scar where value >= threshold",
        )
        self.phase = SpinBox(
            label="phase (cine)",
            min=0,
            max=999,
            value=0,
            tooltip="DICOM series with several phases: which one the labels, proposals and audit "
            "work on (0: the first, end-diastole); every phase is shown in 'all phases'",
        )
        self.open_button = PushButton(
            text="Open", tooltip="Read the stack in the background and show it"
        )
        self.status = Label(value="")
        self.extend(
            [
                self.path,
                self.labels_path,
                self.preset,
                self.scar,
                self.myocardium,
                self.no_reflow,
                self.mode,
                self.threshold,
                self.phase,
                self.open_button,
                self.status,
            ]
        )
        self.preset.changed.connect(self._apply_preset)
        self.open_button.changed.connect(lambda *_: self.open())  # the button passes its state
        self.worker = None

    def _apply_preset(self, name: str) -> None:
        spec = PRESET_VALUES[name]
        self.scar.value = _fmt(spec.scar)
        self.myocardium.value = _fmt(spec.myocardium)
        self.no_reflow.value = _fmt(spec.no_reflow)
        self.mode.value = spec.mode

    def spec(self) -> LabelSpec:
        """The label specification the controls describe."""
        return LabelSpec.from_name(
            self.preset.value,
            scar=self.scar.value,
            myocardium=self.myocardium.value,
            no_reflow=self.no_reflow.value,
            mode=self.mode.value,
            threshold=int(self.threshold.value),
        )

    def open(self, path: str | Path | None = None):
        """Read ``path`` (default: the path field) in a worker; returns the worker."""
        from ._work import call

        chosen = path if path is not None else self.path.line_edit.value.strip()
        if chosen in (None, "", False) or str(chosen) in ("", "."):
            self.status.value = "choose a stack first: a folder, DICOM folder, TIFF or NIfTI file"
            return None
        target = Path(chosen)
        labels = self.labels_path.value
        labels = None if labels in (None, "") or str(labels) in ("", ".") else Path(labels)
        try:
            spec = self.spec()
        except ValueError as exc:
            self._fail(exc)
            return None

        phase = int(self.phase.value) or None  # 0: the default (also for single-phase input)

        def _read():  # the layers' arrays (every phase of a cine too) are built here as well
            stack = read_study(target, labels=labels, spec=spec, phase=phase)
            return stack, stack_to_layer_data(stack)

        self.status.value = f"reading {target.name} ..."
        # errors are reported by _fail, never re-raised into the event loop
        self.worker = call(_read, on_done=self._show, on_error=self._fail, owner=self.native)
        return self.worker

    def _show(self, read) -> None:
        from .. import layer_names

        stack, layers = read
        replace_layers(self.viewer, layers)
        if layer_names.LABELS in self.viewer.layers:  # painting goes to the labels, not the truth
            self.viewer.layers.selection.active = self.viewer.layers[layer_names.LABELS]
        self._to_the_heart(stack)
        cases = len(set(stack.cases))
        note = (
            f"{len(stack)} slices"
            + (f" of {cases} patients" if cases > 1 else "")
            + (f", labels: {stack.spec.name}" if stack.has_labels else ", no labels")
        )
        if stack.phases:
            note += (
                f"; phase {stack.phase} of {len(stack.phases)}"
                + (" (end-diastole)" if stack.phase == 0 else "")
                + f"; every phase in '{layer_names.PHASES}' (its own slider)"
            )
        self.status.value = note + ("; " + "; ".join(stack.warnings) if stack.warnings else "")

    def _to_the_heart(self, stack) -> None:
        """Centre and zoom on the shown slice's heart (the label's), unless the Review tab's
        *go to the heart* is unticked."""
        from ..proposals.heart import heart_view
        from .review import ReviewWidget

        review = find_widget(self.viewer, ReviewWidget)
        if review is not None and not review.to_heart.value:
            return
        shown = int(self.viewer.dims.current_step[0]) if len(stack) else 0
        zoom_to(self.viewer, heart_view(stack, min(max(shown, 0), len(stack) - 1)))

    def _fail(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        message = (
            str(exc)
            if isinstance(exc, (StackError, ValueError, OSError))
            else f"{type(exc).__name__}: {exc}"
        )
        self.status.value = message
        show_error(message)
