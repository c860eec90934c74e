"""The judge of generated shapes: nearest neighbour on occupancy against reference shapes.

Independent of the generator (no learned weights): references are training-split procedural
shapes (plain and stretched), compared by IoU after 4x max-pooling to 16^3, which forgives the
one-voxel wobble of thin surfaces while keeping the object's layout.
"""

from __future__ import annotations

import numpy as np

from backend.geometry.voxelize import pooled

from .splits import split_shapes

POOL = 4  # 64^3 -> 16^3


class NearestShapeJudge:
    def __init__(self, per_category: int = 12, seed: int = 3):
        shapes = split_shapes(per_category, held_out=False, stretch_fraction=0.5, seed=seed)
        self.labels = [s.category for s in shapes]
        self.refs = pooled(np.stack([s.occupancy() for s in shapes]), POOL).reshape(len(shapes), -1)

    def scores(self, occ: np.ndarray) -> np.ndarray:
        q = pooled(occ, POOL).reshape(-1)
        inter = (self.refs & q).sum(1)
        union = (self.refs | q).sum(1)
        return inter / np.maximum(union, 1)

    def category(self, occ: np.ndarray) -> str:
        return self.labels[int(np.argmax(self.scores(occ)))]
