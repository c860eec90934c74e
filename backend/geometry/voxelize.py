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
        if np.abs(coords).max() > _MAX_COORDINATE:
            raise GeometryError(INVALID_MESH, f"coordinates beyond {_MAX_COORDINATE:g} voxels from the grid "
                                              "cannot be voxelised exactly (normalise the mesh first)")
        _mark_surface(grid, coords, np.ascontiguousarray(f))
    if fill_interior:
        grid = fill_enclosed(grid)
    return grid


def pooled(occ: np.ndarray, factor: int) -> np.ndarray:
    """bool [..., R, R, R] -> bool [..., R/f, R/f, R/f], a cell set when any voxel in it is."""
    *lead, r, _, _ = occ.shape
    n = r // factor
    return np.asarray(occ, bool).reshape(*lead, n, factor, n, factor, n, factor).any(axis=(-5, -3, -1))


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


# Coordinates (voxel units) beyond this are refused: the separating-axis products grow with
# their square and lose the grid's precision (measured: triangles reaching 1e12 voxels out
# still match the reference loop voxel for voxel, at 1e15 they do not; far beyond, inf/NaN).
_MAX_COORDINATE = 1e12
# Ranges solved from the separating axes are widened by this many voxels (plus a share of the
# coordinates' size) before the exact tests, so that rounding never drops a touched voxel.
_REACH_SLACK = 1e-6
_REACH_SLACK_RELATIVE = 1e-12


@numba.njit(cache=True, nogil=True)
def _mark_surface(grid, coords, faces):
    """Occupy the voxels of grid [R, R, R] that the triangles faces [M, 3] of coords [N, 3]
    (voxel units) touch.

    Positions are offsets from the centre of the block's first voxel (small numbers, so
    products stay exact where coordinates lie on grid planes). Per triangle, the separating
    axes in the frame (u, v, w), w the normal's largest axis, with the interval [lower,
    upper] into which a voxel centre's projection must fall. The 3 box normals are left out:
    every voxel of the block lies within the triangle's bounding box.
    """
    res = grid.shape[0]
    flat = grid.reshape(-1)
    stride = np.array([res * res, res, 1])
    rel = np.empty((3, 3))      # [corner, axis]: corners relative to the first voxel's centre
    e = np.empty((3, 3))        # [edge, axis]: edge j runs from corner j to corner j + 1
    first = np.empty(3, np.int64)
    last = np.empty(3, np.int64)
    # Rows: 0 the normal, 1 + j w x edge j, 4 + j u x edge j, 7 + j v x edge j. Columns: the
    # components on u, v, w, then lower and upper. (Each edge axis is zero on its own unit
    # axis, and those entries are never written.)
    axes = np.zeros((10, 5))
    inv_v = np.empty(3)
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
        base = first[0] * stride[0] + first[1] * stride[1] + first[2]
        if (first[0] == last[0]) + (first[1] == last[1]) + (first[2] == last[2]) >= 2 \
                and not clipped:
            # A block one voxel thick on two axes is a row, and the (connected) triangle
            # reaches every voxel of it along the third (not so where the grid cut it).
            for i in range(last[0] - first[0] + 1):
                for j in range(last[1] - first[1] + 1):
                    for k in range(last[2] - first[2] + 1):
                        flat[base + i * stride[0] + j * stride[1] + k] = True
            continue

        n0 = e[0, 1] * e[1, 2] - e[0, 2] * e[1, 1]
        n1 = e[0, 2] * e[1, 0] - e[0, 0] * e[1, 2]
        n2 = e[0, 0] * e[1, 1] - e[0, 1] * e[1, 0]
        w = 0
        if abs(n1) > abs(n0):
            w = 1
        if abs(n2) > max(abs(n0), abs(n1)):
            w = 2
        u, v = (w + 1) % 3, (w + 2) % 3
        axes[0, 0], axes[0, 1], axes[0, 2] = (n0, n1, n2)[u], (n0, n1, n2)[v], (n0, n1, n2)[w]
        for j in range(3):
            eu, ev, ew = e[j, u], e[j, v], e[j, w]
            axes[1 + j, 0], axes[1 + j, 1] = -ev, eu
            axes[4 + j, 1], axes[4 + j, 2] = -ew, ev
            axes[7 + j, 2], axes[7 + j, 0] = -eu, ew
        for k in range(10):
            au, av, aw = axes[k, 0], axes[k, 1], axes[k, 2]
            q0 = rel[0, u] * au + rel[0, v] * av + rel[0, w] * aw
            q1 = rel[1, u] * au + rel[1, v] * av + rel[1, w] * aw
            q2 = rel[2, u] * au + rel[2, v] * av + rel[2, w] * aw
            r = 0.5 * (abs(au) + abs(av) + abs(aw))
            axes[k, 3] = min(q0, q1, q2) - r
            axes[k, 4] = max(q0, q1, q2) + r

        # Rows of constant u: the axes w x edge bound v (the triangle's shadow along w);
        # columns: the normal bounds w to at most 3 voxels; each voxel then gets the
        # remaining exact tests. Ranges are worked out only where they can save a test.
        du, dv, dw = last[u] - first[u], last[v] - first[v], last[w] - first[w]
        su, sv, sw = stride[u], stride[v], stride[w]
        slack = _REACH_SLACK + _REACH_SLACK_RELATIVE * size
        nu, nv, nw, n_lower, n_upper = axes[0, 0], axes[0, 1], axes[0, 2], axes[0, 3], axes[0, 4]
        inv_nw = _reciprocal(nw)
        for k in range(1, 4):
            inv_v[k - 1] = _reciprocal(axes[k, 1])
        for ou in range(du + 1):
            fu = float(ou)
            v_lo, v_hi = 0.0, float(dv)
            if dv >= 2:
                for k in range(1, 4):
                    v_lo, v_hi = _narrowed(v_lo, v_hi, inv_v[k - 1], fu * axes[k, 0],
                                           axes[k, 3], axes[k, 4], slack)
            if v_hi < v_lo:     # (then the bounds may be huge: no cast)
                continue
            for ov in range(int(v_lo), int(v_hi) + 1):
                fv = float(ov)
                if not _passes(axes, 1, 4, fu, fv, 0.0):
                    continue
                rest = fu * nu + fv * nv
                w_lo, w_hi = 0.0, float(dw)
                if dw >= 2:
                    w_lo, w_hi = _narrowed(w_lo, w_hi, inv_nw, rest, n_lower, n_upper, slack)
                if w_hi < w_lo:
                    continue
                for ow in range(int(w_lo), int(w_hi) + 1):
                    fw = float(ow)
                    q = rest + fw * nw
                    if n_lower <= q <= n_upper and _passes(axes, 4, 10, fu, fv, fw):
                        flat[base + ou * su + ov * sv + ow * sw] = True


@numba.njit(cache=True, nogil=True, inline="always")
def _passes(axes, start, stop, fu, fv, fw):
    """Whether the offset (fu, fv, fw) projects into [lower, upper] on axes start .. stop - 1."""
    for k in range(start, stop):
        q = fu * axes[k, 0] + fv * axes[k, 1] + fw * axes[k, 2]
        if q < axes[k, 3] or q > axes[k, 4]:
            return False
    return True


@numba.njit(cache=True, nogil=True, inline="always")
def _reciprocal(a):
    """1 / a, or 0 where that is not finite (a of 0 or subnormal: a x is then below the
    slack for any x in the grid)."""
    if a == 0.0:
        return 0.0
    inv = 1.0 / a
    return inv if abs(inv) < np.inf else 0.0


@numba.njit(cache=True, nogil=True, inline="always")
def _narrowed(lo, hi, inv_a, rest, lower, upper, slack):
    """The range lo .. hi (whole numbers as floats) narrowed to the x with
    lower <= rest + a x <= upper, widened by slack, given 1 / a (0 for a = 0):
    -> (lo, hi), empty when hi < lo."""
    if inv_a != 0.0:
        x, y = (lower - rest) * inv_a, (upper - rest) * inv_a
        if x > y:
            x, y = y, x
        lo = max(lo, np.ceil(x - slack))
        hi = min(hi, np.floor(y + slack))
    elif rest < lower - slack or rest > upper + slack:
        hi = lo - 1.0
    return lo, hi
