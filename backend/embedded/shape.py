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

    def parts(self) -> list[Primitive]:
        """The parts in the unit frame (longest side 1, low corner at -0.5)."""
        raw = CATEGORIES[self.category].build(self.params)
        factors = np.asarray(self.stretch, dtype=float)
        raw = [p.scaled(factors, np.zeros(3)) for p in raw]
        lo = np.min([p.bounds()[0] for p in raw], axis=0)
        hi = np.max([p.bounds()[1] for p in raw], axis=0)
        scale = 1.0 / float(np.max(hi - lo))
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

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(vertices float32 [N,3], faces int32 [M,3]) in the unit frame."""
        m = trimesh.util.concatenate([p.mesh() for p in self.parts()])
        return m.vertices.astype(np.float32), m.faces.astype(np.int32)

    def occupancy(self, resolution: int = RESOLUTION) -> np.ndarray:
        """Surface occupancy bool [R, R, R] (dims x, y, z), as the pipeline voxelises meshes."""
        v, f = self.mesh()
        return voxelize_surface(v, f, resolution=resolution)


def sample_shape(category: str, seed: int) -> Shape:
    rng = np.random.default_rng(seed)
    return Shape(category, CATEGORIES[category].sample(rng), seed=seed)
