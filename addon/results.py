"""Put finished jobs into the scene: where the artist expects them, named, with provenance."""

from __future__ import annotations

import re

import bpy
import numpy as np
from mathutils import Matrix

from .jobs import Placement
from .mesh_bridge import build_mesh, check_arrays

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
        if placement.local:  # sent in the object's own coordinates: back in them
            local = vertices
        else:  # sent in world space, so the edit comes back in world space
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


ADDED_GROUP = "ShapeLLM added"  # the vertex group that selects a part an edit added


def edited_copy(context, placement: Placement, vertices, removed, added, name: str):
    """An edit of the artist's own object: a full copy of it (mesh data with its UVs, materials,
    custom normals and attributes; modifiers and the rest of the object) with the result's
    vertices (the sent ones, in order, moved), the removed triangles' polygons deleted and an
    added part joined as a separate loose part in the vertex group ADDED_GROUP. None when the
    source is gone, is not a mesh or no longer has the vertices that were sent: then the
    result's arrays are placed instead."""
    source = bpy.data.objects.get(placement.source or "")
    vertices = np.ascontiguousarray(vertices, np.float32)
    if source is None or source.type != "MESH" or not placement.local or len(source.data.vertices) != len(vertices):
        return None
    obj = source.copy()
    obj.data = source.data.copy()
    obj.name = name
    for key in [k for k in obj.keys() if k.startswith("shapellm_")]:  # the copy's provenance is its own
        del obj[key]
    mesh = obj.data
    old = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", old)
    if not np.array_equal(old, vertices.ravel()):
        mesh.vertices.foreach_set("co", vertices.ravel())  # what the edit did not move is equal already
    if (removed is not None and len(removed)) or added is not None:
        _remove_and_add(obj, removed, added)
    mesh.update()
    result_collection(context.scene).objects.link(obj)
    obj.matrix_world = source.matrix_world.copy()
    if placement.hide_source and source.name in context.view_layer.objects:
        source.hide_set(True)
        source.hide_render = True
    make_active(context, obj)
    return obj


def _remove_and_add(obj, removed, added) -> None:
    """Delete the polygons all of whose triangles were removed; join the added part."""
    import bmesh

    mesh = obj.data
    gone = []
    if removed is not None and len(removed):
        mesh.calc_loop_triangles()
        polygon_of = np.empty(len(mesh.loop_triangles), np.int32)
        mesh.loop_triangles.foreach_get("polygon_index", polygon_of)
        removed = np.asarray(removed, np.int64)
        removed = removed[(removed >= 0) & (removed < len(polygon_of))]
        total = np.bincount(polygon_of, minlength=len(mesh.polygons))
        taken = np.bincount(polygon_of[removed], minlength=len(mesh.polygons))
        gone = np.flatnonzero((taken == total) & (total > 0)).tolist()
    density, material = (_texel_density(mesh), _nearest_material(mesh, added[0])) if added is not None else (0, 0)
    bm = bmesh.new()
    bm.from_mesh(mesh)
    bm.faces.ensure_lookup_table()
    if gone:
        bmesh.ops.delete(bm, geom=[bm.faces[i] for i in gone], context="FACES")
    first = len(bm.verts)
    if added is not None:
        new_vertices, new_faces = added
        made = [bm.verts.new(tuple(float(x) for x in co)) for co in new_vertices]
        for face in np.asarray(new_faces, np.int64):
            try:
                made_face = bm.faces.new([made[i] for i in face])
            except ValueError:  # a face repeated in the answer: once is enough
                continue
            made_face.material_index = material
            _box_uvs(bm, made_face, density)
    bm.to_mesh(mesh)
    count = len(bm.verts) - first
    bm.free()
    if count:
        group = obj.vertex_groups.get(ADDED_GROUP) or obj.vertex_groups.new(name=ADDED_GROUP)
        group.add(list(range(first, first + count)), 1.0, "REPLACE")


def _texel_density(mesh) -> float:
    """UV units per unit of length on the mesh's active UV layer (the root of UV area over
    surface area), so an added part's texture is as fine as the rest; 1 without UVs."""
    layer = mesh.uv_layers.active
    if layer is None or not len(mesh.polygons):
        return 1.0
    mesh.calc_loop_triangles()
    loops = np.empty(len(mesh.loop_triangles) * 3, np.int32)
    mesh.loop_triangles.foreach_get("loops", loops)
    uv = np.empty(len(mesh.loops) * 2, np.float32)
    layer.data.foreach_get("uv", uv)
    corner_vert = np.empty(len(mesh.loops), np.int32)
    mesh.loops.foreach_get("vertex_index", corner_vert)
    co = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", co)
    tri_uv = uv.reshape(-1, 2)[loops].reshape(-1, 3, 2).astype(np.float64)
    tri_co = co.reshape(-1, 3)[corner_vert[loops]].reshape(-1, 3, 3).astype(np.float64)
    e1, e2 = tri_uv[:, 1] - tri_uv[:, 0], tri_uv[:, 2] - tri_uv[:, 0]
    uv_area = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]).sum()
    area = 0.5 * np.linalg.norm(np.cross(tri_co[:, 1] - tri_co[:, 0], tri_co[:, 2] - tri_co[:, 0]), axis=1).sum()
    return float(np.sqrt(uv_area / area)) if area > 0 and uv_area > 0 else 1.0


def _nearest_material(mesh, new_vertices) -> int:
    """The material slot of the polygon nearest the added part's middle (armrests take the
    back's material, a shelf the boards')."""
    if not len(mesh.polygons):
        return 0
    centres = np.empty(len(mesh.polygons) * 3, np.float32)
    mesh.polygons.foreach_get("center", centres)
    slots = np.empty(len(mesh.polygons), np.int32)
    mesh.polygons.foreach_get("material_index", slots)
    middle = np.asarray(new_vertices, np.float64).mean(axis=0)
    return int(slots[np.argmin(((centres.reshape(-1, 3) - middle) ** 2).sum(axis=1))])


def _box_uvs(bm, face, density: float) -> None:
    """Box-projected UVs on every UV layer: the face's two axes across its normal, at `density`."""
    layers = list(bm.loops.layers.uv.values())
    if not layers:
        return
    face.normal_update()
    axis = int(np.argmax(np.abs(face.normal)))
    across = [a for a in range(3) if a != axis]
    for loop in face.loops:
        uv = (loop.vert.co[across[0]] * density, loop.vert.co[across[1]] * density)
        for layer in layers:
            loop[layer].uv = uv


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
