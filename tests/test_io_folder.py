from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_yolosam.io import StackError, read_stack, write_labels
from napari_yolosam.labelspec import LabelSpec


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_phantom_folder_round_trip(phantom, phantom_folder, tmp_path):
    stack = read_stack(phantom_folder)
    assert stack.layout == "folder" and stack.spec.name == "emidec"
    assert stack.names == phantom.stack.names
    np.testing.assert_array_equal(stack.labels, phantom.stack.labels)
    np.testing.assert_allclose(stack.images, np.clip(np.rint(phantom.stack.images), 0, 255))
    out = write_labels(stack, tmp_path / "cleaned")
    assert [p.name for p in out] == [n for n in stack.names]
    again = read_stack(phantom_folder, labels=tmp_path / "cleaned")
    np.testing.assert_array_equal(again.labels, stack.labels)


def test_images_alone_rgb_and_16bit(tmp_path):
    rng = np.random.default_rng(0)
    gray16 = rng.integers(0, 4000, (20, 30), dtype=np.uint16)
    rgb = np.repeat(rng.integers(0, 255, (20, 30, 1), dtype=np.uint8), 3, axis=2)
    _save(tmp_path / "a_slice0.png", gray16)
    _save(tmp_path / "a_slice1.png", rgb)
    stack = read_stack(tmp_path)
    assert stack.labels is None and stack.shape == (2, 20, 30)
    np.testing.assert_array_equal(stack.images[0], gray16.astype(np.float32))
    np.testing.assert_array_equal(stack.images[1], rgb[..., 0].astype(np.float32))
    assert stack.cases == ["a", "a"]


def test_different_sizes_padded_and_restored(tmp_path):
    _save(tmp_path / "images/s1.png", np.full((20, 30), 10, np.uint8))
    _save(tmp_path / "images/s2.png", np.full((25, 22), 20, np.uint8))
    m1 = np.zeros((20, 30), np.uint8)
    m1[5:9, 5:9] = 255
    m2 = np.zeros((25, 22), np.uint8)
    m2[20:24, 1:4] = 255
    _save(tmp_path / "masks/s1.png", m1)
    _save(tmp_path / "masks/s2.png", m2)
    stack = read_stack(tmp_path)
    assert stack.shape == (2, 25, 30)
    assert stack.original_shapes == [(20, 30), (25, 22)]
    assert stack.spec.mode == "binary" and stack.binary_on_disk == 255
    out = write_labels(stack, tmp_path / "out")
    back = [np.array(Image.open(p)) for p in out]
    assert back[0].shape == (20, 30) and back[1].shape == (25, 22)
    np.testing.assert_array_equal(back[0], m1)
    np.testing.assert_array_equal(back[1], m2)


def test_soft_rgb_masks_binarise_at_128(tmp_path):
    _save(tmp_path / "images/x.png", np.zeros((8, 8), np.uint8))
    soft = np.zeros((8, 8), np.uint8)
    soft[2, 2], soft[2, 3], soft[2, 4] = 127, 128, 254
    _save(tmp_path / "masks/x.png", np.repeat(soft[..., None], 3, axis=2))
    stack = read_stack(tmp_path)
    assert stack.scar()[0, 2].tolist()[2:5] == [False, True, True]
    assert stack.scar().sum() == 2
    stricter = read_stack(tmp_path, spec=LabelSpec(threshold=200))
    assert stricter.scar().sum() == 1


def test_multiclass_values_kept_and_unknown_value_rejected(tmp_path):
    _save(tmp_path / "images/c_slice0.png", np.zeros((6, 6), np.uint8))
    label = np.array([[0, 1, 2, 3, 4, 0]] * 6, np.uint8)
    _save(tmp_path / "masks/c_slice0.png", label)
    stack = read_stack(tmp_path)
    np.testing.assert_array_equal(stack.labels[0], label)
    assert stack.scar().sum() == 12 and stack.myocardium().sum() == 18
    label[0, 0] = 7
    _save(tmp_path / "masks/c_slice0.png", label)
    with pytest.raises(StackError, match=r"c_slice0.png.*label value\(s\) \[7\]"):
        read_stack(tmp_path)
    extended = read_stack(tmp_path, spec=LabelSpec(extra=(7,)))
    assert extended.labels[0, 0, 0] == 7


def test_binary_zero_one_masks_are_scar(tmp_path):
    _save(tmp_path / "images/s.png", np.zeros((5, 5), np.uint8))
    mask = np.eye(5, dtype=np.uint8)
    _save(tmp_path / "masks/s.png", mask)
    stack = read_stack(tmp_path)
    assert stack.spec.mode == "binary" and stack.scar().sum() == 5
    write_labels(stack, tmp_path / "out")
    np.testing.assert_array_equal(np.array(Image.open(tmp_path / "out/s.png")), mask)


@pytest.mark.parametrize(
    "setup, match",
    [
        ("empty", "no image files"),
        ("orphan_mask", "orphan.png: mask has no matching image"),
        ("truncated", "broken.png: cannot be read as an image"),
        ("shape", "s.png: mask shape"),
        ("rgb_mask", "s.png: is an RGB mask whose channels differ"),
    ],
)
def test_bad_input_names_the_file(tmp_path, setup, match):
    (tmp_path / "images").mkdir()
    if setup != "empty":
        _save(tmp_path / "images/s.png", np.zeros((6, 6), np.uint8))
    if setup == "orphan_mask":
        _save(tmp_path / "masks/orphan.png", np.zeros((6, 6), np.uint8))
    if setup == "truncated":
        _save(
            tmp_path / "images/broken.png",
            np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8),
        )
        data = (tmp_path / "images/broken.png").read_bytes()
        (tmp_path / "images/broken.png").write_bytes(data[: len(data) // 2])
    if setup == "shape":
        _save(tmp_path / "masks/s.png", np.zeros((7, 6), np.uint8))
    if setup == "rgb_mask":
        rgb = np.zeros((6, 6, 3), np.uint8)
        rgb[0, 0] = (255, 0, 0)
        _save(tmp_path / "masks/s.png", rgb)
    with pytest.raises(StackError, match=match):
        read_stack(tmp_path)


def test_missing_path():
    with pytest.raises(StackError, match="does not exist"):
        read_stack("/no/such/folder")


def test_slices_without_mask_warn(tmp_path):
    _save(tmp_path / "images/a.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "images/b.png", np.zeros((4, 4), np.uint8))
    _save(tmp_path / "masks/a.png", np.full((4, 4), 255, np.uint8))
    stack = read_stack(tmp_path)
    assert stack.labels[1].max() == 0 and "b.png" in stack.warnings[0]


def test_writing_never_touches_originals(phantom_folder):
    stack = read_stack(phantom_folder)
    before = {p: p.read_bytes() for p in (phantom_folder / "masks").iterdir()}
    with pytest.raises(PermissionError, match="original"):
        write_labels(stack, phantom_folder / "masks")
    with pytest.raises(PermissionError, match="original"):
        write_labels(stack, phantom_folder / "images")
    assert {p: p.read_bytes() for p in (phantom_folder / "masks").iterdir()} == before


def test_write_is_atomic(phantom_folder, tmp_path, monkeypatch):
    stack = read_stack(phantom_folder)
    out = tmp_path / "out"
    write_labels(stack, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    from PIL import Image as PILImage

    calls = {"n": 0}
    real_save = PILImage.Image.save

    def failing_save(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            Path(fp).write_bytes(b"half a png")
            raise OSError("disk full")
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(PILImage.Image, "save", failing_save)
    labels = stack.labels.copy()
    labels[:] = 0
    with pytest.raises(OSError, match="disk full"):
        write_labels(stack, out, labels=labels)
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(after) == set(before), "no temporary files are left behind"
    name = stack.names[2]
    assert after[name] == before[name], "the file being written when it failed is intact"


def test_yolosam_sample(shared_data):
    stack = read_stack(shared_data / "lge_yolosam_p004")
    assert stack.shape == (6, 272, 261)
    assert stack.spec.mode == "binary" and stack.binary_on_disk == 255
    assert set(np.unique(stack.labels)) == {0, 1}
    raw = np.array(Image.open(shared_data / "lge_yolosam_p004/masks/Case_P004_slice_04.png"))[
        ..., 0
    ]
    np.testing.assert_array_equal(stack.scar()[4], raw >= 128)
    assert set(stack.cases) == {"Case_P004"}


def test_emidec_dev(shared_data):
    stack = read_stack(shared_data / "emidec_dev")
    assert stack.shape[0] == 361 and stack.shape[1:] == (256, 256)
    assert set(np.unique(stack.labels)) == {0, 1, 2, 3, 4}
    assert len(set(stack.cases)) == 50
    assert stack.spec.name == "emidec"
    assert stack.no_reflow().any() and (stack.scar() >= stack.no_reflow()).all()
