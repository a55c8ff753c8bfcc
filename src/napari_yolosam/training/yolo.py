"""Training the YOLO detector through ultralytics' own trainer, offline-safe and stoppable.

The stack is exported as a YOLO data set (the same uint8 preprocessing the
detector uses at inference), one box per scar component (class ``scar``) and,
where the labels carry the myocardium, one box round the left ventricle
(class ``lv``). Looking closer (#27), each slice is exported as the window round its
labelled heart that the segmenter's cached training sees (:func:`~.data.fixed_view`,
jittered as the heart finder's windows are off), its boxes mapped into it; the saved
detector then reads every slice through its window (:meth:`Detector.detect_in`), where
scar is three to four times larger than on the whole slice. ultralytics trains in a
background thread; its callbacks feed this generator, and closing the generator asks the
trainer to stop after the current batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write, atomic_write_text
from ..io.yolo_boxes import boxes_to_yolo, format_yolo_lines, regions_to_boxes
from ..models._ultralytics import keep_torch_threads
from ..models.checkpoints import CheckpointError
from ..models.detector import LV_CLASS, SCAR_CLASS, Detector
from ..models.preprocess import to_uint8_rgb
from ..progress import Progress
from ..regions import scar_regions
from ..stack import Stack
from ..view import View
from .data import Augmentation, bbox, fixed_view

DETECTOR_NAME = "detector.pt"

#: The method's augmentations, in ultralytics' terms.
YOLO_AUGMENTATION = {
    "degrees": 15.0,
    "scale": 0.3,
    "translate": 0.1,
    "fliplr": 0.5,
    "flipud": 0.5,
    "hsv_h": 0.0,
    "hsv_s": 0.0,
    "hsv_v": 0.3,
    "mosaic": 1.0,
    "close_mosaic": 0,
    "mixup": 0.0,
}


@dataclass
class DetectorTrainResult:
    """The saved detector (or ``None`` if stopped before an epoch finished) and per-epoch metrics."""

    path: Path | None
    history: list[dict] = field(default_factory=list)


def detector_classes(stack: Stack) -> tuple[str, ...]:
    """``("scar", "lv")`` when the labels carry the myocardium, else ``("scar",)``."""
    return (SCAR_CLASS, LV_CLASS) if stack.spec.has_myocardium else (SCAR_CLASS,)


def slice_boxes(
    stack: Stack, index: int, classes: tuple[str, ...]
) -> tuple[list[int], np.ndarray]:
    """Classes and ``x0 y0 x1 y1`` boxes of one slice: scar regions (the same as SAM's
    prompts, :func:`~napari_yolosam.regions.scar_regions`), and the LV."""
    labels = stack.crop(index, stack.labels[index])
    boxes = [regions_to_boxes(scar_regions(stack.spec.scar_mask(labels))[0])]
    classes_out = [0] * len(boxes[0])
    if LV_CLASS in classes:
        lv = bbox(stack.spec.lv_mask(labels))
        if lv is not None:
            boxes.append(lv[None].astype(float))
            classes_out.append(classes.index(LV_CLASS))
    return classes_out, np.concatenate(boxes).reshape(-1, 4)


#: How the saved epoch is chosen: the scar class's AP50 (the detector's job;
#: ties go to the LV box's AP50), both classes' mAP50, or ultralytics' fitness
#: (0.1 mAP50 + 0.9 mAP50-95 averaged over the classes, dominated by the easy LV box).
BEST_BY = ("scar_AP50", "mAP50", "fitness")


def epoch_score(record: dict, trainer_fitness: float | None, best_by: str) -> tuple[float, ...]:
    """The key (higher is better) that ranks an epoch's ``record`` under ``best_by``."""

    def value(key: str) -> float:
        v = record.get(key)
        return float(v) if v is not None and np.isfinite(v) else -1.0

    if best_by == "scar_AP50":
        return (value(f"{SCAR_CLASS}_AP50"), value(f"{LV_CLASS}_AP50"), value("mAP50-95"))
    if best_by == "mAP50":
        return (value("mAP50"), value("mAP50-95"))
    if best_by == "fitness":
        return (float(trainer_fitness) if trainer_fitness is not None else -1.0,)
    raise ValueError(f"unknown detector selection {best_by!r} (choose from {', '.join(BEST_BY)})")


def _validation_box(trainer):
    """ultralytics' box metrics of the epoch's validation (``None`` before the first)."""
    return getattr(getattr(getattr(trainer, "validator", None), "metrics", None), "box", None)


def _per_class_ap50(trainer, classes) -> dict[str, float]:
    """``{name}_AP50`` for each class from the epoch's validation (mAP50 averages the
    classes, and the LV box is far easier than scar)."""
    box = _validation_box(trainer)
    out = {f"{name}_AP50": float("nan") for name in classes}
    if box is None:
        return out
    for index, ap50 in zip(box.ap_class_index, box.ap50, strict=False):
        if 0 <= int(index) < len(classes):
            out[f"{classes[int(index)]}_AP50"] = float(ap50)
    return out


#: The lowest validated threshold: a weak detector's F1 can peak at "every box", and
#: its dozens of low-confidence boxes per slice would flood SAM with prompts.
MIN_THRESHOLD = 0.05
#: A class gets a validated threshold only where its boxes are right at least this often
#: (precision at the best F1); a weaker class keeps the default threshold.
MIN_PRECISION = 0.5


def _per_class_thresholds(trainer, classes) -> dict[str, float]:
    """Per class, the confidence with the best F1 (IoU 0.5) in the epoch's validation,
    from ultralytics' F1-confidence curves (smoothed a little, as ultralytics does), never
    below :data:`MIN_THRESHOLD`. Classes whose precision there is under
    :data:`MIN_PRECISION`, or never found, get none (the default applies)."""
    box = _validation_box(trainer)
    curves = getattr(box, "f1_curve", None)
    px = getattr(box, "px", None)
    precision = getattr(box, "p_curve", None)
    if box is None or curves is None or px is None or precision is None or not len(curves):
        return {}
    out = {}
    kernel = np.ones(31) / 31  # 3% of the confidence range
    for index, curve, prec in zip(
        box.ap_class_index, np.asarray(curves), np.asarray(precision), strict=False
    ):
        curve = np.convolve(np.pad(curve, 15, mode="edge"), kernel, mode="valid")
        if (
            0 <= int(index) < len(classes)
            and curve.max() > 0
            and prec[int(curve.argmax())] >= MIN_PRECISION
        ):
            best = float(np.asarray(px)[int(curve.argmax())])
            out[classes[int(index)]] = round(max(best, MIN_THRESHOLD), 4)
    return out


def detector_view(stack: Stack, index: int, look_closer: bool) -> View:
    """What the detector is trained on for slice ``index``: the whole slice, or looking
    closer the segmenter's cached training window (the labelled heart's, jittered; the
    whole slice where the label has no heart)."""
    if look_closer:
        return fixed_view(stack, index, Augmentation())
    return View.whole(stack.crop(index, stack.images[index]).shape)


def boxes_in_view(boxes: np.ndarray, view: View) -> tuple[np.ndarray, np.ndarray]:
    """Slice-pixel boxes in ``view``'s pixels, clipped to the window, and which of the
    boxes keep at least half their area inside it (the others are left out)."""
    moved = view.to_view(boxes).reshape(-1, 4)
    side = view.view_shape[::-1]
    clipped = np.clip(moved, 0, [*side, *side]).astype(np.float32)
    area = np.prod(np.maximum(moved[:, 2:] - moved[:, :2], 1e-6), axis=1)
    inside = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), axis=1)
    return clipped, inside >= 0.5 * area


def export_yolo_dataset(
    stack: Stack,
    train_idx: list[int],
    val_idx: list[int],
    out: Path,
    detector: Detector,
    classes: tuple[str, ...],
    look_closer: bool = False,
) -> Path:
    """Write ``images/{train,val}``, ``labels/{train,val}`` and ``data.yaml``; returns the
    YAML. ``look_closer``: each slice as :func:`detector_view` places its window."""
    from PIL import Image

    out = Path(out)
    for split, indices in (("train", train_idx), ("val", val_idx or train_idx)):
        for i in indices:
            view = detector_view(stack, i, look_closer)
            image = view.crop(stack.crop(i, stack.images[i]))
            stem = Path(stack.names[i]).stem
            rgb = to_uint8_rgb(image, detector.preprocess)
            atomic_write(
                out / "images" / split / f"{stem}.png",
                lambda tmp, a=rgb: Image.fromarray(a).save(tmp, format="PNG"),
            )
            cls, boxes = slice_boxes(stack, i, classes)
            boxes, keep = boxes_in_view(boxes, view)
            atomic_write_text(
                out / "labels" / split / f"{stem}.txt",
                format_yolo_lines(
                    boxes_to_yolo(boxes[keep], image.shape), list(np.asarray(cls)[keep])
                ),
            )
    names = "\n".join(f"  {k}: {v}" for k, v in enumerate(classes))
    return atomic_write_text(
        out / "data.yaml",
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n",
    )


def train_detector(
    stack: Stack,
    detector: Detector,
    train_idx: list[int],
    val_idx: list[int],
    out_dir: str | Path,
    epochs: int = 30,
    batch: int = 16,
    device: str = "cpu",
    seed: int = 0,
    augmentation: dict | None = None,
    resume: bool = False,
    patience: int = 100,
    best_by: str = "scar_AP50",
    trust: bool = False,
    look_closer: bool = False,
) -> Generator[Progress, None, DetectorTrainResult]:
    """Train ``detector`` on the scar (and LV) boxes of ``stack``; save ``out_dir/detector.pt``.

    Yields :class:`Progress` per batch (``stage="detector"``) and per epoch
    (``stage="detector-epoch"`` with box/cls losses, precision, recall,
    mAP50, AP50 per class). The best epoch under ``best_by`` (see
    :data:`BEST_BY`; by default the scar class's AP50) is saved in the
    project's checkpoint format, with each class's confidence threshold
    of best F1 on the validation slices (:attr:`Detector.thresholds`).
    ``resume`` continues ultralytics' own ``last.pt`` of an earlier run in
    ``out_dir`` (its epoch, optimiser and schedule); the best epoch is then
    the best since the resume. ``last.pt`` is a full pickle that ultralytics
    unpickles (it can run code, and cannot be read weights-only), so resuming
    it needs ``trust`` (``--trust-detector``): a crafted file in a shared run
    folder is never loaded otherwise. ``look_closer``: trained on the slices' windows
    round their labelled hearts (:func:`detector_view`), and saved as a detector that
    :attr:`~Detector.looks_closer`; labels without a heart (binary) keep the whole slice.
    """
    out_dir = Path(out_dir)
    epoch_score({}, None, best_by)  # an unknown criterion fails before any work
    classes = tuple(detector.names)
    detector.looks_closer = look_closer and any(
        not detector_view(stack, i, True).is_whole for i in train_idx
    )
    data = out_dir / "yolo_data"
    data_yaml = export_yolo_dataset(
        stack, train_idx, val_idx, data, detector, classes, detector.looks_closer
    )
    settings = {"epochs": epochs, "batch": batch, "device": device, "seed": seed}
    settings.update(patience=patience, augmentation=augmentation)
    args = _train_args(detector, data_yaml, out_dir, settings, resume, trust)
    watch = _Watch(classes, best_by)
    watch.attach(detector.yolo)
    thread = threading.Thread(
        target=_train_in_thread, args=(detector.yolo, args, watch.events), daemon=True
    )
    thread.start()
    path = None
    try:
        yield from _relay(watch.events)
    finally:  # also when stopped: the best finished epoch is saved before the stop goes on
        watch.stop.set()
        thread.join()
        watch.detach(detector.yolo)
        if "state" in watch.best:
            path = _keep_best(detector, watch, out_dir, best_by)
    return DetectorTrainResult(path, watch.history)


def _train_args(detector, data_yaml, out_dir: Path, settings: dict, resume: bool, trust: bool):
    """ultralytics' training arguments (or, to resume, its ``last.pt`` if trusted)."""
    project = (out_dir / "yolo").resolve()
    if resume:
        last = project / "train" / "weights" / "last.pt"
        if not last.exists():
            raise ValueError(f"{last}: no earlier detector run to resume")
        if not trust:
            raise CheckpointError(
                last,
                "resuming the detector unpickles ultralytics' last.pt, which can run code: "
                "pass --trust-detector (trust=True) only for a run folder that is yours, or "
                "--detector none to resume the segmenter alone",
            )
        return {"resume": str(last)}
    return dict(
        data=str(data_yaml),
        epochs=settings["epochs"],
        imgsz=detector.imgsz,
        batch=settings["batch"],
        device=settings["device"],
        workers=0,
        project=str(project),
        name="train",
        exist_ok=True,
        seed=settings["seed"],
        plots=False,
        amp=False,
        verbose=False,
        patience=settings["patience"],
        **{**YOLO_AUGMENTATION, **(settings["augmentation"] or {})},
    )


class _Watch:
    """ultralytics callbacks: progress into a queue, each epoch's record, the best epoch's weights."""

    def __init__(self, classes: tuple[str, ...], best_by: str) -> None:
        self.classes, self.best_by = classes, best_by
        self.events: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.best: dict = {}
        self.history: list[dict] = []
        self._batches: dict[int, int] = {}
        self._clock = time.time()

    def attach(self, yolo) -> None:
        yolo.callbacks["on_train_batch_end"].append(self.on_batch_end)
        yolo.callbacks["on_fit_epoch_end"].append(self.on_epoch_end)

    def detach(self, yolo) -> None:
        for name, func in (
            ("on_train_batch_end", self.on_batch_end),
            ("on_fit_epoch_end", self.on_epoch_end),
        ):
            if func in yolo.callbacks[name]:
                yolo.callbacks[name].remove(func)

    def on_batch_end(self, trainer) -> None:
        if self.stop.is_set():
            trainer.stop = True
        nb = max(len(trainer.train_loader), 1)
        done = self._batches.get(trainer.epoch, 0) + 1
        self._batches[trainer.epoch] = done
        losses = {
            k.split("/")[-1]: float(v) for k, v in trainer.label_loss_items(trainer.tloss).items()
        }
        values = {"epoch": trainer.epoch + 1, **losses}
        self.events.put(("batch", trainer.epoch * nb + done, trainer.epochs * nb, values))

    def on_epoch_end(self, trainer) -> None:
        if trainer.epoch + 1 > trainer.epochs or any(
            h["epoch"] == trainer.epoch + 1 for h in self.history
        ):
            return  # ultralytics' final re-validation of the best model, not a new epoch
        record = self._record(trainer)
        score = epoch_score(record, trainer.fitness, self.best_by)
        if "score" not in self.best or score >= self.best["score"]:  # ties: the later epoch
            model = trainer.ema.ema if trainer.ema is not None else trainer.model
            self.best["state"] = {
                k: v.detach().cpu().clone() for k, v in model.state_dict().items()
            }
            self.best.update(
                epoch=trainer.epoch + 1,
                score=score,
                thresholds=_per_class_thresholds(trainer, self.classes),
            )
        self.history.append(record)
        self.events.put(("epoch", trainer.epoch + 1, trainer.epochs, record))

    def _record(self, trainer) -> dict:
        metrics = {k: float(v) for k, v in (trainer.metrics or {}).items()}
        losses = trainer.label_loss_items(trainer.tloss).items()
        record = {
            "model": "detector",
            "epoch": trainer.epoch + 1,
            **{k.split("/")[-1]: float(v) for k, v in losses},
            "precision": metrics.get("metrics/precision(B)", float("nan")),
            "recall": metrics.get("metrics/recall(B)", float("nan")),
            "mAP50": metrics.get("metrics/mAP50(B)", float("nan")),
            "mAP50-95": metrics.get("metrics/mAP50-95(B)", float("nan")),
            **_per_class_ap50(trainer, self.classes),
            "seconds": round(time.time() - self._clock, 2),
        }
        self._clock = time.time()
        return record


def _train_in_thread(yolo, args: dict, events: queue.Queue) -> None:
    """ultralytics' training (in its own thread), ending with ``done`` or ``error`` in the queue."""
    try:
        with keep_torch_threads():
            yolo.train(**args)
        events.put(("done", None, None, None))
    except BaseException as exc:  # noqa: BLE001 - handed to the consumer
        events.put(("error", exc, None, None))


def _relay(events: queue.Queue) -> Generator[Progress, None, None]:
    """The training thread's events as :class:`Progress`, until it is done (or failed)."""
    while True:
        kind, a, b, c = events.get()
        if kind == "batch":
            yield Progress(int(a), int(b), "detector", f"epoch {c['epoch']}", c)
        elif kind == "epoch":
            yield Progress(int(a), int(b), "detector-epoch", f"epoch {a}", dict(c))
        elif kind == "error":
            raise RuntimeError(f"detector training failed: {a}") from a
        else:
            return


def _keep_best(detector: Detector, watch: _Watch, out_dir: Path, best_by: str) -> Path:
    """Save the best epoch as the project's checkpoint and load it into ``detector``."""
    best = watch.best
    trained = Detector.build(detector.config, watch.classes, detector.imgsz, device="cpu")
    trained.yolo.model.load_state_dict(best["state"])
    trained.yolo.model.float()
    trained.thresholds = dict(best["thresholds"])
    trained.looks_closer = detector.looks_closer
    path = trained.save(
        out_dir / DETECTOR_NAME,
        extra={"epoch": best["epoch"], "best_by": best_by, "history": watch.history},
    )
    detector.yolo.model.load_state_dict(best["state"])
    detector.thresholds = dict(best["thresholds"])
    detector.weights_changed()
    return path
