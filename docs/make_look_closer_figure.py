"""docs/images/look_closer.png: what looking closer does, on the project's phantom.

Four panels of one slice: the slice with its window round the heart; the window as the
model sees it (resized to its input) with SAM's myocardium (from the box round the LV)
and scar (from the label's scar boxes, kept in the label's myocardium) there; the result
pasted back in slice pixels; and SAM on the whole slice with the same prompts, for
comparison, each with its Dice against the truth (myocardium, scar). LiteMedSAM zero-shot,
the labels' anatomy places the window, the truth's scar in white outline.

    .venv/bin/python docs/make_look_closer_figure.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "images" / "look_closer.png"


def _outline(mask: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return mask & ~ndi.binary_erosion(mask)


def _show(ax, image, title, masks=(), box=None) -> None:
    from matplotlib.colors import to_rgb

    from napari_yolosam import palette

    colours = {"myocardium": palette.MYOCARDIUM, "proposal": palette.SCAR, "truth": "#ffffff"}
    ax.imshow(image, cmap="gray")
    for mask, name, alpha in masks:
        overlay = np.zeros((*mask.shape, 4))
        overlay[mask] = (*to_rgb(colours[name]), alpha)
        ax.imshow(overlay)
    if box is not None:
        x0, y0, x1, y1 = box
        ax.plot([x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0], color="#F0E442", lw=1.5)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.io.atomic import atomic_write
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import model_myocardium, propose
    from napari_yolosam.training.data import bbox
    from napari_yolosam.view import View

    phantom = make_phantom(n_slices=6, shape=(256, 256), corrupt=0.0, seed=5)
    stack = phantom.stack.with_labels(phantom.truth.copy())
    segmenter = Segmenter.from_spec("lite_medsam")
    cache = EmbeddingCache()
    i = int(np.argmax(stack.scar().sum(axis=(1, 2))))
    close = drive(propose(stack, segmenter, None, cache, indices=[i], look_closer=True))
    whole = drive(propose(stack, segmenter, None, cache, indices=[i], look_closer=False))
    view = View.from_dict(close.slices[i].view)
    image, scar = stack.images[i], stack.scar()[i]
    myocardium = stack.spec.myocardium_mask(stack.labels[i])
    lv_box = bbox(stack.spec.lv_mask(stack.labels[i]))  # as the detector's LV box would be
    seen = {}
    for name, v in (("window", view), ("whole", View.whole(image.shape))):
        embedding = cache.get(segmenter, v.crop(image))
        seen[name] = model_myocardium(segmenter, embedding, image.shape, lv_box, v)
    near, far = close.slices[i], whole.slices[i]
    scores = {k: dice(m, myocardium) for k, m in seen.items()}
    scar_scores = {"window": dice(near.mask, scar), "whole": dice(far.mask, scar)}
    fig, axes = plt.subplots(1, 4, figsize=(12, 3.3), dpi=110)
    _show(axes[0], image, f"1. the slice; its window ({view.source}, {view.zoom:.1f}x)",
          box=view.box)  # fmt: skip
    _show(axes[1], view.crop(image), "2. the window SAM encodes",
          [(view.take(seen["window"]), "myocardium", 0.35),
           (view.take(near.mask), "proposal", 0.7)])  # fmt: skip
    _show(axes[2], image,
          f"3. in slice pixels: myo {scores['window']:.2f}, scar {scar_scores['window']:.2f}",
          [(seen["window"], "myocardium", 0.35), (near.mask, "proposal", 0.7),
           (_outline(scar), "truth", 1.0)])  # fmt: skip
    _show(axes[3], image,
          f"4. whole slice: myo {scores['whole']:.2f}, scar {scar_scores['whole']:.2f}",
          [(seen["whole"], "myocardium", 0.35), (far.mask, "proposal", 0.7),
           (_outline(scar), "truth", 1.0)])  # fmt: skip
    for ax in axes[2:]:
        x0, y0, x1, y1 = view.box
        ax.set_xlim(x0, x1)
        ax.set_ylim(y1, y0)
    fig.tight_layout()
    atomic_write(OUT, lambda tmp: fig.savefig(tmp, format="png"))
    print(f"wrote {OUT} (slice {stack.names[i]}, window {view.to_dict()})")


if __name__ == "__main__":
    main()
