"""Deterministic train / held-out shape splits: disjoint seed ranges per category.

A shape is fully determined by (category, seed, stretch), so a split is a list of those and
the occupancies can be rebuilt anywhere; `occupancy_array` caches them packed in one array.
"""

from __future__ import annotations

import numpy as np

from .categories import CATEGORIES
from .shape import RESOLUTION, Shape, sample_shape

CATEGORY_NAMES = list(CATEGORIES)
_HELD_OUT_OFFSET = 500_000  # held-out seeds start here inside each category's seed block


def shape_seed(category: str, k: int, held_out: bool) -> int:
    return CATEGORY_NAMES.index(category) * 1_000_000 + (_HELD_OUT_OFFSET if held_out else 0) + k


def is_held_out_seed(seed: int) -> bool:
    return seed % 1_000_000 >= _HELD_OUT_OFFSET


def split_shapes(per_category: int, held_out: bool, stretch_fraction: float = 0.0, seed: int = 0) -> list[Shape]:
    """`per_category` shapes of every category; a fraction gets a random per-axis stretch so
    the data also covers the proportions that edits produce."""
    rng = np.random.default_rng(seed + (7 if held_out else 0))
    shapes = []
    for category in CATEGORY_NAMES:
        for k in range(per_category):
            s = sample_shape(category, shape_seed(category, k, held_out))
            if rng.random() < stretch_fraction:
                s = s.with_stretch(np.exp(rng.uniform(np.log(0.75), np.log(1.33), size=3)))
            shapes.append(s)
    return shapes


def occupancy_array(shapes: list[Shape]) -> np.ndarray:
    """Packed surface occupancies, uint8 [N, R^3/8]; unpack with `unpack`."""
    return np.stack([np.packbits(s.occupancy().reshape(-1)) for s in shapes])


def unpack(packed: np.ndarray) -> np.ndarray:
    """uint8 [N, R^3/8] -> bool [N, R, R, R]."""
    n = packed.shape[0]
    return np.unpackbits(packed, axis=1).reshape(n, RESOLUTION, RESOLUTION, RESOLUTION).astype(bool)
