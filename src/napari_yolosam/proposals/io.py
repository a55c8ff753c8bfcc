"""Saving and loading proposals: one PNG mask per slice, probabilities, a CSV summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write, atomic_write_csv, atomic_write_text
from ..io.errors import StackError
from ..io.images import list_image_files, read_raw_mask
from ..io.manifest import Provenance
from ..io.outputs import check_output, staged_folder
from ..stack import Stack
from .types import SCAR_BOX_SOURCES, Proposals, SliceProposal

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


def save_proposals(
    proposals: Proposals, stack: Stack, out: str | Path, overwrite: bool = False
) -> Path:
    """Write ``masks/`` (0/255 PNG per slice, original names and sizes), ``myocardium/``
    (if proposed), ``probabilities.npz`` (float16), ``summary.csv``, ``prompts.json`` and,
    for a DICOM series, ``proposals.seg.dcm`` (the scar as a DICOM Segmentation).

    The folder is built beside ``out`` and moved into place when complete (never
    a mix of two runs); ``out`` must not hold the stack's data, and an existing
    ``out`` is replaced only with ``overwrite``.
    """
    check_output(out, (stack.source, stack.label_source), overwrite)
    made = Provenance("proposals", (str(stack.source), str(stack.label_source or "")))
    with staged_folder(out, made) as folder:
        _write_proposals(proposals, stack, folder)
    return Path(out)


def _write_proposals(proposals: Proposals, stack: Stack, out: Path) -> None:
    rows, prompts = [], []
    myocardium = proposals.myocardium()
    for i, (name, sp) in enumerate(zip(stack.names, proposals.slices, strict=True)):
        stem = Path(name).with_suffix("")  # a study's slice names keep their patient folder
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
                "view": sp.view,
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
    atomic_write_csv(out / "summary.csv", rows, SUMMARY_COLUMNS)
    atomic_write_text(
        out / "prompts.json",
        json.dumps({"settings": proposals.settings, "slices": prompts}, indent=1),
    )
    _write_dicom_seg(proposals, stack, out)


#: The proposals' DICOM Segmentation (DICOM input of one series only).
DICOM_SEG = "proposals.seg.dcm"


def _write_dicom_seg(proposals: Proposals, stack: Stack, out: Path) -> None:
    """DICOM input: the scar proposals as an automatic DICOM-SEG of the series too."""
    from ..io.dicom_seg import dicom_seg_problem, segment_values, write_dicom_seg

    if stack.layout != "dicom" or dicom_seg_problem(stack):
        return
    scar = segment_values(stack.spec)["scar"]
    labels = proposals.masks().astype(np.uint16 if scar > 255 else np.uint8) * scar
    name = str(proposals.settings.get("segmenter") or "napari-yolosam")
    write_dicom_seg(
        stack, labels, out / DICOM_SEG, "scar proposals", algorithm=name, segments=("scar",)
    )


def load_proposals(path: str | Path, stack: Stack) -> Proposals:
    """Proposals for ``stack`` from a folder written by :func:`save_proposals`, or from any
    folder of mask images named like the slices (another model's output).

    Without ``probabilities.npz`` the probability map is the binary mask itself,
    and ``settings["probabilities"]`` is ``False``.
    """
    path = Path(path)
    mask_dir = path / "masks" if (path / "masks").is_dir() else path
    files = {f.stem: f for f in list_image_files(mask_dir)}
    if not files and not any(mask_dir.rglob("*.png")):
        raise StackError(mask_dir, "no proposal mask images found")
    full = stack.shape[1:]
    probs = None
    if (path / "probabilities.npz").exists():
        probs = _read_probabilities(path / "probabilities.npz", stack)
    settings, details = {}, {}
    if (path / "prompts.json").exists():
        settings, details = _read_prompts(path / "prompts.json")
    slices = []
    for i, name in enumerate(stack.names):
        nested = mask_dir / Path(name).with_suffix(".png")
        stem = Path(name).stem
        if not nested.is_file() and stem not in files:
            raise StackError(mask_dir, f"no proposal mask for slice {name}")
        raw = read_raw_mask(nested if nested.is_file() else files[stem])
        if raw.shape != tuple(stack.original_shapes[i]):
            raise StackError(
                files[stem],
                f"shape {raw.shape} differs from the slice's {tuple(stack.original_shapes[i])}",
            )
        mask = np.zeros(full, bool)
        mask[: raw.shape[0], : raw.shape[1]] = raw >= (128 if raw.max(initial=0) > 1 else 1)
        prob = probs[i] if probs is not None else mask.astype(np.float32)
        boxes, scores, iou, sources, status = _prompt_fields(path, details.get(name, {}))
        slices.append(
            SliceProposal(
                mask, prob, boxes, scores, iou, sources, np.zeros((0, *full), bool), status
            )
        )
    settings = {**settings, "probabilities": probs is not None, "source": str(path)}
    return Proposals(list(stack.names), slices, settings)


def _read_probabilities(file: Path, stack: Stack) -> np.ndarray:
    """``(N, H, W)`` float32 probabilities of ``probabilities.npz``, checked against the stack."""
    import zipfile

    try:
        with np.load(file, allow_pickle=False) as data:
            names = [str(n) for n in data["names"]]
            probs = data["probabilities"].astype(np.float32)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise StackError(file, f"cannot be read as proposal probabilities ({reason})") from exc
    if names != list(stack.names):
        raise StackError(file, "slice names differ from the stack's")
    if probs.shape != stack.shape:
        raise StackError(file, f"holds probabilities of shape {probs.shape}, not {stack.shape}")
    return probs


def _read_prompts(file: Path) -> tuple[dict, dict]:
    """``settings`` and the per-slice prompt records (by image name) of ``prompts.json``."""
    try:
        loaded = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StackError(file, f"is not readable JSON ({exc})") from exc
    slices = loaded.get("slices", []) if isinstance(loaded, dict) else None
    settings = loaded.get("settings", {}) if isinstance(loaded, dict) else None
    if not isinstance(settings, dict) or not isinstance(slices, list):
        raise StackError(file, 'is not a prompts file ({"settings": {...}, "slices": [...]})')
    if not all(isinstance(d, dict) and isinstance(d.get("image"), str) for d in slices):
        raise StackError(file, "has a slice record without an image name")
    return settings, {d["image"]: d for d in slices}


def _prompt_fields(folder: Path, record: dict):
    """Boxes, scores, IoU, sources and status of one slice's prompt record, checked."""
    try:
        boxes = np.asarray(record.get("boxes", []), np.float32).reshape(-1, 4)
        scores = np.array(
            [np.nan if s is None else s for s in record.get("scores", [])], np.float32
        )
        iou = np.asarray(record.get("iou", []), np.float32).reshape(-1)
        sources = [str(s) for s in record.get("sources", [])]
    except (TypeError, ValueError) as exc:
        raise StackError(
            folder / "prompts.json", f"slice {record.get('image')}: malformed prompts ({exc})"
        ) from exc
    if not len(boxes) == len(scores) == len(sources):
        raise StackError(
            folder / "prompts.json",
            f"slice {record.get('image')}: {len(boxes)} boxes, {len(scores)} scores and "
            f"{len(sources)} sources do not match",
        )
    return boxes, scores, iou, sources, str(record.get("status", "external"))
