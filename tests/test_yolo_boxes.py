import numpy as np
import pytest
from scipy import ndimage

from napari_yolosam.io import (
    StackError,
    boxes_to_yolo,
    mask_to_boxes,
    read_stack,
    read_yolo_file,
    regions_to_boxes,
    write_yolo_labels,
    yolo_to_boxes,
)


def test_boxes_per_component_and_min_area():
    mask = np.zeros((20, 30), bool)
    mask[2:5, 3:9] = True  # 18 px
    mask[10:12, 20:21] = True  # 2 px
    boxes = mask_to_boxes(mask)
    np.testing.assert_array_equal(boxes, [[3, 2, 9, 5], [20, 10, 21, 12]])
    assert len(mask_to_boxes(mask, min_area=3)) == 1
    yolo = boxes_to_yolo(boxes, mask.shape)
    np.testing.assert_allclose(yolo[0], [6 / 30, 3.5 / 20, 6 / 30, 3 / 20])
    np.testing.assert_allclose(yolo_to_boxes(yolo, mask.shape), boxes)


def test_boxes_of_numbered_regions():
    regions = np.zeros((20, 30), int)
    regions[2:5, 3:9] = 1
    regions[10:12, 20:21] = 2
    regions[1, 25] = 2  # a region need not be connected: its box spans all its pixels
    np.testing.assert_array_equal(regions_to_boxes(regions), [[20, 1, 26, 12], [3, 2, 9, 5]])
    components, _ = ndimage.label(regions > 0, structure=np.ones((3, 3)))
    np.testing.assert_array_equal(regions_to_boxes(components), mask_to_boxes(regions > 0))
    assert regions_to_boxes(np.zeros((4, 4), int)).shape == (0, 4)


def test_write_and_read_back(tmp_path):
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 1:3, 1:4] = True
    files = write_yolo_labels(masks, ["a.png", "b.png"], tmp_path)
    assert files[1].read_text() == "", "slices without scar get an empty file"
    classes, boxes = read_yolo_file(files[0])
    assert classes.tolist() == [0]
    np.testing.assert_allclose(yolo_to_boxes(boxes, (10, 10)), [[1, 1, 4, 3]], atol=1e-5)


def test_bad_yolo_file(tmp_path):
    (tmp_path / "x.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(StackError, match="x.txt: line 1"):
        read_yolo_file(tmp_path / "x.txt")


def test_matches_yolosam_sample_labels(shared_data, tmp_path):
    sample = shared_data / "lge_yolosam_p004"
    stack = read_stack(sample)
    write_yolo_labels(stack.scar(), stack.names, tmp_path, stack.original_shapes)
    for theirs in sorted((sample / "labels").glob("*.txt")):
        ours = (tmp_path / theirs.name).read_text().splitlines()
        assert sorted(ours) == sorted(theirs.read_text().splitlines()), theirs.name
    assert len((tmp_path / "Case_P004_slice_04.txt").read_text().splitlines()) == 2
