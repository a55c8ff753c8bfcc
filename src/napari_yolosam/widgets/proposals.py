"""Dock widget: choose models, propose scar for a slice or the stack, prompt SAM by hand."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
)

from .. import layer_names
from ..defaults import (
    DIRECTIONS,
    ENCODER_BACKEND,
    ENCODER_BACKENDS,
    EXTENT,
    HEAD_SCAR,
    LOOK_CLOSER,
    default_segmenter,
)
from ..models import import_model_libraries
from ..models.embeddings import EmbeddingCache, embed_stack
from ..models.model_store import KNOWN_MODELS
from ..models.segmenter import SEGMENTER_CONFIGS
from ..napari_hooks.layers import MYOCARDIUM_VALUE, SCAR_VALUE, proposal_layers
from ..paths import cache_dir
from ..progress import Progress
from ..proposals.core import Proposals, propose
from ..proposals.heart import embed_views, slice_windows
from ..proposals.propagate import propagate
from ._layers import replace_layers, shown_slice
from ._prompting import HandPrompts
from ._session import register
from ._stack_from_layers import (
    MissingLayer,
    layer_or_none,
    layers_of_viewer,
    stack_of_layers,
)
from ._work import start


class ProposalsWidget(HandPrompts, Container):
    """Models and proposals: YOLO boxes + SAM masks for this slice or all slices, and SAM
    prompted by a box drawn on ``prompt box`` and clicks on ``positive clicks`` /
    ``negative clicks`` (decoder speed once the slice is encoded)."""

    def __init__(self, napari_viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        register(napari_viewer, self)
        # the model libraries load in the background now, not on the first click
        self._imports = threading.Thread(target=import_model_libraries, name="yolosam-imports")
        self._imports.start()
        self._model_controls()
        self._action_controls()
        self.progress = ProgressBar(label="progress", value=0, max=1)
        self.model_info = Label(value="models: not loaded yet (they load with the first use)")
        self.model_info.native.setWordWrap(True)
        self.status = Label(value="")
        self.extend(
            [
                self.detector_spec,
                self.detector_file,
                self.segmenter_spec,
                self.segmenter_file,
                self.device,
                self.encoder_backend,
                self.conf,
                self.lv_scar,
                self.head_scar,
                self.intensity,
                self.extent,
                self.look_closer,
                self.slice_button,
                self.all_button,
                self.embed_button,
                self.propagate_direction,
                self.propagate_button,
                self.prompt_button,
                self.cancel_button,
                self.progress,
                self.model_info,
                self.status,
            ]
        )
        self.status.native.setWordWrap(True)
        self.cache = EmbeddingCache(disk_dir=cache_dir("embeddings"))  # shared with the CLI
        self.detector = self.segmenter = None
        self._loaded = (None, None, None, None)
        self._loading = threading.Lock()  # models load in workers; one load at a time
        self.proposals: Proposals | None = None
        self.worker = self._stop = None
        self.embed_worker = self._embed_stop = None
        self.after_propose: list = []  # one-shot callbacks once "propose all" has finished
        self.slice_button.changed.connect(lambda: self.propose(current_only=True))
        self.all_button.changed.connect(lambda: self.propose(current_only=False))
        self.embed_button.changed.connect(self.embed)
        self.propagate_button.changed.connect(self.propagate)
        self.prompt_button.changed.connect(self.add_prompt_layers)
        self.cancel_button.changed.connect(self.cancel)

    def _model_controls(self) -> None:
        """Which detector and segmenter, where they run, and how the detector prompts SAM."""
        self.detector_spec = LineEdit(
            label="detector",
            value="none",
            tooltip="a detector checkpoint path, a config (yolo11n.yaml, yolov8n.yaml) or none",
        )
        self.detector_file = FileEdit(
            label="",
            mode="r",
            filter="*.pt",
            tooltip="pick a detector checkpoint (fills the field above)",
        )
        self.segmenter_spec = LineEdit(
            label="segmenter",
            value=default_segmenter(),
            tooltip="lite_medsam (pretrained, packaged), a checkpoint path, a configuration ("
            + ", ".join(sorted(SEGMENTER_CONFIGS))
            + ") or a downloaded model ("
            + ", ".join(sorted(KNOWN_MODELS))
            + ")",
        )
        self.segmenter_file = FileEdit(
            label="",
            mode="r",
            filter="*.pth *.pt",
            tooltip="pick a segmenter checkpoint (fills the field above)",
        )
        self.detector_file.changed.connect(lambda v: setattr(self.detector_spec, "value", str(v)))
        self.segmenter_file.changed.connect(
            lambda v: setattr(self.segmenter_spec, "value", str(v))
        )
        self.device = ComboBox(
            label="device", choices=["cpu", "cuda"], value="cpu", tooltip="where the models run"
        )
        self.encoder_backend = ComboBox(
            label="encoder",
            choices=list(ENCODER_BACKENDS),
            value=ENCODER_BACKEND,
            tooltip="what computes the image embeddings: auto (ONNX Runtime on a CPU, else "
            "PyTorch), torch (PyTorch float32, the reference), onnx, half",
        )
        self.conf = FloatSpinBox(
            label="confidence",
            min=0.0,
            max=1.0,
            step=0.05,
            value=0.0,
            tooltip="detector confidence threshold for all classes; 'validated' (0) takes the "
            "per-class thresholds chosen in the detector's training (0.25 without them)",
        )
        self.conf.native.setSpecialValueText("validated")
        self._prompt_controls()

    def _prompt_controls(self) -> None:
        """What prompts SAM besides the label and how it looks: the checkboxes."""
        self.lv_scar = CheckBox(
            text="scar from the LV box too",
            value=False,
            tooltip="prompt SAM for scar with the detector's LV box as well "
            "(segmenters trained with LV boxes: yolosam train does so)",
        )
        self.head_scar = CheckBox(
            text="scar the anatomy head reads",
            value=HEAD_SCAR,
            tooltip="without labels, prompt SAM with a box round each scar region the "
            "segmenter's anatomy head reads in the window (segmenters trained looking closer)",
        )
        self.intensity = CheckBox(
            text="scar from enhanced regions too",
            value=False,
            tooltip="prompt SAM with a box round each region of the myocardium brighter than "
            "mean + 2 SD of the remote myocardium (needs the label's or the proposed myocardium)",
        )
        self.extent = CheckBox(
            text="scar extent from enhancement",
            value=EXTENT,
            tooltip="SAM locates the scar, the image sets its extent: each proposed mask becomes "
            "the enhanced regions of the myocardium (mean + 2 SD of the remote) that it touches",
        )
        self.look_closer = CheckBox(
            text="look closer at the heart",
            value=LOOK_CLOSER,
            tooltip="SAM looks at a square window round the heart (the label's anatomy, else "
            "the segmenter's heart finder), resized to its input; layers stay in slice pixels",
        )

    def _action_controls(self) -> None:
        """The buttons: propose (this slice, all), embed, prompt layers, cancel."""
        self.slice_button = PushButton(
            text="Propose this slice", tooltip="YOLO + SAM on the slice shown"
        )
        self.all_button = PushButton(
            text="Propose all slices", tooltip="YOLO + SAM on every slice, in the background"
        )
        self.embed_button = PushButton(
            text="Embed stack",
            tooltip="encode every slice once in the background (the slice shown first, then its "
            "neighbours); proposals and prompts then run at decoder speed. Kept on disk.",
        )
        self.propagate_direction = ComboBox(
            label="propagate",
            choices=list(DIRECTIONS),
            value="both",
            tooltip="which neighbours the scar of this slice is carried to: higher slice "
            "numbers (up), lower (down) or both",
        )
        self.propagate_button = PushButton(
            text="Propagate this slice's scar",
            tooltip="the labels' scar on the slice shown prompts SAM on the next slice, that "
            "one's on the one after, ...; stops where the scar vanishes or the myocardium ends",
        )
        self.prompt_button = PushButton(
            text="Add prompt layers",
            tooltip="a Shapes layer for a box and Points layers for clicks",
        )
        self.cancel_button = PushButton(
            text="Cancel", tooltip="stop proposing after the current slice"
        )

    # -- models -------------------------------------------------------------------
    def set_models(self, detector: str | None, segmenter: str) -> None:
        """Choose models by spec (e.g. the files a fine-tuning run produced)."""
        self.detector_spec.value = str(detector or "none")
        self.segmenter_spec.value = str(segmenter)

    def models(self):
        """Load the chosen models (once per choice); returns ``(detector or None, segmenter)``.
        Slow the first time: the widget calls it in its workers, never on the GUI thread."""
        from ..models import load_models

        wanted = (
            str(self.detector_spec.value),
            str(self.segmenter_spec.value),
            str(self.device.value),
            str(self.encoder_backend.value),
        )
        self._imports.join()  # in the worker: never import beside the background imports
        with self._loading:
            if wanted != self._loaded:
                detector, segmenter, device, backend = wanted
                self.detector, self.segmenter = load_models(
                    detector, segmenter, device, encoder_backend=backend
                )
                self._loaded = wanted
            return self.detector, self.segmenter

    def describe_models(self) -> str:
        """What the loaded models are, in words (pretrained, fine-tuned on what, untrained)."""
        if self.segmenter is None:
            return "models: not loaded yet (they load with the first use)"
        detector = (
            "none (prompts from the labels)" if self.detector is None else self.detector.origin
        )
        runner = self.segmenter.encoder_runner  # resolved here, in the worker, not on a click
        encoder = runner.name + (f" ({runner.note})" if runner.note else "")
        return f"segmenter: {self.segmenter.origin}, encoder {encoder}\ndetector: {detector}"

    def _with_models(self, make):
        """Work that first loads the chosen models (in the worker: the GUI stays free), says
        what they are, then runs ``make(detector, segmenter)``'s work."""
        detector, segmenter = self.models()
        yield Progress(0, 0, "models", self.describe_models())
        return (yield from make(detector, segmenter))

    def _on_event(self, event) -> None:
        if event is None:
            return
        if event.stage == "models":
            self.model_info.value = event.message
            return
        self.progress.value = event.step

    # -- proposing -----------------------------------------------------------------
    def current_slice(self) -> int:
        """Index of the slice shown."""
        return shown_slice(self.viewer)

    def propose(self, current_only: bool = False):
        """Propose in a worker (this slice or all); returns the worker. The worker also copies
        the stack from the layers and, for the whole stack, builds the layers' arrays."""
        try:
            shown = layers_of_viewer(self.viewer)
        except MissingLayer as exc:
            self.status.value = str(exc)
            return None
        indices = [self.current_slice()] if current_only else None
        options = {"cache": self.cache, "indices": indices, **self._options()}
        scale = self.viewer.layers[layer_names.IMAGE].scale

        def work(detector, segmenter):
            result = yield from propose(stack_of_layers(*shown), segmenter, detector, **options)
            layers = None if result is None or indices else proposal_layers(result, scale)
            return result, layers

        self.progress.max = len(indices or shown[0])
        self.progress.value = 0
        self.status.value = "proposing ..."

        def done(out) -> None:
            result, layers = out
            if result is None:
                self.status.value = "cancelled"
                return
            self.merge(result, indices, layers)

        self.worker, self._stop = start(
            self._with_models(work),
            on_event=self._on_event,
            on_done=done,
            on_error=self._fail,
            total=self.progress.max,
            desc="proposing",
            owner=self.native,
        )
        return self.worker

    def _options(self) -> dict:
        """The proposal options the controls set (``propose``'s keywords)."""
        return {
            "conf": float(self.conf.value) or None,
            "lv_scar": bool(self.lv_scar.value),
            "intensity": bool(self.intensity.value),
            "head_scar": bool(self.head_scar.value),
            "extent": bool(self.extent.value),
            "look_closer": bool(self.look_closer.value),
        }

    def made_by(self) -> dict:
        """What the next proposals depend on: the models named (and their files' signature:
        a checkpoint retrained in place is another model), the encoder and the options."""
        from ..io.manifest import input_signature

        specs = {
            "segmenter": str(self.segmenter_spec.value),
            "detector": str(self.detector_spec.value),
        }
        files = {k: input_signature(v) for k, v in specs.items() if Path(v).is_file()}
        options = {**self._options(), "encoder": str(self.encoder_backend.value)}
        return {**specs, "files": files, "options": options}

    def propagate(self):
        """Carry the labels' scar on the slice shown to its neighbours (worker); the reached
        slices' proposals are replaced. Returns the worker (``None``: nothing to carry)."""
        try:
            shown = layers_of_viewer(self.viewer)
        except MissingLayer as exc:
            self.status.value = str(exc)
            return None
        index, direction = self.current_slice(), str(self.propagate_direction.value)
        extent, closer = bool(self.extent.value), bool(self.look_closer.value)
        kept = self.proposals_of(len(shown[0]))  # their windows, where they have one
        fresh = kept is None
        scale = self.viewer.layers[layer_names.IMAGE].scale

        def work(_, segmenter):
            stack = stack_of_layers(*shown)  # copied here, not on the GUI thread
            scar = stack.spec.scar_mask(stack.labels[index])
            if not scar.any():
                raise ValueError(f"slice {index} has no scar in the labels to propagate")
            views = slice_windows(stack, kept) if closer else None
            result = yield from propagate(
                stack,
                segmenter,
                index,
                scar,
                direction,
                self.cache,
                extent=extent,
                look_closer=closer,
                views=views,
            )
            return result, (proposal_layers(result, scale) if fresh and result else None)

        self.progress.max, self.progress.value = 1, 0
        self.status.value = f"propagating slice {index}'s scar ({direction}) ..."

        def done(out) -> None:
            result, layers = out or (None, None)
            if result is None:
                self.status.value = "propagation cancelled"
                return
            reached = [i for i, s in enumerate(result.slices) if s.status == "ok"]
            if fresh or self.proposals is None or len(self.proposals) != len(result):
                self.proposals = result
                self.show(layers)
            else:  # the reached slices' proposals are replaced; the others stay
                for i in reached:
                    self.proposals.slices[i] = result.slices[i]
                if not self.show_slices(reached):
                    self.show()
            self.status.value = (
                f"propagated from slice {index}: {len(reached) - 1} slice(s) reached "
                f"({reached[0]} to {reached[-1]})"
            )

        def progress(event) -> None:
            if event is not None and event.stage == "propagate":
                self.progress.max = max(int(event.total), 1)
            self._on_event(event)

        self.worker, self._stop = start(
            self._with_models(work),
            on_event=progress,
            on_done=done,
            on_error=self._fail,
            total=0,
            desc="propagating",
            owner=self.native,
        )
        return self.worker

    def embed(self):
        """Encode the stack in a worker, the slice shown first; returns the worker."""
        try:
            shown_layers = layers_of_viewer(self.viewer)
        except MissingLayer as exc:
            self.status.value = str(exc)
            return None
        n = len(shown_layers[0])
        shown = self.current_slice()
        closer = bool(self.look_closer.value)
        kept = self.proposals_of(n)

        def work(_, segmenter):
            stack = stack_of_layers(*shown_layers)  # copied here, not on the GUI thread
            if closer:  # the windows SAM reads
                passes, _ = yield from embed_views(stack, segmenter, self.cache, shown, kept)
                return passes
            images = [stack.crop(i, stack.images[i]) for i in range(len(stack))]
            return (
                yield from embed_stack(segmenter, images, self.cache, shown, names=stack.names)
            )

        work = self._with_models(work)
        self.progress.max, self.progress.value = n, 0
        self.status.value = "embedding (the slice shown first) ..."

        def done(passes: int | None) -> None:
            self.status.value = (
                "embedding cancelled"
                if passes is None
                else f"embedded: {passes} encoder pass(es) now, the rest from the cache"
            )

        self.embed_worker, self._embed_stop = start(
            work,
            on_event=self._on_event,
            on_done=done,
            on_error=self._fail,
            total=n,
            desc="embedding",
            owner=self.native,
        )
        return self.embed_worker

    def merge(self, result: Proposals, indices: list[int] | None, layers=None) -> None:
        """Keep ``result`` for the given slices (all when ``None``) and show the proposal layers
        (``layers``: their data when the worker built it already)."""
        if self.proposals is None or indices is None or len(self.proposals) != len(result):
            self.proposals = result
            self.show(layers)
        else:
            for i in indices:
                self.proposals.slices[i] = result.slices[i]
            self.proposals.settings = result.settings
            if not self.show_slices(indices):
                self.show()
        no_det = sum(s.status == "no_detection" for s in self.proposals.slices)
        unproposed = sum(s.status == "not_proposed" for s in self.proposals.slices)
        self.status.value = f"proposed; {no_det} slice(s) without detection" + (
            f", {unproposed} without a proposal (the audit leaves them out)" if unproposed else ""
        )
        callbacks, self.after_propose = self.after_propose, []
        for callback in callbacks:
            callback()

    def show_slices(self, indices: list[int]) -> bool:
        """Redraw only slices ``indices`` of the proposal layers, in place (one slice's work, not
        the stack's); ``False`` when the layers are not there to update."""
        layers = self.viewer.layers
        names = (layer_names.PROPOSAL, layer_names.PROBABILITY)
        if not all(n in layers and np.ndim(layers[n].data) == 3 for n in names):
            return False
        if any(self.proposals.slices[i].myocardium is not None for i in indices) and (
            layer_names.MYOCARDIUM_PROPOSAL not in layers
        ):
            return False
        for i in indices:
            sp = self.proposals.slices[i]
            layers[layer_names.PROPOSAL].data[i] = sp.mask.astype(np.uint8) * SCAR_VALUE
            layers[layer_names.PROBABILITY].data[i] = sp.probability
            if layer_names.MYOCARDIUM_PROPOSAL in layers:
                myo = sp.myocardium if sp.myocardium is not None else 0
                layers[layer_names.MYOCARDIUM_PROPOSAL].data[i] = (
                    np.asarray(myo, np.uint8) * MYOCARDIUM_VALUE
                )
        for name in (*names, layer_names.MYOCARDIUM_PROPOSAL):
            if name in layers:
                layers[name].refresh()
        return True

    def show(self, layers: list | None = None) -> None:
        """(Re)draw the proposal, probability and proposed-myocardium layers (``layers``:
        their data from ``proposal_layers``, when a worker built it)."""
        image = layer_or_none(self.viewer, layer_names.IMAGE)
        if image is None or self.proposals is None:
            self.status.value = f"no '{layer_names.IMAGE}' layer to show proposals on"
            return
        replace_layers(
            self.viewer, layers or proposal_layers(self.proposals, image.scale), in_place=True
        )

    def cancel(self) -> None:
        """Ask the running work (proposals, embedding) to stop after the current slice."""
        for stop in (self._stop, self._embed_stop):
            if stop is not None:
                stop.set()

    def proposals_of(self, n: int) -> Proposals | None:
        """The proposals shown, if they are for a stack of ``n`` slices (else ``None``)."""
        if self.proposals is not None and len(self.proposals) == n:
            return self.proposals
        return None

    def _fail(self, exc: Exception) -> None:
        from napari.utils.notifications import show_error

        self.status.value = str(exc)
        show_error(str(exc))
