"""The colours an annotator must tell apart stay apart for colour-blind readers too:
CIE L*a*b* distances under Machado et al.'s (2009) full-severity protanopia and
deuteranopia simulations, and for normal vision (#31 point 6)."""

import numpy as np
import pytest

from napari_yolosam import palette
from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.napari_hooks.layers import stack_to_layer_data
from napari_yolosam.stack import Stack

VISION = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [
            [0.152286, 1.052583, -0.204868],
            [0.114503, 0.786281, 0.099216],
            [-0.003882, -0.048116, 1.051998],
        ]
    ),
    "deuteranopia": np.array(
        [
            [0.367322, 0.860646, -0.227968],
            [0.280085, 0.672501, 0.047413],
            [-0.011820, 0.042940, 0.968881],
        ]
    ),
}


def _lab(colour: str, vision: np.ndarray) -> np.ndarray:
    srgb = np.array([int(colour[i : i + 2], 16) for i in (1, 3, 5)]) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    rgb = np.clip(vision @ linear, 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    x = (xyz @ rgb) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(x > 0.008856, np.cbrt(x), 7.787 * x + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


@pytest.mark.parametrize(
    "a, b",
    [
        ("PROPOSAL_ONLY", "MYOCARDIUM"),
        ("LABEL_ONLY", "PROPOSAL_ONLY"),
        ("LABEL_ONLY", "MYOCARDIUM"),
        ("SCAR", "MYOCARDIUM"),
        ("SCAR", "PROPOSAL_ONLY"),
        ("SCAR", "LABEL_ONLY"),
    ],
)
@pytest.mark.parametrize("vision", sorted(VISION))
def test_colours_an_annotator_compares_stay_apart(a, b, vision):
    distance = np.linalg.norm(
        _lab(getattr(palette, a), VISION[vision]) - _lab(getattr(palette, b), VISION[vision])
    )
    assert distance >= 30, f"{a} and {b} are {distance:.0f} apart for {vision}"


def test_the_labels_layer_takes_the_palette():
    labels = np.array([[[0, 1, 2, 3, 4]]], np.uint8)
    stack = Stack(np.zeros((1, 1, 5), np.float32), labels, spec=LabelSpec.emidec())
    (_, image_meta, _), (_, meta, kind) = stack_to_layer_data(stack)
    colours = meta["colormap"]
    assert kind == "labels" and colours[2] == palette.MYOCARDIUM and colours[3] == palette.SCAR
    assert colours[0] == "transparent" and colours[1] == palette.BLOOD_POOL
    binary = Stack(np.zeros((1, 1, 5), np.float32), labels.clip(0, 1), spec=LabelSpec.binary())
    assert stack_to_layer_data(binary)[1][1]["colormap"][1] == palette.SCAR
