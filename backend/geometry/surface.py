"""Occupancy grid -> triangle mesh in the unit cube frame of voxelize_surface.

occupancy_to_mesh(occ, mode="smooth" | "blocky", ...) -> (v float32 [N,3], f int32 [M,3])

Steps: binarise, fill enclosed cavities (the model's grids are surface shells; filling gives
one outward surface instead of a double wall), drop tiny floating components, then
  smooth: marching cubes (PyMCubes) on the padded grid, then a few Taubin smoothing steps
          with every vertex held within half a voxel of where marching cubes put it, so thin
          parts survive and the surface stays true to the voxels;
  blocky: the exact boundary faces of the voxels, two triangles each, corners shared, no
          faces between two occupied voxels.
Winding is outward (positive signed volume) in both modes. Vertex (i, j, k) in voxel index
units maps to ((i, j, k) + 0.5) / R - 0.5, the voxel centre convention.
"""

import mcubes
import numpy as np
from scipy import ndimage, sparse

from .errors import EMPTY_MESH, INVALID_ARGUMENT, INVALID_GRID, GeometryError
from .voxelize import fill_enclosed

MODES = ("smooth", "blocky")


def occupancy_to_mesh(occ, mode: str = "smooth", min_component_voxels: int = 8,
                      target_faces=None, fill_cavities: bool = True,
                      smooth_iterations: int = 8):
    """Mesh an occupancy grid. `occ`: [R,R,R] bool, or numbers occupied where > 0 (logits).

    min_component_voxels: components (26-connected) smaller than this are removed, except
    the largest one, which is always kept. target_faces: decimate to at most this many faces.
    """
    if mode not in MODES:
        raise GeometryError(INVALID_ARGUMENT, f"mode must be one of {MODES}, got {mode!r}")
    occ = _binary_grid(occ)
    if fill_cavities:
        occ = fill_enclosed(occ)
    occ = remove_small_components(occ, min_component_voxels)
    if not occ.any():
        raise GeometryError(EMPTY_MESH, "the occupancy grid has no occupied voxel")

    if mode == "smooth":
        v, f = _smooth_surface(occ, smooth_iterations)
    else:
        v, f = _blocky_surface(occ)
    if target_faces is not None:
        v, f = decimate(v, f, target_faces)
    res = occ.shape[0]
    return ((v + 0.5) / res - 0.5).astype(np.float32), f.astype(np.int32)


def remove_small_components(occ: np.ndarray, min_voxels: int) -> np.ndarray:
    """Drop 26-connected components of fewer than min_voxels voxels; keep the largest."""
    if min_voxels <= 1 or not occ.any():
        return occ
    labels, count = ndimage.label(occ, structure=np.ones((3, 3, 3), dtype=bool))
    if count <= 1:
        return occ
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= min_voxels
    keep[np.argmax(sizes)] = True
    keep[0] = False
    return keep[labels]


def decimate(v: np.ndarray, f: np.ndarray, target_faces: int):
    """Vertex-clustering decimation to at most target_faces faces.

    Vertices are merged per cell of a uniform grid (at their mean position); the cell size is
    the smallest of a bisection whose result fits the budget. Coarse but fast and vectorised.
    """
    if isinstance(target_faces, bool) or not isinstance(target_faces, (int, np.integer)) \
            or target_faces < 4:
        raise GeometryError(INVALID_ARGUMENT, f"target_faces must be an int >= 4, got {target_faces!r}")
    if len(f) <= target_faces:
        return v, f
    extent = float(np.ptp(v, axis=0).max())
    lo_cell, hi_cell = 0.0, extent  # hi: everything in one cell (always fits)
    best = None
    for _ in range(14):
        cell = (lo_cell + hi_cell) / 2
        result = _cluster(v, f, cell)
        if len(result[1]) <= target_faces:
            best, hi_cell = result, cell
        else:
            lo_cell = cell
    if best is None or len(best[1]) == 0:
        best = _cluster(v, f, hi_cell)
    return best


def _cluster(v, f, cell):
    keys = np.floor(v / cell).astype(np.int64)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.ravel()
    merged = np.zeros((len(counts), 3))
    np.add.at(merged, inverse, v)
    merged /= counts[:, None]
    nf = inverse[f]
    nf = nf[(nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])]
    # Two faces on the same three vertices (any order) are the same face or its back side.
    _, first = np.unique(np.sort(nf, axis=1), axis=0, return_index=True)
    nf = nf[np.sort(first)]
    used = np.zeros(len(merged), dtype=bool)
    used[nf.ravel()] = True
    remap = np.cumsum(used) - 1
    return merged[used], remap[nf]


def _binary_grid(occ) -> np.ndarray:
    occ = np.asarray(occ)
    if occ.ndim != 3 or len(set(occ.shape)) != 1 or occ.shape[0] < 1:
        raise GeometryError(INVALID_GRID, f"occupancy must be a cubic [R, R, R] grid, got {list(occ.shape)}")
    if occ.dtype == bool:
        return occ
    if not np.issubdtype(occ.dtype, np.number):
        raise GeometryError(INVALID_GRID, f"occupancy must be bool or numeric, got {occ.dtype}")
    return occ > 0


def _smooth_surface(occ: np.ndarray, iterations: int):
    """Marching cubes on the binary grid, then bounded Taubin smoothing (voxel index units)."""
    padded = np.pad(occ, 1).astype(np.float32)
    v, f = mcubes.marching_cubes(padded, 0.5)
    v -= 1.0  # undo the padding
    f = f.astype(np.int64)
    if iterations > 0 and len(f):
        v = _taubin(v, f, iterations)
    return v, f


def _taubin(v, f, iterations, lam=0.5, mu=-0.53, max_shift=0.5):
    """Taubin's lambda|mu smoothing (no shrinking), each vertex kept within max_shift voxels
    of its marching-cubes position on every axis."""
    n = len(v)
    edges = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    adj = sparse.coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    adj = adj + adj.T
    adj.data[:] = 1.0  # each neighbour once, whatever the face count on an edge
    degree = np.asarray(adj.sum(axis=1)).ravel()
    walk = sparse.diags(1.0 / np.maximum(degree, 1)) @ adj
    origin = v
    lo, hi = origin - max_shift, origin + max_shift
    for _ in range(iterations):
        v = v + lam * (walk @ v - v)
        v = v + mu * (walk @ v - v)
        np.clip(v, lo, hi, out=v)
    return v


# For a face whose outward normal is +axis d, the other two axes (a, b) with (d, a, b) cyclic
# give an anticlockwise quad seen from outside.
_CYCLIC = ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def _blocky_surface(occ: np.ndarray):
    """Exact voxel boundary faces; vertices are voxel corners, shared between faces."""
    res = occ.shape[0]
    padded = np.pad(occ, 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    stride = np.array([(res + 1) ** 2, res + 1, 1])
    quads = []
    for d, a, b in _CYCLIC:
        step = np.zeros(3, dtype=np.int64)
        step[d] = 1
        ea, eb = np.eye(3, dtype=np.int64)[a], np.eye(3, dtype=np.int64)[b]
        for sign in (1, -1):
            neighbour = padded[tuple(slice(1 + sign * (i == d), res + 1 + sign * (i == d))
                                     for i in range(3))]
            cells = np.argwhere(inner & ~neighbour)  # [Q, 3] voxel indices
            if sign == 1:
                corner = cells + step
                ring = (0 * ea, ea, ea + eb, eb)          # anticlockwise seen from +d
            else:
                corner = cells
                ring = (0 * ea, eb, ea + eb, ea)          # reversed: faces -d
            quads.append(np.stack([(corner + r) @ stride for r in ring], axis=1))
    quads = np.concatenate(quads)
    corner_ids, f = np.unique(quads, return_inverse=True)
    f = f.reshape(-1, 4)
    triangles = np.concatenate([f[:, [0, 1, 2]], f[:, [0, 2, 3]]])
    corners = np.stack(np.unravel_index(corner_ids, (res + 1,) * 3), axis=1).astype(np.float64)
    # Corner c sits half a voxel below the centre of voxel c: index units c - 0.5.
    return corners - 0.5, triangles
