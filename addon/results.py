"""Put finished jobs into the scene: where the artist expects them, named, with provenance."""

from __future__ import annotations

import re

import bpy
import numpy as np
from mathutils import Matrix

from .jobs import Placement
from .mesh_bridge import build_mesh, check_arrays
from .wire import protocol

COLLECTION_NAME = "ShapeLLM"
VARIATION_GAP = 0.25  # free space between variations side by side, in object sizes


def object_name(text: str, fallback: str = "Shape") -> str:
    """'a chair with four legs' -> 'Chair with four legs' (short, no leading article)."""
    words = re.sub(r"[^\w\s-]", " ", text).split()
    if words and words[0].lower() in ("a", "an", "the"):
        words = words[1:]
    name = " ".join(words)[:48].strip() or fallback
    return name[0].upper() + name[1:]


def result_collection(scene) -> bpy.types.Collection:
    collection = bpy.data.collections.get(COLLECTION_NAME)
    if collection is None:
        collection = bpy.data.collections.new(COLLECTION_NAME)
    if scene.collection.children.get(collection.name) is None:
        scene.collection.children.link(collection)
    return collection


def fit_unit_mesh(vertices: np.ndarray, size: float) -> np.ndarray:
    """Scale a unit-frame mesh so its largest side is `size`, standing on z = 0, centred in x, y."""
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    extent = float((high - low).max()) or 1.0
    centre = (low + high) / 2
    out = (vertices - centre) * (size / extent)
    out[:, 2] -= out[:, 2].min()
    return out.astype(np.float32)


def world_to_local(vertices: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map world-space points into the frame whose world matrix is `matrix`."""
    inverse = np.linalg.inv(matrix.astype(np.float64))
    homogeneous = np.c_[vertices.astype(np.float64), np.ones(len(vertices))]
    return (homogeneous @ inverse.T)[:, :3].astype(np.float32)


def set_provenance(obj, task: str, label: str, preset: str, seed=None, duration: float = 0.0) -> None:
    obj["shapellm_task"] = task
    if task == "edit":
        obj["shapellm_instruction"] = label
    elif task != "describe":
        obj["shapellm_prompt"] = label
    if seed is not None:
        obj["shapellm_seed"] = int(seed)
    obj["shapellm_preset"] = preset
    obj["shapellm_duration_s"] = round(duration, 3)


def set_job_provenance(obj, job, preset: str, variation: dict | None = None) -> None:
    """`variation`: the result's entry for this shape of several ({"index", "seed"})."""
    seed = job.options.get("seed") if variation is None else variation.get("seed")
    set_provenance(obj, job.task, job.label, preset, seed, job.duration)
    if variation is not None:
        obj["shapellm_variation"] = int(variation["index"])


def shape_name(task: str, label: str, placement: Placement) -> str:
    """An edited copy is named after its source; a new shape after its prompt."""
    if placement.matrix is not None:
        return f"{placement.source or 'Object'} edited"
    return object_name(label, "Image shape" if task == "image_to_3d" else "Shape")


def place_mesh(context, placement: Placement, vertices, faces, name: str, smooth: bool):
    """A new object from a generate or edit result, put where `placement` says. Returns it."""
    vertices, faces = check_arrays(vertices, faces)
    matrix = None
    if placement.matrix is not None:
        matrix = np.array(placement.matrix, dtype=np.float32)
        # We sent world-space geometry, so the edit comes back in world space.
        try:
            local = world_to_local(vertices, matrix)
        except np.linalg.LinAlgError:
            local, matrix = vertices, np.eye(4, dtype=np.float32)
    else:
        local = fit_unit_mesh(vertices, placement.size)
    mesh = build_mesh(name, local, faces, smooth=smooth)
    obj = bpy.data.objects.new(name, mesh)
    result_collection(context.scene).objects.link(obj)
    if matrix is not None:
        obj.matrix_world = Matrix(matrix.tolist())  # rows; a plain nested list would be read as columns
        source = bpy.data.objects.get(placement.source)
        if source is not None and placement.hide_source and source.name in context.view_layer.objects:
            source.hide_set(True)
            source.hide_render = True  # else a render would show both, one inside the other
    else:
        obj.location = placement.location
    make_active(context, obj)
    return obj


def place_side_by_side(context, placement: Placement, meshes: list, name: str, smooth: bool) -> list:
    """New objects from several shapes of one job [(vertices, faces), ...]: the first at the
    cursor as a single shape would stand, each next one to its +X side, a gap beyond the one
    before it (by their bounding boxes, so wide and narrow shapes never overlap). All are left
    selected, the first active. Returns them in order."""
    objects, right = [], None
    gap = placement.size * VARIATION_GAP
    for vertices, faces in meshes:
        obj = place_mesh(context, placement, vertices, faces, name, smooth)
        xs = np.empty(len(obj.data.vertices) * 3, np.float32)
        obj.data.vertices.foreach_get("co", xs)
        low, high = float(xs[0::3].min()), float(xs[0::3].max())
        if right is not None:  # its left side a gap right of the previous one's right side
            obj.location.x = right + gap - low
        right = obj.location.x + high
        objects.append(obj)
    make_active(context, objects[0])
    for obj in objects[1:]:  # in object mode, as make_active leaves the first
        if context.mode == "OBJECT" and obj.name in context.view_layer.objects:
            obj.select_set(True)
    return objects


def moved_copy(context, placement: Placement, deform: list, name: str):
    """A proportion edit of the artist's own object: a full copy of it (mesh data with its UVs,
    materials, custom normals and attributes; modifiers and the rest of the object) whose
    vertices move by the edit's maps of world axes (protocol.move_along). None when the source
    is gone or is not a mesh: then the result's arrays are placed instead."""
    maps = protocol.checked_deform(deform)  # a broken map fails the job before anything is made
    source = bpy.data.objects.get(placement.source or "")
    if source is None or source.type != "MESH" or placement.matrix is None:
        return None
    matrix = np.array(placement.matrix, dtype=np.float64)  # the frame the edit was sent in
    obj = source.copy()
    obj.data = source.data.copy()
    obj.name = name
    for key in [k for k in obj.keys() if k.startswith("shapellm_")]:  # the copy's provenance is its own
        del obj[key]
    mesh = obj.data
    local = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", local)
    local = local.reshape(-1, 3)
    world = local.astype(np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    moved = world.copy()
    for axis, knots_from, knots_to in maps:
        moved[:, axis] = protocol.move_along(moved[:, axis], knots_from, knots_to)
    try:
        new_local = world_to_local(moved, matrix)
    except np.linalg.LinAlgError:
        bpy.data.objects.remove(obj)
        return None
    still = (moved == world).all(axis=1)
    new_local[still] = local[still]  # what the edit did not move keeps its exact coordinates
    mesh.vertices.foreach_set("co", new_local.ravel())
    mesh.update()
    result_collection(context.scene).objects.link(obj)
    obj.matrix_world = Matrix(matrix.tolist())
    if placement.hide_source and source.name in context.view_layer.objects:
        source.hide_set(True)
        source.hide_render = True
    make_active(context, obj)
    return obj


def make_active(context, obj) -> None:
    """Leave the result selected and active, as Blender's Add menu leaves a new object, so the
    next edit or describe applies to it; not while the artist works in another mode."""
    if context.mode != "OBJECT" or obj.name not in context.view_layer.objects:
        return
    for other in list(context.view_layer.objects.selected):  # context.selected_objects needs a window
        other.select_set(False)
    obj.select_set(True)
    context.view_layer.objects.active = obj


def clean_caption(text: str) -> str:
    """Blender strings stop at NUL and show control characters badly: keep printable text."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def apply_caption(context, job, caption: str, preset: str) -> None:
    context.scene.shapellm.caption = caption
    obj = bpy.data.objects.get(job.placement.source)
    if obj is not None:
        obj["shapellm_caption"] = caption
        set_job_provenance(obj, job, preset)
        job.result_name = obj.name


def push_undo(message: str) -> None:
    """Make the result one undo step (operators do it themselves; the job pump does not).

    ed.undo_push polls for a window and screen in the context; a bpy.app.timers callback
    may run without one, so the first window of the window manager stands in.
    """
    context = bpy.context
    window = context.window
    if window is None and context.window_manager is not None:
        window = next(iter(context.window_manager.windows), None)
    if window is None:
        return  # no window at all: there is no undo stack to push to; the result still stands
    with context.temp_override(window=window, screen=window.screen):
        if bpy.ops.ed.undo_push.poll():
            bpy.ops.ed.undo_push(message=message)
