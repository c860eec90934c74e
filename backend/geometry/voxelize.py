"""Surface voxelisation: a voxel is occupied iff a triangle touches it.

This is the rule of open3d's VoxelGrid.create_from_triangle_mesh_within_bounds, which the
reference uses with voxel size 1/R and bounds [-0.5, 0.5]^3, decided with the exact
separating-axis test for a triangle and a box (Akenine-Moller): a triangle misses a box iff
one of 13 axes separates them (3 box normals, the triangle normal, 9 edge x box-axis cross
products). Touching counts as overlap.

A tiny mesh (few triangles, few candidate voxels in all) takes one brute-force pass: every
voxel of every block against the separating axes at once (fewest numpy calls); a mesh of
few triangles but more candidates takes the column pass below for all of them. Otherwise,
vectorised over triangles, with work in proportion to the surface, not its bounding boxes:
  - a block (the voxels a triangle's bounding box touches) one voxel thick on two axes is
    a row that the triangle touches everywhere;
  - a triangle whose block is at most 2 voxels wide on every axis is tested against the 8
    octants around the block's centre point in one go (the triangle lies inside the block,
    so octant = voxel); a block one voxel thick on an axis is a 2D question in the others.
    When few triangles are small, the column pass takes them instead;
  - a bigger triangle is handled one voxel column at a time: the columns a row of the
    block reaches form one run (2D test), and so do the voxels it touches in a column, whose
    ends follow from the separating axes in closed form. Where many triangles are big, a
    block one voxel thick on an axis takes its columns along it and needs the 2D test only.
    Repeated big triangles (the same three vertices) are marked once;
  - a triangle that crosses the grid's border is tested against each voxel of its clipped
    block (rare: only for meshes that do not fit the unit cube).
Everything runs in chunks that bound memory. Per-triangle values are contiguous rows of
[values, n] arrays (numpy is several times slower on strided or broadcast inner axes) that
move from triangles to rows to columns with one take each; every take() uses mode="clip"
(the indices are valid by construction, and numpy's bounds check, with out= a buffered
copy, costs more than the gather); the biggest work arrays reuse per-thread buffers.

Output: bool [R, R, R], dims (x, y, z) of a right-handed Z-up frame; voxel (i, j, k) has its
centre at ((i, j, k) + 0.5) / R - 0.5.
"""

import math
import threading

import numpy as np
from scipy import ndimage

from .errors import INVALID_ARGUMENT, INVALID_MESH, GeometryError
from .normalize import normalize
from .validate import as_faces, as_vertices, check_finite, clean_mesh

# Triangles handled at once (bounds the corner arrays of 2-million-triangle meshes).
_TRIANGLE_CHUNK = 500_000
# Upper bound on the floats of one [triangles x 13 axes x block voxels] test batch (~64 MB).
_MAX_BATCH_ELEMENTS = 8_000_000


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
    if len(f) == 0:
        return grid
    # Voxel units (voxel i spans [i, i + 1]). The triangle arrays below are [3 coordinates,
    # 3 corners, M triangles] and every per-triangle value is a contiguous row: numpy is
    # several times slower on strided or broadcast inner axes.
    coords = np.ascontiguousarray(((v + 0.5) * resolution).T)
    for start in range(0, len(f), _TRIANGLE_CHUNK):
        faces = f[start:start + _TRIANGLE_CHUNK].T
        tri = coords.take(faces, axis=1, out=_scratch("tri", (3,) + faces.shape), mode="clip")
        _mark_triangles(grid, tri, coords, faces)
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


def _mark_triangles(grid: np.ndarray, tri: np.ndarray, coords: np.ndarray, faces: np.ndarray) -> None:
    """Occupy every voxel touched by a triangle of `tri` [3 coords, 3 corners, M] (voxel units),
    the corners coords [3, N] of faces [3, M]."""
    res = grid.shape[0]
    lo = _corner_min(tri, _scratch("lo", tri.shape[::2]))   # [3, M]
    hi = _corner_max(tri, _scratch("hi", tri.shape[::2]))
    inside = (lo <= res) & (hi >= 0)
    touches_grid = inside[0] & inside[1] & inside[2]
    if not touches_grid.all():
        tri, lo, hi, faces = _pick((tri, lo, hi, faces), touches_grid)
    # Candidate voxels per axis: floor(lo) .. floor(hi), as open3d does. Voxel i spans
    # [i, i + 1], touching counts, but a triangle never marks the layer that lies wholly
    # below its lowest point, so a face exactly on a grid plane marks one layer, not two.
    # (int32: casting float64 to int64 is several times slower, and flat indices < 2^30;
    # clamped first to one voxel beyond the grid, which keeps far-off corners in range.)
    # (np.minimum/np.maximum: np.clip's Python wrapper costs more than the work on small meshes.)
    first = np.floor(np.maximum(np.minimum(lo, res, out=lo), -1, out=lo)).astype(np.int32)
    last = np.floor(np.maximum(np.minimum(hi, res, out=hi), -1, out=hi)).astype(np.int32)
    if tri.shape[2] <= _MAX_BRUTE_TRIANGLES:
        # The block clipped to the grid (a face on its far side, at res, marks the last layer).
        first_in = np.minimum(np.maximum(first, 0), res - 1)
        last_in = np.minimum(np.maximum(last, 0), res - 1)
        dims = last_in - first_in + 1
        candidates = dims[0] * dims[1] * dims[2]
        if candidates.sum() <= _MAX_BRUTE_CANDIDATES:
            _mark_brute(grid, tri, first_in, dims, candidates)
            return
    out = (first < 0) | (last > res - 1)
    clipped = out[0] | out[1] | out[2]
    if clipped.any():
        _mark_clipped(grid, *_pick((tri, first, last), clipped))
        keep = ~clipped
        tri, first, last, faces = _pick((tri, first, last, faces), keep)
    if tri.shape[2] <= _MAX_BRUTE_TRIANGLES:
        # Few triangles: the column pass for all of them (fewest numpy calls).
        _mark_columns(grid, tri, first, last)
        return
    wide = last - first
    fits = wide <= 1
    small = fits[0] & fits[1] & fits[2]
    small_count = np.count_nonzero(small)
    if small_count == len(small):  # no copies in the common cases: all small, or all big
        _mark_small(grid, tri, first, last)
        return
    if small_count < _MIN_SMALL_PASS:
        # Few small blocks: the column pass takes them too (cheaper than a pass of their own).
        small[:] = False
    # A block one voxel thick on two axes is a row, and the triangle's projection on the
    # third axis is an interval: it touches every voxel of the row (small rows are marked
    # with the small blocks).
    flat = wide == 0
    row = (flat[0] & (flat[1] | flat[2]) | flat[1] & flat[2]) & ~small
    if row.any():
        rows = np.flatnonzero(row)
        along = wide.take(rows, axis=1, mode="clip")
        stride = np.where(along[0] > 0, res * res, np.where(along[1] > 0, res, 1))
        start = first.take(rows, axis=1, mode="clip")
        _mark_runs(grid.reshape(-1), (start[0] * res + start[1]) * res + start[2],
                   along[0] + along[1] + along[2] + 1, stride)
    big = ~small & ~row
    if small.any():
        _mark_small(grid, *_pick((tri, first, last), small))
    if not big.any():
        return
    if not big.all():
        tri, first, last, faces = _pick((tri, first, last, faces), big)
    # Big triangles cost the most: each distinct one once (CAD files repeat faces).
    distinct = _distinct_faces(faces, coords.shape[1])
    if distinct is not None:
        tri = coords.take(distinct, axis=1, mode="clip")
        first = np.floor(_corner_min(tri, np.empty(tri.shape[::2]))).astype(np.int32)
        last = np.floor(_corner_max(tri, np.empty(tri.shape[::2]))).astype(np.int32)
    _mark_columns(grid, tri, first, last)


def _distinct_faces(faces: np.ndarray, vertex_count: int):
    """faces [3, M] without repeats (the same three corners in any order; winding does not
    matter here), or None when fewer than 1 in _REPEATS_WORTH_DROPPING repeat."""
    if vertex_count >= 1 << 21:  # (keys must fit in int64)
        return None
    n = np.int64(vertex_count)
    a, b, c = faces.astype(np.int64)
    low = np.minimum(np.minimum(a, b), c)
    high = np.maximum(np.maximum(a, b), c)
    key = np.sort((low * n + (a + b + c - low - high)) * n + high)
    new = np.flatnonzero(np.diff(key, prepend=-1))
    if len(new) * _REPEATS_WORTH_DROPPING > len(key) * (_REPEATS_WORTH_DROPPING - 1):
        return None
    key = key.take(new, mode="clip")
    return np.stack([key // (n * n), key // n % n, key % n])


def _pick(arrays, mask):
    """The triangles where mask [M] is set, from arrays [..., M] with triangles on the last axis
    (take is several times faster than a boolean index)."""
    index = np.flatnonzero(mask)
    return [a.take(index, axis=-1, mode="clip") for a in arrays]


def _corner_min(tri, out):
    return np.minimum(np.minimum(tri[:, 0], tri[:, 1], out=out), tri[:, 2], out=out)


def _corner_max(tri, out):
    return np.maximum(np.maximum(tri[:, 0], tri[:, 1], out=out), tri[:, 2], out=out)


def _mark_small(grid: np.ndarray, tri: np.ndarray, first: np.ndarray, last: np.ndarray) -> None:
    """Triangles inside the grid whose candidate block is at most 2x2x2 voxels."""
    if tri.shape[-1] == 0:
        return
    res = grid.shape[0]
    flat = grid.reshape(-1)
    base = (first[0] * res + first[1]) * res + first[2]
    wide = last - first  # 0 or 1 per axis
    offsets = (_OCTANT_BITS[:, 0] * res + _OCTANT_BITS[:, 1]) * res + _OCTANT_BITS[:, 2]
    # The block's octant bits (4 wide_x + 2 wide_y + wide_z) and from them its kind: a row
    # (4), one voxel thick on axis d (d = 0, 1, 2) or 2 wide on every axis (3).
    code = wide[0] * 4 + wide[1] * 2 + wide[2]
    kind = _BLOCK_KIND.take(code, mode="clip")
    order = np.argsort(kind, kind="stable")
    ends = np.cumsum(np.bincount(kind, minlength=5))

    # A block one voxel thick on two axes is a row, and the triangle's projection on the
    # third axis is an interval: it touches every voxel of the row.
    rows = order[ends[3]:]
    flat[base.take(rows, mode="clip")] = True
    flat[(base + offsets.take(code, mode="clip")).take(rows, mode="clip")] = True

    # The rest, by the octants around the block's centre point.
    pick = order[:ends[3]]
    t = tri.take(pick, axis=2, out=_scratch("small", (3, 3, len(pick))), mode="clip")
    t -= (first.take(pick, axis=1, mode="clip") + 1)[:, None, :]  # corners relative to the split
    base = base.take(pick, mode="clip")
    for group in range(4):
        a, b = (ends[group - 1] if group else 0), ends[group]
        if b == a:
            continue
        touched = _octants_touched(t[:, :, a:b], None if group == 3 else group)
        hit = np.unpackbits(touched[:, None], axis=1, bitorder="little").view(bool)  # [T, 8]
        corners = (base[a:b, None] + offsets[None, :]).ravel()
        flat[corners.take(np.flatnonzero(hit), mode="clip")] = True


def _octants_touched(t: np.ndarray, thin_axis=None) -> np.ndarray:
    """Which of the 8 closed octants around the origin each triangle touches: uint8 bits.

    t: [3 coords, 3 corners, T], corners relative to the split point. Separating-axis test
    between a triangle and an octant (a box unbounded away from the origin): axis a
    separates octant s when the octant projects onto [0, inf) (s_i a_i >= 0 on every axis)
    and the triangle wholly below 0, or the mirror case. The 13 axes are those of the box
    test: 3 coordinate axes, the triangle normal, 9 coordinate axis x edge products.

    The coordinate axes never separate a block 2 voxels wide on every axis (the triangle
    reaches both sides of the split). thin_axis d: every block is one voxel thick on axis
    d, 2 wide on the others; the triangle lies inside that voxel layer, below the split, so
    the upper octants are out and the lower ones are decided in the plane of the other two
    axes, by the 3 axes d x edge alone.
    """
    e = t.take(_NEXT, axis=1, mode="clip") - t       # [3, 3, T]: edge m from corner m to m + 1
    opposite = t.take(_OPPOSITE, axis=1, mode="clip")  # the corner not on edge m
    if thin_axis is not None:
        return ~(_POSITIVE_OCTANTS[13 + _SIGN_WEIGHT[thin_axis]] | _edge_axes(t, e, opposite, thin_axis))

    # Triangle normal (e0 x e1): every corner projects to the same value q.
    (ax, ay, az), (bx, by, bz) = e[:, 0], e[:, 1]
    normal = (ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx)
    q = normal[0] * t[0, 0] + normal[1] * t[1, 0] + normal[2] * t[2, 0]
    code = _sign_code(normal)
    separated = _POSITIVE_OCTANTS[code] * (q < 0) | _NEGATIVE_OCTANTS[code] * (q > 0)
    for d in range(3):
        separated |= _edge_axes(t, e, opposite, d)
    return ~separated


def _edge_axes(t, e, opposite, d) -> np.ndarray:
    """The octants that the 3 axes d x edge separate from each triangle: uint8 bits [T]."""
    # d x edge m has component -e_b on axis a and e_a on axis b, (d, a, b) cyclic.
    a, b = (d + 1) % 3, (d + 2) % 3
    comp = [None, None, None]          # None: a zero component
    comp[a], comp[b] = -e[b], e[a]                                     # [3 edges, T]
    q1 = comp[a] * t[a] + comp[b] * t[b]
    q2 = comp[a] * opposite[a] + comp[b] * opposite[b]
    code = _sign_code(comp)
    bits = (_POSITIVE_OCTANTS[code] * ((q1 < 0) & (q2 < 0))
            | _NEGATIVE_OCTANTS[code] * ((q1 > 0) & (q2 > 0)))
    return bits[0] | bits[1] | bits[2]


def _sign_code(components) -> np.ndarray:
    """9 (sx + 1) + 3 (sy + 1) + (sz + 1) for the signs of an axis's three components."""
    # Comparisons, not np.sign: several times faster, and the same codes.
    code = None
    for weight, c in zip(_SIGN_WEIGHT, components):
        if c is None:
            continue
        term = (c > 0).view(np.int8) - (c < 0).view(np.int8)
        if weight != 1:
            term *= np.int8(weight)
        code = term if code is None else code + term
    return code + np.int8(13)


def _mark_columns(grid, tri, first, last) -> None:
    """Triangles inside the grid with a bigger block, one voxel column at a time.

    Columns run along the block's longest axis w (the fewest columns), rows along the
    shorter of the other two, u, and v is the third. The 3 separating axes w x edge ignore
    w: they decide which columns of a row the triangle reaches (the 2D test of the
    projected triangle against the column's cell), one run of v per row. In a column the
    touched voxels form one run (the triangle's part over the column is convex), bounded by
    the block's range, the normal and the 6 axes u x edge and v x edge, each a linear
    inequality in w. An axis along u or v repeats the candidate-range test and is left out;
    a normal with no w component is covered by the 2D tests. A block one voxel thick on
    some axis (when enough triangles have one) takes its columns along that axis instead:
    the 2D test alone decides them. All in coordinates relative to the block's first voxel
    centre, so grid-aligned geometry is computed exactly; elsewhere runs are widened by
    _TOUCH_TOLERANCE against rounding.
    """
    res, count = grid.shape[0], tri.shape[2]
    dims = last - first + 1
    # A block one voxel thick on some axis: columns along it hold one voxel each (the
    # triangle lies inside that layer), so the 2D row test alone decides them, and a row's
    # columns are one run of voxels. Worth a second pass only for enough triangles: taken
    # like the others, they are as exact.
    # (Comparisons: argmin and argmax across rows are very slow in numpy.)
    dx, dy, dz = dims
    thin = np.where((dx <= dy) & (dx <= dz), 0, np.where(dy <= dz, 1, 2))
    longest = np.where((dx >= dy) & (dx >= dz), 0, np.where(dy >= dz, 1, 2))
    layer = np.minimum(np.minimum(dx, dy), dz) == 1
    if count < _MIN_LAYER_PASS:
        layer[:] = False
    w = np.where(layer, thin, longest)
    # Row axis u: the shorter of the other two; v the third.
    after, before = (w + 1) % 3, (w + 2) % 3
    cols = np.arange(count)
    after_is_u = dims[after, cols] <= dims[before, cols]
    order = np.stack([np.where(after_is_u, after, before), np.where(after_is_u, before, after), w])
    # Layer triangles first, and every triangle's coordinates in u/v/w order: one gather.
    pick = np.argsort(~layer, kind="stable")
    order = order.take(pick, axis=1, mode="clip")
    index = _scratch("index", (3, 3, count), np.intp)
    np.add((order * 3 * count)[:, None, :], (np.arange(3) * count)[None, :, None], out=index)
    index += pick
    rel = tri.take(index, out=_scratch("rel", (3, 3, count)), mode="clip")  # [u/v/w, corner, T]
    rel -= (first.take(order * count + pick, mode="clip") + 0.5)[:, None, :]
    dims = dims.take(order * count + pick, mode="clip")
    strides = np.array([res * res, res, 1]).take(order, mode="clip")              # [3, T]
    base = ((first[0] * res + first[1]) * res + first[2]).take(pick, mode="clip")
    layers = int(layer.sum())
    for a, b, in_layer in ((0, layers, True), (layers, count, False)):
        # Chunks of triangles with a bounded number of candidate columns.
        cost = np.cumsum(dims[0, a:b] * dims[1, a:b])
        starts = a + np.searchsorted(cost, np.arange(0, cost[-1], _MAX_COLUMNS), side="right") \
            if b > a else []
        for lo, hi in zip(starts, np.append(starts[1:], b)):
            if hi > lo:
                _mark_column_block(grid.reshape(-1), rel[:, :, lo:hi], dims[:, lo:hi],
                                   base[lo:hi], strides[:, lo:hi], in_layer)


def _w_bounds(au, av, aw, q1, q2):
    """The run an axis (a_u, a_v, a_w) allows in column (iu, iv), as
    lo + su iu + sv iv <= iw <= hi + su iu + sv iv: -> (lo, hi, su, sv), each [T, k].
    The triangle projects to [min q, max q], the box at offset c to a.c +- r. An axis
    with a_w = 0 gives no bound: u x edge and v x edge then lie along v or u (they repeat
    the candidate range), and such a normal is parallel to one of the 2D axes w x edge."""
    r = 0.5 * (np.abs(au) + np.abs(av) + np.abs(aw))
    low, high = np.minimum(q1, q2) - r, np.maximum(q1, q2) + r
    level = aw == 0
    inv = 1.0 / (aw + level)             # (any finite value where a_w = 0)
    low *= inv
    high *= inv
    lo, hi = np.minimum(low, high), np.maximum(low, high)    # dividing by a_w < 0 swaps
    np.copyto(lo, -np.inf, where=level)
    np.copyto(hi, np.inf, where=level)
    free = ~level
    su, sv = -au * inv * free, -av * inv * free
    return lo, hi, su, sv


def _edge_w_bounds(a_side, aw, q1, q2):
    """_w_bounds for the axes u x edge = (0, a_side, a_w) and v x edge = (a_side, 0, a_w),
    the side component being the one that stays: -> (lo, hi, slope on it), each [3, T]."""
    r = 0.5 * (np.abs(a_side) + np.abs(aw))
    low, high = np.minimum(q1, q2) - r, np.maximum(q1, q2) + r
    level = aw == 0
    inv = 1.0 / (aw + level)             # (any finite value where a_w = 0)
    low *= inv
    high *= inv
    lo, hi = np.minimum(low, high), np.maximum(low, high)    # dividing by a_w < 0 swaps
    np.copyto(lo, -np.inf, where=level)
    np.copyto(hi, np.inf, where=level)
    return lo, hi, -a_side * inv * ~level


def _interval(x1, x2, free, empty=None):
    """[min, max] of two bounds (dividing by a negative number swaps them); no bound
    (-inf, inf) where `free`, and an empty one (inf, -inf) where `empty` (unless free)."""
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    if empty is not None:
        np.copyto(lo, np.inf, where=empty)
        np.copyto(hi, -np.inf, where=empty)
    np.copyto(lo, -np.inf, where=free)
    np.copyto(hi, np.inf, where=free)
    return lo, hi


def _max3(x):
    return np.maximum(np.maximum(x[0], x[1]), x[2])


def _min3(x):
    return np.minimum(np.minimum(x[0], x[1]), x[2])


def _mark_column_block(flat, rel, dims, base, strides, layer=False) -> None:
    """Mark the voxels of triangles rel [u/v/w, corner, T] (relative to their block's first
    voxel centre; block dims [3, T], flat index of the first voxel base [T], flat index
    steps along u, v, w strides [3, T]). layer: every block is one voxel thick along w.

    Values move from triangles to rows to columns as [values, n] matrices, one take each,
    and all arithmetic runs on contiguous rows (flat indices ride along as exact floats)."""
    du, dv, dw = dims
    eu, ev, ew = rel.take(_NEXT, axis=1, mode="clip") - rel   # [3 edges, T]: edge m from corner m
    ou, ov, ow = rel.take(_OPPOSITE, axis=1, mode="clip")     # the corner not on edge m
    ru, rv, rw = rel
    tol = _TOUCH_TOLERANCE

    # Rows: axis w x edge = (-e_v, e_u, 0) bounds e_u iv - e_v iu to [min q - r, max q + r].
    q1, q2 = -ev * ru + eu * rv, -ev * ou + eu * ov
    r = 0.5 * (np.abs(eu) + np.abs(ev))
    qlo, qhi = np.minimum(q1, q2), np.maximum(q1, q2)
    level = eu == 0
    inv = 1.0 / (eu + level)             # (any finite value where e_u = 0)
    slope = ev * inv * ~level
    touch_lo, touch_hi = _interval((qlo - r) * inv, (qhi + r) * inv, level)
    touch_lo -= tol
    touch_hi += tol
    owner = np.repeat(np.arange(len(du)), du)
    iu = (np.arange(len(owner)) - np.repeat(np.cumsum(du) - du, du)).astype(np.float64)
    if layer:
        t = np.concatenate([slope, touch_lo, touch_hi, (dv - 1)[None], base[None],
                            strides]).take(owner, axis=1, mode="clip")          # [14, rows]
        start, stop = _touched_columns(t, iu)
        flat_start = t[10] + iu * t[11] + start * t[12]
        _mark_runs(flat, flat_start.astype(np.int32), (stop - start + 1).astype(np.int32),
                   t[12].astype(np.int32))
        return

    # A column's run: lo + su iu + sv iv <= iw <= hi + su iu + sv iv for the normal and the
    # axes u x edge (su = 0) and v x edge (sv = 0), and the block's range 0 .. dw - 1.
    nu = ev[0] * ew[1] - ew[0] * ev[1]
    nv = ew[0] * eu[1] - eu[0] * ew[1]
    nw = eu[0] * ev[1] - ev[0] * eu[1]
    qn = (nu * ru[0] + nv * rv[0] + nw * rw[0])[None]
    n_lo, n_hi, n_su, n_sv = _w_bounds(nu[None], nv[None], nw[None], qn, qn)
    u_lo, u_hi, u_sv = _edge_w_bounds(-ew, ev, -ew * rv + ev * rw, -ew * ov + ev * ow)
    v_lo, v_hi, v_su = _edge_w_bounds(ew, -eu, ew * ru - eu * rw, ew * ou - eu * ow)
    # The u x edge bounds depend on iv alone: one table per triangle, iv = 0 .. dv - 1.
    table_start = np.cumsum(dv) - dv
    table_owner = np.repeat(np.arange(len(dv)), dv)
    iv = np.arange(len(table_owner)) - table_start.take(table_owner, mode="clip")
    iv = iv.astype(np.float64)
    u = np.concatenate([u_lo, u_hi, u_sv]).take(table_owner, axis=1, mode="clip")     # [9, sum dv]
    s = u[6:9] * iv
    table = np.stack([_max3(u[0:3] - tol + s), _min3(u[3:6] + tol + s)])

    per_triangle = np.concatenate(
        [slope, touch_lo, touch_hi, (dv - 1)[None], base[None], strides, n_lo, n_hi, n_su,
         n_sv, v_lo, v_hi, v_su, (dw - 1)[None], table_start[None]],
        out=_scratch("triangles", (29, len(du))))
    t = per_triangle.take(owner, axis=1, out=_scratch("rows", (29, len(owner))), mode="clip")
    start, stop = _touched_columns(t, iu)
    # Per row: the normal's bounds at iu, and the v x edge bounds with the block's range
    # folded into one interval (constant along the row).
    row = _scratch("row", (10, len(owner)))
    su_iu = t[24:27] * iu
    np.maximum(_max3(t[18:21] + su_iu - tol), 0.0, out=row[0])
    np.minimum(_min3(t[21:24] + su_iu + tol), t[27], out=row[1])
    n_su_iu = t[16] * iu
    np.subtract(t[14] + n_su_iu, tol, out=row[2])
    np.add(t[15] + n_su_iu, tol, out=row[3])
    row[4] = t[17]
    row[5] = start
    np.add(t[28], start, out=row[6])                         # the table's index at start
    np.add(t[10] + iu * t[11], start * t[12], out=row[7])   # the flat index at start
    row[8:10] = t[12:14]                                     # flat steps along v, w

    # Columns: the run start .. stop of each row, k counting from start.
    count = np.maximum(stop - start + 1, 0).astype(np.int32)
    col_row = np.repeat(np.arange(len(count)), count)
    if len(col_row) == 0:
        return
    c = row.take(col_row, axis=1, out=_scratch("columns", (10, len(col_row))), mode="clip")
    k = (np.arange(len(col_row)) - np.repeat(np.cumsum(count) - count, count)).astype(np.float64)
    bounds = table.take((c[6] + k).astype(np.int32), axis=1, mode="clip")
    s = c[4] * (c[5] + k)
    w_low = np.maximum(np.maximum(c[0], c[2] + s), bounds[0])
    w_high = np.minimum(np.minimum(c[1], c[3] + s), bounds[1])
    w0 = np.ceil(w_low)
    run = (np.floor(w_high) - w0 + 1).astype(np.int32)
    _mark_runs(flat, (c[7] + k * c[8] + w0 * c[9]).astype(np.int32), run, c[9].astype(np.int32))


def _touched_columns(t, iu):
    """The run of columns iv that each row iu touches, from the 2D bounds
    touch_lo + slope iu <= iv <= touch_hi + slope iu: t holds slope, touch_lo, touch_hi
    ([3 edges] each) and the block's last iv in rows 0..9 -> (first iv, last iv) as floats
    (an empty run has last < first)."""
    s = t[0:3] * iu
    start = np.maximum(np.ceil(_max3(t[3:6] + s)), 0.0)
    stop = np.minimum(np.floor(_min3(t[6:9] + s)), t[9])
    return start, stop


def _mark_runs(flat, index, run, stride) -> None:
    """flat[index + k * stride] = True for 0 <= k < run (run < 1: nothing). int32 throughout
    (flat indices < 2^30), which halves the memory traffic of the per-voxel arrays."""
    run = np.maximum(run, 0)
    k = np.arange(int(run.sum()), dtype=np.int32)
    k -= np.repeat(np.cumsum(run, dtype=np.int32) - run, run)     # k within its run
    k *= np.repeat(stride, run)
    k += np.repeat(index, run)
    flat[k] = True


def _mark_brute(grid, tri, first, dims, candidates) -> None:
    """Few candidates in all (tiny meshes): every voxel of every triangle's clipped block
    against the 10 separating axes that the candidate range leaves open, in one go.

    tri [3 coords, 3 corners, M], first voxel [3, M], block dims [3, M] and voxel counts [M]
    of the blocks. Projections relative to the block's first voxel centre, as in
    _mark_clipped: the box at offset o overlaps iff pmin - r <= a.o <= pmax + r."""
    res, count = grid.shape[0], tri.shape[2]
    rel = tri - (first + 0.5)[:, None, :]                     # [3 coords, 3 corners, M]
    e = rel.take(_NEXT, axis=1, mode="clip") - rel             # [3 coords, 3 edges, M]
    # Per triangle: normal (3), d x edge m as its components on axes (d + 1, d + 2), which
    # are (-e_{d+2}, e_{d+1}) ([3 d, 3 m] each), lower and upper bounds of the 9 edge axes
    # and the normal, then the block's first candidate, its voxels per x and per y step and
    # the flat index of its first voxel: all go to the candidates in one repeat.
    table = np.empty((45, count))
    n = table[0:3]
    (ax, ay, az), (bx, by, bz) = e[:, 0], e[:, 1]
    np.subtract(ay * bz, az * by, out=n[0])
    np.subtract(az * bx, ax * bz, out=n[1])
    np.subtract(ax * by, ay * bx, out=n[2])
    ca, cb = table[3:12].reshape(3, 3, count), table[12:21].reshape(3, 3, count)
    np.negative(e.take(_AFTER_NEXT, axis=0, mode="clip"), out=ca)
    e.take(_NEXT, axis=0, out=cb, mode="clip")
    proj = (ca[:, :, None] * rel.take(_NEXT, axis=0, mode="clip")[:, None]
            + cb[:, :, None] * rel.take(_AFTER_NEXT, axis=0, mode="clip")[:, None])  # [d, m, corner, M]
    r = 0.5 * (np.abs(ca) + np.abs(cb))
    np.subtract(proj.min(axis=2), r, out=table[21:30].reshape(3, 3, count))
    np.add(proj.max(axis=2), r, out=table[31:40].reshape(3, 3, count))
    proj = n[0] * rel[0] + n[1] * rel[1] + n[2] * rel[2]        # [corner, M]
    r = 0.5 * (np.abs(n[0]) + np.abs(n[1]) + np.abs(n[2]))
    np.subtract(proj.min(axis=0), r, out=table[30])
    np.add(proj.max(axis=0), r, out=table[40])
    np.cumsum(candidates, out=table[41])
    table[41] -= candidates
    np.multiply(dims[1], dims[2], out=table[42])
    table[43] = dims[2]
    table[44] = (first[0] * res + first[1]) * res + first[2]

    # Candidates: voxel k of its triangle's block at offsets (ox, oy, oz) from the first
    # (floats: floor(k / d) is exact for these small integers).
    total = int(candidates.sum())
    t = np.repeat(table, candidates, axis=1)   # (faster than a take along axis 1)
    o = _scratch("brute offsets", (5, total))                  # x, y, z, x, y
    k = o[2]
    np.subtract(np.arange(total, dtype=np.float64), t[41], out=k)
    np.floor(np.divide(k, t[42], out=o[0]), out=o[0])
    k -= o[0] * t[42]
    np.floor(np.divide(k, t[43], out=o[1]), out=o[1])
    k -= o[1] * t[43]                                          # oz
    o[3:5] = o[0:2]
    p = _scratch("brute projections", (10, total))
    edges = p[:9].reshape(3, 3, total)
    np.multiply(t[3:12].reshape(3, 3, total), o[1:4, None], out=edges)
    edges += t[12:21].reshape(3, 3, total) * o[2:5, None]
    np.multiply(t[0], o[0], out=p[9])
    p[9] += t[1] * o[1]
    p[9] += t[2] * o[2]
    hit = np.flatnonzero(((p >= t[21:31]) & (p <= t[31:41])).all(axis=0))
    flat = t[44] + (o[0] * res + o[1]) * res + o[2]
    grid.reshape(-1)[flat.take(hit, mode="clip").astype(np.int32)] = True


def _mark_clipped(grid, tri, first, last) -> None:
    """Triangles that cross the grid's border: the separating-axis test against every voxel
    of the clipped candidate block, blocks of one shape tested as one matrix product."""
    res = grid.shape[0]
    tri = tri.transpose(2, 1, 0)  # [M, 3 corners, 3 coords]
    first = np.clip(first.T, 0, res - 1)
    dims = np.clip(last.T, 0, res - 1) - first + 1
    flat = grid.reshape(-1)
    base = (first[:, 0] * res + first[:, 1]) * res + first[:, 2]
    axes, lower, upper = _separating_axes(tri - (first + 0.5)[:, None, :])
    key = (dims[:, 0] * (res + 1) + dims[:, 1]) * (res + 1) + dims[:, 2]
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, bounds):
        nx, ny, nz = dims[group[0]]
        ox, oy, oz = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
        offsets = np.stack([ox.ravel(), oy.ravel(), oz.ravel()]).astype(np.float64)  # [3, K]
        offset_index = (ox.ravel() * res + oy.ravel()) * res + oz.ravel()
        per_chunk = max(1, _MAX_BATCH_ELEMENTS // (13 * offsets.shape[1]))
        for start in range(0, len(group), per_chunk):
            g = group[start:start + per_chunk]
            proj = (axes[g].reshape(-1, 3) @ offsets).reshape(len(g), 13, -1)  # [T, 13, K]
            hit = ((proj >= lower[g][:, :, None]) & (proj <= upper[g][:, :, None])).all(axis=1)
            flat[(base[g][:, None] + offset_index[None, :])[hit]] = True


def _separating_axes(rel: np.ndarray):
    """The 13 separating axes of triangles against voxel boxes of half size 1/2, and the
    interval into which a box centre's projection must fall.

    rel: [T, 3 corners, 3] relative to the centre c0 of the block's first voxel. For axis a
    the box at c0 + offset projects to a.offset +- r with r = |a|_1 / 2, the triangle to
    [pmin, pmax]; they overlap iff pmin - r <= a.offset <= pmax + r.
    -> axes [T, 13, 3], lower and upper [T, 13].
    """
    e = rel[:, [1, 2, 0]] - rel
    zero, one = np.zeros(len(rel)), np.ones(len(rel))
    axes = [np.stack([one, zero, zero], 1), np.stack([zero, one, zero], 1),
            np.stack([zero, zero, one], 1), np.cross(e[:, 0], e[:, 1])]
    for j in range(3):
        ex, ey, ez = e[:, j, 0], e[:, j, 1], e[:, j, 2]
        axes += [np.stack([zero, -ez, ey], 1), np.stack([ez, zero, -ex], 1),
                 np.stack([-ey, ex, zero], 1)]
    axes = np.stack(axes, axis=1)                             # [T, 13, 3]
    proj = np.einsum("tad,tkd->tak", axes, rel)               # [T, 13, 3 corners]
    r = 0.5 * np.abs(axes).sum(axis=2)
    return axes, proj.min(axis=2) - r, proj.max(axis=2) + r


# Octant o = 4 bx + 2 by + bz, where b = 1 is the upper side of the split point on that axis.
_OCTANT_BITS = np.array([[(o >> 2) & 1, (o >> 1) & 1, o & 1] for o in range(8)])
_SIGN_WEIGHT = (9, 3, 1)
# Corner m + 1 and corner m + 2 (mod 3) of corner m: edge m runs from m to m + 1.
_NEXT, _OPPOSITE = np.array([1, 2, 0]), np.array([2, 0, 1])
_AFTER_NEXT = _OPPOSITE
# A small block's kind by its octant bits: one voxel thick on two axes or more is a row (4),
# on axis d alone d, and 2 wide on every axis 3.
_BLOCK_KIND = np.array([4, 4, 4, 0, 4, 1, 2, 3], dtype=np.int8)  # (int8: radix argsort)


def _sign_masks() -> np.ndarray:
    """[27] uint8: for an axis whose components have signs (sx, sy, sz) (see _sign_code),
    the octants whose points all project to >= 0: s_i a_i >= 0 on every axis."""
    masks = np.zeros(27, dtype=np.uint8)
    for code in range(27):
        signs = (code // 9 - 1, (code // 3) % 3 - 1, code % 3 - 1)
        for o, bits in enumerate(_OCTANT_BITS):
            if all(s == 0 or bits[i] == (s > 0) for i, s in enumerate(signs)):
                masks[code] |= np.uint8(1 << o)
    return masks


_POSITIVE_OCTANTS = _sign_masks()
_NEGATIVE_OCTANTS = _POSITIVE_OCTANTS[::-1].copy()  # the code of -a is 26 - the code of a
# Candidate columns handled in one go: bounds memory (the biggest work arrays, [29, rows] and
# [10, columns] floats, stay within the scratch buffers) and amortises numpy's per-call cost.
_MAX_COLUMNS = 25_000
# Meshes with at most this many triangles take the brute-force pass when they have at most
# _MAX_BRUTE_CANDIDATES candidate voxels in all, else the column pass for every triangle
# (measured: brute force is faster up to ~5000 candidates, the column pass's fixed cost of
# ~200 numpy calls wins above).
_MAX_BRUTE_TRIANGLES = 512
_MAX_BRUTE_CANDIDATES = 4_000
# Fewer triangles with small blocks than this take the column pass with the big ones (the
# small-block pass costs ~150 numpy calls; measured: pays off from about 1000 triangles).
_MIN_SMALL_PASS = 1000
# Repeated big triangles are dropped when at least 1 in this many repeat (fewer do not pay
# for gathering the rest again).
_REPEATS_WORTH_DROPPING = 20
# Fewer big triangles than this take no separate pass for one-voxel-thick blocks.
_MIN_LAYER_PASS = 5_000
# Runs in a column are widened by this many voxels, so that touching survives rounding.
_TOUCH_TOLERANCE = 1e-9


class _ScratchBuffers(threading.local):
    """The biggest work arrays, kept between calls, one set per thread: the system allocator
    hands big temporaries back to the system when they are freed, and touching fresh
    memory again costs a page fault a page (measured: half the run time, in a process that
    also runs open3d)."""

    def __init__(self):
        self.buffers = {}


_SCRATCH = _ScratchBuffers()
# Buffers above this many bytes are not kept (at most ~11 buffers of 4 MiB a thread).
_MAX_SCRATCH_BYTES = 4 << 20


def _scratch(name, shape, dtype=np.float64):
    """A [shape] array of `dtype` (contents undefined), reusing the thread's buffer `name`."""
    size = math.prod(shape)
    nbytes = size * np.dtype(dtype).itemsize
    if nbytes > _MAX_SCRATCH_BYTES:
        return np.empty(shape, dtype)
    buf = _SCRATCH.buffers.get(name)
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(1 << max(size - 1, 1 << 14).bit_length(), dtype)   # room to grow
        _SCRATCH.buffers[name] = buf
    return buf[:size].reshape(shape)
