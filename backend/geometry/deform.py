"""Moving a mesh's own vertices by a proportion edit's axis maps (resize.AxisMap), so an edit keeps
the artist's topology, UVs and materials instead of a voxel remesh.

The maps are in the model's voxel frame; a Normalization ties that frame to the caller's
coordinates. Because the normalisation turns axes only by signed permutations (Z-up from
Y-up), each voxel axis is one caller axis, and each map becomes a map of that caller axis.
"""

from __future__ import annotations

import numpy as np

from .normalize import Normalization
from .resize import AxisMap


def caller_maps(maps: list[AxisMap], normalization: Normalization, resolution: int) -> list[AxisMap]:
    """The voxel-frame maps as maps of the caller's own axes and coordinates."""
    out = []
    for m in maps:
        row = normalization.rotation[m.axis]  # the caller axis this voxel axis reads
        axis = int(np.argmax(np.abs(row)))
        sign = float(row[axis])
        to_caller = lambda t: normalization.center[axis] + sign * (t / resolution - 0.5) / normalization.scale  # noqa: E731
        source, target = to_caller(m.source), to_caller(m.target)
        if sign < 0:  # a flipped axis: the knots run the other way
            source, target = source[::-1], target[::-1]
        out.append(AxisMap(axis, source, target))
    return out


def exact_ratio(maps: list[AxisMap], vertices: np.ndarray, ratio: float) -> list[AxisMap]:
    """The maps with their moves scaled so that the mesh's own extent along each axis becomes
    exactly `ratio` times what it was: the grid measures whole voxels, the mesh lies inside
    them. What a map leaves alone it still leaves alone."""
    out = []
    for m in maps:
        column = np.asarray(vertices, np.float64)[:, m.axis]
        low, high = column.min(), column.max()
        grown = (m(high) - m(low)) - (high - low)
        scale = (ratio - 1) * (high - low) / grown if grown != 0 else 1.0
        target = np.maximum.accumulate(m.source + (m.target - m.source) * scale)  # still monotone
        out.append(AxisMap(m.axis, m.source, target))
    return out


def deform(vertices: np.ndarray, maps: list[AxisMap]) -> np.ndarray:
    """The vertices (caller's coordinates) moved by caller-axis maps; a coordinate its map
    leaves where it was keeps its exact value."""
    out = np.array(vertices, dtype=np.float32, copy=True)
    for m in maps:
        column = out[:, m.axis].astype(np.float64)
        moved = m(column)
        out[:, m.axis] = np.where(moved == column, out[:, m.axis], moved.astype(np.float32))
    return out


AXIS_NAMES = ("x", "y", "z")


def edit_summary(before: np.ndarray, after: np.ndarray, maps: list[AxisMap], asked: str = "") -> str:
    """What the maps did to the mesh's extent along each axis, in its own units, and the words
    that asked for the amount: 'z x2.00 (0.8 -> 1.6) for "twice"; every other side kept'."""
    parts = []
    for m in maps:
        old = float(np.ptp(before[:, m.axis]))
        new = float(np.ptp(after[:, m.axis]))
        ratio = new / old if old > 0 else float("nan")
        parts.append(f"{AXIS_NAMES[m.axis]} x{ratio:.2f} ({old:.3g} -> {new:.3g})")
    return ", ".join(parts) + (f' for "{asked}"' if asked else "") + "; every other side kept"
