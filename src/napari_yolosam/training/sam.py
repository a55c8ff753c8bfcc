"""Fine-tuning SAM: a generator that trains, validates, checkpoints and can stop or resume.

Modes: ``full`` trains every weight (the ``tiny`` configuration from
scratch, or any model on a GPU); ``decoder`` freezes the image encoder and
takes embeddings from the embedding cache (prompt encoder and mask decoder
train: workable on a CPU with a pretrained LiteMedSAM or vit_b); ``neck``
also trains the encoder's neck, on cached trunk features (the encoder runs
once per slice, as in ``decoder``); ``stage`` also trains the encoder's last
stage (TinyViT encoders), on cached inputs to that stage. A random encoder is
never frozen. With several processes
(``torchrun``) the step runs under DistributedDataParallel, each rank on its
own shard; rank 0 writes the checkpoints.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..defaults import TARGETS, TRAIN_MODES, TRAINING
from ..io.atomic import atomic_write_text
from ..models.checkpoints import read_payload
from ..models.embeddings import EmbeddingCache
from ..models.segmenter import Segmenter
from ..models.segmenter.configs import SCRATCH_CONFIGS
from ..models.segmenter.model import HEADS, encoder_stages
from ..progress import Progress
from ..stack import Stack
from .data import (
    Augmentation,
    build_items,
    by_slice,
    make_samples,
    shared_images,
    slice_indices,
    split_cases,
    windows_record,
)
from .heart import train_heads
from .losses import LossWeights, noise_robust_loss
from .targets import extent_targets
from .validation import validate

BEST_NAME = "segmenter.pth"
#: What each mode feeds the trainable part: images, cached trunk features, cached embeddings.
INPUTS = {"full": "image", "stage": "stage", "neck": "trunk", "decoder": "embedding"}
LAST_NAME = "segmenter_last.pth"
#: Which window each slice was seen through (runs that look closer).
WINDOWS_NAME = "segmenter_windows.json"


@dataclass
class SamTrainConfig:
    """Settings of a SAM training run (stored in its checkpoints)."""

    epochs: int = TRAINING.epochs
    batch_size: int = TRAINING.batch_size  # slices per step, each with all its prompts
    lr: float = TRAINING.lr
    weight_decay: float = 1e-4
    mode: str = TRAINING.mode  # one of TRAIN_MODES (see defaults.py)
    targets: str = TRAINING.targets  # one of TARGETS: the labels, or their scar's extent
    loss: LossWeights = field(default_factory=LossWeights)
    iou_weight: float = 0.1
    augmentation: Augmentation = field(default_factory=Augmentation)
    cached_variants: int = TRAINING.cached_variants  # cached modes: augmented before caching
    negative_fraction: float = 0.25
    click_share: float = 0.25  # share of steps whose boxes come with a +/- click from the target
    myocardium: bool = True
    scar_free_share: float = (
        TRAINING.scar_free_share
    )  # share of the scar-free slices drawn each epoch
    lv_prompts: bool = True  # scar from a box round the LV too (labels with myocardium)
    look_closer: bool = TRAINING.look_closer  # seen through jittered windows round the heart
    heart_steps: int = TRAINING.heart_steps  # steps of each head on the embedding (0: none)
    val_fraction: float = TRAINING.val_fraction
    val_cases: tuple[str, ...] = ()
    seed: int = TRAINING.seed
    loss_grid: int = 256
    max_steps_per_epoch: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "cached_variants"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, not {getattr(self, name)}")
        if not 0 <= self.click_share <= 1 or not 0 <= self.scar_free_share <= 1:
            raise ValueError("click_share and scar_free_share lie in 0..1")
        if self.targets not in TARGETS:
            raise ValueError(f"unknown targets {self.targets!r} ({', '.join(TARGETS)})")

    def resolved_mode(self, segmenter: Segmenter) -> str:
        """``full`` or ``decoder``: a randomly initialised encoder is always trained (``full``)."""
        if self.mode not in TRAIN_MODES:
            raise ValueError(f"unknown training mode {self.mode!r} ({', '.join(TRAIN_MODES)})")
        if self.mode == "auto":
            scratch = segmenter.random_encoder or segmenter.name in SCRATCH_CONFIGS
            return "full" if scratch else "decoder"
        if self.mode in ("decoder", "neck", "stage") and segmenter.random_encoder:
            raise ValueError(
                f"{self.mode} training would freeze the random encoder of a fresh "
                f"{segmenter.name!r}: use a pretrained segmenter (lite_medsam, a downloaded "
                "model or a checkpoint) or mode 'full'"
            )
        if self.mode == "stage":
            encoder_stages(segmenter.model.image_encoder)  # a clear error for a ViT encoder
        return self.mode

    def to_dict(self) -> dict:
        """Plain form for checkpoints."""
        d = asdict(self)
        d["val_cases"] = list(self.val_cases)
        d["augmentation"]["scale"] = list(self.augmentation.scale)
        d["augmentation"]["gamma"] = list(self.augmentation.gamma)
        d["augmentation"]["contrast"] = list(self.augmentation.contrast)
        return d


@dataclass
class SamTrainResult:
    """What a finished (or stopped) run left behind."""

    best_path: Path | None
    last_path: Path | None
    best_dice: float
    epochs_done: int
    history: list[dict]
    train_cases: list[str]
    val_cases: list[str]


def _has_scar_prompt(group) -> bool:
    return any(item.target == "scar" and item.kind == "positive" for item in group)


def _dist():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist, dist.get_rank(), dist.get_world_size()
    return None, 0, 1


def train_segmenter(
    stack: Stack,
    segmenter: Segmenter,
    config: SamTrainConfig | None = None,
    out_dir: str | Path | None = None,
    resume: str | Path | None = None,
    cache: EmbeddingCache | None = None,
) -> Generator[Progress, None, SamTrainResult]:
    """Train ``segmenter`` on the labels of ``stack``.

    Yields a :class:`Progress` after every step (``stage="segmenter"``) and
    every epoch (``stage="segmenter-epoch"``, with ``val_dice``). Checkpoints
    are written atomically at the end of each epoch to ``out_dir``: the last
    (with optimiser and schedule state, for ``resume``) and the best by
    validation Dice. Closing the generator stops the run; the files of the
    last finished epoch stay intact. With ``config.targets == "extent"`` the scar of
    every label (training and validation) takes the extent of the enhanced regions it
    touches first (:func:`~napari_yolosam.training.targets.extent_targets`).
    """
    config = config or SamTrainConfig()
    if not stack.has_labels:
        raise ValueError("training needs labels")
    if config.targets == "extent":
        stack, _ = extent_targets(stack)
    run = _TrainRun.start(stack, segmenter, config, out_dir, cache)
    if resume is not None:
        run.resume_from(resume)
    if config.look_closer and run.out_dir is not None and run.rank == 0:
        record = windows_record(run.stack, run.train_idx + run.val_idx, config.augmentation)
        run.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.out_dir / WINDOWS_NAME, json.dumps(record, indent=1))
    if run.mode == "decoder":  # the encoder stays: the heart finder reads its embeddings
        yield from _train_heart(run)
    backend = segmenter.encoder_backend
    if run.mode == "full":  # weights change every step: no export per epoch, PyTorch throughout
        segmenter.encoder_backend = "torch"
    try:
        for epoch in range(run.start_epoch, config.epochs):
            started = time.time()
            losses: list[float] = []
            for progress in _epoch_steps(run, epoch):
                losses.append(progress.values["loss"])
                yield progress
            record = _finish_epoch(run, epoch, losses, started)
            yield Progress(
                epoch + 1, config.epochs, "segmenter-epoch", f"epoch {epoch + 1}", dict(record)
            )
    finally:
        segmenter.encoder_backend = backend
    segmenter.model.eval()
    if run.mode != "decoder":  # the encoder changed: the heart finder reads the best one's
        yield from _heart_for_best(run)
    return SamTrainResult(
        run.best_path,
        run.last_path,
        run.best,
        len(run.history),
        run.history,
        run.train_cases,
        run.val_cases,
    )


@dataclass
class _TrainRun:
    """One training run's state: split, trainable part, optimiser, schedule, history."""

    stack: Stack
    segmenter: Segmenter
    config: SamTrainConfig
    mode: str
    train_cases: list[str]
    val_cases: list[str]
    train_idx: list[int]
    val_idx: list[int]
    optimizer: object
    scheduler: object
    model: object  # PromptedSam, wrapped in DistributedDataParallel under torchrun
    cache: EmbeddingCache
    steps_per_epoch: int
    out_dir: Path | None
    dist: object
    rank: int
    world: int
    start_epoch: int = 0
    best: float = -1.0
    history: list[dict] = field(default_factory=list)
    global_step: int = 0

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def best_path(self) -> Path | None:
        return self.out_dir / BEST_NAME if self.out_dir else None

    @property
    def last_path(self) -> Path | None:
        return self.out_dir / LAST_NAME if self.out_dir else None

    @classmethod
    def start(cls, stack, segmenter, config, out_dir, cache) -> _TrainRun:
        """Split by case, freeze what the mode keeps, and set up optimiser and schedule."""
        import torch
        from torch.nn.parallel import DistributedDataParallel

        from .paired import PromptedSam

        dist, rank, world = _dist()
        mode = config.resolved_mode(segmenter)
        train_cases, val_cases = split_cases(
            stack.cases, config.val_fraction, config.seed, list(config.val_cases)
        )
        train_idx = slice_indices(stack, train_cases)
        trainable = _set_trainable(segmenter.model, mode)
        torch.manual_seed(config.seed)
        optimizer = torch.optim.AdamW(
            trainable,
            lr=config.lr,
            weight_decay=config.weight_decay,
            fused=torch.device(segmenter.device).type in ("cpu", "cuda"),
        )
        steps = _steps_per_epoch(stack, train_idx, config, world)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(steps * config.epochs, 1)
        )
        model = PromptedSam(segmenter.model, inputs=INPUTS[mode]).to(segmenter.device)
        if dist is not None:
            model = DistributedDataParallel(model, find_unused_parameters=True)
        return cls(
            stack,
            segmenter,
            config,
            mode,
            train_cases,
            val_cases,
            train_idx,
            slice_indices(stack, val_cases),
            optimizer,
            scheduler,
            model,
            cache if cache is not None else EmbeddingCache(max_bytes=512 << 20),
            steps,
            Path(out_dir) if out_dir is not None else None,
            dist,
            rank,
            world,
        )

    def resume_from(self, path: str | Path) -> None:
        """Continue a run from its last checkpoint (optimiser, schedule, epoch, history)."""
        payload = read_payload(path)
        extra = payload.get("extra") if isinstance(payload, dict) else None
        state = extra.get("training") if isinstance(extra, dict) else None
        if not isinstance(state, dict) or not state:
            raise ValueError(f"{path}: holds no training state to resume from (use {LAST_NAME})")
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.start_epoch, self.best = int(state["epoch"]), float(state["best"])
        self.history = list(state["history"])
        if state.get("val_cases") != self.val_cases:
            raise ValueError(
                f"{path}: was trained with validation cases {state.get('val_cases')}, "
                f"not {self.val_cases}"
            )
        self.global_step = self.start_epoch * self.steps_per_epoch


def _set_trainable(sam, mode: str) -> list:
    """Freeze what ``mode`` keeps (the encoder, but its last stage and neck in stage mode and
    its neck in neck mode); the rest trains."""
    for p in sam.image_encoder.parameters():
        p.requires_grad_(mode == "full")
    if mode == "stage":
        for p in encoder_stages(sam.image_encoder)[-1].parameters():
            p.requires_grad_(True)
    for p in sam.image_encoder.neck.parameters():
        p.requires_grad_(mode in ("full", "neck", "stage"))
    return [p for p in sam.parameters() if p.requires_grad]


def _steps_per_epoch(
    stack: Stack, train_idx: list[int], config: SamTrainConfig, world: int
) -> int:
    """Steps per epoch: the scar slices and a share of the scar-free ones, over all processes."""
    items = build_items(
        stack,
        train_idx,
        config.myocardium,
        config.negative_fraction,
        config.seed,
        lv_prompts=config.lv_prompts,
    )
    if not items:
        raise ValueError(
            "no training prompts: the training cases have no scar or myocardium labels"
        )
    groups = by_slice(sorted(items, key=lambda it: it.slice))
    with_scar = sum(_has_scar_prompt(g) for g in groups)
    per_rank = math.ceil((with_scar + config.scar_free_share * (len(groups) - with_scar)) / world)
    steps = max(1, math.ceil(per_rank / config.batch_size))
    if config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    return steps


def _epoch_shard(run: _TrainRun, epoch: int) -> list:
    """This process's slices of the epoch (each with all its prompts), padded to full steps.

    A step takes batch_size slices with all their prompts: one augmentation and
    one encoder pass per slice serve all of its prompts.
    """
    config = run.config
    items = build_items(
        run.stack,
        run.train_idx,
        config.myocardium,
        config.negative_fraction,
        config.seed + epoch,
        lv_prompts=config.lv_prompts,
    )
    groups = by_slice(sorted(items, key=lambda it: it.slice))
    pick = np.random.default_rng([config.seed, epoch, 1])
    groups = [  # a share of the scar-free slices (myocardium and negative prompts only)
        g for g in groups if _has_scar_prompt(g) or pick.random() < config.scar_free_share
    ]
    order = np.random.default_rng([config.seed, epoch]).permutation(len(groups))
    shard = [groups[g] for g in order[run.rank :: run.world]]
    shard += shard[: max(0, run.steps_per_epoch * config.batch_size - len(shard))]
    return shard


def _epoch_steps(run: _TrainRun, epoch: int) -> Generator[Progress, None, None]:
    """One epoch's optimisation steps, a :class:`Progress` (with the loss) after each."""
    config, sam = run.config, run.segmenter.model
    rng = np.random.default_rng([config.seed, epoch, run.rank])
    click_rng = np.random.default_rng([config.seed, epoch, run.rank, 7])  # its own stream
    shard = _epoch_shard(run, epoch)
    sam.train()
    if run.mode != "full":
        sam.image_encoder.eval()
    for step in range(run.steps_per_epoch):
        batch = shard[step * config.batch_size : (step + 1) * config.batch_size]  # slices
        clicked = bool(click_rng.random() < config.click_share)  # as an annotator's clicks
        parts = _train_step(run, batch, rng, clicked)
        if parts is None:
            continue
        run.global_step += 1
        yield Progress(
            run.global_step,
            run.total_steps,
            "segmenter",
            f"epoch {epoch + 1}",
            {"epoch": epoch + 1, **parts, "lr": run.scheduler.get_last_lr()[0]},
        )


def _train_step(run: _TrainRun, batch: list, rng: np.random.Generator, clicked: bool):
    """Augment the batch's slices, predict every prompt's mask, step; the loss and its parts."""
    import torch

    from .paired import token_indices

    segmenter, config, device = run.segmenter, run.config, run.segmenter.device
    grid = min(config.loss_grid, segmenter.img_size)
    samples = [
        sample
        for group in batch
        for sample in make_samples(
            run.stack,
            group,
            rng,
            config.augmentation,
            segmenter.img_size,
            grid,
            run.mode == "full",
            segmenter.preprocess,
            clicked,
            _variant(run, rng),
            config.look_closer,
        )
    ]
    if not samples:
        return None
    images, image_index = shared_images(samples)
    if run.mode == "full":
        inputs = torch.stack([s.image for s in images]).to(device)
    else:
        kind = INPUTS[run.mode]
        inputs = torch.cat([run.cache.get(segmenter, s.raw, kind) for s in images]).to(device)
    clicks = None
    if clicked:
        clicks = (
            torch.as_tensor(np.stack([s.points for s in samples]), device=device),
            torch.as_tensor(np.stack([s.point_labels for s in samples]), device=device),
        )
    logits, iou_pred = run.model(
        inputs,
        torch.as_tensor(np.stack([s.box for s in samples]), device=device),
        token_indices([s.token for s in samples], device),
        clicks,
        torch.as_tensor(image_index, device=device),
    )
    targets = torch.stack([s.target for s in samples]).to(device)
    loss, parts = _step_loss(logits, iou_pred, targets, grid, config)
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    run.optimizer.step()
    run.scheduler.step()
    segmenter.random_encoder &= run.mode != "full"  # trained now, whatever it started as
    return {
        "loss": loss.item(),
        "dice_loss": parts["dice"],
        "bce": parts["bce"],
        "kl": parts["kl"],
    }


def _variant(run: _TrainRun, rng: np.random.Generator) -> tuple[int, int] | None:
    """Which cached version of a slice a step uses: ``(seed, k)``, ``None`` for the slice as
    it is (always in ``full`` mode, which augments every step; no draw with one version)."""
    count = run.config.cached_variants
    if run.mode == "full" or count == 1:
        return None
    k = int(rng.integers(count))
    return None if k == 0 else (run.config.seed, k)


def _step_loss(logits, iou_pred, targets, grid: int, config: SamTrainConfig):
    """The noise-robust mask loss at ``grid`` px plus the IoU head's error against the real IoU."""
    import torch

    logits = torch.nn.functional.interpolate(
        logits[:, None], size=(grid, grid), mode="bilinear", align_corners=False
    )[:, 0]
    loss, parts = noise_robust_loss(logits, targets, config.loss)
    with torch.no_grad():
        pred, truth = logits > 0, targets > 0.5
        inter = (pred & truth).flatten(1).sum(1).float()
        union = (pred | truth).flatten(1).sum(1).float()
        actual_iou = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    loss = loss + config.iou_weight * torch.nn.functional.mse_loss(iou_pred, actual_iou)
    return loss, parts


def _finish_epoch(run: _TrainRun, epoch: int, losses: list[float], started: float) -> dict:
    """Reduce the loss over processes, validate, write the checkpoints; the epoch's record."""
    import torch

    segmenter = run.segmenter
    segmenter.weights_changed()
    train_loss = float(np.mean(losses)) if losses else float("nan")
    if run.dist is not None:
        t = torch.tensor([train_loss], dtype=torch.float64)
        run.dist.all_reduce(t)
        train_loss = float(t) / run.world
    metrics = {}
    if run.rank == 0:
        cache = run.cache if run.mode != "full" else None
        via = INPUTS[run.mode] if run.mode in ("neck", "stage") else "embedding"
        metrics = validate(segmenter, run.stack, run.val_idx, cache, via, run.config.look_closer)
    record = {
        "model": "segmenter",
        "epoch": epoch + 1,
        "train_loss": train_loss,
        "seconds": round(time.time() - started, 2),
        **metrics,
    }
    run.history.append(record)
    score = metrics.get("val_dice", float("nan")) if run.rank == 0 else 0.0
    improved = run.rank == 0 and (not np.isfinite(score) or score > run.best)
    if run.rank == 0 and run.out_dir is not None:
        _save_checkpoints(run, epoch, score, improved)
    if improved and np.isfinite(score):
        run.best = score
    if run.dist is not None:
        run.dist.barrier()
    return record


def _save_checkpoints(run: _TrainRun, epoch: int, score: float, improved: bool) -> None:
    """The last checkpoint (with the state to resume from) and, when improved, the best."""
    config = run.config
    state = {
        "epoch": epoch + 1,
        "best": max(run.best, score) if np.isfinite(score) else run.best,
        "history": run.history,
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "val_cases": run.val_cases,
        "train_cases": run.train_cases,
        "config": config.to_dict(),
        "mode": run.mode,
    }
    run.segmenter.save(run.last_path, extra={"training": state})
    if improved:
        run.segmenter.save(
            run.best_path,
            extra={
                "epoch": epoch + 1,
                "val_dice": score,
                "val_cases": run.val_cases,
                "train_cases": run.train_cases,
                "config": config.to_dict(),
            },
        )


def _train_heart(run: _TrainRun, segmenter: Segmenter | None = None):
    """Train the heads of ``segmenter`` (default the run's) on the training slices
    (:func:`.heart.train_heads`; returns whether it did); they are saved with every
    checkpoint written after."""
    config = run.config
    if config.heart_steps < 1:
        return False
    return (yield from train_heads(
        segmenter or run.segmenter, run.stack, run.train_idx, config.augmentation,
        run.cache, config.heart_steps, config.seed,
    ))  # fmt: skip


def _heart_for_best(run: _TrainRun):
    """After an encoder-training run: the best checkpoint's heads, trained on its own
    embeddings and saved into it, or dropped where they cannot be (a generator)."""
    if run.best_path is None or not run.best_path.exists() or run.rank != 0:
        return
    best = Segmenter.load(run.best_path, run.segmenter.device)
    best.encoder_backend = "torch"
    had = any(getattr(best, h) is not None for h in HEADS)
    if not (yield from _train_heart(run, best)) and had:  # they read the old embeddings
        for head in HEADS:
            setattr(best, head, None)
        why = "heads dropped: the encoder changed and the labels carry no myocardium"
        yield Progress(1, 1, "heart", why, {"heads": "dropped"})  # the CLI bar shows values
    if had or best.heart is not None:
        extra = read_payload(run.best_path).get("extra") or {}
        best.save(run.best_path, extra={k: v for k, v in extra.items() if k not in HEADS})


def with_overrides(config: SamTrainConfig, **changes) -> SamTrainConfig:
    """A copy of ``config`` with fields changed (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})
