import numpy as np
import pytest

from napari_yolosam.labelspec import LabelSpec


def test_emidec_masks():
    spec = LabelSpec.emidec()
    labels = np.array([[0, 1, 2, 3, 4]])
    assert spec.scar_mask(labels).tolist() == [[False, False, False, True, True]]
    assert spec.myocardium_mask(labels).tolist() == [[False, False, True, True, True]]
    assert spec.no_reflow_mask(labels).tolist() == [[False, False, False, False, True]]
    assert spec.blood_pool_mask(labels).tolist() == [[False, True, False, False, False]]
    assert spec.lv_mask(labels).tolist() == [[False, True, True, True, True]]
    assert spec.known_values == (0, 1, 2, 3, 4)
    assert not LabelSpec.binary().lv_mask(np.array([[0, 1]])).any()  # no anatomy: no LV


def test_binary_preset_and_overrides():
    spec = LabelSpec.binary()
    assert spec.scar == (1,) and not spec.has_myocardium
    custom = LabelSpec.from_name("emidec", scar="3", myocardium="2,3", no_reflow=None)
    assert custom.scar == (3,) and custom.myocardium == (2, 3) and custom.no_reflow == (4,)


def test_round_trip_dict():
    spec = LabelSpec.emidec(threshold=100, extra=(7,))
    assert LabelSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "fuzzy"}, "mask mode"),
        ({"threshold": 0}, "threshold"),
        ({"scar": (0, 3)}, "background"),
    ],
)
def test_invalid_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LabelSpec(**kwargs)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown label specification"):
        LabelSpec.from_name("acdc")
