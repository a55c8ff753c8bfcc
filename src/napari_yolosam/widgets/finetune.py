"""Dock widget: fine-tune the detector and the segmenter in the background, then close the loop."""

from __future__ import annotations

import time
from pathlib import Path

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

from ..defaults import TARGETS, TRAINING, default_segmenter, segmenter_choices
from ..io import read_stack, read_study
from ..io.study import find_patients
from ..paths import cache_dir
from ..training.run import RunResult, kept_models, saved_models, train
from ..training.sam import SamTrainConfig
from ._session import find_widget, register
from ._stack_from_layers import MissingLayer, layers_of_viewer, stack_of_layers
from ._work import start

#: The choice that starts fine-tuning from the models the proposals widget uses.
IN_USE = "in use"
DETECTOR_CHOICES = (IN_USE, "yolo11n.yaml", "yolov8n.yaml")


#: The data choice the Review tab adds once it has saved a cleaned set.
CLEANED = "the cleaned set just saved"


def read_data_set(folder: str | Path):
    """A folder as training data: one stack, or a study's patients together."""
    return read_study(folder) if find_patients(Path(folder)) else read_stack(folder)


class FinetuneWidget(Container):
    """Train on the current stack's (reviewed) labels or a folder; live loss and Dice; Cancel;
    then load the new models into the proposals widget and re-score the review queue."""

    def __init__(self, napari_viewer, proposals_widget=None, review_widget=None) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        register(napari_viewer, self)
        self.proposals_widget = proposals_widget
        self.review_widget = review_widget
        self.cleaned: Path | None = None  # the cleaned set the Review tab saved last
        if review_widget is None:  # docked alone from the Plugins menu: the viewer's review
            from .review import ReviewWidget

            review_widget = find_widget(napari_viewer, ReviewWidget)
        if review_widget is not None:
            review_widget.after_save.append(self.offer_cleaned)
        self._training_controls()
        self.start_button = PushButton(
            text="Start", tooltip="train in the background (the viewer stays usable)"
        )
        self.cancel_button = PushButton(
            text="Cancel", tooltip="stop within one step; the last good checkpoint stays"
        )
        self.load_button = PushButton(
            text="Load new models and re-score",
            tooltip="use the trained models for proposals and re-run the audit",
        )
        self.progress = ProgressBar(label="progress", value=0, max=1)
        self.status = Label(value="")
        self.extend(
            [
                self.source,
                self.folder,
                self.what,
                self.segmenter,
                self.detector,
                self.epochs,
                self.lr,
                self.targets,
                self.look_closer,
                self.heart_steps,
                self.device,
                self.out,
                self.resume,
                self.start_button,
                self.cancel_button,
                self.load_button,
                self.progress,
                self.status,
            ]
        )
        self.history: list[dict] = []
        self.result: RunResult | None = None
        self._run: Path | None = None
        self.worker = self._stop = None
        self._canvas, self._axes = self._make_plot()
        self.start_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.load_button.changed.connect(self.load_and_rescore)

    def offer_cleaned(self, folder: str | Path) -> None:
        """Offer (and choose) the cleaned set the Review tab just saved as the data."""
        self.cleaned = Path(folder)
        if CLEANED not in self.source.choices:
            self.source.choices = (*self.source.choices, CLEANED)
        self.source.value = CLEANED
        self.folder.value = str(folder)

    def _training_controls(self) -> None:
        """What to train on, which models from where, epochs, learning rate, device, run folder."""
        self.source = ComboBox(
            label="data",
            choices=["current stack", "folder"],
            value="current stack",
            tooltip="the labels in the viewer (with your review decisions), a folder, or "
            "the cleaned set the Review tab saved last",
        )
        self.folder = FileEdit(
            label="folder", mode="d", tooltip="images/ + masks/ folder when data = folder"
        )
        self.what = ComboBox(
            label="train",
            choices=["both", "segmenter", "detector"],
            value="both",
            tooltip="which models to train",
        )
        self.segmenter = ComboBox(
            label="segmenter from",
            choices=[IN_USE, *segmenter_choices()],
            value=IN_USE,
            tooltip="the model the proposals use, pretrained lite_medsam (its encoder stays "
            "frozen), tiny / tiny_hr from scratch, a downloaded model, or a checkpoint path "
            "to start from (type a path)",
        )
        self.segmenter.native.setEditable(True)
        self.detector = ComboBox(
            label="detector from",
            choices=list(DETECTOR_CHOICES),
            value=IN_USE,
            tooltip="the detector the proposals use (yolo11n.yaml from scratch when they use "
            "none), a configuration or a checkpoint path",
        )
        self.detector.native.setEditable(True)
        self.epochs = SpinBox(
            label="epochs", min=1, max=1000, value=TRAINING.epochs, tooltip="epochs of each model"
        )
        self.lr = FloatSpinBox(
            label="learning rate",
            min=1e-6,
            max=1e-1,
            step=1e-4,
            value=TRAINING.lr,
            tooltip="segmenter learning rate (AdamW, cosine schedule)",
        )
        self.targets = ComboBox(
            label="scar targets",
            choices=list(TARGETS),
            value=TRAINING.targets,
            tooltip="labels: learn scar as labelled; extent: each label's scar with the extent "
            "of the enhanced regions it touches (for threshold labels)",
        )
        self.look_closer = CheckBox(
            text="look closer at the heart",
            value=TRAINING.look_closer,
            tooltip="the segmenter and the detector learn from windows round each slice's "
            "labelled heart "
            "(jittered as the heart finder's windows err), resized to its input, as proposals "
            "with 'look closer' see them",
        )
        self.heart_steps = SpinBox(
            label="heart steps",
            min=0,
            max=100_000,
            value=TRAINING.heart_steps,
            tooltip="steps of the heads that find the heart and read its anatomy (labels with a "
            "myocardium; kept in the segmenter's checkpoint); 0: none",
        )
        self.device = ComboBox(
            label="device", choices=["cpu", "cuda", "0,1"], value="cpu", tooltip="cpu or GPU(s)"
        )
        self.out = FileEdit(
            label="run folder", mode="d", tooltip="where detector.pt / segmenter.pth go"
        )
        self.resume = CheckBox(
            text="resume the run in this folder",
            value=False,
            tooltip="continue epochs, optimiser and schedule from the run folder",
        )

    def _make_plot(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        figure = Figure(figsize=(4, 2.2), tight_layout=True)
        canvas = FigureCanvasQTAgg(figure)
        canvas.setMinimumHeight(180)
        canvas.setToolTip("training loss and validation Dice per epoch")
        self.native.layout().addWidget(canvas)
        return canvas, figure.add_subplot(111)

    def run_folder(self) -> Path:
        """The run folder: the chosen one, or a new one in the cache."""
        chosen = str(self.out.value)
        if chosen and chosen != ".":
            return Path(chosen)
        return cache_dir("runs") / time.strftime("run-%Y%m%d-%H%M%S")

    def starting_models(self) -> tuple[str, str]:
        """The detector and segmenter to start from: the choices, where ``in use`` means the
        proposals widget's models (its defaults without that widget or a detector)."""
        from .proposals import ProposalsWidget

        widget = self.proposals_widget or find_widget(self.viewer, ProposalsWidget)
        detector, segmenter = str(self.detector.value), str(self.segmenter.value)
        if detector == IN_USE:
            spec = str(widget.detector_spec.value) if widget is not None else "none"
            detector = DETECTOR_CHOICES[1] if spec.lower() in ("", "none") else spec
        if segmenter == IN_USE:
            segmenter = str(widget.segmenter_spec.value) if widget else default_segmenter()
        return detector, segmenter

    def start(self):
        """Start training in a worker; returns the worker."""
        if self.source.value == "current stack":
            try:
                shown = layers_of_viewer(self.viewer)
            except MissingLayer as exc:
                self.status.value = str(exc)
                return None
            read = lambda: stack_of_layers(*shown)  # noqa: E731 - copied in the worker
        else:
            folder = self.cleaned if self.source.value == CLEANED else self.folder.value
            read = lambda: read_data_set(folder)  # noqa: E731 - read in the worker
        run = self._run = self.run_folder()
        detector, segmenter = self.starting_models()
        what, epochs = self.what.value, int(self.epochs.value)
        options = {
            "detector": None if what == "segmenter" else detector,
            "segmenter": None if what == "detector" else segmenter,
            "epochs": epochs,
            "device": str(self.device.value),
            "resume": bool(self.resume.value),
        }
        lr, targets = float(self.lr.value), str(self.targets.value)
        closer, heart_steps = bool(self.look_closer.value), int(self.heart_steps.value)
        imports = getattr(self.proposals_widget, "_imports", None)

        def work():
            if imports is not None:  # never import the model libraries beside their
                imports.join()  # background import (a torchvision import race)
            stack = read()
            val_fraction = 0.2 if len(set(stack.cases)) > 1 else 0.0
            config = SamTrainConfig(
                epochs=epochs,
                lr=lr,
                targets=targets,
                val_fraction=val_fraction,
                look_closer=closer,
                heart_steps=heart_steps,
            )
            return (yield from train(stack, run, sam_config=config, **options))

        self.history = []
        self.progress.value, self.progress.max = 0, 1
        self.status.value = f"training in {run} ..."
        self.worker, self._stop = start(
            work(),
            on_event=self._on_event,
            on_done=self._on_done,
            on_error=self._fail,
            total=0,
            desc="fine-tuning",
            owner=self.native,
        )
        return self.worker

    def _on_event(self, event) -> None:
        if event.stage in ("segmenter", "detector"):
            self.progress.max = max(int(event.total), 1)
            self.progress.value = min(int(event.step), self.progress.max)
            self.status.value = f"{event.stage} {event.message}: loss {event.values.get('loss', event.values.get('box_loss', 0)):.3f}"
        elif event.stage.endswith("-epoch"):
            self.history.append(dict(event.values))
            self._plot()

    def _plot(self) -> None:
        self._axes.clear()
        for model, key, label in (
            ("segmenter", "train_loss", "SAM loss"),
            ("segmenter", "val_dice", "SAM val Dice"),
            ("detector", "box_loss", "YOLO box loss"),
            ("detector", "mAP50", "YOLO mAP50"),
        ):
            rows = [h for h in self.history if h.get("model") == model and key in h]
            if rows:
                self._axes.plot(
                    [h["epoch"] for h in rows],
                    [float(h[key]) for h in rows],
                    marker=".",
                    label=label,
                )
        self._axes.set_xlabel("epoch")
        self._axes.legend(fontsize=7)
        self._canvas.draw_idle()

    def _on_done(self, result: RunResult | None) -> None:
        if result is None:  # cancelled: what the finished epochs saved can still be loaded
            self.result = saved_models(self._run) if self._run is not None else None
            self.status.value = (
                f"cancelled; kept {kept_models(self.result)}: 'Load and re-score' uses them"
                if self.result is not None
                else "cancelled before the first epoch ended: no model to load"
            )
            return
        self.result = result
        self.status.value = f"done: {result.segmenter or ''} {result.detector or ''}".strip()

    def _fail(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self.status.value = str(exc)
        show_error(str(exc))

    def cancel(self) -> None:
        """Stop after the current step (the segmenter) or batch (the detector)."""
        if self._stop is not None:
            self._stop.set()

    def load_and_rescore(self):
        """Load the trained models into the proposals widget, propose all slices, then re-run the audit."""
        from .proposals import ProposalsWidget
        from .review import ReviewWidget

        self.proposals_widget = self.proposals_widget or find_widget(self.viewer, ProposalsWidget)
        self.review_widget = self.review_widget or find_widget(self.viewer, ReviewWidget)
        if self.result is None:
            self.status.value = "no finished run to load"
            return None
        if self.proposals_widget is None:
            self.status.value = "open the 'Models and proposals' widget to load the models into"
            return None
        widget = self.proposals_widget
        detector = (
            str(self.result.detector) if self.result.detector else widget.detector_spec.value
        )
        segmenter = (
            str(self.result.segmenter) if self.result.segmenter else widget.segmenter_spec.value
        )
        widget.set_models(detector, segmenter)
        widget.proposals = None
        if self.review_widget is not None:  # the open review keeps its decisions
            widget.after_propose.append(
                lambda: self.review_widget.run_audit(restore=False, rescore=True)
            )
        return widget.propose(current_only=False)
