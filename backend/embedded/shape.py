"""A procedural shape: category + parameters + stretch, and its normalised mesh and occupancy.

Normalisation follows the "corner" convention (backend/geometry/normalize.py), the one the
embedded preset declares: longest side scaled to 1, the bounding box's low corner at
(-0.5, -0.5, -0.5), Z up, voxel tensor dims (x, y, z), voxel centre (i + 0.5) / R - 0.5.
The token sequence then begins at the object (see docs/embedded-model.md).

The occupancy is the pipeline's own surface voxeliser run on the mesh, so training data and
what describe/edit see at run time agree voxel for voxel. (An analytic inside test of the parts
was tried first: faster, but its "solid voxels next to empty ones" shell sits up to a voxel
inside the mesh voxeliser's "voxels the surface passes through", IoU 0.05-0.7 between them.)
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import trimesh

from backend.geometry.voxelize import voxelize_surface

from .categories import CATEGORIES
from .primitives import Primitive

RESOLUTION = 64


@dataclass(frozen=True)
class Shape:
    category: str
    params: dict
    stretch: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-axis scale applied by edits
    seed: int = field(default=-1, compare=False)

    def raw_parts(self) -> list[Primitive]:
        """The parts in the builder's own units, stretched."""
        factors = np.asarray(self.stretch, dtype=float)
        return [p.scaled(factors, np.zeros(3)) for p in CATEGORIES[self.category].build(self.params)]

    def longest_side(self) -> float:
        """The longest side of the bounding box, in the builder's units."""
        lo, hi = _bounds(self.raw_parts())
        return float(np.max(hi - lo))

    def parts(self, scale_of: "Shape | None" = None, fill: float = 1.0) -> list[Primitive]:
        """The parts in the unit frame: low corner at -0.5, longest side `fill` (default 1).

        scale_of: take the scale from that shape instead (its longest side to `fill`): the edit
        frame, where an edited shape keeps its source's scale (docs/embedded-model.md, "Edit")."""
        raw = self.raw_parts()
        lo, hi = _bounds(raw)
        scale = fill / (scale_of.longest_side() if scale_of is not None else float(np.max(hi - lo)))
        out = []
        for p in raw:
            c = (np.asarray(p.center) - lo) * scale - 0.5
            h = np.asarray(p.half) * scale
            out.append(Primitive(p.kind, tuple(c.tolist()), tuple(h.tolist()), p.radii, p.wall, p.floor))
        return out

    def with_params(self, **changes) -> "Shape":
        return replace(self, params={**self.params, **changes})

    def with_stretch(self, factors) -> "Shape":
        return replace(self, stretch=tuple(float(a * b) for a, b in zip(self.stretch, factors)))

    def mesh(self, scale_of: "Shape | None" = None, fill: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """(vertices float32 [N,3], faces int32 [M,3]) in the unit frame (see `parts`)."""
        m = trimesh.util.concatenate([p.mesh() for p in self.parts(scale_of, fill)])
        return m.vertices.astype(np.float32), m.faces.astype(np.int32)

    def occupancy(self, resolution: int = RESOLUTION, scale_of: "Shape | None" = None,
                  fill: float = 1.0) -> np.ndarray:
        """Surface occupancy bool [R, R, R] (dims x, y, z), as the pipeline voxelises meshes."""
        v, f = self.mesh(scale_of, fill)
        return voxelize_surface(v, f, resolution=resolution)


def _bounds(parts: list[Primitive]) -> tuple[np.ndarray, np.ndarray]:
    return np.min([p.bounds()[0] for p in parts], axis=0), np.max([p.bounds()[1] for p in parts], axis=0)


def sample_shape(category: str, seed: int) -> Shape:
    rng = np.random.default_rng(seed)
    return Shape(category, CATEGORIES[category].sample(rng), seed=seed)
