"""Silent wrong values become clear errors: stray label values, NaN pixels, zero spacing,
zero counts, headers that claim huge images."""

import numpy as np
import pytest
from PIL import Image

from napari_yolosam.cli import main
from napari_yolosam.io import StackError, read_stack
from napari_yolosam.labelspec import LabelSpec


def _multiclass_folder(root, stray_in=None):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):
        labels = np.zeros((64, 64), np.uint8)
        labels[20:44, 20:44] = 2
        labels[28:36, 28:36] = 1
        labels[20:26, 30:40] = 3
        if k == stray_in:
            labels[:4, :4] = 255  # one 4x4 patch of another tool's value
        name = f"Case_P{k // 2:03d}_slice{k:03d}.png"
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(
            root / "images" / name
        )
        Image.fromarray(labels).save(root / "masks" / name)
    return root


def test_a_stray_value_never_flips_a_multiclass_set_to_binary(tmp_path, capsys):
    clean = read_stack(_multiclass_folder(tmp_path / "clean"))
    assert clean.spec.mode != "binary" and clean.scar().sum() == 4 * 60
    data = _multiclass_folder(tmp_path / "stray", stray_in=2)
    with pytest.raises(StackError, match=r"Case_P001_slice002.png \(\[0, 1, 2\]|slice002"):
        read_stack(data)
    assert main(["convert", "--images", str(data), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "Case_P001_slice002.png" in error and "255" in error
    assert not (tmp_path / "out").exists(), "nothing written"
    forced = read_stack(data, spec=LabelSpec.binary())
    assert forced.spec.mode == "binary", "the user may still choose binary"


def test_nan_pixels_are_refused_by_name(tmp_path):
    import nibabel as nib

    volume = np.random.default_rng(1).normal(100, 10, (32, 32, 3)).astype(np.float32)
    volume[5, 6, 1] = np.nan
    volume[7, 7, 2] = np.inf
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "lge.nii.gz")
    with pytest.raises(StackError, match=r"NaN or infinite.*slice001.png \(1 px\), lge_slice002"):
        read_stack(tmp_path / "lge.nii.gz")


def test_zero_spacing_means_unknown_not_one_millimetre(tmp_path):
    import struct

    import nibabel as nib

    from napari_yolosam.quantify import Units

    path = tmp_path / "zero.nii"
    nib.save(nib.Nifti1Image(np.ones((16, 16, 2), np.float32), np.diag([1.4, 1.4, 8, 1])), path)
    raw = bytearray(path.read_bytes())
    raw[80:88] = struct.pack("<2f", 0.0, 0.0)  # pixdim[1], pixdim[2]: a header with 0 mm pixels
    path.write_bytes(bytes(raw))
    stack = read_stack(path)
    assert stack.spacing is None and Units.of(stack).label == "px|px*slices"


def test_a_header_claiming_a_huge_image_is_refused_before_reading(tmp_path):
    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_data_shape((30_000, 30_000, 2))  # NIfTI-1 sides stop at 32,767
    header.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as handle:  # the header alone; the data it claims is not there
        handle.write(header.binaryblock)
        handle.write(b"\0" * (352 - len(header.binaryblock)) + b"\0" * 64)
    with pytest.raises(StackError, match="1,800,000,000 voxels"):
        read_stack(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "--images", "x", "--out", "y", "--batch", "0"],
        ["train", "--images", "x", "--out", "y", "--epochs", "0"],
        ["quantify", "--labels", "x", "--out", "y.csv", "--sectors", "0"],
        ["phantom", "--out", "y", "--slices", "-1"],
        ["boxes", "--images", "x", "--out", "y", "--min-area", "-3"],
    ],
)
def test_zero_counts_are_argument_errors(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2 and "must be at least" in capsys.readouterr().err


def test_zero_counts_in_python_are_value_errors(phantom):
    from napari_yolosam.quantify import quantify_labels
    from napari_yolosam.training.sam import SamTrainConfig

    with pytest.raises(ValueError, match="batch_size"):
        SamTrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="n_sectors"):
        quantify_labels(phantom.stack, n_sectors=0)
