"""Part edits on the artist's own mesh: one part changed, the rest kept (geometry/parts.py finds it).

    edit = edit_part(vertices, faces, "legs", "longer", amount, up="z")
    edit.vertices      # the caller's vertices, moved (same count and order)
    edit.removed       # indices of the caller's faces taken away (remove)
    edit.added         # (vertices, faces) of a new part, or None (add)
    edit.summary       # "legs x1.35 (0.41 -> 0.554); everything above moved up 0.144, its shape kept"

What each change does (heights in the object's frame, Z up):
- legs longer/shorter: the legs' height (floor to the main slab) times the ratio; a shelf between
  the legs keeps its thickness; everything above the legs moves up or down rigidly;
- seat/top thicker/thinner: the slab's thickness times the ratio, grown upwards; what stands on
  it moves rigidly; "raise/lower the seat (or top)" is the legs' edit;
- back or arms longer/shorter ("raise the backrest"): their height above the slab times the
  ratio; nothing else moves;
- legs, arms, back or shelves thicker/thinner: each piece scaled about its own middle across its
  thickness (legs both horizontal axes, arms the width, the back the depth, shelves the height);
- remove: the faces whose vertices all belong to the part (or lie on the plane where it meets
  the rest); every other face and vertex stays as it was;
- add: new geometry in the object's style, touching it: a shelf (a copy of an existing board, or
  a plate of the top's thickness between a table's legs), armrests (bars and front posts as thick
  as the back), a backrest (a plate of the seat's thickness). The only new geometry an edit makes.
A coordinate an edit does not move keeps its exact value; a rigid move adds one number to one
coordinate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from backend.amounts import Amount

from .parts import PART_IDS, Layout, find_layout

PART_NAMES = {"legs": "legs", "seat": "seat", "top": "top", "back": "back", "arms": "armrests", "shelf": "shelf"}


class PartAbsent(ValueError):
    """The shape has no such part, or the tool cannot make this change to it (message for the artist)."""


class NoRoom(ValueError):
    """The change does not fit (a shelf in a full frame, legs shorter than nothing)."""


@dataclass
class PartEdit:
    vertices: np.ndarray  # float32 [N, 3]: the caller's vertices, moved
    removed: np.ndarray  # int32 [K]: the caller's faces taken away
    added: tuple[np.ndarray, np.ndarray] | None  # a new part (float32 [A,3], int32 [B,3]) or None
    summary: str
    part_mask: np.ndarray  # bool [N]: the vertices of the edited part
    ratio: float = 1.0


def edit_part(vertices, faces, part: str, change: str, amount: Amount | None = None, up: str = "z",
              layout: Layout | None = None) -> PartEdit:
    vertices = np.asarray(vertices, np.float32)
    faces = np.asarray(faces, np.int64)
    layout = layout or find_layout(vertices, faces, up)
    if part in ("seat", "top"):  # a plate above the floor (a bowl's bottom is none)
        _need(layout.slab is not None and layout.slab[0] > layout.floor + 2 * layout.voxel,
              f"this shape has no {part} (a horizontal plate above the floor) to change")
        if change in ("longer", "shorter"):  # raise or lower the seat: the legs' edit
            _need(layout.has_legs, f"this shape has no legs under its {part} to raise or lower it by")
            part = "legs"
    if change == "remove":
        return _remove(vertices, faces, layout, part)
    if change == "add":
        return _add(vertices, faces, layout, part)
    grows = change in ("longer", "thicker")
    if part == "legs" and change in ("longer", "shorter"):
        return _legs(vertices, layout, amount, grows)
    if part in ("seat", "top") and change in ("thicker", "thinner"):
        return _slab(vertices, layout, amount, grows, part)
    if part in ("back", "arms") and change in ("longer", "shorter"):
        return _above(vertices, layout, amount, grows, part)
    if part in THICKNESS_AXES and change in ("thicker", "thinner"):
        return _thickness(vertices, faces, layout, amount, grows, part)
    what = {"legs": "longer, shorter, thicker or thinner, or removed", "seat": "thicker, thinner, raised, lowered or removed",
            "top": "thicker, thinner, raised, lowered or removed",
            "back": "taller, shorter, thicker, thinner, removed or added",
            "arms": "higher, lower, thicker, thinner, removed or added",
            "shelf": "thicker, thinner, added or removed"}[part]
    raise PartAbsent(f"the {PART_NAMES[part]} can be made {what}, not {change}")


def _need(ok: bool, message: str) -> None:
    if not ok:
        raise PartAbsent(message)


def _ratio(amount: Amount | None, grows: bool, length: float) -> float:
    if amount is None:
        return 1.35 if grows else 1 / 1.35
    ratio = amount.factor_for(length)
    if not 0.1 <= ratio <= 10:
        raise NoRoom(f"a part can be made 0.1 to 10 times as long, not {ratio:.3g} times")
    return ratio


def _up_column(layout: Layout) -> tuple[int, float]:
    """The caller's axis that is the frame's up, and its sign."""
    row = layout.rotation[2]
    axis = int(np.argmax(np.abs(row)))
    return axis, float(row[axis])


def _moved(vertices: np.ndarray, layout: Layout, new_z: np.ndarray) -> np.ndarray:
    """The caller's vertices with the frame's up coordinate set to new_z where it changed."""
    axis, sign = _up_column(layout)
    out = vertices.copy()
    old_z = layout.frame[:, 2]
    change = new_z != old_z
    out[change, axis] = (sign * new_z[change]).astype(np.float32)
    return out


def _legs(vertices, layout: Layout, amount, grows: bool) -> PartEdit:
    _need(layout.has_legs, "this shape has no legs (thin supports under a seat or top) to change")
    floor, bottom = layout.floor, layout.slab[0]
    height = bottom - floor
    ratio = _ratio(amount, grows, height)
    # knots: leg stretches between the floor, any shelf between the legs, and the slab
    shelves = [s for s in layout.shelves if s[1] <= bottom]
    kept = sum(top - low for low, top in shelves)
    scale = (ratio * height - kept) / (height - kept)
    if scale <= 0.05:
        raise NoRoom("the legs would be shorter than the shelf between them")
    source = [floor] + [z for s in shelves for z in s] + [bottom]
    target = [floor]
    for i in range(1, len(source)):
        step = source[i] - source[i - 1]
        target.append(target[-1] + (step if i % 2 == 0 else step * scale))  # even: a shelf, kept
    z = layout.frame[:, 2]
    new_z = np.where(z >= bottom, z + (target[-1] - bottom), np.interp(z, source, target))
    # what stands between the legs without being one (a stretcher) moves whole, with its middle
    between = (layout.labels == PART_IDS["other"]) & (z > floor) & (z < bottom)
    for part in np.unique(layout.components[between]):
        rows = layout.components == part
        if z[rows].min() <= floor or z[rows].max() >= bottom:
            continue  # reaches the floor or the slab: it stretches with the legs
        middle = (z[rows].min() + z[rows].max()) / 2
        new_z[rows] = z[rows] + (np.interp(middle, source, target) - middle)
    moved = _moved(vertices, layout, new_z)
    delta = target[-1] - bottom
    return PartEdit(moved, np.zeros(0, np.int32), None,
                    f"legs x{ratio:.2f} ({height:.3g} -> {ratio * height:.3g}); everything above moved "
                    f"{'up' if delta >= 0 else 'down'} {abs(delta):.3g}, its shape kept", layout.mask("legs"), ratio)


def _slab(vertices, layout: Layout, amount, grows: bool, name: str) -> PartEdit:
    bottom, top = layout.slab
    thickness = top - bottom
    ratio = _ratio(amount, grows, thickness)
    z = layout.frame[:, 2]
    delta = (ratio - 1) * thickness
    new_z = np.where(z >= top, z + delta, np.where(z > bottom, bottom + (z - bottom) * ratio, z))
    moved = _moved(vertices, layout, new_z)
    return PartEdit(moved, np.zeros(0, np.int32), None,
                    f"{name} thickness x{ratio:.2f} ({thickness:.3g} -> {ratio * thickness:.3g}); what stands on "
                    f"it moved {'up' if delta >= 0 else 'down'} {abs(delta):.3g}, legs kept", layout.mask("slab"), ratio)


def _above(vertices, layout: Layout, amount, grows: bool, part: str) -> PartEdit:
    has = layout.back_axis is not None if part == "back" else layout.has_arms
    _need(has and layout.mask(part).any(), f"this shape has no {PART_NAMES[part]} to change")
    mask = layout.mask(part)
    top = layout.slab[1]
    z = layout.frame[:, 2]
    height = float(z[mask].max() - top)
    ratio = _ratio(amount, grows, height)
    new_z = z.copy()
    new_z[mask] = top + (z[mask] - top) * ratio
    moved = _moved(vertices, layout, new_z)
    return PartEdit(moved, np.zeros(0, np.int32), None,
                    f"{PART_NAMES[part]} x{ratio:.2f} in height above the seat ({height:.3g} -> {ratio * height:.3g}); "
                    "everything else kept", mask, ratio)


# the frame axes a part's thickness lies along (a function of the layout)
THICKNESS_AXES = {"legs": lambda layout: (0, 1), "arms": lambda layout: (layout.width_axis,),
                  "back": lambda layout: (layout.back_axis,), "shelf": lambda layout: (2,)}


def _thickness(vertices, faces, layout: Layout, amount, grows: bool, part: str) -> PartEdit:
    """Each piece of the part made thicker or thinner about its own middle, along THICKNESS_AXES.
    A piece is a connected run of the part's faces (one leg, one armrest, one board)."""
    has = {"legs": layout.has_legs, "arms": layout.has_arms, "back": layout.back_axis is not None,
           "shelf": bool(layout.shelves)}[part]
    mask = layout.mask(part)
    _need(has and mask.any(), f"this shape has no {PART_NAMES[part]} to change")
    axes = THICKNESS_AXES[part](layout)
    inner = faces[mask[faces].all(axis=1)]
    n = len(vertices)
    graph = coo_matrix((np.ones(2 * len(inner)), (np.r_[inner[:, 0], inner[:, 1]], np.r_[inner[:, 1], inner[:, 2]])),
                       shape=(n, n))
    piece = connected_components(graph, directed=False)[1]
    frame = layout.frame.copy()
    pieces = np.unique(piece[mask])
    sizes = [float(np.ptp(layout.frame[mask & (piece == p)][:, axes[0]])) for p in pieces]
    ratio = _ratio(amount, grows, float(np.median(sizes)))
    for p in pieces:
        rows = mask & (piece == p)
        for axis in axes:
            column = layout.frame[rows, axis]
            middle = (column.min() + column.max()) / 2
            frame[rows, axis] = middle + (column - middle) * ratio
    moved = vertices.copy()
    for axis in axes:  # back to the caller's axes, only where a coordinate changed
        caller = int(np.argmax(np.abs(layout.rotation[axis])))
        sign = float(layout.rotation[axis, caller])
        change = frame[:, axis] != layout.frame[:, axis]
        moved[change, caller] = (sign * frame[change, axis]).astype(np.float32)
    name = "shelves" if part == "shelf" else PART_NAMES[part]
    return PartEdit(moved, np.zeros(0, np.int32), None,
                    f"{name} x{ratio:.2f} in thickness ({len(pieces)} pieces, each about its middle); "
                    "everything else kept", mask, ratio)


# -- remove ----------------------------------------------------------------------------------
def _remove(vertices, faces, layout: Layout, part: str) -> PartEdit:
    has = {"legs": layout.has_legs, "back": layout.back_axis is not None, "arms": layout.has_arms,
           "shelf": bool(layout.shelves), "seat": True, "top": True}[part]
    mask = layout.mask("slab" if part in ("seat", "top") else part)
    _need(has and mask.any(), f"this shape has no {PART_NAMES[part]} to remove")
    z = layout.frame[:, 2]
    plane = layout.slab[0] if part == "legs" else layout.slab[1]
    boundary = ~mask & (np.abs(z - plane) <= 1e-7 * max(1.0, abs(plane)))
    if part in ("seat", "top"):  # what touches it from below or above stays whole
        boundary = np.zeros_like(mask)
    if part == "shelf":
        mask = _one_shelf(layout, mask)
        boundary = np.zeros_like(mask)
    member = mask | boundary
    gone = member[faces].all(axis=1) & mask[faces].any(axis=1)
    removed = np.flatnonzero(gone).astype(np.int32)
    _need(len(removed) > 0, f"no face belongs to the {PART_NAMES[part]} alone, so nothing can be removed")
    return PartEdit(vertices.copy(), removed, None,
                    f"removed the {PART_NAMES[part]} ({len(removed)} of {len(faces)} faces); every other face kept",
                    mask)


def _one_shelf(layout: Layout, mask: np.ndarray) -> np.ndarray:
    """A shelf edit takes one board: the lowest of a table's, the middle one of a bookshelf's."""
    shelves = layout.shelves
    low, high = shelves[0] if layout.has_legs else shelves[len(shelves) // 2]
    z = layout.frame[:, 2]
    return mask & (z >= low - 1e-9) & (z <= high + 1e-9)


# -- add -------------------------------------------------------------------------------------
def _add(vertices, faces, layout: Layout, part: str) -> PartEdit:
    _need(layout.slab is not None and layout.slab[0] > layout.floor + 2 * layout.voxel,
          f"this shape has no seat or top to fit {PART_NAMES[part]} to")
    if part == "shelf":
        added, where = _new_shelf(layout, faces)
    elif part == "arms":
        _need(not layout.has_arms, "this shape already has armrests")
        _need(layout.back_axis is not None, "armrests go on a seat with a back; this shape has no back")
        added, where = _new_arms(layout), "on both sides of the seat"
    elif part == "back":
        _need(layout.back_axis is None, "this shape already has a back")
        added, where = _new_back(layout), "at the rear of the seat"
    else:
        raise PartAbsent(f"the tool cannot add {PART_NAMES[part]}; it can add a shelf, armrests or a backrest")
    new_vertices, new_faces = added
    caller = (new_vertices @ layout.rotation).astype(np.float32)  # back to the caller's frame
    return PartEdit(vertices.copy(), np.zeros(0, np.int32), (caller, new_faces.astype(np.int32)),
                    f"added {PART_NAMES[part] if part != 'shelf' else 'a shelf'} {where} as a separate part "
                    f"({len(new_faces)} faces); every original face kept", np.zeros(len(vertices), bool))


def box_mesh(low, high) -> tuple[np.ndarray, np.ndarray]:
    """A closed box (8 vertices, 12 outward triangles) from its low and high corners."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = np.array([[(high if (i >> k) & 1 else low)[k] for k in range(3)] for i in range(8)])
    faces = np.array([[0, 2, 1], [1, 2, 3], [4, 5, 6], [5, 7, 6], [0, 1, 4], [1, 5, 4],
                      [2, 6, 3], [3, 6, 7], [0, 4, 2], [2, 4, 6], [1, 3, 5], [3, 7, 5]])
    return corners, faces


def _join(meshes) -> tuple[np.ndarray, np.ndarray]:
    vertices, faces, offset = [], [], 0
    for v, f in meshes:
        vertices.append(v)
        faces.append(f + offset)
        offset += len(v)
    return np.concatenate(vertices), np.concatenate(faces)


def _new_shelf(layout: Layout, faces: np.ndarray):
    frame, z = layout.frame, layout.frame[:, 2]
    bottom, top = layout.slab
    thickness = top - bottom
    if layout.has_legs and layout.back_axis is None:  # a table: a plate between the legs
        _need(not layout.shelves, "this table already has a shelf between its legs")
        legs = frame[layout.mask("legs")]
        low, high = legs.min(axis=0), legs.max(axis=0)
        centre = layout.floor + 0.2 * (bottom - layout.floor)
        plate = box_mesh([low[0], low[1], centre - thickness / 2], [high[0], high[1], centre + thickness / 2])
        return plate, f"between the legs at height {centre - layout.floor:.3g}"
    _need(len(layout.slabs) >= 2 and not layout.has_legs,
          "a shelf goes between the boards of a frame or the legs of a table; this shape has neither")
    slabs = layout.slabs
    gaps = [(slabs[i + 1][0] - slabs[i][1], i) for i in range(len(slabs) - 1)]
    gap, i = max(gaps)
    board = slabs[1] if len(slabs) > 2 else slabs[0]
    board_t = board[1] - board[0]
    if gap < 3 * board_t:
        raise NoRoom("there is no gap between the boards wide enough for another shelf")
    centre = (slabs[i][1] + slabs[i + 1][0]) / 2
    # the new board: a copy of an existing board's faces, moved up (the same style)
    inside = (z >= board[0] - 1e-9) & (z <= board[1] + 1e-9)
    copy = inside[faces].all(axis=1)
    _need(copy.any(), "no board's faces could be copied for a new shelf")
    used = np.unique(faces[copy])
    index = np.full(len(frame), -1)
    index[used] = np.arange(len(used))
    v = frame[used].copy()
    v[:, 2] += centre - (board[0] + board[1]) / 2
    return (v, index[faces[copy]]), f"at height {centre - layout.floor:.3g}, a copy of the board at {board[0] - layout.floor:.3g}"


def _new_arms(layout: Layout):
    frame = layout.frame
    depth, width = layout.back_axis, layout.width_axis
    slab = frame[layout.mask("slab")] if layout.mask("slab").any() else frame
    back = frame[layout.mask("back")]
    top = layout.slab[1]
    thick = min(layout.back_band[1] - layout.back_band[0], 0.12 * np.ptp(slab[:, width]))
    bar_t = min(layout.slab[1] - layout.slab[0], thick)
    bar_top = top + 0.45 * (back[:, 2].max() - top)
    inner = layout.back_band[0] if layout.back_side > 0 else layout.back_band[1]
    front = slab[:, depth].min() if layout.back_side > 0 else slab[:, depth].max()
    d_low, d_high = sorted((front, inner))
    boxes = []
    for side in (slab[:, width].min(), slab[:, width].max() - thick):
        bar_low, bar_high = np.zeros(3), np.zeros(3)
        bar_low[width], bar_high[width] = side, side + thick
        bar_low[depth], bar_high[depth] = d_low, d_high
        bar_low[2], bar_high[2] = bar_top - bar_t, bar_top
        boxes.append(box_mesh(bar_low, bar_high))
        post_low, post_high = bar_low.copy(), bar_high.copy()
        post_low[2], post_high[2] = top, bar_top - bar_t
        if layout.back_side > 0:
            post_high[depth] = d_low + thick
        else:
            post_low[depth] = d_high - thick
        boxes.append(box_mesh(post_low, post_high))
    return _join(boxes)


def _new_back(layout: Layout):
    frame = layout.frame
    slab = frame[layout.mask("slab")] if layout.mask("slab").any() else frame
    low, high = slab.min(axis=0), slab.max(axis=0)
    depth = 0 if (high[0] - low[0]) < (high[1] - low[1]) else 1  # the seat's shorter side
    thick = layout.slab[1] - layout.slab[0]
    top = layout.slab[1]
    plate_low, plate_high = low.copy(), high.copy()
    plate_low[depth] = high[depth] - thick
    plate_low[2], plate_high[2] = top, top + 0.6 * (top - layout.floor)
    return box_mesh(plate_low, plate_high)
