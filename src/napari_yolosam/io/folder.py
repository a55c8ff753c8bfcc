"""Folders of slices: ``images/`` + ``masks/`` (YoloSAM, EMIDEC) or images alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..labelspec import LabelSpec
from ..stack import Stack
from .errors import StackError
from .images import (
    IMAGE_SUFFIXES,
    decide_binary,
    decode_mask,
    list_image_files,
    pad_to_common,
    read_image,
    read_raw_mask,
)

IMAGE_DIR_NAMES = ("images", "image", "imgs")
MASK_DIR_NAMES = ("masks", "mask", "labels_png", "segmentations")


def _stem(path: Path | str) -> str:
    return Path(path).stem


@dataclass
class MaskSet:
    """Label maps decoded for a list of slice names."""

    labels: np.ndarray
    spec: LabelSpec
    binary_on_disk: int | None
    files: list[Path | None]
    warnings: list[str]


def read_masks_for(
    names: list[str],
    shapes: list[tuple[int, int]],
    masks_dir: Path,
    spec: LabelSpec,
    padded_shape: tuple[int, int],
    ignore_unmatched: bool = False,
) -> MaskSet:
    """Read the masks of ``masks_dir`` that match ``names`` by file stem.

    Every mask must match an image (unless ``ignore_unmatched``, used when a
    subset of the images was chosen); images without a mask get an empty
    label (and a warning). Each mask must have the shape of its image.
    """
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise StackError(masks_dir, "mask folder does not exist")
    mask_files = list_image_files(masks_dir)
    if not mask_files:
        raise StackError(
            masks_dir, "holds no mask files; remove the empty folder or add the masks"
        )
    by_stem = {_stem(n): i for i, n in enumerate(names)}
    matched: dict[int, Path] = {}
    for mask_file in mask_files:
        index = by_stem.get(mask_file.stem)
        if index is None:
            if ignore_unmatched:
                continue
            raise StackError(mask_file, "mask has no matching image (matched by file name)")
        if index in matched:
            raise StackError(mask_file, f"a second mask for image {names[index]}")
        matched[index] = mask_file
    if not matched:
        raise StackError(
            masks_dir,
            f"none of its {len(mask_files)} mask file(s) matches a slice by name "
            f"(for example {mask_files[0].name} against {names[0]}); masks are matched to "
            "images by file name",
        )
    raw = {}
    for index, mask_file in matched.items():
        array = read_raw_mask(mask_file)
        if array.shape != tuple(shapes[index]):
            raise StackError(
                mask_file,
                f"mask shape {array.shape} differs from its image's shape {tuple(shapes[index])}",
            )
        raw[index] = array
    binary, on_disk = decide_binary(list(raw.values()), spec, [matched[i] for i in raw])
    decoded_spec = spec.as_binary() if binary else spec
    labels = np.zeros((len(names), *padded_shape), dtype=np.uint8)
    decoded = {i: decode_mask(a, decoded_spec, binary, matched[i]) for i, a in raw.items()}
    if any(d.dtype == np.uint16 for d in decoded.values()):
        labels = labels.astype(np.uint16)
    for i, d in decoded.items():
        labels[i, : d.shape[0], : d.shape[1]] = d
    missing = [names[i] for i in range(len(names)) if i not in matched]
    warnings = []
    if missing:
        warnings.append(
            f"{len(missing)} slice(s) have no mask in {masks_dir} and start empty: "
            + ", ".join(missing[:5])
            + (" ..." if len(missing) > 5 else "")
        )
    files = [matched.get(i) for i in range(len(names))]
    return MaskSet(labels, decoded_spec, on_disk, files, warnings)


def find_layout(path: Path) -> tuple[Path, Path | None]:
    """The image folder and mask folder (or ``None``) of a stack folder."""
    for name in IMAGE_DIR_NAMES:
        if (path / name).is_dir():
            images_dir = path / name
            break
    else:
        return path, None
    for name in MASK_DIR_NAMES:
        if (path / name).is_dir():
            return images_dir, path / name
    return images_dir, None


def read_folder(
    path: str | Path,
    spec: LabelSpec | None = None,
    images_dir: str | Path | None = None,
    masks_dir: str | Path | None = None,
) -> Stack:
    """Read a folder of 2D slices, with masks matched by file name where present.

    Parameters
    ----------
    path
        A folder holding ``images/`` (and optionally ``masks/``), or a folder
        of images alone.
    spec
        Label specification; defaults to :class:`LabelSpec` (EMIDEC values,
        automatic binary/multiclass decision).
    images_dir, masks_dir
        Explicit folders, overriding the layout found under ``path``.
    """
    path = Path(path)
    spec = spec or LabelSpec()
    if not path.is_dir():
        raise StackError(path, "is not a folder")
    found_images, found_masks = find_layout(path)
    images_dir = Path(images_dir) if images_dir is not None else found_images
    masks_dir = Path(masks_dir) if masks_dir is not None else found_masks
    files = list_image_files(images_dir)
    if not files:
        raise StackError(
            images_dir, f"no image files ({', '.join(IMAGE_SUFFIXES)}) found in this folder"
        )
    stems = [f.stem for f in files]
    if len(set(stems)) != len(stems):
        dup = sorted({s for s in stems if stems.count(s) > 1})
        raise StackError(images_dir, f"several images share the name(s) {dup[:5]}")
    slices = [read_image(f) for f in files]
    images, shapes = pad_to_common(slices)
    names = [f.name for f in files]
    labels = None
    label_files: list[Path | None] = []
    on_disk = None
    warnings: list[str] = []
    if masks_dir is not None:
        masks = read_masks_for(names, shapes, masks_dir, spec, images.shape[1:])
        labels, spec, on_disk = masks.labels, masks.spec, masks.binary_on_disk
        label_files, warnings = masks.files, masks.warnings
    return Stack(
        images=images,
        labels=labels,
        names=names,
        spec=spec,
        original_shapes=shapes,
        layout="folder",
        source=images_dir,
        label_source=masks_dir,
        label_files=label_files,
        binary_on_disk=on_disk,
        warnings=warnings,
    )
