"""Training data for SAM: prompt items per slice, split by case, augmented batches.

Each item is one prompt with its target: a scar component (box round it,
jittered), the myocardium (box round the LV, where labels carry it), or a
negative (a box over healthy myocardium or blood pool with an empty target,
so that a wrong box yields no scar rather than a blob).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..geometry import mask_box as bbox
from ..models.preprocess import prepare_image, resized_shape, transform_coords
from ..regions import scar_regions
from ..stack import Stack
from ..view import View


@dataclass(frozen=True)
class PromptItem:
    """One training prompt: slice index, target (``scar``/``myocardium``), kind, component id."""

    slice: int
    target: str
    kind: str  # "positive", "negative" or "lv" (box round the LV, target all scar)
    component: int = 0


@dataclass(frozen=True)
class Augmentation:
    """Augmentation ranges (the method's heavy augmentation; all off with ``enabled=False``)."""

    enabled: bool = True
    rotation_deg: float = 20.0
    scale: tuple[float, float] = (0.85, 1.15)
    flip: bool = True
    gamma: tuple[float, float] = (0.7, 1.5)
    contrast: tuple[float, float] = (0.85, 1.15)
    box_shift: float = 0.1  # fraction of the box's size
    box_scale: float = 0.2  # relative size change


def split_cases(
    cases: list[str], val_fraction: float = 0.2, seed: int = 0, val_cases: list[str] | None = None
) -> tuple[list[str], list[str]]:
    """Train and validation cases (never slices): ``val_cases`` or a seeded random share."""
    unique = sorted(set(cases))
    if val_cases:
        missing = sorted(set(val_cases) - set(unique))
        if missing:
            raise ValueError(f"validation case(s) {missing} are not in the data")
        val = sorted(set(val_cases))
    elif val_fraction <= 0 or len(unique) < 2:
        val = []
    else:
        rng = np.random.default_rng(seed)
        count = min(len(unique) - 1, max(1, int(round(val_fraction * len(unique)))))
        val = sorted(rng.choice(unique, size=count, replace=False).tolist())
    return [c for c in unique if c not in val], val


def slice_indices(stack: Stack, cases: list[str]) -> list[int]:
    """Indices of the slices of ``cases``."""
    wanted = set(cases)
    return [i for i, c in enumerate(stack.cases) if c in wanted]


def build_items(
    stack: Stack,
    indices: list[int],
    myocardium: bool = True,
    negative_fraction: float = 0.25,
    seed: int = 0,
    lv_prompts: bool = True,
) -> list[PromptItem]:
    """Prompt items of the given slices (positives, myocardium, negatives, LV boxes).

    One positive per scar region (:func:`scar_regions`: fragments a pixel or
    two apart are one region; nobody boxes a speck). With ``lv_prompts``,
    every slice whose labels carry the myocardium also gets a box round the
    whole LV whose scar target is all of the slice's scar (empty where there
    is none), so that the LV box a detector finds easily can prompt for scar
    when scar boxes are missing.
    """
    rng = np.random.default_rng(seed)
    scar = stack.scar()
    myo = stack.myocardium() if stack.spec.has_myocardium else None
    items: list[PromptItem] = []
    for i in indices:
        _, count = scar_regions(scar[i])
        items += [PromptItem(i, "scar", "positive", c) for c in range(1, count + 1)]
        if myocardium and myo is not None and myo[i].any():
            items.append(PromptItem(i, "myocardium", "positive"))
        if lv_prompts and myo is not None and myo[i].any():
            items.append(PromptItem(i, "scar", "lv"))
    n_neg = int(round(negative_fraction * sum(item.kind == "positive" for item in items)))
    candidates = [i for i in indices]
    for i in (
        rng.choice(candidates, size=min(n_neg, 10 * len(candidates)), replace=True)
        if candidates
        else []
    ):
        items.append(PromptItem(int(i), "scar", "negative"))
    return items


def item_masks(
    stack: Stack, item: PromptItem, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(target, region)`` masks of an item at the slice's original shape.

    The region is what the prompt box is drawn round: the target itself for
    positives, a scar-free patch of healthy myocardium or blood pool (or,
    without anatomy labels, of tissue near the scar) for negatives.
    """
    i = item.slice
    labels = stack.crop(i, stack.labels[i])
    scar = stack.spec.scar_mask(labels)
    if item.kind == "lv":  # the whole LV box, all of the slice's scar
        return scar, stack.spec.lv_mask(labels)
    if item.kind == "positive":
        if item.target == "myocardium":
            return stack.spec.myocardium_mask(labels), stack.spec.lv_mask(labels)
        regions, _ = scar_regions(scar)
        target = regions == item.component
        return target, target
    target = np.zeros(labels.shape, bool)
    allowed = (stack.spec.myocardium_mask(labels) & ~scar) | stack.spec.blood_pool_mask(labels)
    if not allowed.any():
        near = ndi.binary_dilation(scar, iterations=25) if scar.any() else np.ones_like(scar)
        allowed = near & ~ndi.binary_dilation(scar, iterations=3)
    points = np.argwhere(allowed)
    region = np.zeros(labels.shape, bool)
    if len(points) == 0:
        return target, region
    unit = max(labels.shape) / 256
    for _ in range(10):
        cy, cx = points[rng.integers(len(points))]
        half = int(rng.uniform(5, 18) * unit)
        y0, y1 = max(0, cy - half), min(labels.shape[0], cy + half + 1)
        x0, x1 = max(0, cx - half), min(labels.shape[1], cx + half + 1)
        if not scar[y0:y1, x0:x1].any():
            region[y0:y1, x0:x1] = True
            break
    return target, region


def _affine(image, masks, rng: np.random.Generator, aug: Augmentation):
    """Rotate/scale/flip an image and masks together (torch grid sampling)."""
    import torch
    import torch.nn.functional as F

    angle = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    scale = rng.uniform(*aug.scale)
    flip_x = -1.0 if aug.flip and rng.random() < 0.5 else 1.0
    flip_y = -1.0 if aug.flip and rng.random() < 0.5 else 1.0
    h, w = image.shape
    # normalised coordinates: account for the aspect ratio so rotation is rigid
    ar = w / h
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    theta = torch.tensor(
        [[cos * flip_x, -sin * ar * flip_y, 0.0], [sin / ar * flip_x, cos * flip_y, 0.0]],
        dtype=torch.float32,
    )[None]
    grid = F.affine_grid(theta, (1, 1, h, w), align_corners=False)
    fill = float(np.percentile(image, 1))  # background outside the rotated frame
    stack = torch.from_numpy(
        np.stack([image.astype(np.float32) - fill, *[m.astype(np.float32) for m in masks]])
    )[None]
    out = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    new_image = (out[0] + fill).numpy()
    return new_image, [(o.numpy() > 0.5) for o in out[1:]]


def _intensity(image: np.ndarray, rng: np.random.Generator, aug: Augmentation) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5))
    if hi - lo < 1e-6:
        return image
    x = np.clip((image - lo) / (hi - lo), 0, 1) ** rng.uniform(*aug.gamma)
    x = x * rng.uniform(*aug.contrast)
    return (x * (hi - lo) + lo).astype(np.float32)


def jitter_box(
    box: np.ndarray, shape: tuple[int, int], rng: np.random.Generator, aug: Augmentation
) -> np.ndarray:
    """Shift and rescale a box at random (the method's box jitter), clipped to the image."""
    x0, y0, x1, y1 = box
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx = (x0 + x1) / 2 + rng.uniform(-aug.box_shift, aug.box_shift) * w
    cy = (y0 + y1) / 2 + rng.uniform(-aug.box_shift, aug.box_shift) * h
    w *= 1 + rng.uniform(-aug.box_scale, aug.box_scale)
    h *= 1 + rng.uniform(-aug.box_scale, aug.box_scale)
    out = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], np.float32)
    return np.clip(out, 0, [shape[1], shape[0], shape[1], shape[0]]).astype(np.float32)


def slice_view(
    stack: Stack, index: int, rng: np.random.Generator | None, aug: Augmentation
) -> View:
    """The window a training slice is seen through: round its labelled heart (myocardium and
    blood pool, :meth:`View.around` as inference places it), the heart's box first jittered
    as a box prompt is (``aug.box_shift``, ``aug.box_scale``; none with ``rng=None``), since
    inference's windows come from a model too (the heart finder) and are off. The whole
    slice where the label has no heart (binary labels, slices outside the heart)."""
    labels = stack.crop(index, stack.labels[index])
    shape = labels.shape
    spec = stack.spec
    box = bbox(spec.myocardium_mask(labels) | spec.blood_pool_mask(labels))
    if not spec.has_myocardium or box is None:
        return View.whole(shape)
    if rng is not None and aug.enabled:
        box = jitter_box(box, shape, rng, aug)
    return View.around(box, shape, "label")


def fixed_view(
    stack: Stack, index: int, aug: Augmentation, variant: tuple[int, int] | None = None
) -> View:
    """The window a cached version of slice ``index`` is seen through: :func:`slice_view`
    jittered once by a draw seeded by the version and the slice, the same every time, so
    it is encoded once, and the anatomy head learns from the windows the segmenter does."""
    return slice_view(stack, index, np.random.default_rng((*(variant or (0, 0)), index, 11)), aug)


def windows_record(stack: Stack, indices: list[int], aug: Augmentation) -> dict:
    """What a run looking closer writes down: the window each slice is seen through before
    its jitter (``None``: the whole slice) and the jitter."""
    windows = {}
    for i in indices:
        view = slice_view(stack, i, None, aug)
        windows[stack.names[i]] = None if view.is_whole else view.to_dict()
    jitter = {"box_shift": aug.box_shift, "box_scale": aug.box_scale, "enabled": aug.enabled}
    return {"jitter": jitter, "windows": windows}


def target_to_grid(target: np.ndarray, img_size: int, grid: int):
    """A target at slice shape into the model's input frame (resize longest side, pad), at ``grid`` px."""
    import torch
    import torch.nn.functional as F

    new_h, new_w = resized_shape(target.shape, img_size)
    t = torch.from_numpy(target.astype(np.float32))[None, None]
    t = F.interpolate(t, size=(new_h, new_w), mode="bilinear", align_corners=False)
    full = torch.zeros((1, 1, img_size, img_size))
    full[..., :new_h, :new_w] = t
    if grid != img_size:
        full = F.interpolate(full, size=(grid, grid), mode="area")
    return full[0, 0]


@dataclass
class Sample:
    """One prepared training sample (model-input space)."""

    image: object  # (3, S, S) tensor, or None in decoder-only mode
    raw: np.ndarray  # the (augmented) slice, for the embedding cache in decoder-only mode
    box: np.ndarray  # (4,) in model input coordinates
    target: object  # (grid, grid) tensor
    token: str
    points: np.ndarray | None = None  # (P, 2) model-input coordinates, or None
    point_labels: np.ndarray | None = None  # (P,) 1 positive, 0 negative, -1 padding


def make_samples(
    stack: Stack,
    items: list[PromptItem],
    rng: np.random.Generator,
    aug: Augmentation,
    img_size: int,
    grid: int,
    geometric: bool,
    preprocess,
    points: bool = False,
    variant: tuple[int, int] | None = None,
    look_closer: bool = False,
) -> list[Sample]:
    """Augment one slice once and prepare all its ``items`` (all of the same slice).

    The samples share one image (one encoder pass per slice and step); an
    item whose region vanished under augmentation (rare) is left out. With
    ``points``, each box comes with one positive click inside the target
    (padding for negatives) and one negative click inside the box but off the
    target, as an annotator would add them. Without ``geometric`` (cached modes) the
    image is not augmented, except ``variant`` ``(seed, k)``: the slice's k-th fixed
    augmented version (the same pixels every time, so its features are cached once).
    With ``look_closer`` the slice is seen through its window round the heart
    (:func:`slice_view`), jittered afresh each step with ``geometric``, else once per
    version (so a cached version keeps one window).
    """
    if not items:
        return []
    index = items[0].slice
    if any(item.slice != index for item in items):
        raise ValueError("make_samples takes items of one slice")
    image = stack.crop(index, stack.images[index])
    masks = [mask for item in items for mask in item_masks(stack, item, rng)]
    if look_closer:
        view = (
            slice_view(stack, index, rng, aug)
            if geometric
            else fixed_view(stack, index, aug, variant)
        )
        image, masks = view.crop(image), [view.take(m, False) for m in masks]
    if aug.enabled and (geometric or variant is not None):
        own = rng if geometric else np.random.default_rng((*variant, index))
        image, masks = _affine(image, masks, own, aug)
        image = _intensity(image, own, aug)
    prepared = prepare_image(image, preprocess) if geometric else None
    samples = []
    for k, item in enumerate(items):
        target, region = masks[2 * k], masks[2 * k + 1]
        box = bbox(region)
        if box is None:
            continue
        if aug.enabled:
            box = jitter_box(box, image.shape, rng, aug)
        clicks = labels = None
        if points:
            clicks, labels = _clicks(target, box, rng)
            clicks = transform_coords(clicks, image.shape, img_size)
        samples.append(
            Sample(
                image=prepared,
                raw=image,
                box=transform_coords(box[None], image.shape, img_size)[0],
                target=target_to_grid(target, img_size, grid),
                token=item.target,
                points=clicks,
                point_labels=labels,
            )
        )
    return samples


def by_slice(items: list[PromptItem]) -> list[list[PromptItem]]:
    """Consecutive items grouped by slice (order kept)."""
    groups: list[list[PromptItem]] = []
    for item in items:
        if groups and groups[-1][0].slice == item.slice:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def shared_images(samples: list[Sample]) -> tuple[list[Sample], list[int]]:
    """One sample per distinct image, and each sample's index into that list."""
    first: dict[int, int] = {}
    images: list[Sample] = []
    index = []
    for sample in samples:
        key = id(sample.raw)
        if key not in first:
            first[key] = len(images)
            images.append(sample)
        index.append(first[key])
    return images, index


def _clicks(
    target: np.ndarray, box: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """One positive click in the target and one negative click in the box off the target (pixels)."""
    out = np.zeros((2, 2), np.float32)
    labels = np.array([-1, -1])
    inside = np.argwhere(target)
    if len(inside):
        r, c = inside[rng.integers(len(inside))]
        out[0], labels[0] = (c + 0.5, r + 0.5), 1
    x0, y0, x1, y1 = np.clip(np.round(box).astype(int), 0, None)
    window = ~target[y0:y1, x0:x1]
    off = np.argwhere(window)
    if len(off):
        r, c = off[rng.integers(len(off))]
        out[1], labels[1] = (x0 + c + 0.5, y0 + r + 0.5), 0
    return out, labels
