"""Surface voxelisation: a voxel is occupied iff a triangle touches it.

This is the rule of open3d's VoxelGrid.create_from_triangle_mesh_within_bounds, which the
reference uses with voxel size 1/R and bounds [-0.5, 0.5]^3: each triangle is tested against
the voxels of its candidate block floor(lo) .. floor(hi) (per axis, clipped to the grid) with
the exact separating-axis test for a triangle and a box (Akenine-Moller): a triangle misses a
box iff one of 13 axes separates them (3 box normals, the triangle normal, 9 edge x box-axis
cross products). Touching counts as overlap. A face lying exactly on a grid plane therefore
marks one layer, the one above it.

The work is one compiled loop over triangles (numba): per triangle, the columns of its block
along the normal's largest axis, per column the few voxels that the triangle's plane can
reach, each decided by the exact test. Work grows with the surface, not with the triangles'
bounding boxes, and no per-triangle arrays are allocated, so memory stays at the mesh itself.

Output: bool [R, R, R], dims (x, y, z) of a right-handed Z-up frame; voxel (i, j, k) has its
centre at ((i, j, k) + 0.5) / R - 0.5.
"""

import numba
import numpy as np
from scipy import ndimage

from .errors import INVALID_ARGUMENT, INVALID_MESH, GeometryError
from .normalize import normalize
from .validate import as_faces, as_vertices, check_finite, clean_mesh


def voxelize_surface(v_unit, f, resolution: int = 64, fill_interior: bool = False) -> np.ndarray:
    """Occupancy of the triangles' surface in the unit cube; parts outside are cut off."""
    resolution = _checked_resolution(resolution)
    v = as_vertices(v_unit)
    f = as_faces(f)
    if not np.isfinite(v).all():  # (the cheap test first: check_finite reduces per row)
        check_finite(v)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise GeometryError(INVALID_MESH, "face indices out of range")

    grid = np.zeros((resolution,) * 3, dtype=bool)
    if len(f):
        # Voxel units: voxel i spans [i, i + 1].
        coords = np.ascontiguousarray((v + 0.5) * resolution)
        _mark_surface(grid, coords, np.ascontiguousarray(f))
    if fill_interior:
        grid = fill_enclosed(grid)
    return grid


def fill_enclosed(occ: np.ndarray) -> np.ndarray:
    """Also occupy every empty voxel that cannot be reached from outside the grid.

    Reachability goes through face neighbours (6-connectivity), the strictest choice: a
    surface voxelisation is closed for it whenever the mesh is closed.
    """
    empty = ~occ
    labels, _ = ndimage.label(empty)  # default structure: face neighbours
    border = np.concatenate([
        labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
        labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel(),
    ])
    outside = np.zeros(labels.max() + 1, dtype=bool)
    outside[border] = True
    outside[0] = False  # label 0 is the occupied voxels themselves
    return occ | (empty & ~outside[labels])


def mesh_to_grid(v, f, convention: str = "training", up: str = "z", resolution: int = 64,
                 fill_interior: bool = False):
    """Clean, normalise and voxelise a mesh in its own coordinates: -> (grid, Normalization)."""
    v, f = clean_mesh(v, f)
    v_unit, norm = normalize(v, convention=convention, up=up)
    return voxelize_surface(v_unit, f, resolution, fill_interior), norm


def _checked_resolution(resolution) -> int:
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) \
            or not 1 <= resolution <= 1024:
        raise GeometryError(INVALID_ARGUMENT, f"resolution must be an int in [1, 1024], got {resolution!r}")
    return int(resolution)


# Ranges found by division are widened by this many voxels (plus a share of the
# coordinates' size) before the exact tests, so that rounding never drops a touched voxel.
_REACH_SLACK = 1e-6
_REACH_SLACK_RELATIVE = 1e-12


@numba.njit(cache=True, nogil=True)
def _mark_surface(grid, coords, faces):
    """Occupy the voxels of grid [R, R, R] that the triangles faces [M, 3] of coords [N, 3]
    (voxel units) touch.

    Per triangle, the separating axes (the normal, then unit d x edge j at 1 + 3 d + j) with
    the interval [lower, upper] into which a voxel centre's projection must fall; positions
    are offsets o from the centre of the block's first voxel (small numbers, so the products
    stay exact where coordinates lie on grid planes). The 3 box normals are left out: every
    voxel of the block lies within the triangle's bounding box.
    """
    res = grid.shape[0]
    rel = np.empty((3, 3))          # [corner, axis], relative to the first voxel's centre
    e = np.empty((3, 3))            # [edge, axis]: edge j runs from corner j to corner j + 1
    axes = np.zeros((10, 3))
    lower = np.empty(10)
    upper = np.empty(10)
    first = np.empty(3, np.int64)
    last = np.empty(3, np.int64)
    o = np.empty(3)
    for m in range(faces.shape[0]):
        i0, i1, i2 = faces[m, 0], faces[m, 1], faces[m, 2]
        outside = clipped = False
        size = 0.0
        for d in range(3):
            a, b, c = coords[i0, d], coords[i1, d], coords[i2, d]
            lo, hi = min(a, b, c), max(a, b, c)
            outside |= lo > res or hi < 0
            clipped |= lo < 0 or hi >= res
            # (clamped before the cast, so that far corners stay in range)
            first[d] = int(np.floor(min(max(lo, 0.0), res - 1.0)))
            last[d] = int(np.floor(min(max(hi, 0.0), res - 1.0)))
            size = max(size, abs(a), abs(b), abs(c))
            e[0, d], e[1, d], e[2, d] = b - a, c - b, a - c
            centre = first[d] + 0.5
            rel[0, d], rel[1, d], rel[2, d] = a - centre, b - centre, c - centre
        if outside:
            continue
        thin = (first[0] == last[0]) + (first[1] == last[1]) + (first[2] == last[2])
        if thin >= 2 and not clipped:
            # A block one voxel thick on two axes is a row, and the (connected) triangle
            # reaches every voxel of it along the third (not so if the grid cut it).
            for i in range(first[0], last[0] + 1):
                for j in range(first[1], last[1] + 1):
                    for k in range(first[2], last[2] + 1):
                        grid[i, j, k] = True
            continue
        axes[0, 0] = e[0, 1] * e[1, 2] - e[0, 2] * e[1, 1]
        axes[0, 1] = e[0, 2] * e[1, 0] - e[0, 0] * e[1, 2]
        axes[0, 2] = e[0, 0] * e[1, 1] - e[0, 1] * e[1, 0]
        _bounds(axes, lower, upper, 0, rel)
        for d in range(3):
            a, b = (d + 1) % 3, (d + 2) % 3
            for j in range(3):
                # unit d x edge j: -e_b on axis a, e_a on axis b (zero on d)
                k = 1 + 3 * d + j
                ca, cb = -e[j, b], e[j, a]
                axes[k, a], axes[k, b] = ca, cb
                q0 = rel[0, a] * ca + rel[0, b] * cb
                q1 = rel[1, a] * ca + rel[1, b] * cb
                q2 = rel[2, a] * ca + rel[2, b] * cb
                r = 0.5 * (abs(ca) + abs(cb))
                lower[k] = min(q0, q1, q2) - r
                upper[k] = max(q0, q1, q2) + r
        # Columns run along w, the normal's largest axis: the plane then crosses a column
        # within at most 3 voxels. In a row of constant u, the axes w x edge bound v, and
        # in a column the normal bounds w; each voxel then gets the remaining exact tests.
        w = 0
        if abs(axes[0, 1]) > abs(axes[0, 0]):
            w = 1
        if abs(axes[0, 2]) > max(abs(axes[0, 0]), abs(axes[0, 1])):
            w = 2
        u, v = (w + 1) % 3, (w + 2) % 3
        slack = _REACH_SLACK + _REACH_SLACK_RELATIVE * size
        for ou in range(last[u] - first[u] + 1):
            o[u] = ou
            v_lo, v_hi = _range_along(axes, lower, upper, 1 + 3 * w, 3, o, v,
                                      last[v] - first[v], slack)
            for ov in range(v_lo, v_hi + 1):
                o[v] = ov
                if not _passes(axes, lower, upper, 1 + 3 * w, 3, o):
                    continue
                w_lo, w_hi = _range_along(axes, lower, upper, 0, 1, o, w,
                                          last[w] - first[w], slack)
                for ow in range(w_lo, w_hi + 1):
                    o[w] = ow
                    if _passes(axes, lower, upper, 0, 1, o) \
                            and _passes(axes, lower, upper, 1 + 3 * u, 3, o) \
                            and _passes(axes, lower, upper, 1 + 3 * v, 3, o):
                        grid[first[0] + int(o[0]), first[1] + int(o[1]), first[2] + int(o[2])] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _bounds(axes, lower, upper, k, rel):
    """[lower, upper] of axis k: the triangle's projection widened by the box's half extent."""
    q0 = rel[0, 0] * axes[k, 0] + rel[0, 1] * axes[k, 1] + rel[0, 2] * axes[k, 2]
    q1 = rel[1, 0] * axes[k, 0] + rel[1, 1] * axes[k, 1] + rel[1, 2] * axes[k, 2]
    q2 = rel[2, 0] * axes[k, 0] + rel[2, 1] * axes[k, 1] + rel[2, 2] * axes[k, 2]
    r = 0.5 * (abs(axes[k, 0]) + abs(axes[k, 1]) + abs(axes[k, 2]))
    lower[k] = min(q0, q1, q2) - r
    upper[k] = max(q0, q1, q2) + r


@numba.njit(cache=True, nogil=True, inline="always")
def _passes(axes, lower, upper, start, count, o):
    """Whether offset o projects into [lower, upper] on axes start .. start + count - 1."""
    for k in range(start, start + count):
        q = o[0] * axes[k, 0] + o[1] * axes[k, 1] + o[2] * axes[k, 2]
        if q < lower[k] or q > upper[k]:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _range_along(axes, lower, upper, start, count, o, free, top, slack):
    """The offsets 0 .. top along axis `free` whose projections on axes start ..
    start + count - 1 can fall into [lower, upper], o's other coordinates given:
    -> (first, last)."""
    lo, hi = 0.0, float(top)
    for k in range(start, start + count):
        a = axes[k, free]
        rest = 0.0
        for d in range(3):
            if d != free:
                rest += o[d] * axes[k, d]
        if a != 0.0:
            x, y = (lower[k] - rest) / a, (upper[k] - rest) / a
            if x > y:
                x, y = y, x
            lo = max(lo, np.ceil(x - slack))
            hi = min(hi, np.floor(y + slack))
        elif rest < lower[k] - slack or rest > upper[k] + slack:
            hi = lo - 1.0
    return int(lo), int(hi)
