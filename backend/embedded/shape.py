"""A procedural shape: category + parameters + stretch, and its normalised mesh and occupancy.

Normalisation follows the "training" convention of the reference (docs/architecture.md): centre
each axis and scale the longest side to 1, so the object fills [-0.5, 0.5]^3, Z up, voxel
tensor dims (x, y, z), voxel centre (i + 0.5) / R - 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import trimesh

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
        """The parts in the unit frame (longest side 1, centred at the origin)."""
        raw = CATEGORIES[self.category].build(self.params)
        factors = np.asarray(self.stretch, dtype=float)
        raw = [p.scaled(factors, np.zeros(3)) for p in raw]
        lo = np.min([p.bounds()[0] for p in raw], axis=0)
        hi = np.max([p.bounds()[1] for p in raw], axis=0)
        centre, scale = (lo + hi) / 2, 1.0 / float(np.max(hi - lo))
        out = []
        for p in raw:
            c = (np.asarray(p.center) - centre) * scale
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

    def solid(self, resolution: int = RESOLUTION) -> np.ndarray:
        return solid_occupancy(self.parts(), resolution)

    def occupancy(self, resolution: int = RESOLUTION) -> np.ndarray:
        """Surface occupancy: the voxels a surface voxeliser marks (bool [R,R,R], dims x,y,z)."""
        return surface_shell(self.solid(resolution))


def solid_occupancy(parts: list[Primitive], resolution: int = RESOLUTION) -> np.ndarray:
    """Union of the parts' exact inside tests at the voxel centres; each part only in its box."""
    occ = np.zeros((resolution,) * 3, dtype=bool)
    centres = (np.arange(resolution) + 0.5) / resolution - 0.5
    for p in parts:
        lo, hi = p.bounds()
        i0 = np.clip(np.floor((lo + 0.5) * resolution - 0.5).astype(int), 0, resolution)
        i1 = np.clip(np.ceil((hi + 0.5) * resolution - 0.5).astype(int) + 1, 0, resolution)
        if np.any(i1 <= i0):
            continue
        gx, gy, gz = np.meshgrid(centres[i0[0]:i1[0]], centres[i0[1]:i1[1]], centres[i0[2]:i1[2]], indexing="ij")
        inside = p.inside(np.stack([gx, gy, gz], axis=-1))
        occ[i0[0]:i1[0], i0[1]:i1[1], i0[2]:i1[2]] |= inside
    return occ


def surface_shell(solid: np.ndarray) -> np.ndarray:
    """Solid voxels with at least one empty 6-neighbour (outside the grid counts as empty)."""
    padded = np.pad(solid, 1)
    interior = solid.copy()
    for axis in range(3):
        for shift in (-1, 1):
            interior &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1, 1:-1]
    return solid & ~interior


def sample_shape(category: str, seed: int) -> Shape:
    rng = np.random.default_rng(seed)
    return Shape(category, CATEGORIES[category].sample(rng), seed=seed)
