"""Occupancy grid -> triangle mesh in the unit cube frame of voxelize_surface.

occupancy_to_mesh(occ, mode="smooth" | "blocky", ...) -> (v float32 [N,3], f int32 [M,3])

Steps: binarise, fill enclosed cavities (the model's grids are surface shells; filling gives
one outward surface instead of a double wall), drop tiny floating components, then
  smooth: marching cubes (PyMCubes) on the padded grid after a sign-preserving blur: a
          1-2-1 blur per axis, then every occupied voxel held above the iso level and every
          empty one below it. The surface thus separates exactly the same voxel centres as
          the blocky one (thin parts survive) but its vertices slide along the grid edges
          into a smooth shape. The iso level 0.75 (a flat wall's boundary voxels blur to
          0.75) puts the surface near the centres of the outermost voxels rather than on
          their outer faces: the grids are surface shells, so that is where the surface
          was (about 28% lower Chamfer distance on the fixtures than level 0.5).
          smoothing="constrained" uses PyMCubes' optimisation instead (seconds, not ms);
  blocky: the exact boundary faces of the voxels, two triangles each, corners shared, no
          faces between two occupied voxels.
Winding is outward (positive signed volume) in both modes. Vertex (i, j, k) in voxel index
units maps to ((i, j, k) + 0.5) / R - 0.5, the voxel centre convention.
"""

import mcubes
import numpy as np
from scipy import ndimage

from addon.wire.protocol import MESH_STYLES

from .decimate import decimate
from .errors import EMPTY_MESH, INVALID_ARGUMENT, INVALID_GRID, GeometryError
from .voxelize import fill_enclosed

MODES = MESH_STYLES
SMOOTHING = ("fast", "constrained")
_ISO_LEVEL = 0.75
# How far the blurred value of a voxel must stay on its side of the iso level. Larger keeps
# thin parts thicker, smaller follows the voxels' shape more closely.
_SIGN_MARGIN = 0.12
_BLUR = np.array([0.25, 0.5, 0.25], dtype=np.float32)


# Components smaller than this are noise of a generated grid, not part of the shape.
MIN_COMPONENT_VOXELS = 8


def occupancy_to_mesh(occ, mode: str = "smooth", min_component_voxels: int = MIN_COMPONENT_VOXELS,
                      target_faces=None, fill_cavities: bool = True, smoothing: str = "fast",
                      normalization=None):
    """Mesh an occupancy grid. `occ`: [R,R,R] bool, or numbers occupied where > 0 (logits).

    min_component_voxels: components (26-connected) smaller than this are removed, except
    the largest one, which is always kept. target_faces: decimate to at most this many faces.
    normalization: a Normalization; when given, vertices come back in its input's frame
    (from_unit) instead of the unit cube. from_unit is a rotation and a uniform scale, so
    the outward winding survives.
    """
    if mode not in MODES:
        raise GeometryError(INVALID_ARGUMENT, f"mode must be one of {MODES}, got {mode!r}")
    if smoothing not in SMOOTHING:
        raise GeometryError(INVALID_ARGUMENT, f"smoothing must be one of {SMOOTHING}, got {smoothing!r}")
    occ = _binary_grid(occ)
    res = occ.shape[0]
    if not occ.any():
        raise GeometryError(EMPTY_MESH, "the occupancy grid has no occupied voxel")
    # Work on the occupied box with one empty voxel of margin: the same result as the whole
    # grid (everything outside the box is empty and reaches the border through the margin),
    # at a fraction of the cost, and the margin lets every surface close.
    nonzero = [np.flatnonzero(occ.any(axis=other)) for other in ((1, 2), (0, 2), (0, 1))]
    lo = np.array([n[0] for n in nonzero])
    hi = np.array([n[-1] + 1 for n in nonzero])
    box = np.pad(occ[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], 1)
    if fill_cavities:
        box = fill_enclosed(box)
    box = remove_small_components(box, min_component_voxels)

    if mode == "smooth":
        v, f = _smooth_surface(box, smoothing)
    else:
        v, f = _blocky_surface(box)
    v += lo - 1.0  # box index units -> grid index units
    if target_faces is not None:
        v, f = decimate(v, f, target_faces)
    v = ((v + 0.5) / res - 0.5).astype(np.float32)
    if normalization is not None:
        v = normalization.from_unit(v)
    return v, f.astype(np.int32)


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


def _binary_grid(occ) -> np.ndarray:
    occ = np.asarray(occ)
    if occ.ndim != 3 or len(set(occ.shape)) != 1 or occ.shape[0] < 1:
        raise GeometryError(INVALID_GRID, f"occupancy must be a cubic [R, R, R] grid, got {list(occ.shape)}")
    if occ.dtype == bool:
        return occ
    if not np.issubdtype(occ.dtype, np.number):
        raise GeometryError(INVALID_GRID, f"occupancy must be bool or numeric, got {occ.dtype}")
    return occ > 0


def _smooth_surface(box: np.ndarray, smoothing: str):
    """Marching cubes on a smoothed copy of a grid with an empty margin (its index units)."""
    if smoothing == "constrained":
        field, level = mcubes.smooth_constrained(box), 0.0
    else:
        field, level = _sign_preserving_blur(box), _ISO_LEVEL
    v, f = mcubes.marching_cubes(field, level)
    return v, f.astype(np.int64)


def _sign_preserving_blur(box: np.ndarray) -> np.ndarray:
    field = box.astype(np.float32)
    for axis in range(3):
        field = ndimage.correlate1d(field, _BLUR, axis=axis, mode="constant")
    np.maximum(field, np.float32(_ISO_LEVEL + _SIGN_MARGIN), out=field, where=box)
    np.minimum(field, np.float32(_ISO_LEVEL - _SIGN_MARGIN), out=field, where=~box)
    return field


# For a face whose outward normal is +axis d, the other two axes (a, b) with (d, a, b) cyclic
# give an anticlockwise quad seen from outside.
_CYCLIC = ((0, 1, 2), (1, 2, 0), (2, 0, 1))


def _blocky_surface(occ: np.ndarray):
    """Exact voxel boundary faces; vertices are voxel corners, shared between faces."""
    dims = np.array(occ.shape)
    padded = np.pad(occ, 1)
    inner = padded[1:-1, 1:-1, 1:-1]
    stride = np.array([(dims[1] + 1) * (dims[2] + 1), dims[2] + 1, 1])
    quads = []
    for d, a, b in _CYCLIC:
        step = np.zeros(3, dtype=np.int64)
        step[d] = 1
        ea, eb = np.eye(3, dtype=np.int64)[a], np.eye(3, dtype=np.int64)[b]
        for sign in (1, -1):
            neighbour = padded[tuple(slice(1 + sign * (i == d), dims[i] + 1 + sign * (i == d))
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
    # Number the used corners in index order (a dense map: cheaper than sorting).
    used = np.zeros(int(np.prod(dims + 1)), dtype=bool)
    used[quads.ravel()] = True
    corner_ids = np.flatnonzero(used)
    number = np.cumsum(used) - 1
    f = number[quads]
    triangles = np.concatenate([f[:, [0, 1, 2]], f[:, [0, 2, 3]]])
    corners = np.stack(np.unravel_index(corner_ids, tuple(dims + 1)), axis=1).astype(np.float64)
    # Corner c sits half a voxel below the centre of voxel c: index units c - 0.5.
    return corners - 0.5, triangles
