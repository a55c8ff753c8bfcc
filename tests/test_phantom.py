import numpy as np

from napari_yolosam.phantom.make import (
    CORRUPTIONS,
    ScarSector,
    corrupt_label,
    make_phantom,
    make_slice,
)


def test_reproducible_and_shaped():
    a = make_phantom(n_slices=3, n_cases=2, shape=(96, 112), corrupt=0.5, seed=3)
    b = make_phantom(n_slices=3, n_cases=2, shape=(96, 112), corrupt=0.5, seed=3)
    assert a.stack.shape == (6, 96, 112)
    np.testing.assert_array_equal(a.stack.images, b.stack.images)
    np.testing.assert_array_equal(a.stack.labels, b.stack.labels)
    assert a.stack.cases == ["Phantom_C01"] * 3 + ["Phantom_C02"] * 3
    c = make_phantom(n_slices=3, n_cases=2, shape=(96, 112), corrupt=0.5, seed=4)
    assert not np.array_equal(a.stack.images, c.stack.images)


def test_anatomy_and_enhancement():
    rng = np.random.default_rng(0)
    sector = ScarSector(angle=0.0, half_width=0.6, transmurality=1.0, no_reflow=True)
    image, labels = make_slice(rng, (256, 256), [sector])
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4}
    scar_mean = image[labels == 3].mean()
    myo_mean = image[labels == 2].mean()
    blood_mean = image[labels == 1].mean()
    # LGE contrast: scar bright, remote myocardium nulled, MVO dark inside scar
    assert scar_mean > blood_mean > myo_mean
    assert image[labels == 4].mean() < scar_mean
    # scar lies within the myocardial ring
    ring = np.isin(labels, (2, 3, 4))
    assert ring[labels == 3].all()


def test_corruption_record_matches_labels(phantom):
    truth_scar = np.isin(phantom.truth, (3, 4))
    noisy_scar = np.isin(phantom.stack.labels, (3, 4))
    changed = np.any(truth_scar != noisy_scar, axis=(1, 2))
    np.testing.assert_array_equal(changed, phantom.corrupted)
    assert phantom.corruptions, "a 50% corruption rate must corrupt something"
    for record in phantom.corruptions:
        assert record.kind in CORRUPTIONS
        a, b = noisy_scar[record.slice], truth_scar[record.slice]
        dice = 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
        assert abs(dice - record.dice) < 1e-3


def test_each_corruption_changes_a_scarred_slice():
    rng = np.random.default_rng(1)
    sector = ScarSector(angle=1.0, half_width=0.7, transmurality=0.6)
    image, labels = make_slice(rng, (128, 128), [sector, ScarSector(-2.0, 0.4, 0.8)])
    scar = np.isin(labels, (3, 4))
    for kind in CORRUPTIONS:
        new, params = corrupt_label(image, labels, kind, np.random.default_rng(2))
        new_scar = np.isin(new, (3, 4))
        assert not np.array_equal(new_scar, scar), kind
        if kind in ("dilate", "nsd_over"):
            assert new_scar.sum() > scar.sum(), kind
        if kind in ("erode", "drop", "fwhm_under"):
            assert new_scar.sum() < scar.sum(), kind
        # anatomy untouched: blood pool + myocardium + scar cover the same ring/pool
        if kind != "spurious":
            np.testing.assert_array_equal(new == 1, labels == 1)
