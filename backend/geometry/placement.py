"""Where an edit answer goes when its size carries no information.

A model that reads and writes every shape normalised on its own (the published model and the
committed embedded weights, for every edit they write: backend/edit.py) answers "make it
taller" with a shape whose longest side fills the cube again. Mapped back through the source's
normalisation, the answer keeps the source's longest side, so a chair that was already tallest
in Z came back as tall as before and narrower. The answer's proportions are right; its size is lost.

fit_edit_answer recovers the size from the sides the edit left alone: an edit that stretches
one side leaves two of the three ratios "source side / answer side" equal to the true scale.
The two that agree best give the scale (their summed sides, so a long side, whose voxel
rounding matters least, counts most). The answer then stands where the source stood: the
same footprint centre (X, Y) and the same floor (lowest Z).

Known limits: an edit that stretches two sides by the same factor (a round vase made wider in
X and Y) looks, from the answer alone, like the third side stretched the other way, and comes
back at the right proportions but the wrong size; with a side under MIN_SIDE_VOXELS (a flat
ladder) no pair can be trusted and the scale stays 1, as before. bench/edit_placement.py
counts both.
"""

from __future__ import annotations

import numpy as np

from .errors import INVALID_ARGUMENT, GeometryError
from .voxelize import pooled

# Sides shorter than this many voxels round too coarsely to give a ratio (a ladder's depth).
MIN_SIDE_VOXELS = 4
# An answer made more than this much larger or smaller is not trusted at that size (a stray
# blob from a weak model would otherwise come back many times the source's size).
MAX_SCALE = 3.0


def occupied_box(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(low, high) corners of the occupied voxels in unit-cube coordinates, or None if empty.
    Voxel i spans [i / R - 0.5, (i + 1) / R - 0.5], as in voxelize_surface."""
    grid = np.asarray(grid, dtype=bool)
    if grid.ndim != 3 or not grid.any():
        return None
    resolution = grid.shape[0]
    lo, hi = [], []
    for axis in range(3):
        hit = np.flatnonzero(grid.any(axis=tuple(a for a in range(3) if a != axis)))
        lo.append(hit[0])
        hi.append(hit[-1] + 1)
    return np.array(lo) / resolution - 0.5, np.array(hi) / resolution - 0.5


def fit_edit_answer(source: np.ndarray, answer: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, offset) that place the answer's unit-frame vertices u as u * scale + offset.

    source, answer: bool occupancy grids [R, R, R] of the same resolution (dims X, Y, Z; Z up),
    the source as the model read it and the answer as it decodes. Without three sides of
    MIN_SIDE_VOXELS (an empty, flat or thin grid) the scale stays 1 and only the placement moves."""
    source, answer = np.asarray(source, dtype=bool), np.asarray(answer, dtype=bool)
    if source.shape != answer.shape:
        raise GeometryError(INVALID_ARGUMENT, f"grids differ in shape: {source.shape} vs {answer.shape}")
    source_box, answer_box = occupied_box(source), occupied_box(answer)
    if source_box is None or answer_box is None:
        return 1.0, np.zeros(3)
    source_sides = source_box[1] - source_box[0]
    answer_sides = answer_box[1] - answer_box[0]
    scale = _scale(source_sides, answer_sides, source.shape[0])
    return scale, _anchor(source_box) - _anchor(answer_box) * scale


def _scale(source_sides: np.ndarray, answer_sides: np.ndarray, resolution: int) -> float:
    """The scale from the pair of sides whose ratios agree best (within MAX_SCALE either way);
    1 without three usable sides."""
    min_side = (MIN_SIDE_VOXELS - 0.5) / resolution
    if not ((source_sides > min_side) & (answer_sides > min_side)).all():
        return 1.0
    ratios = source_sides / answer_sides
    pairs = [(0, 1), (0, 2), (1, 2)]
    i, j = min(pairs, key=lambda p: abs(np.log(ratios[p[0]] / ratios[p[1]])))
    scale = (source_sides[i] + source_sides[j]) / (answer_sides[i] + answer_sides[j])
    return float(np.clip(scale, 1 / MAX_SCALE, MAX_SCALE))


def _anchor(box) -> np.ndarray:
    """The point that stays put: the footprint centre in X and Y, the floor in Z."""
    lo, hi = box
    return np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2]])


def placed_grid(answer: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """The answer's occupancy as placed by (scale, offset), sampled on its own grid: voxel i is
    occupied when the answer voxel its centre comes from is (nearest voxel)."""
    answer = np.asarray(answer, dtype=bool)
    resolution = answer.shape[0]
    centres = (np.arange(resolution) + 0.5) / resolution - 0.5
    index = [np.floor(((centres - offset[axis]) / scale + 0.5) * resolution).astype(int) for axis in range(3)]
    inside = [(i >= 0) & (i < resolution) for i in index]
    clipped = [np.clip(i, 0, resolution - 1) for i in index]
    placed = answer[np.ix_(*clipped)]
    return placed & inside[0][:, None, None] & inside[1][None, :, None] & inside[2][None, None, :]


def best_shift_overlap(source: np.ndarray, answer: np.ndarray, pool: int = 2, max_shift: tuple = (8, 8, 4)) -> float:
    """Voxel IoU of two grids at `pool`x coarser cells, at the best shift of up to `max_shift`
    coarse cells per axis: how much of the source an answer keeps, whatever small offset its
    placement left (an added handle moves a mug's footprint centre by half the handle, and a
    thin wall shifted by a few voxels no longer overlaps itself)."""
    a, b = (pooled(g, pool) for g in (source, answer))
    total = int(a.sum()) + int(b.sum())
    if total == 0:
        return 1.0
    best = 0
    n = a.shape[0]
    for dx in range(-max_shift[0], max_shift[0] + 1):
        for dy in range(-max_shift[1], max_shift[1] + 1):
            for dz in range(-max_shift[2], max_shift[2] + 1):
                # b shifted by (dx, dy, dz), intersected with a where both are inside the grid
                sa = tuple(slice(max(d, 0), n + min(d, 0)) for d in (dx, dy, dz))
                sb = tuple(slice(max(-d, 0), n - max(d, 0)) for d in (dx, dy, dz))
                best = max(best, int(np.count_nonzero(a[sa] & b[sb])))
    return best / (total - best)
