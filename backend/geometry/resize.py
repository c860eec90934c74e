"""Proportion edits on an occupancy grid: taller, shorter, wider, thinner by EDIT_FACTOR.

The change goes where the shape repeats itself most: a slice equal to the one before it, in the
longest runs of such slices (legs, posts, a plain stretch of tabletop), can be copied or taken
out without changing any part's shape, so legs and tops get longer while seats, knobs and rims
keep theirs. A person making a chair taller lengthens its legs; a plain scale would thicken
them as well. Where too few slices repeat (a vase, a bowl), the occupied span is resampled
evenly instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from addon.wire.protocol import PROPORTION_KINDS, move_along

EDIT_FACTOR = 1.35  # how much an edit changes a proportion (the training stretches' factor too)
EDIT_FILL = 1 / EDIT_FACTOR  # the edit frame: the source's longest side as a share of the cube


class NoRoom(ValueError):
    """The edit does not fit in the grid, or leaves nothing to keep."""


def resize(occupancy: np.ndarray, kind: str, factor: float = EDIT_FACTOR) -> np.ndarray:
    """The grid with `kind` applied: Z for taller/shorter, X (and Y for a round plan) for
    wider/thinner. The low end of each changed span stays where it was."""
    return resize_with_map(occupancy, kind, factor if kind in ("taller", "wider") else 1 / factor)[0]


def resize_with_map(occupancy: np.ndarray, kind: str, ratio: float | None = None,
                    width_axis: int = 0) -> tuple[np.ndarray, list[AxisMap]]:
    """The grid resized the way `kind` asks, to `ratio` times the changed side's length (by
    default EDIT_FACTOR longer or shorter), and the same change as a map of coordinates along
    each changed axis (AxisMap), which moves a mesh's own vertices the way the grid's slices
    moved and makes exactly `ratio`. `width_axis`: the axis wider and thinner change (the object's
    own width, geometry/parts.py; both horizontal axes for a round plan)."""
    if kind not in PROPORTION_KINDS:
        raise ValueError(f"not a proportion edit: {kind!r}")
    scale = ratio if ratio is not None else (EDIT_FACTOR if kind in ("taller", "wider") else 1 / EDIT_FACTOR)
    axes = (2,) if kind in ("taller", "shorter") else ((0, 1) if is_round_plan(occupancy) else (width_axis,))
    out, maps = np.asarray(occupancy, bool), []
    for axis in axes:
        out, knots = _resize_along(out, axis, scale)
        maps.append(AxisMap(axis, *knots))
    return out, maps


def resize_along(occupancy: np.ndarray, axis: int, scale: float) -> np.ndarray:
    """The occupied span along `axis` made `scale` times as long (see the module docstring)."""
    return _resize_along(occupancy, axis, scale)[0]


@dataclass(frozen=True)
class AxisMap:
    """A monotone piecewise-linear map of one coordinate: `source` knots go to `target` knots;
    outside them everything moves as the nearest knot does. In a grid's voxel units (voxel i
    spans [i, i + 1]) the first knot stays, so what lies below the changed span never moves."""

    axis: int
    source: np.ndarray  # float64 [K], increasing
    target: np.ndarray  # float64 [K], non-decreasing

    def __call__(self, t: np.ndarray) -> np.ndarray:
        return move_along(t, self.source, self.target)  # the wire's definition, as clients apply it


def _resize_along(occupancy: np.ndarray, axis: int, scale: float) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    grid = np.moveaxis(np.asarray(occupancy, bool), axis, 0)
    filled = np.nonzero(grid.reshape(len(grid), -1).any(axis=1))[0]
    if len(filled) == 0:
        raise NoRoom("the shape is empty")
    first, span = int(filled[0]), int(filled[-1] - filled[0] + 1)
    body = grid[first:first + span]
    # a grown shape may end a voxel or two short of the factor at the grid's far side
    wanted = max(1, round(span * scale))
    length = min(wanted, len(grid) - first)
    if length == span:
        if wanted == span:  # too thin for the factor to add or take a voxel: say so, not "no room"
            side = ("width", "depth", "height")[axis]
            raise NoRoom(f"it is flat: {span} voxel(s) of {side}, nothing to stretch; give it some "
                         f"{side} first (e.g. Solidify or extrude)" if scale > 1
                         else "the shape is too small along that side to change")
        raise NoRoom("there is no room in the grid for the larger shape")
    order, evenly = _slice_order(body, length)
    out = np.zeros_like(grid)
    out[first:first + length] = body[order]
    source, target = _knots(None if evenly else order, span, length, first)
    # whole slices round the length; the map makes the exact one asked
    return np.moveaxis(out, 0, axis), (source, first + (target - first) * (span * scale / length))


def _knots(order: np.ndarray | None, span: int, length: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each slice boundary of the body went. Slices copied or dropped: slice i now spans as
    many slices as it was used; resampled evenly (order None): one straight stretch."""
    if order is None:
        return np.array([first, first + span], float), np.array([first, first + length], float)
    uses = np.bincount(order, minlength=span)
    return first + np.arange(span + 1, dtype=float), first + np.concatenate([[0], np.cumsum(uses)]).astype(float)


# A repeated slice is copied at most this many times: a shape with only a few repeats (one flat
# slice across a round seat, a torus's widest ring) is resampled evenly rather than extruded.
MAX_COPIES = 3


def _slice_order(body: np.ndarray, length: int) -> tuple[np.ndarray, bool]:
    """Which of `body`'s slices make a body `length` long: repeated slices copied or dropped,
    else (True) resampled evenly."""
    repeats = _long_run_repeats(body)
    change = length - len(body)
    too_few = -change > len(repeats) if change < 0 else change > MAX_COPIES * len(repeats)
    if too_few:
        return np.minimum((np.arange(length) + 0.5) * len(body) / length, len(body) - 1).astype(int), True
    # the slices to copy or drop, spread evenly over the repeated ones
    picks = [repeats[int(k * len(repeats) / abs(change))] for k in range(abs(change))]
    if change < 0:
        return np.delete(np.arange(len(body)), picks), False
    return np.sort(np.concatenate([np.arange(len(body)), picks])), False


def _long_run_repeats(body: np.ndarray) -> list[int]:
    """Indices of the slices equal to the one before, in the runs at least half as long as the
    longest run of equal slices: a table's top between its legs, not the legs' own thickness."""
    runs, start = [], 0
    for i in range(1, len(body) + 1):
        if i == len(body) or not np.array_equal(body[i], body[i - 1]):
            runs.append((start, i - start))
            start = i
    longest = max(n for _, n in runs)
    if longest < 2:
        return []
    return [i for first, n in runs if 2 * n >= longest for i in range(first + 1, first + n)]


def is_round_plan(occupancy: np.ndarray) -> bool:
    """Whether the shape seen from above is round: as deep as wide (within 10%) and the corners
    of its bounds empty (a disc leaves about a fifth of its square empty, a square or a chair's
    seat none)."""
    plan = np.asarray(occupancy, bool).any(axis=2)
    xs, ys = np.nonzero(plan.any(axis=1))[0], np.nonzero(plan.any(axis=0))[0]
    if len(xs) < 4 or len(ys) < 4:
        return False
    width, depth = xs[-1] - xs[0] + 1, ys[-1] - ys[0] + 1
    if abs(width - depth) > 0.1 * max(width, depth):
        return False
    corner = max(1, min(width, depth) // 8)
    box = plan[xs[0]:xs[-1] + 1, ys[0]:ys[-1] + 1]
    corners = [box[:corner, :corner], box[:corner, -corner:], box[-corner:, :corner], box[-corner:, -corner:]]
    return not any(c.any() for c in corners)
