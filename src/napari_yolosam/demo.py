"""``yolosam demo``: the method end to end on generated data, no download, a few CPU minutes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .defaults import default_segmenter
from .io.atomic import atomic_write_text
from .io.outputs import check_output
from .phantom.io import save_phantom
from .phantom.make import make_phantom
from .progress import Progress, drive
from .training.sam import SamTrainConfig, dice


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: cases, slices per case, image side, epochs."""

    cases: int = 6
    slices: int = 8
    size: int = 192
    sam_epochs: int = 15
    detector_epochs: int = 15
    corrupt: float = 0.3


QUICK = DemoSize(cases=3, slices=3, size=96, sam_epochs=2, detector_epochs=1)


def run_demo(
    out: str | Path,
    size: DemoSize = DemoSize(),
    seed: int = 0,
    on_progress=None,
    segmenter: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Generate a phantom with noisy labels, train the detector from scratch and fine-tune the
    segmenter (default: the pretrained default, :func:`~napari_yolosam.defaults.default_segmenter`)
    on the noisy labels, propose on the held-out cases and compare with the truth. Writes
    ``data/``, ``run/``, ``proposals/`` and ``report.json`` under ``out``; returns the report."""
    from .io import read_stack
    from .models.detector import Detector
    from .models.segmenter import Segmenter
    from .proposals.core import propose
    from .proposals.io import save_proposals
    from .training.run import train

    check_output(out, (), overwrite)
    out = Path(out)
    phantom = make_phantom(
        n_slices=size.slices,
        n_cases=size.cases,
        shape=(size.size, size.size),
        corrupt=size.corrupt,
        seed=seed,
    )
    save_phantom(phantom, out / "data")
    stack = read_stack(out / "data")
    config = SamTrainConfig(epochs=size.sam_epochs, val_fraction=0.25, seed=seed, lr=5e-4)
    result = drive(
        train(
            stack,
            out / "run",
            detector="yolo11n.yaml",
            segmenter=segmenter or default_segmenter(),
            epochs=size.sam_epochs,
            detector_epochs=size.detector_epochs,
            sam_config=config,
            detector_imgsz=size.size,
            overwrite=True,  # `out` was checked
        ),
        on_progress,
    )
    val_idx = [i for i, c in enumerate(stack.cases) if c in result.val_cases]
    detector = Detector.load(result.detector) if result.detector else None
    segmenter = Segmenter.load(result.segmenter)
    proposals = drive(
        propose(
            stack, segmenter, detector, indices=val_idx, use_labels=False, conf=0.1, lv_scar=True
        ),
        on_progress,
    )
    save_proposals(proposals, stack, out / "proposals", overwrite=True)  # `out` was checked
    truth = np.isin(phantom.truth, (3, 4))
    noisy = stack.scar()
    labelled = drive(propose(stack, segmenter, None, indices=val_idx, use_labels=True))
    report = {
        "segmenter": segmenter or default_segmenter(),
        "cases": size.cases,
        "slices": len(stack),
        "held_out_cases": result.val_cases,
        "corrupted_slices": int(phantom.corrupted.sum()),
        "noisy_label_dice_vs_truth": _mean_dice(noisy, truth, val_idx),
        "end_to_end_dice_vs_truth": _mean_dice(proposals.masks(), truth, val_idx),
        "label_prompted_sam_dice_vs_truth": _mean_dice(labelled.masks(), truth, val_idx),
        "slices_without_detection": sum(
            proposals.slices[i].status == "no_detection" for i in val_idx
        ),
        "metrics": result.history[-1:] if result.history else [],
        "files": {
            "detector": str(result.detector),
            "segmenter": str(result.segmenter),
            "proposals": str(out / "proposals"),
            "data": str(out / "data"),
        },
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=1, default=str))
    return report


def _mean_dice(pred: np.ndarray, truth: np.ndarray, indices: list[int]) -> float:
    """Mean Dice over the slices that have scar in ``truth``."""
    scores = [dice(pred[i], truth[i]) for i in indices if truth[i].any()]
    return round(float(np.mean(scores)), 4) if scores else float("nan")


__all__ = ["DemoSize", "QUICK", "Progress", "run_demo"]
