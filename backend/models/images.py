"""Reference image preprocessing for image-to-3D (reference doc section 3).

1. Remove the background when the image has no (useful) alpha channel.
2. Crop a square around the box of alpha > 0.8, enlarged 1.2x.
3. Fit the object to about 0.62 of a 512x512 white canvas.

The reference removes backgrounds with rembg (a 170 MB segmentation network). We use a light
rule instead, good for the product-shot style images the model was trained on: the background
is the colour of the image border, and every pixel close to that colour and connected to the
border is background. When the border is not one colour (a busy photo) nothing is removed and
the whole image is kept: a clear, predictable fallback rather than a bad cut-out.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from backend.errors import TaskError

CANVAS = 512
OBJECT_FRACTION = 0.62  # of the canvas side, for the object's longest side
CROP_MARGIN = 1.2  # the square crop is this times the object's box
ALPHA_THRESHOLD = 0.8
COLOUR_TOLERANCE = 24  # max per-channel difference (0..255) to the border colour
UNIFORM_BORDER = 0.6  # the border is "one colour" when this share of it is within tolerance


def prepare_image(image: Image.Image) -> Image.Image:
    """The RGB 512x512 image the LLM sees."""
    if not isinstance(image, Image.Image):
        raise TaskError("bad_image", f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise TaskError("bad_image", "the image is empty")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.uint8)
    alpha = rgba[..., 3]
    if alpha.min() == 255:  # no transparency to go by
        alpha = background_alpha(rgba[..., :3])
    return _fit_on_canvas(rgba[..., :3], alpha)


def background_alpha(rgb: np.ndarray) -> np.ndarray:
    """uint8 alpha: 0 on the border-connected background of the border's colour, else 255."""
    h, w, _ = rgb.shape
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]]).astype(np.int16)
    colour = np.median(border, axis=0)
    if np.mean(np.abs(border - colour).max(axis=1) <= COLOUR_TOLERANCE) < UNIFORM_BORDER:
        return np.full((h, w), 255, dtype=np.uint8)  # busy border: keep everything
    close = np.abs(rgb.astype(np.int16) - colour).max(axis=2) <= COLOUR_TOLERANCE
    labels, _ = ndimage.label(close)
    edge_labels = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge_labels[edge_labels > 0])
    return np.where(background, 0, 255).astype(np.uint8)


def _fit_on_canvas(rgb: np.ndarray, alpha: np.ndarray) -> Image.Image:
    solid = alpha > ALPHA_THRESHOLD * 255
    if not solid.any():  # nothing but background: use the whole frame
        solid = np.ones_like(solid)
        alpha = np.full_like(alpha, 255)
    ys, xs = np.nonzero(solid)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = max(x1 - x0, y1 - y0) * CROP_MARGIN
    box = tuple(int(round(v)) for v in (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2))
    # PIL fills outside the image with zeros, i.e. transparent: the object stays centred.
    crop = Image.fromarray(np.dstack([rgb, alpha]), "RGBA").crop(box)
    size = max(1, int(round(CANVAS * OBJECT_FRACTION * CROP_MARGIN)))
    crop = crop.resize((size, size), Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (CANVAS, CANVAS), (255, 255, 255, 255))
    offset = (CANVAS - size) // 2
    canvas.alpha_composite(crop, (offset, offset))
    return canvas.convert("RGB")
