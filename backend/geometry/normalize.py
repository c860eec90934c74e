"""Fit a mesh into the model's unit cube [-0.5, 0.5]^3 and map results back.

Two conventions (see ../shared/reference/shapellm-omni.md section 4):
  "training": centre each axis on its bounding box and scale by the longest side, so the
              object fills the cube along its longest side (TRELLIS training data).
  "demo":     the published demo's quirk: ONE scalar min and max over all coordinates,
              (v - min_all) / (max_all - min_all) - 0.5. It does not centre each axis.
  "corner":   scale by the longest side like "training", but put the bounding box's low
              corner at (-0.5, -0.5, -0.5) (after the up rotation). Our embedded model uses it:
              its token sequence then starts at the object instead of after hundreds of empty
              tokens that a small model cannot count (docs/embedded-model.md).
fill (default 1): the share of the cube the longest side takes; edit inputs of the embedded
model use 1/1.35, so an edited shape grows at the input's own scale and still fits.
Up axis: a Blender mesh is Z-up and stays as it is; a Y-up file (glTF, OBJ) is turned Z-up
with the reference's +90 degree rotation about X, (x, y, z) -> (x, -z, y). The demo
normalises in the file's own frame and rotates afterwards; so do we (it matters for "demo").

Every normalisation is one affine map  unit = ((v - center) * scale) @ R.T  with a signed
permutation R, kept in a Normalization so that results map back exactly.
"""

from dataclasses import dataclass

import numpy as np

from addon.wire.protocol import UP_AXES

from .errors import DEGENERATE_MESH, EMPTY_MESH, INVALID_ARGUMENT, GeometryError
from .validate import as_vertices, check_finite

CONVENTIONS = ("training", "demo", "corner")

# Rows map input axes to Z-up axes: (x, y, z) -> (x, -z, y) for a Y-up input.
_Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])


@dataclass(frozen=True)
class Normalization:
    """unit = ((v - center) * scale) @ rotation.T, and its exact inverse."""

    center: np.ndarray    # float64 [3], in the input's own frame
    scale: float          # input units -> unit cube
    rotation: np.ndarray  # float64 [3,3], input frame -> Z-up
    convention: str = "training"
    up: str = "z"

    def to_unit(self, v) -> np.ndarray:
        """Input coordinates -> unit cube (float32)."""
        v = as_vertices(v)
        return (((v - self.center) * self.scale) @ self.rotation.T).astype(np.float32)

    def from_unit(self, u) -> np.ndarray:
        """Unit cube -> input coordinates (float32). R is orthogonal, so R^-1 = R^T."""
        u = as_vertices(u)
        return ((u @ self.rotation) / self.scale + self.center).astype(np.float32)

    def to_dict(self) -> dict:
        """Plain JSON-able form (for logs and job records)."""
        return {
            "center": [float(c) for c in self.center],
            "scale": float(self.scale),
            "rotation": self.rotation.tolist(),
            "convention": self.convention,
            "up": self.up,
        }


def up_rotation(up: str) -> np.ndarray:
    """The rotation that turns a frame with the given up axis into Z-up."""
    if up not in UP_AXES:
        raise GeometryError(INVALID_ARGUMENT, f"up must be one of {UP_AXES}, got {up!r}")
    return np.eye(3) if up == "z" else _Y_UP_TO_Z_UP.copy()


def training_normalization(v, up: str = "z", fill: float = 1.0) -> Normalization:
    """Centre each axis, scale the longest side to `fill`."""
    v = _checked(v)
    lo, hi = v.min(axis=0), v.max(axis=0)
    longest = float((hi - lo).max())
    if not longest > 0.0:
        raise GeometryError(DEGENERATE_MESH, "all vertices are at one point: nothing to scale")
    return Normalization((lo + hi) / 2.0, fill / longest, up_rotation(up), "training", up)


def demo_normalization(v, up: str = "z", fill: float = 1.0) -> Normalization:
    """One scalar min/max over every coordinate, as the published demo does."""
    v = _checked(v)
    lo, hi = float(v.min()), float(v.max())
    if not hi - lo > 0.0:
        raise GeometryError(DEGENERATE_MESH, "all vertices are at one point: nothing to scale")
    center = np.full(3, (lo + hi) / 2.0)
    return Normalization(center, fill / (hi - lo), up_rotation(up), "demo", up)


def corner_normalization(v, up: str = "z", fill: float = 1.0) -> Normalization:
    """Scale the longest side to `fill` and put the low corner (in the Z-up frame) at -0.5."""
    v = _checked(v)
    rotation = up_rotation(up)
    w = v @ rotation.T  # exact for a signed permutation
    lo, hi = w.min(axis=0), w.max(axis=0)
    longest = float((hi - lo).max())
    if not longest > 0.0:
        raise GeometryError(DEGENERATE_MESH, "all vertices are at one point: nothing to scale")
    # unit = (w - lo) * fill / longest - 0.5 = ((v - c) * fill / longest) @ R.T
    # with  c = (lo + longest / (2 fill)) @ R
    center = (lo + longest / (2.0 * fill)) @ rotation
    return Normalization(center, fill / longest, rotation, "corner", up)


_BUILDERS = {"training": training_normalization, "demo": demo_normalization, "corner": corner_normalization}


def normalize(v, convention: str = "training", up: str = "z", fill: float = 1.0):
    """-> (v_unit float32 [N,3], Normalization)."""
    if not 0.0 < fill <= 1.0:
        raise GeometryError(INVALID_ARGUMENT, f"fill must be in (0, 1], got {fill!r}")
    if convention in _BUILDERS:
        norm = _BUILDERS[convention](v, up, fill)
    else:
        raise GeometryError(
            INVALID_ARGUMENT, f"convention must be one of {CONVENTIONS}, got {convention!r}"
        )
    return norm.to_unit(v), norm


def _checked(v) -> np.ndarray:
    v = as_vertices(v)
    if len(v) == 0:
        raise GeometryError(EMPTY_MESH, "no vertices to normalise")
    check_finite(v)
    return v
