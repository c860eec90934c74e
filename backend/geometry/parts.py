"""Finding an object's parts from its structure: legs, seat or top, back, arms, shelves.

    layout = find_layout(vertices, faces, up="z")   # in the object's own frame
    layout.labels                                   # int8 [N]: each vertex's part (PART_IDS)
    layout.slab, layout.back_axis, layout.shelves ...

The frame: Z up (or Y for a Y-up file, turned as normalize.up_rotation turns it), X width,
Y depth. A shape with a back (a chair, sofa, bench, bed) has its depth along the axis the back
lies at the end of, whatever the mesh's long side is.

How each part is found, on a filled voxel grid of the shape (robust to unwelded triangle soups),
then snapped to the mesh's own vertex heights:
- slabs: runs of layers that cover at least half of the footprint (seat, tabletop, shelf boards,
  a sofa's base); the main slab is the largest, the highest of equals;
- legs: what stands below the main slab, touching the floor, thin (a layer there covers at most
  a third of the footprint);
- back: the top fifth of what stands above the main slab, when it lies thin at one end of a
  horizontal axis; the back is everything above the slab in that end's band;
- arms: what stands above the slab outside the back's band;
- shelves: slabs other than the main one below it (a table's lower shelf), or, for a frame of
  boards with no legs (a bookshelf), the boards between the lowest and the highest.
Vertices are labelled by where they lie; a loose part (a connected component smaller than the
whole object) takes the label of its bounding box's centre, so a leg that reaches into the
seat is still all leg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .normalize import up_rotation
from .voxelize import voxelize_surface

PART_IDS = {"other": 0, "legs": 1, "slab": 2, "back": 3, "arms": 4, "shelf": 5}
RESOLUTION = 96  # analysis grid: a 3 cm tabletop of a 1.6 m table is about 2 voxels


@dataclass
class Layout:
    frame: np.ndarray  # float64 [N, 3]: the vertices in the Z-up frame
    rotation: np.ndarray  # float64 [3, 3]: caller frame -> Z-up frame (a signed permutation)
    labels: np.ndarray  # int8 [N]
    floor: float
    ceiling: float
    slab: tuple[float, float] | None = None  # main slab (bottom, top) heights
    slabs: list[tuple[float, float]] = field(default_factory=list)  # every slab, low to high
    has_legs: bool = False
    back_axis: int | None = None  # 0 or 1: the depth axis, the back at its `back_side` end
    back_side: int = 1
    back_band: tuple[float, float] | None = None  # the back's span along back_axis
    has_arms: bool = False
    shelves: list[tuple[float, float]] = field(default_factory=list)  # boards an edit may add or remove
    voxel: float = 0.0  # the analysis grid's voxel size, in caller units
    components: np.ndarray | None = None  # int [N]: each vertex's loose part

    def mask(self, part: str) -> np.ndarray:
        return self.labels == PART_IDS[part]

    @property
    def width_axis(self) -> int:
        """The horizontal axis across the object (X unless the back says otherwise)."""
        return 1 - self.back_axis if self.back_axis is not None else 0


def to_frame(vertices: np.ndarray, up: str) -> tuple[np.ndarray, np.ndarray]:
    rotation = up_rotation(up)
    return np.asarray(vertices, np.float64) @ rotation.T, rotation


def find_layout(vertices: np.ndarray, faces: np.ndarray, up: str = "z") -> Layout:
    frame, rotation = to_frame(vertices, up)
    faces = np.asarray(faces, np.int64)
    low, high = frame.min(axis=0), frame.max(axis=0)
    length = float((high - low).max()) * 1.0001 or 1.0
    voxel = length / RESOLUTION
    unit = ((frame - low) / length - 0.5).astype(np.float32)
    grid = voxelize_surface(unit, faces.astype(np.int32), resolution=RESOLUTION, fill_interior=True)
    layout = Layout(frame, rotation, np.zeros(len(frame), np.int8), float(low[2]), float(high[2]), voxel=voxel)
    z_of = lambda k: low[2] + k * voxel  # noqa: E731  (bottom of layer k)
    plan = grid.any(axis=2)
    footprint = max(int(plan.sum()), 1)
    area = grid.sum(axis=(0, 1))
    # a slab: layers of at least half the largest layer, which covers a quarter of the plan or more
    runs = [r for r in _runs(area >= 0.5 * area.max()) if area.max() >= 0.25 * footprint]
    heights = _heights(frame[:, 2])
    runs = [(a, b) for a, b in runs if _snap(heights, z_of(b)) - _snap(heights, z_of(a)) > 0.25 * voxel]
    if not runs:
        layout.components = _components(frame, faces)
        return layout
    means = [area[a:b].mean() for a, b in runs]
    best = max(range(len(runs)), key=lambda i: (means[i] >= 0.9 * max(means), runs[i][0]))
    slab_layers = runs[best]
    layout.slabs = [(_snap(heights, z_of(a)), _snap(heights, z_of(b))) for a, b in runs]
    layout.slab = layout.slabs[best]
    bottom, top = layout.slab
    # legs: thin supports from the floor up to the slab
    below = area[: runs[0][0]]  # under the lowest slab (a table's lower shelf stands on legs too)
    thin = below[below > 0]
    if runs[0][0] >= 2 and len(thin) and grid[:, :, 0].any() and thin.max() <= footprint / 3:
        layout.has_legs = bottom - layout.floor > 2 * voxel
    # back: the top fifth above the slab, thin at one end
    above = grid[:, :, slab_layers[1]:]
    above_height = layout.ceiling - top
    if above.any() and above_height > 3 * voxel:
        first = slab_layers[1] + int(0.8 * (above.shape[2] - _empty_top(above)))
        upper = grid[:, :, first:].any(axis=2)
        _find_back(layout, upper, grid[:, :, slab_layers[0]:slab_layers[1]].any(axis=2), low, voxel)
    _label(layout, frame, faces, above.any())
    # shelves: boards below the main slab (a table), or inner boards of a frame with no legs
    others = [s for i, s in enumerate(layout.slabs) if i != best]
    if layout.has_legs:
        layout.shelves = [s for s in others if s[1] < bottom]
    elif len(layout.slabs) >= 3:
        layout.shelves = layout.slabs[1:-1]
    shelf = np.zeros(len(frame), bool)
    for low_z, high_z in layout.shelves:
        shelf |= (frame[:, 2] >= low_z - 1e-9) & (frame[:, 2] <= high_z + 1e-9)
    layout.labels[shelf & (layout.labels != PART_IDS["back"])] = PART_IDS["shelf"]
    _by_component(layout)
    return layout


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True."""
    edges = np.diff(np.concatenate([[0], flags.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def _empty_top(above: np.ndarray) -> int:
    filled = np.flatnonzero(above.any(axis=(0, 1)))
    return above.shape[2] - 1 - int(filled[-1]) if len(filled) else above.shape[2]


def _heights(z: np.ndarray) -> np.ndarray:
    return np.unique(z)


def _snap(heights: np.ndarray, z: float) -> float:
    """The mesh's own vertex height nearest to a layer boundary (a box's face lies exactly there)."""
    i = int(np.clip(np.searchsorted(heights, z), 1, len(heights) - 1))
    return float(heights[i] if abs(heights[i] - z) < abs(heights[i - 1] - z) else heights[i - 1])


def _find_back(layout: Layout, upper: np.ndarray, plan: np.ndarray, low: np.ndarray, voxel: float) -> None:
    """The back: the top of what stands above the slab, thin and at one end of an axis of the
    slab's own plan (`plan`)."""
    best = None
    for axis in (0, 1):
        top_cells = np.flatnonzero(upper.any(axis=1 - axis))
        all_cells = np.flatnonzero(plan.any(axis=1 - axis))
        extent = all_cells[-1] - all_cells[0] + 1
        span = top_cells[-1] - top_cells[0] + 1
        middle = (all_cells[0] + all_cells[-1] + 1) / 2
        centre = (top_cells[0] + top_cells[-1] + 1) / 2
        off = (centre - middle) / extent
        if span <= 0.4 * extent and abs(off) >= 0.2 and (best is None or span / extent < best[0]):
            side = 1 if off > 0 else -1
            near_end = all_cells[-1] + 1 if side > 0 else all_cells[0]
            cells = (top_cells[0] - 1, near_end) if side > 0 else (near_end, top_cells[-1] + 2)
            band = (low[axis] + cells[0] * voxel, low[axis] + cells[1] * voxel)
            best = (span / extent, axis, side, band)
    if best:
        _, layout.back_axis, layout.back_side, layout.back_band = best


def _label(layout: Layout, frame: np.ndarray, faces: np.ndarray, anything_above: bool) -> None:
    bottom, top = layout.slab
    z = frame[:, 2]
    labels = layout.labels
    labels[(z >= bottom) & (z <= top)] = PART_IDS["slab"]
    if layout.has_legs:
        labels[z < bottom] = PART_IDS["legs"]
    high = z > top
    if layout.back_axis is not None:
        t = frame[:, layout.back_axis]
        in_band = (t >= layout.back_band[0]) & (t <= layout.back_band[1])
        labels[high & in_band] = PART_IDS["back"]
        rest = high & ~in_band
        if rest.any() and z[rest].max() - top > layout.voxel:
            labels[rest] = PART_IDS["arms"]
            layout.has_arms = True
    layout.components = _components(frame, faces)


def _components(frame: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each vertex's loose part (connected through shared vertices, as Blender's Select Linked)."""
    n = len(frame)
    a, b, c = faces[:, 0], faces[:, 1], faces[:, 2]
    graph = coo_matrix((np.ones(2 * len(faces)), (np.r_[a, b], np.r_[b, c])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def _by_component(layout: Layout) -> None:
    """A loose part that is not most of the object, nor reaches from under the slab to above it,
    takes the label of its bounding box's centre,
    when at least a quarter of its vertices have that label already (a leg reaching into the
    seat, an armrest standing on it; not two parts modelled as one box)."""
    frame, comp = layout.frame, layout.components
    count = int(comp.max()) + 1
    if count < 2:
        return
    order = np.argsort(comp, kind="stable")
    starts = np.searchsorted(comp[order], np.arange(count))
    low = np.minimum.reduceat(frame[order], starts, axis=0)
    high = np.maximum.reduceat(frame[order], starts, axis=0)
    sizes = np.bincount(comp, minlength=count)
    # not most of the object, and not through the slab (a frame from the floor up into the arms)
    small = (sizes < 0.5 * len(comp)) & ~((low[:, 2] < layout.slab[0]) & (high[:, 2] > layout.slab[1]))
    centre = (low + high) / 2
    centre_labels = _labels_at(layout, centre)
    # a bar between the legs that does not reach the floor (a stretcher, a footrest) is no leg
    across = np.maximum(high[:, 0] - low[:, 0], high[:, 1] - low[:, 1])
    plan = layout.frame[:, :2]
    # it spans between legs (a quarter of the plan's narrow side), not a scrap of a leg's surface
    flat = ((high[:, 2] - low[:, 2]) < across) & (across >= 0.25 * np.ptp(plan, axis=0).min()) & (sizes >= 8)
    stretcher = (centre_labels == PART_IDS["legs"]) & (low[:, 2] > layout.floor + layout.voxel) & flat
    centre_labels[stretcher] = PART_IDS["other"]
    agree = np.bincount(comp, weights=layout.labels == centre_labels[comp], minlength=count)
    take = (small & ((agree >= 0.25 * sizes) | stretcher))[comp]
    layout.labels[take] = centre_labels[comp[take]]


def _labels_at(layout: Layout, points: np.ndarray) -> np.ndarray:
    """The label a point gets by where it lies (the same rules as the vertices)."""
    out = np.zeros(len(points), np.int8)
    bottom, top = layout.slab
    z = points[:, 2]
    out[(z >= bottom) & (z <= top)] = PART_IDS["slab"]
    if layout.has_legs:
        out[z < bottom] = PART_IDS["legs"]
    for low_z, high_z in layout.shelves:
        out[(z >= low_z) & (z <= high_z)] = PART_IDS["shelf"]
    if layout.back_axis is not None:
        t = points[:, layout.back_axis]
        in_band = (t >= layout.back_band[0]) & (t <= layout.back_band[1])
        out[(z > top) & in_band] = PART_IDS["back"]
        if layout.has_arms:
            out[(z > top) & ~in_band] = PART_IDS["arms"]
    return out


def dilated(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    return ndimage.binary_dilation(mask, iterations=steps)
