"""Axis-aligned solid primitives: boxes, cylinders and hollow lathes, as trimesh meshes.

Every primitive is a unit shape in local coordinates [-1, 1]^3 mapped to the world by a
per-axis scale and a translation, so anisotropic edits ("taller", "wider") are a
multiplication and bounds are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh

_SECTIONS = 24  # segments around cylinders and lathes: smooth enough at 64^3


@dataclass(frozen=True)
class Primitive:
    """kind: "box", "cyl_x", "cyl_y", "cyl_z" (unit cylinder along that axis) or "lathe".

    A lathe is a hollow solid of revolution about local Z: outer radius profile `radii` sampled
    at evenly spaced heights from local z=-1 to z=+1, a wall `wall` thick (local radius units)
    and a closed floor up to `floor` (fraction of the height, 0 = no floor; 1 = solid).
    """

    kind: str
    center: tuple[float, float, float]
    half: tuple[float, float, float]  # half extents of the unit shape after scaling
    radii: tuple[float, ...] = field(default=())
    wall: float = 0.0
    floor: float = 0.0

    # -- geometry transforms -------------------------------------------------------------
    def scaled(self, factors: np.ndarray, about: np.ndarray) -> "Primitive":
        """The same primitive stretched by per-axis `factors` about the point `about`."""
        c = (np.asarray(self.center) - about) * factors + about
        h = np.asarray(self.half) * factors
        return Primitive(self.kind, tuple(c.tolist()), tuple(h.tolist()), self.radii, self.wall, self.floor)

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        c, h = np.asarray(self.center), np.asarray(self.half, dtype=float).copy()
        if self.kind == "lathe":
            h[:2] *= max(self.radii)
        return c - h, c + h

    # -- mesh ----------------------------------------------------------------------------
    def mesh(self) -> trimesh.Trimesh:
        if self.kind == "box":
            m = trimesh.creation.box(extents=(2.0, 2.0, 2.0))
        elif self.kind.startswith("cyl_"):
            m = trimesh.creation.cylinder(radius=1.0, height=2.0, sections=_SECTIONS)
            if self.kind == "cyl_x":
                m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
            elif self.kind == "cyl_y":
                m.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (1, 0, 0)))
        elif self.kind == "lathe":
            m = trimesh.creation.revolve(self._profile(), sections=_SECTIONS)
        else:
            raise ValueError(f"unknown primitive kind {self.kind!r}")
        transform = np.diag([*self.half, 1.0])
        transform[:3, 3] = self.center
        m.apply_transform(transform)
        return m

    def _profile(self) -> np.ndarray:
        """Closed (radius, z) outline of the lathe wall, for trimesh's revolve."""
        z = np.linspace(-1.0, 1.0, len(self.radii))
        outer = np.stack([self.radii, z], axis=1)
        if self.floor >= 1.0:
            return np.vstack([[0.0, -1.0], outer, [0.0, 1.0]])
        inner_r = np.maximum(np.asarray(self.radii) - self.wall, 1e-3)
        floor_z = -1.0 + 2.0 * self.floor
        keep = z > floor_z
        inner = np.stack([inner_r[keep], z[keep]], axis=1)[::-1]
        floor_r = float(np.interp(self.floor, np.linspace(0, 1, len(self.radii)), inner_r))
        return np.vstack([[0.0, -1.0], outer, inner, [floor_r, floor_z], [0.0, floor_z]])


def box(center, size) -> Primitive:
    """A box from its centre and full size, the way furniture parts are described."""
    return Primitive("box", tuple(map(float, center)), tuple(float(s) / 2 for s in size))


def cylinder(center, radius, length, axis="z") -> Primitive:
    half = [radius, radius, radius]
    half["xyz".index(axis)] = length / 2
    return Primitive(f"cyl_{axis}", tuple(map(float, center)), tuple(map(float, half)))


def lathe(center, radius, height, radii, wall, floor) -> Primitive:
    """Hollow solid of revolution; `radii` are relative (max 1) and scaled by `radius`."""
    return Primitive("lathe", tuple(map(float, center)), (float(radius), float(radius), float(height) / 2),
                     tuple(map(float, radii)), float(wall), float(floor))
