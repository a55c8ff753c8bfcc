"""The view of the heart: exact maps both ways, at the slice's edges and past them."""

import numpy as np
import pytest

from napari_yolosam.view import MIN_SHARE, View


@pytest.mark.parametrize("shape", [(256, 256), (261, 272), (97, 131), (5, 3)])
@pytest.mark.parametrize("where", ["inside", "top_left", "bottom_right", "larger"])
def test_crop_paste_take_round_trip(shape, where):
    h, w = shape
    rng = np.random.default_rng(h * w)
    image = rng.integers(1, 250, shape).astype(np.uint8)
    size = {"inside": max(2, min(shape) // 2), "larger": max(shape) + 7}.get(where, 9)
    top, left = {
        "inside": (h // 4, w // 4),
        "top_left": (-4, -3),
        "bottom_right": (h - 5, w - 2),
        "larger": (-3, -5),
    }[where]
    view = View(top, left, size, shape, "label")
    crop = view.crop(image)
    assert crop.shape == (size, size) and crop.dtype == image.dtype
    # every window pixel is the slice's own pixel, or the slice's minimum outside it
    for r, c in [(0, 0), (size - 1, size - 1), (size // 2, size // 3)]:
        sr, sc = r + top, c + left
        inside = 0 <= sr < h and 0 <= sc < w
        assert crop[r, c] == (image[sr, sc] if inside else image.min())
    # pasting the crop back gives the slice where the window covers it, fill elsewhere
    pasted = view.paste(crop, 0)
    covered = np.zeros(shape, bool)
    covered[max(top, 0) : top + size, max(left, 0) : left + size] = True
    assert np.array_equal(pasted[covered], image[covered]) and (pasted[~covered] == 0).all()
    # take is paste's inverse inside the slice, for stacks of masks too
    masks = rng.random((3, *shape)) > 0.5
    assert np.array_equal(
        view.paste(view.take(masks, False), False)[:, covered], masks[:, covered]
    )


def test_coordinates_round_trip_exactly():
    view = View(-7, 13, 61, (256, 240), "detector")
    boxes = np.array([[20.5, 3.25, 40.0, 70.75], [0, 0, 1, 1]], np.float32)
    points = np.array([[[5.5, 9.0], [100.0, 200.0]]], np.float32)
    assert np.array_equal(view.to_slice(view.to_view(boxes)), boxes)
    assert np.array_equal(view.to_slice(view.to_view(points)), points)
    assert np.array_equal(view.to_view(boxes)[0], [7.5, 10.25, 27.0, 77.75])


def test_a_pixel_and_its_box_land_together():
    image = np.zeros((120, 90), np.float32)
    image[50, 40] = 1.0
    view = View(30, 20, 41, image.shape, "label")
    crop = view.crop(image)
    ((r, c),) = np.argwhere(crop == 1.0)
    x, y = view.to_view(np.array([40.0, 50.0]))
    assert (c, r) == (x, y)


def test_whole_view_is_the_identity():
    image = np.arange(35, dtype=np.float32).reshape(5, 7)
    view = View.whole(image.shape)
    assert view.is_whole and view.crop(image) is image and view.view_shape == (5, 7)
    boxes = np.array([[1, 2, 3, 4]], np.float32)
    assert np.array_equal(view.to_view(boxes), boxes)
    assert view.paste(image) is image


def test_around_a_box_scales_and_bounds_the_window():
    lv = np.array([100, 110, 140, 160], np.float32)  # 40 x 50
    view = View.around(lv, (256, 256), "label")
    assert view.size == 75 and view.source == "label"
    centre = (view.left + view.size / 2, view.top + view.size / 2)
    assert abs(centre[0] - 120) <= 0.5 and abs(centre[1] - 135) <= 0.5
    tiny = View.around(np.array([10, 10, 12, 12]), (256, 256), "detector")
    assert tiny.size == int(MIN_SHARE * 256), "never more than 4x zoom"
    assert View.from_dict(view.to_dict()) == view


def test_bad_views_are_refused():
    with pytest.raises(ValueError, match="positive size"):
        View(0, 0, 0, (10, 10))
    with pytest.raises(ValueError, match="unknown view source"):
        View(0, 0, 5, (10, 10), "guess")


def test_segmenter_decodes_through_a_view_in_slice_pixels(tiny_segmenter, phantom):
    image = phantom.stack.images[0]
    assert image.shape == (128, 128)
    view = View(30, 20, 64, image.shape, "label")
    embedding = tiny_segmenter.encode(view.crop(image))
    box = np.array([[40, 45, 70, 80]], np.float32)
    out = tiny_segmenter.decode(embedding, image.shape, boxes=box, view=view)
    assert out.masks.shape == (1, *image.shape) and out.logits.shape == (1, *image.shape)
    direct = tiny_segmenter.decode(embedding, (64, 64), boxes=view.to_view(box))
    assert np.array_equal(view.take(out.masks, False), direct.masks)
    outside = np.ones(image.shape, bool)
    outside[30:94, 20:84] = False
    assert not out.masks[:, outside].any() and (out.logits[:, outside] == -20).all()
