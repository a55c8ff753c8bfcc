"""Training targets with the image's extent: enhanced regions a label's scar touches."""

import numpy as np
import pytest

from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.semiauto import touched_regions
from napari_yolosam.stack import Stack
from napari_yolosam.training.sam import SamTrainConfig
from napari_yolosam.training.targets import extent_targets

BLOOD, MYO, SCAR, NO_REFLOW = 1, 2, 3, 4


def test_touched_regions_keep_whole_regions_each_mask_touches():
    enhanced = np.zeros((20, 20), bool)
    enhanced[2:6, 2:6] = True  # region A
    enhanced[10:14, 10:18] = True  # region B
    masks = np.zeros((3, 20, 20), bool)
    masks[0, 3, 3] = True  # one pixel of A
    masks[1, 0, 19] = True  # nothing enhanced
    masks[2, 12, 11] = masks[2, 4, 4] = True  # both
    out = touched_regions(masks, enhanced)
    np.testing.assert_array_equal(out[0], enhanced & (np.arange(20) < 8)[:, None])
    assert not out[1].any()
    np.testing.assert_array_equal(out[2], enhanced)
    np.testing.assert_array_equal(touched_regions(masks[0], enhanced), out[0])


def _ring_slice(rng):
    """A 64 px slice: blood pool, a myocardial ring with an enhanced sector whose bright core
    alone is labelled scar (a high threshold), one no-reflow pixel, and a spurious blob."""
    yy, xx = np.mgrid[:64, :64]
    r, angle = np.hypot(yy - 32, xx - 32), np.arctan2(yy - 32, xx - 32)
    labels = np.zeros((64, 64), np.uint8)
    labels[r < 12] = BLOOD
    ring = (r >= 12) & (r < 20)
    labels[ring] = MYO
    image = rng.normal(100, 5, (64, 64)).astype(np.float32)
    image[r < 12] = 300
    sector = ring & (np.abs(angle) < 0.6)
    image[sector] = 200  # enhanced: far above remote mean + 2 SD
    core = sector & (np.abs(angle) < 0.2)
    image[core] = 260
    labels[core] = SCAR
    labels[core & (r < 13)] = NO_REFLOW
    blob = ring & (np.abs(angle - 2.5) < 0.15)  # labelled, not enhanced: invented
    labels[blob] = SCAR
    return image, labels, sector, core, blob


def test_extent_targets_grow_scar_to_its_enhanced_region_and_drop_invented_scar():
    rng = np.random.default_rng(0)
    image, labels, sector, core, blob = _ring_slice(rng)
    empty = labels.copy()
    empty[np.isin(empty, (SCAR, NO_REFLOW))] = MYO
    stack = Stack(
        images=np.stack([image, image]),
        labels=np.stack([labels, empty]),
        names=["a.png", "b.png"],
        spec=LabelSpec.emidec(),
    )
    refined, changed = extent_targets(stack)
    assert changed == 1
    new = refined.labels[0]
    scar = np.isin(new, (SCAR, NO_REFLOW))
    np.testing.assert_array_equal(scar, sector)  # the whole enhanced sector, nothing else
    assert not scar[blob].any() and (new[blob] == MYO).all()
    np.testing.assert_array_equal(new == NO_REFLOW, labels == NO_REFLOW)
    np.testing.assert_array_equal(new == BLOOD, labels == BLOOD)
    np.testing.assert_array_equal(new > 0, labels > 0)  # the myocardium keeps its extent
    np.testing.assert_array_equal(refined.labels[1], empty)  # no scar: nothing to refine
    np.testing.assert_array_equal(stack.labels[0], labels)  # the input is not touched


def test_targets_are_a_training_setting(tmp_path):
    from napari_yolosam.cli.options import sam_config_from_args
    from napari_yolosam.cli.parser import build_parser
    from napari_yolosam.models.checkpoints import read_payload
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.progress import drive
    from napari_yolosam.training.sam import train_segmenter

    with pytest.raises(ValueError, match="unknown targets"):
        SamTrainConfig(targets="expert")
    args = build_parser().parse_args(["train", "--images", "x", "--out", "y"])
    assert sam_config_from_args(args).targets == "labels"
    args = build_parser().parse_args(
        ["train", "--images", "x", "--out", "y", "--targets", "extent"]
    )
    assert sam_config_from_args(args).targets == "extent"
    phantom = make_phantom(n_slices=3, n_cases=2, shape=(64, 64), seed=3)
    config = SamTrainConfig(
        epochs=1,
        batch_size=2,
        targets="extent",
        val_fraction=0.5,
        max_steps_per_epoch=2,
        heart_steps=20,
    )
    result = drive(train_segmenter(phantom.stack, Segmenter.build("tiny"), config, tmp_path))
    assert read_payload(result.last_path)["extra"]["training"]["config"]["targets"] == "extent"
