"""TIFF, NIfTI and DICOM stacks: round trips, spacing, bad input."""

import numpy as np
import pytest

from _dicom import write_series
from napari_yolosam.io import StackError, read_stack, write_labels


def _volume(phantom):
    return phantom.stack.images[:4], phantom.stack.labels[:4]


def test_tiff_round_trip_with_spacing(phantom, tmp_path):
    import tifffile

    images, labels = _volume(phantom)
    tifffile.imwrite(
        tmp_path / "lge.tif",
        images.astype(np.uint16),
        imagej=True,
        resolution=(1 / 0.7, 1 / 0.8),
        metadata={"unit": "mm", "spacing": 6.5, "axes": "ZYX"},
    )
    tifffile.imwrite(tmp_path / "lge_labels.tif", labels)
    stack = read_stack(tmp_path / "lge.tif", labels=tmp_path / "lge_labels.tif")
    assert stack.layout == "tiff" and stack.shape == images.shape
    assert stack.spacing == pytest.approx((0.8, 0.7)) and stack.thickness == pytest.approx(6.5)
    np.testing.assert_array_equal(stack.labels, labels)
    out = write_labels(stack, tmp_path / "out")
    assert out[0].name == "lge_labels.tif"
    back = read_stack(tmp_path / "lge.tif", labels=out[0])
    np.testing.assert_array_equal(back.labels, labels)
    assert back.spacing == pytest.approx((0.8, 0.7))
    with pytest.raises(PermissionError):
        write_labels(stack, tmp_path / "lge_labels.tif")


def test_single_page_tiff(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "one.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    stack = read_stack(tmp_path / "one.tif")
    assert stack.shape == (1, 3, 4) and stack.spacing is None


def test_tiff_label_shape_mismatch(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "a.tif", np.zeros((2, 5, 5), np.uint8))
    tifffile.imwrite(tmp_path / "b.tif", np.zeros((3, 5, 5), np.uint8))
    with pytest.raises(StackError, match="b.tif: label shape"):
        read_stack(tmp_path / "a.tif", labels=tmp_path / "b.tif")


def test_nifti_round_trip(phantom, tmp_path):
    import nibabel as nib

    images, labels = _volume(phantom)
    affine = np.diag([0.7, 0.8, 6.0, 1.0])
    nib.save(
        nib.Nifti1Image(np.transpose(images, (2, 1, 0)), affine), str(tmp_path / "lge.nii.gz")
    )
    nib.save(
        nib.Nifti1Image(np.transpose(labels, (2, 1, 0)), affine), str(tmp_path / "seg.nii.gz")
    )
    stack = read_stack(tmp_path / "lge.nii.gz", labels=tmp_path / "seg.nii.gz")
    assert stack.layout == "nifti"
    np.testing.assert_allclose(stack.images, images)
    np.testing.assert_array_equal(stack.labels, labels)
    assert stack.spacing == pytest.approx((0.8, 0.7)) and stack.thickness == pytest.approx(6.0)
    out = write_labels(stack, tmp_path / "cleaned.nii.gz")
    back = read_stack(tmp_path / "lge.nii.gz", labels=out[0])
    np.testing.assert_array_equal(back.labels, labels)
    np.testing.assert_allclose(nib.load(str(out[0])).affine, affine)


def test_nifti_corrupt_file(tmp_path):
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti at all")
    with pytest.raises(StackError, match="bad.nii.gz: cannot be read as NIfTI"):
        read_stack(tmp_path / "bad.nii.gz")


def test_dicom_series_order_spacing_rescale(phantom, tmp_path):
    images, labels = _volume(phantom)
    values = images * 3.0 - 50.0  # signed, rescaled intensities
    write_series(
        tmp_path / "dcm",
        values,
        spacing=(0.8, 0.7),
        thickness=6.0,
        step=8.0,
        slope=2.0,
        intercept=-100.0,
    )
    stack = read_stack(tmp_path / "dcm")
    assert stack.layout == "dicom" and stack.shape == images.shape
    # files were written in reverse spatial order: the reader orders by position
    np.testing.assert_allclose(stack.images, np.rint((values + 100) / 2) * 2 - 100)
    assert stack.spacing == pytest.approx((0.8, 0.7))
    assert stack.thickness == pytest.approx(6.0) and stack.slice_spacing == pytest.approx(8.0)
    assert set(stack.cases) == {"PAT1"}


def test_dicom_with_masks_round_trip(phantom, tmp_path):
    from PIL import Image

    images, labels = _volume(phantom)
    paths = write_series(tmp_path / "case/dicom", images, shuffle_names=False)
    (tmp_path / "case/masks").mkdir()
    for z, path in enumerate(paths):
        Image.fromarray(labels[z]).save(tmp_path / "case/masks" / (path.stem + ".png"))
    stack = read_stack(tmp_path / "case")
    np.testing.assert_array_equal(stack.labels, labels)
    out = write_labels(stack, tmp_path / "cleaned")
    assert sorted(p.name for p in out) == sorted(p.stem + ".png" for p in paths)


def test_dicom_mismatched_shapes(tmp_path):
    write_series(tmp_path / "dcm", np.zeros((2, 8, 8), np.float32), shuffle_names=False)
    write_series(tmp_path / "odd", np.zeros((1, 9, 8), np.float32), shuffle_names=False)
    # move the odd-sized slice into the first series
    import pydicom

    first = pydicom.dcmread(tmp_path / "dcm/IM0000.dcm")
    odd = pydicom.dcmread(tmp_path / "odd/IM0000.dcm")
    odd.SeriesInstanceUID = first.SeriesInstanceUID
    odd.save_as(tmp_path / "dcm/IM0009.dcm")
    with pytest.raises(StackError, match=r"IM0009.dcm: image size \(9, 8\) differs"):
        read_stack(tmp_path / "dcm")


def test_dicom_not_dicom_and_empty(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d/x.dcm").write_bytes(b"garbage" * 10)
    with pytest.raises(StackError, match="x.dcm"):
        read_stack(tmp_path / "d")


def test_sunnybrook_dicom_spacing(shared_data):
    stack = read_stack(shared_data / "sunnybrook_cine_dev")
    assert stack.layout == "dicom" and stack.shape == (18, 256, 256)
    assert stack.spacing == pytest.approx((1.367188, 1.367188))
    assert stack.thickness == pytest.approx(10.0)
    assert set(stack.cases) == {"SCD0000101", "SCD0000201"}
    assert set(np.unique(stack.labels)) == {0, 1, 2}
    assert stack.myocardium().any() and not stack.scar().any()
    # slices of a patient are ordered along the slice normal
    one = read_stack(shared_data / "sunnybrook_cine_dev", series="SCD0000101")
    assert len(one) == 9 and one.slice_spacing > 0
