"""Reference image preprocessing: background removal, 1.2x square crop, object at 0.62 of 512."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from backend.errors import TaskError
from backend.models.images import CANVAS, OBJECT_FRACTION, background_alpha, prepare_image


def object_box(image: Image.Image):
    """Box of the non-white pixels."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    ys, xs = np.nonzero((255 - rgb).max(axis=2) > 40)
    return xs.min(), xs.max() + 1, ys.min(), ys.max() + 1


def test_object_on_a_plain_background_is_centred_at_062():
    image = Image.new("RGB", (640, 480), (40, 120, 40))  # green studio backdrop
    ImageDraw.Draw(image).rectangle([50, 300, 149, 399], fill=(200, 30, 30))  # 100 px, off-centre
    out = prepare_image(image)
    assert out.size == (CANVAS, CANVAS) and out.mode == "RGB"
    x0, x1, y0, y1 = object_box(out)
    assert abs((x1 - x0) - OBJECT_FRACTION * CANVAS) <= 4 and abs((y1 - y0) - OBJECT_FRACTION * CANVAS) <= 4
    assert abs((x0 + x1) / 2 - CANVAS / 2) <= 2 and abs((y0 + y1) / 2 - CANVAS / 2) <= 2
    # The green backdrop is gone (white), the object stays red.
    assert tuple(np.asarray(out)[5, 5]) == (255, 255, 255)
    assert tuple(np.asarray(out)[CANVAS // 2, CANVAS // 2]) == (200, 30, 30)


def test_existing_alpha_is_used_and_the_long_side_fits():
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    ImageDraw.Draw(image).rectangle([100, 150, 299, 249], fill=(10, 10, 200, 255))  # 200 x 100
    x0, x1, y0, y1 = object_box(prepare_image(image))
    assert abs((x1 - x0) - OBJECT_FRACTION * CANVAS) <= 4
    assert abs((y1 - y0) - OBJECT_FRACTION * CANVAS / 2) <= 4


def test_hole_inside_the_object_is_not_background():
    rgb = np.full((100, 100, 3), 255, np.uint8)
    rgb[20:80, 20:80] = (0, 0, 0)
    rgb[40:60, 40:60] = (255, 255, 255)  # white, but not connected to the border
    alpha = background_alpha(rgb)
    assert alpha[0, 0] == 0 and alpha[50, 50] == 255 and alpha[25, 25] == 255


def test_busy_border_keeps_the_whole_image():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3)).astype(np.uint8)
    assert (background_alpha(rgb) == 255).all()
    out = prepare_image(Image.fromarray(rgb))
    assert out.size == (CANVAS, CANVAS)


def test_blank_image_still_gives_a_canvas_and_non_images_are_refused():
    assert prepare_image(Image.new("RGB", (50, 30), "white")).size == (CANVAS, CANVAS)
    with pytest.raises(TaskError) as err:
        prepare_image(b"\x89PNG")
    assert err.value.code == "bad_image"
