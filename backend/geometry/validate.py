"""Check and clean a triangle mesh before anything else touches it.

clean_mesh(v, f) -> (v float32 [N,3], f int32 [M,3]) or GeometryError. It never edits its
inputs. It drops what carries no surface (faces that repeat a vertex or have zero area) and
the vertices no face uses; everything else is kept as it is (soups, open surfaces and
duplicate vertices are fine for voxelisation).
"""

import numpy as np

from .errors import EMPTY_MESH, INVALID_MESH, NON_FINITE, GeometryError

# A face is "zero area" when its area is below this fraction of the squared mesh size.
# Relative, so the same mesh at 1e-4 or 1e4 scale loses exactly the same faces.
_RELATIVE_AREA_EPS = 1e-14


def as_vertices(v) -> np.ndarray:
    """float64 [N,3] copy-free view when possible; GeometryError when the shape is wrong."""
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise GeometryError(INVALID_MESH, f"vertices are not numeric: {exc}") from None
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise GeometryError(INVALID_MESH, f"vertices must have shape [N, 3], got {list(arr.shape)}")
    return arr


def as_faces(f) -> np.ndarray:
    """int64 [M,3]; GeometryError for a wrong shape or non-integer indices."""
    arr = np.asarray(f)
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise GeometryError(INVALID_MESH, f"faces must have shape [M, 3], got {list(arr.shape)}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        # Accept floats that hold whole numbers (some loaders hand those out); refuse the rest.
        if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) \
                or not np.array_equal(arr, np.round(arr)):
            raise GeometryError(INVALID_MESH, "face indices must be integers")
    return arr.astype(np.int64, copy=False)


def check_finite(v: np.ndarray) -> None:
    bad = ~np.isfinite(v).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise GeometryError(
            NON_FINITE,
            f"{int(bad.sum())} vertices have NaN or infinite coordinates (first: vertex {first})",
        )


def clean_mesh(v, f):
    """Validate and clean; returns (float32 vertices, int32 faces), both new arrays."""
    v = as_vertices(v)
    f = as_faces(f)
    if len(v) == 0 or len(f) == 0:
        raise GeometryError(EMPTY_MESH, f"mesh is empty ({len(v)} vertices, {len(f)} faces)")
    if f.min() < 0 or f.max() >= len(v):
        raise GeometryError(
            INVALID_MESH,
            f"face indices must lie in [0, {len(v) - 1}], found {int(f.min())}..{int(f.max())}",
        )
    check_finite(v)

    # Faces that name the same vertex twice are lines or points: no surface.
    distinct = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    f = f[distinct]
    if len(f):
        size = float(np.ptp(v[f.ravel()], axis=0).max())
        a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
        twice_area = np.linalg.norm(np.cross(b - a, c - a), axis=1)
        f = f[twice_area > 2.0 * _RELATIVE_AREA_EPS * size * size]
    if len(f) == 0:
        raise GeometryError(EMPTY_MESH, "mesh has no face with a non-zero area")

    # Keep only the vertices the remaining faces use, in their original order.
    used = np.zeros(len(v), dtype=bool)
    used[f.ravel()] = True
    new_index = np.cumsum(used) - 1
    return v[used].astype(np.float32), new_index[f].astype(np.int32)
