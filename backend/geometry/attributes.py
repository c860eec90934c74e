"""What a made shape has of the attributes a prompt can ask (backend/prompt_words.py): a back,
armrests, a round top, a single pedestal, a count of legs or of shelves, read from its parts
(geometry/parts.py).

    have = shape_attributes(vertices, faces)      # {"back": True, "legs": 4, "round": False, ...}
    missing(have, {"round": True, "pedestal": True})   # ["pedestal"]: what it does not obey

Text to 3D asks the model again (sampled) when its first answer misses an asked attribute of
CHECKED, and keeps the first answer that has them all. Height and width words are relative to
the object's usual proportions and are not read here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .parts import find_layout

ATTRIBUTES = ("back", "arms", "round", "pedestal", "legs", "shelves")
# the ones text to 3D checks its answers for: on the embedded model's answers (blobby, 64^3)
# these agree with bench/artist.py's voxel readers 71-93% of the time; leg and shelf counts only
# 32% and 64%, so they are read (right on procedural shapes) but not acted on
CHECKED = ("back", "arms", "round", "pedestal")
ROUND_FILL = 0.88  # a disc fills pi/4 (0.785) of its bounding square, a square all of it
FOOTPRINT_CELLS = 48


def shape_attributes(vertices, faces, up: str = "z") -> dict:
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    layout = find_layout(vertices, faces, up)
    z = layout.frame[:, 2]
    legs = 0  # what stands under the seat or top, counted where it is cut at half its height
    if layout.slab is not None and layout.slab[0] > layout.floor + 2 * layout.voxel:
        legs = _pieces(faces, z, layout.floor + 0.5 * (layout.slab[0] - layout.floor))
    have = {"back": layout.back_axis is not None, "arms": bool(layout.has_arms), "legs": legs,
            "pedestal": legs == 1, "shelves": len(layout.slabs)}
    top = faces[layout.mask("slab")[faces].all(axis=1)]
    have["round"] = bool(len(top) >= 2 and _fill(_surface_points(layout.frame, top)[:, :2]) < ROUND_FILL)
    return have


def missing(have: dict, asked: dict) -> list[str]:
    """The asked attributes the shape does not have."""
    return [name for name in ATTRIBUTES if name in asked and have.get(name) != asked[name]]


def _pieces(faces: np.ndarray, z: np.ndarray, cut: float) -> int:
    """Connected runs of the faces that cross the height `cut`: one per leg; a pedestal's foot
    plate below the cut does not count."""
    inner = faces[(z[faces].min(axis=1) <= cut) & (z[faces].max(axis=1) >= cut)]
    if not len(inner):
        return 0
    n = len(z)
    graph = coo_matrix((np.ones(2 * len(inner)), (np.r_[inner[:, 0], inner[:, 1]], np.r_[inner[:, 1], inner[:, 2]])),
                       shape=(n, n))
    labels = connected_components(graph, directed=False)[1]
    return len(np.unique(labels[np.unique(inner)]))


def _surface_points(frame: np.ndarray, faces: np.ndarray, count: int = 20000) -> np.ndarray:
    """Points spread over the faces by area (a low-poly top has only its corners as vertices)."""
    corners = frame[faces]
    area = np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(faces), size=count, p=area / area.sum()) if area.sum() > 0 else np.zeros(count, int)
    a, b = rng.random((2, count, 1))
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    c = corners[pick]
    return c[:, 0] + a * (c[:, 1] - c[:, 0]) + b * (c[:, 2] - c[:, 0])


def _fill(points: np.ndarray) -> float:
    """The share of its bounding rectangle a footprint fills (holes filled)."""
    low, high = points.min(axis=0), points.max(axis=0)
    cells = np.clip(((points - low) / np.maximum(high - low, 1e-9) * (FOOTPRINT_CELLS - 1)).round().astype(int),
                    0, FOOTPRINT_CELLS - 1)
    grid = np.zeros((FOOTPRINT_CELLS, FOOTPRINT_CELLS), bool)
    grid[cells[:, 0], cells[:, 1]] = True
    grid = ndimage.binary_closing(np.pad(grid, 3), iterations=2)  # padded: closing eats the border
    return float(ndimage.binary_fill_holes(grid)[3:-3, 3:-3].mean())
