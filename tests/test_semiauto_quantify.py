"""Semi-automatic thresholds and quantification against constructed answers."""

import csv

import numpy as np
import pytest

from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.quantify import Units, quantify_labels, transmurality
from napari_yolosam.semiauto import cleanup, fwhm, nsd, otsu, remote_region, semiauto_stack
from napari_yolosam.stack import Stack


def ring(shape=(101, 101), centre=(50, 50), r_in=20, r_out=30):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(rows - centre[0], cols - centre[1])
    angle = np.mod(np.arctan2(rows - centre[0], cols - centre[1]), 2 * np.pi)
    return (r >= r_in) & (r < r_out), r < r_in, angle, r


def test_nsd_known_threshold():
    myo, blood, angle, _ = ring()
    image = np.zeros(myo.shape, np.float32)
    checker = (
        np.indices(myo.shape).sum(0) % 2
    ) * 20 + 90  # remote: values 90/110 -> mean 100, sd 10
    image[myo] = checker[myo]
    bright = myo & (angle < np.pi / 4)
    mid = myo & (angle >= np.pi / 4) & (angle < np.pi / 2)
    image[bright], image[mid] = 200, 140
    remote = myo & (angle > np.pi)
    r5 = nsd(image, myo, n=5, remote=remote)
    assert r5.threshold == pytest.approx(150, abs=0.5)
    np.testing.assert_array_equal(r5.mask, bright)
    r2 = nsd(image, myo, n=2, remote=remote)
    np.testing.assert_array_equal(r2.mask, bright | mid)
    # automatic remote: the darkest of 6 sectors, never the enhanced one
    auto = remote_region(image, myo, blood)
    assert auto.any() and not (auto & (bright | mid)).any()
    with pytest.raises(ValueError):
        nsd(image, myo, n=0)


def test_fwhm_half_maximum_and_connectivity():
    myo, blood, angle, _ = ring()
    image = np.where(myo, 10.0, 0).astype(np.float32)
    core = myo & (angle < np.pi / 6)
    edge = myo & (angle >= np.pi / 6) & (angle < np.pi / 3)
    island = myo & (angle > np.pi) & (angle < np.pi * 1.1)
    image[core], image[edge], image[island] = 200, 120, 150
    res = fwhm(image, myo, smooth=0)
    assert res.threshold == pytest.approx(100)
    np.testing.assert_array_equal(res.mask, core | edge)  # island not connected to the maximum
    both = fwhm(image, myo, smooth=0, connected=False)
    np.testing.assert_array_equal(both.mask, core | edge | island)
    seeded = fwhm(image, myo, seed=np.argwhere(island)[0], smooth=0)
    assert seeded.threshold == pytest.approx(75) and seeded.mask[island].all()


def test_otsu_bimodal():
    myo, _, angle, _ = ring()
    image = np.where(myo, 50.0, 0).astype(np.float32)
    scar = myo & (angle < np.pi / 2)
    image[scar] = 180
    res = otsu(image, myo)
    assert 50 <= res.threshold < 180
    np.testing.assert_array_equal(res.mask, scar)


def test_cleanup():
    mask = np.zeros((20, 20), bool)
    mask[2:8, 2:8] = True
    mask[4, 4] = False
    mask[15, 15] = True
    out = cleanup(mask, min_size=5, fill_holes=True)
    assert out[4, 4] and not out[15, 15] and out[2:8, 2:8].all()


def _ring_stack(spacing=(1.5, 2.0), thickness=8.0, transmural=1.0):
    myo, blood, angle, r = ring()
    labels = np.zeros(myo.shape, np.uint8)
    labels[blood] = 1
    labels[myo] = 2
    depth = (r - 20) / 10
    scar = myo & (angle < np.pi / 2) & (depth < transmural)
    labels[scar] = 3
    mvo = scar & (angle < np.pi / 8) & (depth < 0.3)
    labels[mvo] = 4
    stack = Stack(
        np.zeros((2, *myo.shape), np.float32),
        np.stack([labels, labels]),
        names=["c_slice0.png", "c_slice1.png"],
        spec=LabelSpec.emidec(),
        spacing=spacing,
        thickness=thickness,
    )
    return stack, myo, scar, mvo


def test_quantities_in_mm_and_ml():
    stack, myo, scar, mvo = _ring_stack()
    slices, cases = quantify_labels(stack, n_sectors=4)
    first = slices[0]
    assert first["units"] == "mm2|mL"
    assert first["myocardium_area"] == pytest.approx(myo.sum() * 3.0)
    assert first["scar_area"] == pytest.approx(scar.sum() * 3.0)
    assert first["no_reflow_area"] == pytest.approx(mvo.sum() * 3.0)
    assert first["scar_burden_pct"] == pytest.approx(100 * scar.sum() / myo.sum())
    assert first["scar_components"] == 1
    # ring areas are exact within pixel discretisation
    assert myo.sum() == pytest.approx(np.pi * (30**2 - 20**2), rel=0.02)
    assert cases[0]["myocardium_volume"] == pytest.approx(2 * myo.sum() * 3.0 * 8.0 / 1000)
    assert cases[0]["scar_volume"] == pytest.approx(2 * scar.sum() * 3.0 * 8.0 / 1000)


def test_transmurality_full_and_half():
    stack, myo, scar, _ = _ring_stack(transmural=1.0)
    mean_t, sectors = transmurality(scar, myo, None, n_sectors=4)
    assert mean_t == pytest.approx(1.0, abs=0.05)
    assert sectors[0] == pytest.approx(1.0, abs=0.08) and max(sectors[1:]) < 0.08
    stack, myo, scar, _ = _ring_stack(transmural=0.5)
    mean_t, sectors = transmurality(scar, myo, None, n_sectors=4)
    assert mean_t == pytest.approx(0.5, abs=0.08)


def test_unknown_spacing_is_pixels_with_a_note():
    stack, myo, scar, _ = _ring_stack(spacing=None, thickness=None)
    units = Units.of(stack)
    assert units.label == "px|px*slices" and "unknown" in units.note
    slices, cases = quantify_labels(stack)
    assert slices[0]["myocardium_area"] == myo.sum()
    stack, *_ = _ring_stack(thickness=None)
    assert Units.of(stack).volume == "mm2*slices"


def test_semiauto_stack_and_phantom_bias(phantom):
    over = semiauto_stack(phantom.stack.with_labels(phantom.truth), "nsd", n=2)
    under = semiauto_stack(phantom.stack.with_labels(phantom.truth), "nsd", n=8)
    assert over.sum() > under.sum()
    assert not (over & ~phantom.stack.with_labels(phantom.truth).myocardium()).any()
    with pytest.raises(ValueError, match="need a myocardium"):
        semiauto_stack(phantom.stack.with_labels(None), "otsu")


def test_cli_quantify_and_semiauto(phantom_folder, tmp_path):
    from napari_yolosam.cli import main

    assert (
        main(
            [
                "quantify",
                "--labels",
                str(phantom_folder / "masks"),
                "--out",
                str(tmp_path / "cases.csv"),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "cases.csv")))
    assert len(rows) == 2 and rows[0]["units"] == "px|px*slices"
    assert (tmp_path / "cases_slices.csv").exists()
    assert (
        main(
            [
                "semiauto",
                "--images",
                str(phantom_folder),
                "--method",
                "nsd",
                "--n",
                "3",
                "--out",
                str(tmp_path / "nsd"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "nsd").glob("*.png"))) == 8


def test_sunnybrook_spacing_flows_into_ml(shared_data, tmp_path):
    from napari_yolosam.cli import main
    from napari_yolosam.io import read_stack

    stack = read_stack(shared_data / "sunnybrook_cine_dev", series="SCD0000101")
    slices, cases = quantify_labels(stack)
    myo_px = int(stack.myocardium().sum())
    assert cases[0]["units"] == "mm2|mL"
    expected = myo_px * 1.367188**2 * stack.slice_step_mm / 1000
    assert cases[0]["myocardium_volume"] == pytest.approx(expected, rel=1e-6)
    assert 20 < cases[0]["myocardium_volume"] < 400  # a plausible LV myocardial volume in mL
    assert (
        main(
            [
                "quantify",
                "--images",
                str(shared_data / "sunnybrook_cine_dev"),
                "--labels",
                str(shared_data / "sunnybrook_cine_dev" / "masks"),
                "--out",
                str(tmp_path / "sb.csv"),
            ]
        )
        == 0
    )


def test_user_drawn_remote_and_seed(phantom):
    stack = phantom.stack.with_labels(phantom.truth)
    myo = stack.myocardium()
    remote = np.zeros(stack.shape, bool)
    remote[0] = myo[0] & ~stack.scar()[0]  # the whole healthy wall as remote on slice 0
    auto = semiauto_stack(stack, "nsd", n=3)
    drawn = semiauto_stack(stack, "nsd", n=3, remote=remote)
    expected = nsd(stack.images[0], myo[0], 3, remote=remote[0]).mask
    np.testing.assert_array_equal(drawn[0], expected)
    np.testing.assert_array_equal(drawn[1:], auto[1:])  # slices without a drawn remote: automatic
    seed_slice = int(np.flatnonzero(stack.scar().any(axis=(1, 2)))[0])
    seed = tuple(np.argwhere(stack.scar()[seed_slice])[0])
    seeded = semiauto_stack(stack, "fwhm", seeds={seed_slice: seed})
    assert seeded[seed_slice][seed] or seeded[seed_slice].any()


def test_cli_comparison_table(phantom_folder, tmp_path):
    from napari_yolosam.cli import main

    assert (
        main(
            [
                "propose",
                "--images",
                str(phantom_folder),
                "--detector",
                "none",
                "--segmenter",
                "tiny",
                "--out",
                str(tmp_path / "props"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "quantify",
                "--images",
                str(phantom_folder),
                "--labels",
                str(phantom_folder / "masks"),
                "--proposals",
                str(tmp_path / "props"),
                "--methods",
                "nsd,otsu",
                "--n",
                "3",
                "--out",
                str(tmp_path / "cmp.csv"),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "cmp.csv")))
    assert [r["source"] for r in rows[:4]] == ["label", "nsd 3", "otsu", "proposal"]
    assert {r["case"] for r in rows} == {"Phantom_C01", "Phantom_C02"}
    assert (
        main(
            [
                "quantify",
                "--labels",
                str(phantom_folder / "masks"),
                "--methods",
                "nsd",
                "--out",
                str(tmp_path / "x.csv"),
            ]
        )
        == 2
    )
