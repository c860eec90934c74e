"""Proportion edits as moves of the VQVAE's codes (the edit pairs of train.py --edit-data moves,
which is gone from the recipe: rerun that training at commit 45eb3b5, research/README.md).

A shape's 1024 codes form a 16 x 16 x 4 grid (x, y, z-group; backend/models/vqvae.py
latent_to_tokens): one code per (x, y) column of latent cells and 16 voxels of height, each
latent cell carrying its own 4^3 voxels. So moving whole codes moves the shape exactly:
- taller: the bottom z-group repeated (legs, a base, a body one token longer), the rest moved up;
- shorter: the bottom z-group dropped, the rest moved down (one token of height is the finest
  step there is; shapes no more than one token tall cannot get shorter this way);
- wider: the middle x slice repeated about 35% of the width more times (X and Y for round
  objects, as language.edit_stretch does), the sides moved out;
- thinner: about 26% of the width taken out of the middle, the sides moved in.
A person lengthening a chair lengthens its legs and widens its seat, not its legs' thickness,
which is what a stretch (language.edit_stretch) does; and one move alone is what the small model
learnt to copy, a stretch not (docs/embedded-model.md, "Grid positions"; several moves mixed are
not learnt yet, "Every edit kind as a move"). Every move needs the source in the
edit frame (language.EDIT_FILL), which leaves a token of room above and on the sides.
"""

from __future__ import annotations

import numpy as np
import torch

from backend.embedded.language import EDIT_FACTOR, ROUND_CATEGORIES
from backend.models.vqvae import VQVAE3D

GRID = (16, 16, 4)  # x cells, y cells, z-groups of 4 cells
MOVE_KINDS = ("taller", "shorter", "wider", "thinner")


@torch.no_grad()
def empty_code(model: VQVAE3D) -> int:
    """The code of an empty token (a column with no voxel), which code moves fill in."""
    r = model.config.resolution
    return int(model.encode(torch.zeros(1, 1, r, r, r, device=model.device))[0, 0])


def as_grid(codes: np.ndarray) -> np.ndarray:
    return np.asarray(codes).reshape(GRID)


def occupied(grid: np.ndarray, empty: int, axis: int) -> np.ndarray:
    """Indices along `axis` (0 x, 1 y, 2 z-group) holding any code but the empty one."""
    other = tuple(a for a in range(3) if a != axis)
    return np.nonzero((grid != empty).any(axis=other))[0]


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


def _widths(grid: np.ndarray, empty: int, axis: int) -> tuple[int, int]:
    """(first occupied index, count of occupied indices from first to last) along `axis`."""
    idx = occupied(grid, empty, axis)
    return (int(idx[0]), int(idx[-1] - idx[0] + 1)) if len(idx) else (0, 0)


def _sideways_axes(category: str) -> tuple[int, ...]:
    return (0, 1) if category in ROUND_CATEGORIES else (0,)


def can_move(codes: np.ndarray, kind: str, category: str, empty: int) -> bool:
    """Whether the move fits in the grid and leaves a shape."""
    g = as_grid(codes)
    if not (g != empty).any():
        return False
    if kind == "taller":
        return bool((g[:, :, -1] == empty).all())
    if kind == "shorter":
        return len(occupied(g, empty, 2)) >= 2
    for axis in _sideways_axes(category):
        first, width = _widths(g, empty, axis)
        if kind == "wider" and first + width + _wider_count(width) > GRID[axis]:
            return False
        if kind == "thinner" and width < 3:
            return False
    return True


def _wider_count(width: int) -> int:
    return max(1, round((EDIT_FACTOR - 1) * width))


def _thinner_count(width: int) -> int:
    return max(1, round((1 - 1 / EDIT_FACTOR) * width))


def move(codes: np.ndarray, kind: str, category: str, empty: int) -> np.ndarray:
    """The edited codes [1024] of `kind`; can_move must hold."""
    g = as_grid(codes)
    if kind == "taller":
        out = _repeat_slice(g, 2, 0, 1)
    elif kind == "shorter":
        out = _drop_slices(g, 2, 0, 1, empty)
    else:
        out = g
        for axis in _sideways_axes(category):
            first, width = _widths(out, empty, axis)
            if width == 0:
                continue
            if kind == "wider":
                out = _repeat_slice(out, axis, first + (width - 1) // 2, _wider_count(width))
            else:
                count = min(_thinner_count(width), width - 2)
                out = _drop_slices(out, axis, first + (width - count) // 2, count, empty)
    return out.reshape(-1).copy()
