"""One training run of both models: ``RUN/detector.pt``, ``RUN/segmenter.pth``, ``RUN/metrics.csv``."""

from __future__ import annotations

import csv
import json
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path

from ..defaults import ENCODER_BACKEND, default_segmenter
from ..io.atomic import atomic_write_csv, atomic_write_text, remove_partials
from ..io.manifest import Provenance, write_manifest
from ..io.outputs import check_output
from ..models.detector import Detector
from ..models.embeddings import EmbeddingCache
from ..models.segmenter import Segmenter
from ..paths import cache_dir
from ..progress import Progress
from ..stack import Stack
from .data import slice_indices, split_cases
from .sam import BEST_NAME, LAST_NAME, SamTrainConfig, train_segmenter
from .yolo import detector_classes, train_detector

METRIC_COLUMNS = (
    "model",
    "epoch",
    "train_loss",
    "val_dice",
    "val_myo_dice",
    "val_lv_scar_dice",
    "box_loss",
    "cls_loss",
    "dfl_loss",
    "precision",
    "recall",
    "mAP50",
    "mAP50-95",
    "scar_AP50",
    "lv_AP50",
    "seconds",
)


@dataclass
class RunResult:
    """Files a run wrote and its per-epoch metrics."""

    out: Path
    detector: Path | None
    segmenter: Path | None
    history: list[dict] = field(default_factory=list)
    train_cases: list[str] = field(default_factory=list)
    val_cases: list[str] = field(default_factory=list)


def saved_models(out: str | Path) -> RunResult | None:
    """The models a run folder holds (a finished run, or one stopped after at least one
    epoch: each epoch's checkpoints are complete files), or ``None`` when it holds none."""
    out = Path(out)
    detector = out / "detector.pt"
    segmenter = out / BEST_NAME
    found = [p if p.is_file() else None for p in (detector, segmenter)]
    if not any(found):
        return None
    history = read_metrics(out / "metrics.csv") if (out / "metrics.csv").is_file() else []
    return RunResult(out, found[0], found[1], history)


def kept_models(result: RunResult) -> str:
    """Which models a (stopped) run kept, in words: each one's finished epochs and file."""
    parts = []
    for model, path in (("detector", result.detector), ("segmenter", result.segmenter)):
        if path is None:
            continue
        epochs = [int(float(h["epoch"])) for h in result.history if h.get("model") == model]
        done = f"{max(epochs)} finished epoch(s), the best kept" if epochs else "saved"
        parts.append(f"the {model} ({done}: {Path(path).name})")
    return " and ".join(parts) or "no model"


def write_metrics(path: Path, history: list[dict]) -> None:
    """``metrics.csv``: one row per model and epoch (written atomically)."""
    atomic_write_csv(path, history, METRIC_COLUMNS, digits=5)


def torch_device(device: str) -> str:
    """A torch device for the segmenter from ``cpu``, ``cuda``, ``cuda:1``, ``0`` or ``0,1``.

    Several GPU ids train the detector with ultralytics' DDP; the segmenter
    uses the first (several-GPU SAM training runs under ``torchrun``, see
    :mod:`napari_yolosam.cli.ddp`).
    """
    first = str(device).split(",")[0].strip()
    return f"cuda:{first}" if first.isdigit() else first


def _recording(work, history: list[dict], path: Path):
    """Forward a training generator's events, appending each epoch's metrics to ``history`` and
    ``path``; returns the generator's result."""
    while True:
        try:
            event = next(work)
        except StopIteration as done:
            return done.value
        if event.stage.endswith("-epoch"):
            history.append(event.values)
            write_metrics(path, history)
        yield event


def read_metrics(path: Path) -> list[dict]:
    """Rows of an existing ``metrics.csv`` (empty list if there is none)."""
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [
            {k: v for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)
        ]


def _run_folder(out: str | Path, stack: Stack, reuse: bool) -> Path:
    """The checked run folder (an earlier run only with resume/overwrite), without the
    half-written files a killed run left."""
    check_output(out, (stack.source, stack.label_source), reuse, "--resume or --overwrite")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_partials(out)
    write_manifest(out, _provenance(stack), finished=False)  # the folder is this run's
    return out


def _provenance(stack: Stack) -> Provenance:
    return Provenance("train", (str(stack.source), str(stack.label_source or "")))


def _segmenter_work(
    stack, segmenter: str, config, out: Path, device: str, resume: bool, cache, backend: str
):
    """The segmenter's training generator: from ``segmenter``, or from the run's last checkpoint."""
    resume_from = out / LAST_NAME if resume and (out / LAST_NAME).exists() else None
    seg = Segmenter.from_spec(
        segmenter if resume_from is None else str(resume_from), device, backend
    )
    if cache is None:
        cache = EmbeddingCache(max_bytes=512 << 20, disk_dir=cache_dir("embeddings"))
    return train_segmenter(stack, seg, config, out, resume=resume_from, cache=cache)


def train(
    stack: Stack,
    out: str | Path,
    detector: str | None = "yolo11n.yaml",
    segmenter: str | None = default_segmenter(),
    epochs: int = 20,
    detector_epochs: int | None = None,
    sam_config: SamTrainConfig | None = None,
    device: str = "cpu",
    detector_imgsz: int = 256,
    detector_batch: int = 16,
    resume: bool = False,
    trust_detector: bool = False,
    detector_best_by: str = "scar_AP50",
    overwrite: bool = False,
    cache: EmbeddingCache | None = None,
    encoder_backend: str = ENCODER_BACKEND,
) -> Generator[Progress, None, RunResult]:
    """Train the detector (unless ``None``) then the segmenter (unless ``None``) on ``stack``.

    Cases are split once (``sam_config.val_fraction`` / ``val_cases``, by case,
    never by slice) and both models use the same split. With ``resume`` the
    segmenter continues from ``RUN/segmenter_last.pth`` and the detector from
    ultralytics' ``last.pt`` of the same run. The detector's saved epoch is
    chosen by ``detector_best_by`` (see :data:`.yolo.BEST_BY`). A run folder with files in
    it is continued only with ``resume`` and replaced only with ``overwrite``; the data
    set's own folders are never used. The segmenter reads its embeddings from
    ``cache`` (default: the disk cache that ``yolosam embed``, propose and the
    viewer fill), so slices encoded there are not encoded again; ``encoder_backend``
    computes the frozen encoder's embeddings (``full`` mode always trains through PyTorch).
    ``sam_config.look_closer`` trains both models on windows round the labelled heart.
    """
    out = _run_folder(out, stack, overwrite or resume)
    config = sam_config or SamTrainConfig(epochs=epochs)
    sam_device = torch_device(device)
    train_cases, val_cases = split_cases(
        stack.cases, config.val_fraction, config.seed, list(config.val_cases)
    )
    train_idx, val_idx = slice_indices(stack, train_cases), slice_indices(stack, val_cases)
    atomic_write_text(
        out / "split.json",
        json.dumps({"train_cases": train_cases, "val_cases": val_cases}, indent=1),
    )
    history: list[dict] = read_metrics(out / "metrics.csv") if resume else []
    det_path = seg_path = None
    if detector is not None:
        det = Detector.from_spec(
            detector,
            names=detector_classes(stack),
            imgsz=detector_imgsz,
            device=device,
            trust=trust_detector,
        )
        settings = {"epochs": detector_epochs or epochs, "batch": detector_batch}
        settings.update(device=device, seed=config.seed, resume=resume)
        settings.update(best_by=detector_best_by, trust=trust_detector)
        settings.update(look_closer=config.look_closer)
        work = train_detector(stack, det, train_idx, val_idx, out, **settings)
        det_path = (yield from _recording(work, history, out / "metrics.csv")).path
    if segmenter is not None:
        work = _segmenter_work(
            stack, segmenter, config, out, sam_device, resume, cache, encoder_backend
        )
        result = yield from _recording(work, history, out / "metrics.csv")
        seg_path = result.best_path if result.best_path and result.best_path.exists() else None
    write_manifest(out, _provenance(stack))
    return RunResult(
        out,
        det_path,
        seg_path or (out / BEST_NAME if (out / BEST_NAME).exists() else None),
        history,
        train_cases,
        val_cases,
    )
