"""Proportion edits as moves of a shape's VQVAE codes.

A shape's 1024 codes form a 16 x 16 x 4 grid (x, y, z-group; vqvae.latent_to_tokens): one code
per (x, y) column of latent cells and 16 voxels of height. Moving whole codes moves the shape
exactly, so a move changes the asked proportion and keeps everything else as it was:
- taller: the bottom z-group repeated (legs, a base, a body one token longer), the rest moved up;
- shorter: the bottom z-group dropped, the rest moved down (one token of height is the finest
  step there is; a shape one token tall cannot get shorter this way);
- wider: the middle slice repeated about 35% of the width more times, the sides moved out;
- thinner: about 26% of the width taken out of the middle, the sides moved in.
A person lengthening a chair lengthens its legs and widens its seat, not its legs' thickness,
which a stretch would. Wider and thinner move along X, and along Y too for a round plan.
Every move needs room: the source in the edit frame (EDIT_FILL), a token free above and beside.
"""

from __future__ import annotations

import numpy as np

GRID = (16, 16, 4)  # x cells, y cells, z-groups of 4 cells
MOVE_KINDS = ("taller", "shorter", "wider", "thinner")
EDIT_FACTOR = 1.35  # how much an edit stretches a proportion (the training stretches' factor too)
EDIT_FILL = 1 / EDIT_FACTOR  # the edit frame: the source's longest side as a share of the cube


def as_grid(codes: np.ndarray) -> np.ndarray:
    return np.asarray(codes).reshape(GRID)


def occupied(grid: np.ndarray, empty: int, axis: int) -> np.ndarray:
    """Indices along `axis` (0 x, 1 y, 2 z-group) holding any code but the empty one."""
    other = tuple(a for a in range(3) if a != axis)
    return np.nonzero((grid != empty).any(axis=other))[0]


def is_round_plan(codes: np.ndarray, empty: int) -> bool:
    """Whether the shape's plan looks round: as deep as wide (within a cell) with the corners of
    its bounds empty. Strict on purpose: it never held for the square and oblong training
    categories; a round shape it misses widens along X alone."""
    plan = (as_grid(codes) != empty).any(axis=2)
    xs, ys = np.nonzero(plan.any(axis=1))[0], np.nonzero(plan.any(axis=0))[0]
    if len(xs) < 3 or len(ys) < 3 or abs(len(xs) - len(ys)) > 1:
        return False
    corners = plan[np.ix_([xs[0], xs[-1]], [ys[0], ys[-1]])]
    return not corners.any()


def sideways_axes(round_plan: bool) -> tuple[int, ...]:
    return (0, 1) if round_plan else (0,)


def _repeat_slice(grid: np.ndarray, axis: int, at: int, times: int) -> np.ndarray:
    """Slice `at` repeated `times` more times, what lay beyond it moved out (the far end cut)."""
    g = np.moveaxis(grid, axis, 0)
    out = np.concatenate([g[:at + 1], np.repeat(g[at:at + 1], times, axis=0), g[at + 1:]])[:len(g)]
    return np.moveaxis(out, 0, axis)


def _drop_slices(grid: np.ndarray, axis: int, start: int, count: int, empty: int) -> np.ndarray:
    g = np.moveaxis(grid, axis, 0)
    fill = np.full_like(g[:count], empty)
    out = np.concatenate([g[:start], g[start + count:], fill])
    return np.moveaxis(out, 0, axis)


def _span(grid: np.ndarray, empty: int, axis: int) -> tuple[int, int]:
    """(first occupied index, count of indices from the first occupied to the last) along `axis`."""
    idx = occupied(grid, empty, axis)
    return (int(idx[0]), int(idx[-1] - idx[0] + 1)) if len(idx) else (0, 0)


def _wider_count(width: int) -> int:
    return max(1, round((EDIT_FACTOR - 1) * width))


def _thinner_count(width: int) -> int:
    return max(1, round((1 - 1 / EDIT_FACTOR) * width))


def can_move(codes: np.ndarray, kind: str, empty: int, axes: tuple[int, ...] = (0,)) -> bool:
    """Whether the move fits in the grid and leaves a shape; `axes`: wider/thinner's axes."""
    g = as_grid(codes)
    if kind not in MOVE_KINDS or not (g != empty).any():
        return False
    if kind == "taller":
        return bool((g[:, :, -1] == empty).all())
    if kind == "shorter":
        return len(occupied(g, empty, 2)) >= 2
    for axis in axes:
        first, width = _span(g, empty, axis)
        if kind == "wider" and first + width + _wider_count(width) > GRID[axis]:
            return False
        if kind == "thinner" and width < 3:
            return False
    return True


def move(codes: np.ndarray, kind: str, empty: int, axes: tuple[int, ...] = (0,)) -> np.ndarray:
    """The edited codes [1024] of `kind`; can_move must hold."""
    g = as_grid(codes)
    if kind == "taller":
        out = _repeat_slice(g, 2, 0, 1)
    elif kind == "shorter":
        out = _drop_slices(g, 2, 0, 1, empty)
    else:
        out = g
        for axis in axes:
            first, width = _span(out, empty, axis)
            if width == 0:
                continue
            if kind == "wider":
                out = _repeat_slice(out, axis, first + (width - 1) // 2, _wider_count(width))
            else:
                count = min(_thinner_count(width), width - 2)
                out = _drop_slices(out, axis, first + (width - count) // 2, count, empty)
    return out.reshape(-1).copy()
