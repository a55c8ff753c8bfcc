"""Saving and loading proposals: one PNG mask per slice, probabilities, a CSV summary."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

from .io.atomic import atomic_write, atomic_write_text
from .io.errors import StackError
from .io.images import list_image_files, read_raw_mask
from .proposals import SCAR_BOX_SOURCES, Proposals, SliceProposal
from .stack import Stack

SUMMARY_COLUMNS = (
    "image",
    "case",
    "status",
    "prompts",
    "detector_boxes",
    "label_boxes",
    "max_score",
    "mean_iou",
    "area_px",
)


def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def save_proposals(proposals: Proposals, stack: Stack, out: str | Path) -> Path:
    """Write ``masks/`` (0/255 PNG per slice, original names and sizes), ``myocardium/``
    (if proposed), ``probabilities.npz`` (float16), ``summary.csv`` and ``prompts.json``."""
    out = Path(out)
    rows, prompts = [], []
    myocardium = proposals.myocardium()
    for i, (name, sp) in enumerate(zip(stack.names, proposals.slices, strict=True)):
        stem = Path(name).stem
        _png(out / "masks" / f"{stem}.png", (stack.crop(i, sp.mask) * 255).astype(np.uint8))
        if myocardium is not None:
            _png(
                out / "myocardium" / f"{stem}.png",
                (stack.crop(i, myocardium[i]) * 255).astype(np.uint8),
            )
        det = [s for s in sp.sources if s in SCAR_BOX_SOURCES]
        scores = sp.scores[np.isfinite(sp.scores)] if len(sp.scores) else np.zeros(0)
        rows.append(
            {
                "image": name,
                "case": stack.cases[i],
                "status": sp.status,
                "prompts": len(sp.sources),
                "detector_boxes": len(det),
                "label_boxes": sp.sources.count("label"),
                "max_score": f"{scores.max():.4f}" if len(scores) else "",
                "mean_iou": f"{sp.iou.mean():.4f}" if len(sp.iou) else "",
                "area_px": int(sp.mask.sum()),
            }
        )
        prompts.append(
            {
                "image": name,
                "status": sp.status,
                "boxes": sp.boxes.round(2).tolist(),
                "scores": [None if not np.isfinite(s) else round(float(s), 5) for s in sp.scores],
                "iou": [round(float(v), 5) for v in sp.iou],
                "sources": sp.sources,
            }
        )
    probs = proposals.probabilities().astype(np.float16)
    atomic_write(
        out / "probabilities.npz",
        lambda tmp: np.savez_compressed(
            tmp,
            probabilities=probs,
            names=np.array(stack.names),
            shapes=np.array(stack.original_shapes),
        ),
    )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "summary.csv", buffer.getvalue())
    atomic_write_text(
        out / "prompts.json",
        json.dumps({"settings": proposals.settings, "slices": prompts}, indent=1),
    )
    return out


def load_proposals(path: str | Path, stack: Stack) -> Proposals:
    """Proposals for ``stack`` from a folder written by :func:`save_proposals`, or from any
    folder of mask images named like the slices (another model's output).

    Without ``probabilities.npz`` the probability map is the binary mask itself,
    and ``settings["probabilities"]`` is ``False``.
    """
    path = Path(path)
    mask_dir = path / "masks" if (path / "masks").is_dir() else path
    files = {f.stem: f for f in list_image_files(mask_dir)}
    if not files:
        raise StackError(mask_dir, "no proposal mask images found")
    full = stack.shape[1:]
    probs = None
    if (path / "probabilities.npz").exists():
        with np.load(path / "probabilities.npz", allow_pickle=False) as data:
            if list(data["names"]) != list(stack.names):
                raise StackError(path / "probabilities.npz", "slice names differ from the stack's")
            probs = data["probabilities"].astype(np.float32)
    details = {}
    settings: dict = {}
    if (path / "prompts.json").exists():
        loaded = json.loads((path / "prompts.json").read_text())
        settings = loaded.get("settings", {})
        details = {d["image"]: d for d in loaded.get("slices", [])}
    slices = []
    for i, name in enumerate(stack.names):
        stem = Path(name).stem
        if stem not in files:
            raise StackError(mask_dir, f"no proposal mask for slice {name}")
        raw = read_raw_mask(files[stem])
        if raw.shape != tuple(stack.original_shapes[i]):
            raise StackError(
                files[stem],
                f"shape {raw.shape} differs from the slice's {tuple(stack.original_shapes[i])}",
            )
        mask = np.zeros(full, bool)
        mask[: raw.shape[0], : raw.shape[1]] = raw >= (128 if raw.max(initial=0) > 1 else 1)
        prob = probs[i] if probs is not None else mask.astype(np.float32)
        d = details.get(name, {})
        boxes = np.asarray(d.get("boxes", []), np.float32).reshape(-1, 4)
        scores = np.array([np.nan if s is None else s for s in d.get("scores", [])], np.float32)
        slices.append(
            SliceProposal(
                mask,
                prob,
                boxes,
                scores,
                np.asarray(d.get("iou", []), np.float32),
                list(d.get("sources", [])),
                np.zeros((0, *full), bool),
                d.get("status", "external"),
            )
        )
    settings = {**settings, "probabilities": probs is not None, "source": str(path)}
    return Proposals(list(stack.names), slices, settings)
