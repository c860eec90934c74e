"""The edit policy: how an instruction becomes an edited shape (a preset's EditSettings).

    read = read_instruction(llm, settings, instruction, vertices, up, cancelled)  # part or kind, amount
    read, edit = part_edit(read, vertices, faces, layout)  # read.part: one part changed on the own mesh
    fill = read.fill                                  # the frame the source is read in
    answer = make_edit(settings, read, source, model_answer, codes_of, cancelled)

With a model that names edit kinds (settings.read_kind) the words come first
(backend/edit_words.py): a part and a change ("make the legs longer") is a part edit on the
artist's own mesh (geometry/part_edit.py); words about size with a side ("taller") are that
proportion edit; size words without one are the model's kind question, and a read less sure
than settings.min_confidence is refused, as is an instruction with no size or part words at all
("make it red"), an add or remove of a part the tool does not know ("add a tail") and a part the
shape does not have, each with what the tool can do instead. Taller, shorter, wider and thinner are planned on the
source's voxels (geometry/resize.py) by the amount the words ask (backend/amounts.py), and the
plan's axis maps move the artist's own vertices (geometry/deform.py): a small model's answer
would lose the shape. Every other instruction, and every instruction for a model that does not
name kinds (the published one), is the model's own answer: it was normalised on its own, so its
size comes from the sides the edit kept (placement.fit_edit_answer), and when it keeps too
little of the source (settings.min_overlap) it is another shape, refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from backend.amounts import LIMITS, Amount, read_amount
from backend.edit_words import read_words
from backend.errors import CancelCheck, Cancelled, TaskError
from backend.geometry.part_edit import NoRoom as PartNoRoom
from backend.geometry.part_edit import PartAbsent, PartEdit, edit_part
from backend.geometry.parts import Layout
from backend.geometry.placement import best_shift_overlap, fit_edit_answer, placed_grid
from backend.geometry.resize import EDIT_FACTOR
from backend.geometry.resize import EDIT_FILL as RESIZE_FILL
from backend.geometry.resize import PROPORTION_KINDS, AxisMap, NoRoom, resize_with_map
from backend.geometry.surface import MIN_COMPONENT_VOXELS, remove_small_components
from backend.models.presets import EditSettings


@dataclass(frozen=True)
class EditRead:
    """How the instruction was read: the kind the model named (None for a model that names
    none) and its probability among the six kinds."""

    kind: str | None = None
    confidence: float | None = None
    resize: bool = False  # a proportion kind: the source's voxels are resized
    ratio: float = EDIT_FACTOR  # a resize: the changed side's new length over its old one
    amount: str = ""  # the words that asked for the ratio ("" for the default)
    part: str | None = None  # a part edit: the part (edit_words.PARTS) ...
    change: str | None = None  # ... and what to do with it (edit_words.CHANGES)
    part_amount: Amount | None = None  # how much, for a part's size change
    offers: bool = False  # "give it a tall back": a shape without the part gets one added
    width_axis: int = 0  # the voxel axis wider and thinner (or deeper and shallower) change

    @property
    def fill(self) -> float:
        """The source's longest side as a share of the cube: a resize needs room to grow (the
        default's room, or more for a larger ratio); the model's own answer reads every shape
        normalised on its own (fill 1)."""
        return min(RESIZE_FILL, 1 / self.ratio) if self.resize else 1.0


@dataclass
class EditAnswer:
    voxels: np.ndarray  # bool [R, R, R]: the edited occupancy in the source's unit frame
    codes: np.ndarray  # int32 [1024]: its VQVAE codes
    scale: float = 1.0  # the answer's unit-frame vertices u go to u * scale + offset
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))
    # a resize: how it moved the grid along each changed axis, which moves the artist's own
    # vertices the same way (geometry/deform.py); None for a model-written answer
    maps: list[AxisMap] | None = None

    def placed(self, vertices_unit: np.ndarray) -> np.ndarray:
        return vertices_unit * np.float32(self.scale) + self.offset.astype(np.float32)


def source_fill(settings: EditSettings, kind: str | None) -> float:
    """The fill an edit of `kind` reads its source at under these settings."""
    return EditRead(kind, resize=settings.read_kind and kind in PROPORTION_KINDS).fill


CAN_DO = ('it can make the whole shape taller, shorter, wider, thinner or deeper (by "a little", "a lot", '
          '"twice", "20 %" or "to 1.2 m"), make legs longer, shorter, thicker or thinner, a seat or top thicker '
          'or thinner, a back or armrests higher or lower, remove legs, a back, armrests, a shelf or the seat, '
          'and add a shelf, armrests or a backrest: say it like "make the legs longer" or "remove the '
          'armrests", or use the buttons')


def _refuse(message: str) -> TaskError:
    return TaskError("no_shape", f"{message}, so nothing was changed. {CAN_DO[0].upper()}{CAN_DO[1:]}")


def read_instruction(llm, settings: EditSettings, instruction: str, vertices: np.ndarray, up: str,
                     cancelled, width_axis: int = 0, depth_axis: int = 1,
                     metres_per_unit: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> EditRead:
    """What the instruction asks: a part edit from its words (backend/edit_words.py), else a
    whole-object side from its words or, where they name none, the model's kind; the amount from
    the words (backend/amounts.py). `vertices`, the caller's mesh with `up` its up axis, size an
    amount given as a length ("to 1.2 m"); `width_axis` and `depth_axis` are the caller's axes
    "wider" and "deeper" change (the object's own: geometry/parts.py); `metres_per_unit`, per
    caller axis, turns "10 cm" into the mesh's units (the object's scale in the scene). A model
    that names no kinds (the published one) writes every edit itself."""
    if not settings.read_kind:
        return EditRead()
    words = read_words(instruction)
    if words.is_part_edit:
        grows = words.change in ("longer", "thicker")
        amount = read_amount(instruction, grows=grows) if words.change not in ("add", "remove") else None
        if amount is not None:  # heights along the up axis, a leg's or a back's thickness across
            vertical = words.change in ("longer", "shorter") or words.part in ("seat", "top", "shelf")
            axis = (2 if up == "z" else 1) if vertical else (depth_axis if words.part == "back" else width_axis)
            amount = amount.in_units(float(metres_per_unit[axis]))
        return EditRead(f"{words.part} {words.change}", part=words.part, change=words.change,
                        part_amount=amount, amount=amount.said if amount else "", offers=words.offers)
    if words.part:
        raise _refuse(f'"{instruction}" names the {words.part} but not how to change them')
    if words.change in ("add", "remove"):
        thing = f' "{words.unknown_thing}"' if words.unknown_thing else " that"
        raise _refuse(f"the tool cannot {words.change}{thing}")
    if not words.sized:
        raise _refuse(f'"{instruction}" is not a change of shape this tool makes')
    kind, confidence = words.side, None
    if kind is None:  # size words without a side ("change the height"): the model's read
        kind, confidence = llm.read_edit_kind(instruction, cancelled)
        if kind not in PROPORTION_KINDS or confidence < settings.min_confidence:
            raise _refuse(f'not an edit this model knows: read as "{kind}" only {confidence:.0%} sure')
    amount = read_amount(instruction, grows=kind in ("taller", "wider", "deeper"))
    axis = {"wider": width_axis, "thinner": width_axis, "deeper": depth_axis, "shallower": depth_axis}.get(
        kind, 2 if up == "z" else 1)
    ratio = amount.factor_for(float(np.ptp(vertices[:, axis])) * float(metres_per_unit[axis]))
    if not LIMITS[0] <= ratio <= LIMITS[1]:
        raise TaskError("no_shape", f'read as "{kind}" by "{amount.said}": a side can be made {LIMITS[0]:g} to '
                                    f"{LIMITS[1]:g} times as long, not {ratio:.3g} times")
    return EditRead(kind, confidence, resize=True, ratio=ratio, amount=amount.said)


ADDABLE = ("back", "arms", "shelf")


def part_edit(read: EditRead, vertices: np.ndarray, faces: np.ndarray, layout: Layout) -> tuple[EditRead, PartEdit]:
    """A part edit on the caller's own mesh (geometry/part_edit.py), or a refusal saying why.
    "Give it a tall back" on a shape with no back adds one: the read comes back as that add."""
    try:
        return read, edit_part(vertices, faces, read.part, read.change, read.part_amount, layout=layout)
    except PartAbsent as err:
        if not (read.offers and read.part in ADDABLE and read.change not in ("add", "remove")):
            raise _refuse(str(err)) from err
        added = replace(read, kind=f"{read.part} add", change="add", part_amount=None, amount="")
        try:
            return added, edit_part(vertices, faces, read.part, "add", layout=layout)
        except PartAbsent:
            raise _refuse(str(err)) from err
        except PartNoRoom as no_room:
            raise TaskError("no_shape", f"cannot make this edit: {no_room}; nothing was changed") from no_room
    except PartNoRoom as err:
        raise TaskError("no_shape", f"cannot make this edit: {err}; nothing was changed") from err


def make_edit(settings: EditSettings, read: EditRead, source: np.ndarray,
              model_answer: Callable[[], tuple[np.ndarray, np.ndarray]],
              codes_of: Callable[[np.ndarray], np.ndarray], cancelled: CancelCheck) -> EditAnswer:
    """source: the source's occupancy read at read.fill. model_answer() -> (codes, voxels) asks
    the model; codes_of(voxels) -> codes encodes a grid."""
    if read.resize:
        # The artist's own mesh is moved the way the grid's slices moved (the voxels stay for
        # the codes and for anyone comparing grids).
        try:
            grid_kind = {"deeper": "wider", "shallower": "thinner"}.get(read.kind, read.kind)  # along width_axis
            voxels, maps = resize_with_map(source, grid_kind, read.ratio, read.width_axis)
        except NoRoom as err:
            raise TaskError("no_shape", f"cannot make this shape {read.kind}: {err}") from err
        if cancelled():
            raise Cancelled()
        return EditAnswer(voxels, codes_of(voxels), maps=maps)
    codes, voxels = model_answer()
    scale, offset = fit_edit_answer(source, remove_small_components(voxels, MIN_COMPONENT_VOXELS))
    if settings.min_overlap > 0:
        _refuse_another_shape(settings.min_overlap, read, source, placed_grid(voxels, scale, offset))
    return EditAnswer(voxels, codes, scale, offset)


def _refuse_another_shape(min_overlap: float, read: EditRead, source: np.ndarray, placed: np.ndarray) -> None:
    """A model-written answer that keeps too little of the source, placed and at the best small
    shift, is another shape, not this one edited: a stray object beside the artist's is worse
    than a clear no."""
    overlap = best_shift_overlap(source, placed)
    if overlap < min_overlap:
        said = f'read as "{read.kind}": ' if read.kind else ""
        raise TaskError("no_shape", f"{said}the model could not make this edit, its answer keeps only "
                                    f"{overlap:.0%} of the shape, so nothing was added")
