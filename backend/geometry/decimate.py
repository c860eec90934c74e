"""Reduce a triangle mesh to a face budget by vertex clustering with quadric placement.

decimate(v, f, target_faces) -> (v float64 [N,3], f int64 [M,3]) with M <= target_faces,
or, for a budget too small to keep any face, the coarsest result that still has faces.

Vertices are merged per cell of a uniform grid (Lindstrom, "Out-of-core simplification of
large polygonal models", 2000): each cell's vertex goes where the planes of the faces
around it meet best (the least-squares point of their quadrics, gently pulled toward the
cell's mean so flat and straight regions stay solvable, and kept inside the cell). Unlike
the plain mean this keeps surfaces where they were instead of shrinking curved parts. The
cell size is found by bisection on the face count. Fully vectorised; the price of its speed
is that a cell can merge two sheets, which may leave non-manifold edges.
"""

import numpy as np

from .errors import INVALID_ARGUMENT, GeometryError

_BISECTION_STEPS = 12
# Weight of the pull toward the cell mean, relative to the quadric's own scale.
_MEAN_PULL = 1e-3


def decimate(v, f, target_faces: int):
    if isinstance(target_faces, bool) or not isinstance(target_faces, (int, np.integer)) \
            or target_faces < 4:
        raise GeometryError(INVALID_ARGUMENT, f"target_faces must be an int >= 4, got {target_faces!r}")
    v = np.asarray(v, dtype=np.float64)
    f = np.asarray(f, dtype=np.int64)
    if len(f) <= target_faces:
        return v, f
    origin = v.min(axis=0)
    extent = float(np.ptp(v, axis=0).max())
    # Start from the cell size whose cells hold about target/2 vertices of the surface.
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1).sum()
    guess = np.sqrt(2.0 * area / target_faces)
    lo_cell, hi_cell = guess / 8, min(guess * 8, extent * 1.01)
    best = coarsest = None
    for _ in range(_BISECTION_STEPS):
        cell = np.sqrt(lo_cell * hi_cell)  # bisect in log scale
        clusters, faces = _cluster(v, f, origin, cell)
        if len(faces) and (coarsest is None or len(faces) < len(coarsest[2])):
            coarsest = (cell, clusters, faces)
        if 0 < len(faces) <= target_faces:
            best, hi_cell = (cell, clusters, faces), cell
        elif len(faces) > target_faces:
            lo_cell = cell
        else:
            hi_cell = cell  # merged away every face: too coarse
    if best is None:
        if coarsest is None:
            return v, f
        best = coarsest
    cell, clusters, faces = best
    positions = _quadric_positions(v, f, origin, cell, clusters)
    used = np.zeros(len(positions), dtype=bool)
    used[faces.ravel()] = True
    remap = np.cumsum(used) - 1
    return positions[used], remap[faces]


def _cell_keys(v, origin, cell):
    index = np.floor((v - origin) / cell).astype(np.int64)
    return (index[:, 0] * (1 << 21) + index[:, 1]) * (1 << 21) + index[:, 2]


def _cluster(v, f, origin, cell):
    """-> (cluster of each vertex, faces between clusters with doubles removed)."""
    _, clusters = np.unique(_cell_keys(v, origin, cell), return_inverse=True)
    clusters = clusters.ravel()
    nf = clusters[f]
    nf = nf[(nf[:, 0] != nf[:, 1]) & (nf[:, 1] != nf[:, 2]) & (nf[:, 0] != nf[:, 2])]
    if len(nf) == 0:
        return clusters, nf
    # Faces on the same three clusters: same-facing copies count once, and a face meeting its
    # back side (two sheets merged) cancels out.
    order = np.argsort(nf, axis=1)
    tri = np.take_along_axis(nf, order, axis=1)
    even = np.array([[0, 1, 2], [1, 2, 0], [2, 0, 1]])
    sign = np.where((order[:, None, :] == even[None]).all(axis=2).any(axis=1), 1, -1)
    n = int(tri.max()) + 1
    _, first, group = np.unique((tri[:, 0] * n + tri[:, 1]) * n + tri[:, 2],
                                return_index=True, return_inverse=True)
    net = np.bincount(group.ravel(), weights=sign)
    keep = net != 0
    faces = tri[first[keep]]
    flip = net[keep] < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return clusters, faces


def _quadric_positions(v, f, origin, cell, clusters):
    count = int(clusters.max()) + 1
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    normal = np.cross(b - a, c - a)
    area = 0.5 * np.linalg.norm(normal, axis=1)
    unit = normal / np.maximum(2.0 * area, 1e-300)[:, None]
    d = -(unit * a).sum(axis=1)
    # Area-weighted plane quadrics: sum A (n.x + d)^2 -> matrix A n n^T, vector -A d n.
    pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    entries = [area * unit[:, i] * unit[:, j] for i, j in pairs] + [-area * d * unit[:, i] for i in range(3)]
    sums = np.zeros((9, count))
    for corner in range(3):
        owner = clusters[f[:, corner]]
        for k, values in enumerate(entries):
            sums[k] += np.bincount(owner, weights=values, minlength=count)
    mat = np.empty((count, 3, 3))
    for k, (i, j) in enumerate(pairs):
        mat[:, i, j] = mat[:, j, i] = sums[k]
    rhs = sums[6:9].T
    members = np.bincount(clusters, minlength=count)
    mean = np.stack([np.bincount(clusters, weights=v[:, i], minlength=count) for i in range(3)], 1)
    mean /= np.maximum(members, 1)[:, None]
    pull = _MEAN_PULL * np.trace(mat, axis1=1, axis2=2) / 3.0 + 1e-12
    mat += pull[:, None, None] * np.eye(3)
    x = np.linalg.solve(mat, (rhs + pull[:, None] * mean)[:, :, None])[:, :, 0]
    # Keep each vertex inside its cell, like its members.
    cell_lo = origin + np.floor((mean - origin) / cell) * cell
    return np.clip(x, cell_lo, cell_lo + cell)
