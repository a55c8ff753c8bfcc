"""The demo's pictures: the review's before and after on flagged slices, and the training
curves (the audit's overview comes from :mod:`napari_yolosam.audit.report`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .audit.report import outline as _outline
from .io.atomic import atomic_write
from .palette import LABEL_ONLY, MYOCARDIUM, PROPOSAL_ONLY, SCAR

#: Flagged slices the before/after figure shows at most.
SHOWN = 6


def _figure(rows: int, cols: int, side: float = 2.2):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(side * cols, side * rows + 0.4), dpi=90)


def before_after(stack, truth, proposals, cleaned, indices, path: Path) -> Path:
    """Per flagged slice (``indices``, the first :data:`SHOWN`): the image, the noisy label,
    the proposal, the truth and the result the review left (scar outlined on the image)."""
    shown = list(indices)[:SHOWN] or [0]
    columns = (
        ("image", None, None),
        ("label (noisy)", stack.scar(), LABEL_ONLY),
        ("proposal", proposals, PROPOSAL_ONLY),
        ("truth", truth, MYOCARDIUM),
        ("after the review", cleaned, SCAR),
    )
    fig = _figure(len(shown), len(columns))
    for r, i in enumerate(shown):
        near = _around([np.asarray(m[i], bool) for _, m, _ in columns[1:]])
        image = stack.crop(i, stack.images[i])[near]
        for c, (title, masks, colour) in enumerate(columns):
            axes = fig.add_subplot(len(shown), len(columns), r * len(columns) + c + 1)
            axes.imshow(image, cmap="gray")
            if masks is not None:
                _outline(axes, stack.crop(i, np.asarray(masks[i], bool))[near], colour)
            axes.set_title(title if r == 0 else "", fontsize=8)
            axes.set_ylabel(stack.names[i] if c == 0 else "", fontsize=6)
            axes.set_xticks([])
            axes.set_yticks([])
    fig.suptitle("flagged slices: what the review changed (scar outlines)", fontsize=9)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _around(masks: list[np.ndarray], margin: int = 20) -> tuple[slice, slice]:
    """A square window round every mask's pixels (the heart), with a margin."""
    union = np.logical_or.reduce(masks)
    if not union.any():
        return slice(None), slice(None)
    rows, cols = np.nonzero(union)
    half = max(np.ptp(rows), np.ptp(cols)) // 2 + margin
    cy, cx = (rows.min() + rows.max()) // 2, (cols.min() + cols.max()) // 2
    return slice(max(cy - half, 0), cy + half + 1), slice(max(cx - half, 0), cx + half + 1)


def training_curves(history: list[dict], path: Path) -> Path:
    """The segmenter's training loss and validation Dice, and the detector's box loss and
    mAP50, per epoch (one panel each model)."""
    fig = _figure(1, 2, side=3.2)
    for k, (model, keys) in enumerate(
        (("segmenter", ("train_loss", "val_dice")), ("detector", ("box_loss", "mAP50")))
    ):
        axes = fig.add_subplot(1, 2, k + 1)
        for key in keys:
            rows = [h for h in history if h.get("model") == model and _number(h.get(key))]
            if rows:
                epochs = [int(float(h["epoch"])) for h in rows]
                axes.plot(epochs, [float(h[key]) for h in rows], marker="o", label=key)
        axes.set_title(model, fontsize=9)
        axes.set_xlabel("epoch")
        if axes.lines:
            axes.legend(fontsize=7)
        else:
            axes.text(0.5, 0.5, "not trained", ha="center", transform=axes.transAxes)
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _number(value) -> bool:
    try:
        return np.isfinite(float(value))
    except (TypeError, ValueError):
        return False
