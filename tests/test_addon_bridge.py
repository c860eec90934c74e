"""Mesh bridge and result placement under the real bpy module (no backend needed here)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import trimesh  # noqa: E402

import tests.addon_harness as harness  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender (the bpy module) with the installed extension

FIXTURES = harness.REPO / ".." / "shared" / "fixtures" / "meshes"


@pytest.fixture()
def bpy():
    bpy = harness.installed_blender()
    harness.clear_scene(bpy)
    yield bpy
    harness.clear_scene(bpy)


def add_object(bpy, name, vertices, faces):
    bridge = harness.module("mesh_bridge")
    obj = bpy.data.objects.new(name, bridge.build_mesh(name, vertices, faces))
    bpy.context.scene.collection.objects.link(obj)
    return obj


def test_build_and_read_back_a_real_mesh_unchanged(bpy):
    bridge = harness.module("mesh_bridge")
    mesh = trimesh.load(FIXTURES / "bunny.ply", force="mesh", process=False)
    v, f = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)
    obj = add_object(bpy, "bunny", v, f)
    assert len(obj.data.polygons) == len(f)
    got_v, got_f, matrix = bridge.read_object_triangles(obj, bpy.context.evaluated_depsgraph_get())
    np.testing.assert_array_equal(got_v, v)
    np.testing.assert_array_equal(got_f, f)
    np.testing.assert_array_equal(matrix, np.eye(4, dtype=np.float32))


def test_read_applies_modifiers_triangulates_and_leaves_the_source_alone(bpy):
    bridge = harness.module("mesh_bridge")
    bpy.ops.mesh.primitive_cube_add(size=2.0, location=(3, 0, 1))
    cube = bpy.context.active_object
    array = cube.modifiers.new("Array", "ARRAY")
    array.count = 3
    meshes_before = len(bpy.data.meshes)
    v, f, matrix = bridge.read_object_triangles(cube, bpy.context.evaluated_depsgraph_get())
    assert f.shape == (3 * 12, 3) and v.shape == (3 * 8, 3)   # three cubes, quads split in two
    assert v[:, 0].max() == pytest.approx(5.0)                 # the array reaches x = 5 locally
    np.testing.assert_allclose(matrix[:3, 3], (3, 0, 1))
    # The source keeps its quads, its modifier, its data; no temporary mesh is left behind.
    assert len(cube.data.polygons) == 6 and len(cube.data.vertices) == 8
    assert [m.name for m in cube.modifiers] == ["Array"]
    assert len(bpy.data.meshes) == meshes_before


def test_bad_result_arrays_are_refused_before_touching_blender_data(bpy):
    bridge = harness.module("mesh_bridge")
    v = np.zeros((3, 3), np.float32)
    before = len(bpy.data.meshes)
    with pytest.raises(bridge.MeshInputError, match="outside"):
        bridge.build_mesh("bad", v, np.array([[0, 1, 3]], np.int32))
    with pytest.raises(bridge.MeshInputError, match="non-finite"):
        bridge.build_mesh("bad", np.full((3, 3), np.nan, np.float32), np.array([[0, 1, 2]], np.int32))
    with pytest.raises(bridge.MeshInputError, match="empty"):
        bridge.build_mesh("bad", v, np.zeros((0, 3), np.int32))
    assert len(bpy.data.meshes) == before


def test_built_mesh_passes_blenders_validation(bpy):
    bridge = harness.module("mesh_bridge")
    sphere = trimesh.creation.icosphere(subdivisions=3)
    mesh = bridge.build_mesh("ico", np.asarray(sphere.vertices, np.float32), np.asarray(sphere.faces, np.int32))
    assert mesh.validate() is False   # False: nothing needed fixing
    assert len(mesh.edges) == len(sphere.edges_unique)


def _mesh_arrays(mesh):
    """Everything that defines a mesh's geometry and topology, as numpy arrays."""
    def get(collection, prop, count, width=1, dtype=np.float32):
        out = np.empty(count * width, dtype)
        collection.foreach_get(prop, out)
        return out.reshape(-1, width) if width > 1 else out

    edges = get(mesh.edges, "vertices", len(mesh.edges), 2, np.int32)
    corner_vert = get(mesh.loops, "vertex_index", len(mesh.loops), dtype=np.int32)
    corner_edge = get(mesh.loops, "edge_index", len(mesh.loops), dtype=np.int32)
    return {
        "positions": get(mesh.vertices, "co", len(mesh.vertices), 3),
        "vertex_normals": get(mesh.vertices, "normal", len(mesh.vertices), 3),
        "face_normals": get(mesh.polygons, "normal", len(mesh.polygons), 3),
        "loop_start": get(mesh.polygons, "loop_start", len(mesh.polygons), dtype=np.int32),
        "loop_total": get(mesh.polygons, "loop_total", len(mesh.polygons), dtype=np.int32),
        "corner_vert": corner_vert,
        "edges": edges,
        # The two vertices of each corner's edge, lower index first.
        "corner_edge_verts": np.sort(edges[corner_edge], axis=1),
    }


def _shuffled_grid(n, seed):
    """An open (bordered) triangulated grid with vertices in random order, as a remesh leaves them."""
    grid = np.arange(n * n).reshape(n, n)
    a, b, c, d = grid[:-1, :-1].ravel(), grid[1:, :-1].ravel(), grid[1:, 1:].ravel(), grid[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    xs, ys = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    vertices = np.stack([xs.ravel(), ys.ravel(), np.sin(xs.ravel() + ys.ravel())], 1)
    order = np.random.default_rng(seed).permutation(n * n)
    rank = np.empty_like(order)
    rank[order] = np.arange(n * n)
    return vertices[order].astype(np.float32), rank[faces].astype(np.int32)


def _random_soup(seed):
    """Triangles over few vertices: edges shared by many faces, orientations mixed."""
    rng = np.random.default_rng(seed)
    faces = np.stack([rng.choice(400, 3, replace=False) for _ in range(6000)]).astype(np.int32)
    faces = faces[np.sort(np.unique(np.sort(faces, 1), axis=0, return_index=True)[1])]  # no face twice
    return rng.normal(size=(400, 3)).astype(np.float32), faces


@pytest.mark.parametrize("case", ["bunny", "shuffled grid", "random soup", "one triangle"])
def test_built_mesh_equals_from_pydata_of_the_same_arrays(bpy, case):
    bridge = harness.module("mesh_bridge")
    if case == "bunny":
        mesh = trimesh.load(FIXTURES / "bunny.ply", force="mesh", process=False)
        v, f = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)
    elif case == "shuffled grid":
        v, f = _shuffled_grid(120, seed=3)
    elif case == "random soup":
        v, f = _random_soup(seed=4)
    else:
        v, f = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32), np.array([[2, 0, 1]], np.int32)
    ours = bridge.build_mesh("ours", v, f)
    reference = bpy.data.meshes.new("reference")
    reference.from_pydata(v.tolist(), [], f.tolist())
    reference.update()
    reference.shade_smooth()
    got, want = _mesh_arrays(ours), _mesh_arrays(reference)
    np.testing.assert_array_equal(got["positions"], v)
    np.testing.assert_array_equal(got["positions"], want["positions"])
    # Same polygons: same corners, in the same order.
    for key in ("loop_start", "loop_total", "corner_vert"):
        np.testing.assert_array_equal(got[key], want[key])
    np.testing.assert_array_equal(got["corner_vert"], f.ravel())
    # Same edge set (Blender orders its edges by its own hashing; the order carries no meaning).
    assert len(got["edges"]) == len(want["edges"])
    np.testing.assert_array_equal(np.unique(got["edges"], axis=0), np.unique(np.sort(want["edges"], 1), axis=0))
    # Each corner points at the edge to the next corner of its triangle, as in Blender's mesh.
    np.testing.assert_array_equal(got["corner_edge_verts"], want["corner_edge_verts"])
    np.testing.assert_array_equal(got["corner_edge_verts"], np.sort(np.stack([f.ravel(), f[:, [1, 2, 0]].ravel()], 1), 1))
    np.testing.assert_allclose(got["face_normals"], want["face_normals"], atol=1e-6)
    np.testing.assert_allclose(got["vertex_normals"], want["vertex_normals"], atol=1e-6)
    assert all(p.use_smooth for p in ours.polygons)
    # validate() returns False when it found nothing to fix. The bunny fixture holds 87 faces
    # twice, which Blender's validation removes from both meshes alike.
    has_duplicate_faces = len(np.unique(np.sort(f, 1), axis=0)) < len(f)
    assert reference.validate() is has_duplicate_faces
    assert ours.validate() is has_duplicate_faces
    assert case != "bunny" or has_duplicate_faces


def test_mesh_style_sets_the_shading(bpy):
    bridge = harness.module("mesh_bridge")
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    f = np.array([[0, 1, 2]], np.int32)
    assert bridge.build_mesh("s", v, f, smooth=True).polygons[0].use_smooth
    assert not bridge.build_mesh("b", v, f, smooth=False).polygons[0].use_smooth


@pytest.mark.parametrize("case", ["no selection", "non-mesh", "empty mesh"])
def test_describe_and_edit_refuse_bad_selections_clearly(bpy, case):
    session = harness.module("session").get()
    if case == "no selection":
        bpy.ops.mesh.primitive_cube_add()
        bpy.ops.object.select_all(action="DESELECT")
        expected = "Select a mesh object first"
    elif case == "non-mesh":
        bpy.ops.object.light_add(type="POINT")
        expected = "is a light, not a mesh"
    else:
        mesh = bpy.data.meshes.new("empty")
        obj = bpy.data.objects.new("Empty mesh", mesh)
        bpy.context.scene.collection.objects.link(obj)
        bpy.context.view_layer.objects.active = obj
        obj.select_set(True)
        expected = '"Empty mesh" has no faces'
    objects_before = len(bpy.data.objects)
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.shapellm.describe()
    bpy.context.scene.shapellm.instruction = "make it taller"
    with pytest.raises(RuntimeError, match=expected):
        bpy.ops.shapellm.edit()
    assert len(bpy.data.objects) == objects_before and not session.book.active()


def test_generate_without_a_backend_says_to_press_start(bpy):
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
    prefs.backend_python = ""   # nothing configured to auto-start
    bpy.context.scene.shapellm.prompt = "a chair"
    with pytest.raises(RuntimeError, match="No backend running: press Start"):
        bpy.ops.shapellm.generate()
    with pytest.raises(RuntimeError, match="Type a prompt"):
        bpy.context.scene.shapellm.prompt = "  "
        bpy.ops.shapellm.generate()


def _job(task, label, placement):
    jobs = harness.module("jobs")
    return jobs.Job(key="k", task=task, label=label, options={"seed": 7}, placement=placement)


def placement():
    """The installed add-on's Placement class (its modules load once bpy has the extension)."""
    return harness.module("jobs").Placement


def _place(bpy, job, vertices, faces, preset, smooth):
    """Put a job's mesh into the scene as the job pump does."""
    results = harness.module("results")
    name = results.shape_name(job.task, job.label, job.placement)
    obj = results.place_mesh(bpy.context, job.placement, vertices, faces, name, smooth=smooth)
    results.set_job_provenance(obj, job, preset)
    return obj


def test_generated_result_lands_at_the_cursor_at_the_preferred_size(bpy):
    results = harness.module("results")
    # A unit-frame box as the backend sends it: [-0.5, 0.5] wide, half as tall.
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.5))
    v, f = np.asarray(box.vertices, np.float32), np.asarray(box.faces, np.int32)
    job = _job("text_to_3d", "a wooden chair!", placement().at_cursor((1.0, 2.0, 3.0), 4.0))
    _place(bpy, job, v, f, "tiny", smooth=True)
    bpy.context.view_layer.update()
    first = bpy.data.objects["Wooden chair"]
    assert first.users_collection[0].name == "ShapeLLM"
    assert tuple(first.location) == pytest.approx((1.0, 2.0, 3.0))
    assert tuple(first.dimensions) == pytest.approx((4.0, 2.0, 2.0), rel=1e-5)
    world_z = [(first.matrix_world @ vert.co).z for vert in first.data.vertices]
    assert min(world_z) == pytest.approx(3.0)   # standing on the cursor
    assert first["shapellm_task"] == "text_to_3d" and first["shapellm_prompt"] == "a wooden chair!"
    assert first["shapellm_seed"] == 7 and first["shapellm_preset"] == "tiny"
    assert first["shapellm_duration_s"] >= 0


def test_variations_of_one_result_stand_side_by_side_each_with_its_provenance(bpy, tmp_path, monkeypatch):
    """One result of K shapes (as the backend sends it, through the real wire encoder) becomes K
    objects: the first where a single shape would stand, each next one a gap to the +X side of
    the one before by their bounding boxes, each with its prompt, seed and variation index, all
    in one undo step, all selected and the first active."""
    pump, protocol, results = harness.module("pump"), harness.module("wire.protocol"), harness.module("results")
    session = harness.module("session").Session(tmp_path)
    undo_steps = []
    monkeypatch.setattr(results, "push_undo", undo_steps.append)
    made = []
    for i, extents in enumerate([(1.0, 0.5, 0.5), (0.3, 1.0, 0.4), (1.0, 1.0, 1.0)]):  # wide, narrow, cube
        box = trimesh.creation.box(extents=extents)
        made.append(({"index": i, "seed": 7 + i}, np.asarray(box.vertices, np.float32),
                      np.asarray(box.faces, np.int32), np.full(1024, i, np.int32)))
    infos, arrays = protocol.join_variations(made)
    event = protocol.decode(protocol.encode(protocol.event(
        "result", "k", {"task": "text_to_3d", "variations": infos}, arrays)))
    job = _job("text_to_3d", "a wooden chair", placement().at_cursor((1.0, 2.0, 0.0), 2.0))
    job.options["variations"] = 3
    pump._apply_result(bpy.context, session, job, event)
    objects = [bpy.data.objects[name] for name in job.result_names]
    assert len(objects) == 3 and job.result_name == objects[0].name and undo_steps == ["ShapeLLM text_to_3d"]
    bpy.context.view_layer.update()
    boxes = [(min(x), max(x)) for x in ([(o.matrix_world @ v.co).x for v in o.data.vertices] for o in objects)]
    assert tuple(objects[0].location) == pytest.approx((1.0, 2.0, 0.0))   # the first at the cursor
    for (_, right), (left, _) in zip(boxes, boxes[1:]):
        assert left - right == pytest.approx(2.0 * results.VARIATION_GAP, abs=1e-5)   # gap between boxes
    assert all(o.location.y == pytest.approx(2.0) for o in objects)
    for i, obj in enumerate(objects):
        assert obj["shapellm_prompt"] == "a wooden chair" and obj["shapellm_task"] == "text_to_3d"
        assert obj["shapellm_seed"] == 7 + i and obj["shapellm_variation"] == i
        assert max(obj.dimensions) == pytest.approx(2.0, rel=1e-5) and obj.select_get()
    assert bpy.context.view_layer.objects.active == objects[0]
    assert [e["result"] for e in session.history.entries] == [o.name for o in reversed(objects)]
    assert [e["place"]["variation"] for e in session.history.entries] == [2, 1, 0]


def test_edit_result_takes_the_source_transform_and_keeps_the_source(bpy):
    results = harness.module("results")
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(5, -2, 1), rotation=(0, 0, 0.7), scale=(2, 1, 3))
    source = bpy.context.active_object
    matrix = np.array(source.matrix_world, np.float32)
    # The backend returns the edited shape in the frame it was sent in: world space.
    local = np.array([list(v.co) for v in source.data.vertices], np.float32)
    world = local @ matrix[:3, :3].T + matrix[:3, 3]
    faces = np.array([[0, 1, 2], [2, 3, 0]], np.int32)
    job = _job("edit", "make it taller", placement().over(source.name, matrix, hide_source=True))
    obj = _place(bpy, job, world, faces, "tiny", smooth=False)
    np.testing.assert_allclose(np.array(obj.matrix_world), matrix, atol=1e-6)
    got = np.array([list(obj.matrix_world @ v.co) for v in obj.data.vertices])
    np.testing.assert_allclose(got, world, atol=1e-4)
    assert obj.name == f"{source.name} edited" and obj["shapellm_instruction"] == "make it taller"
    assert source.name in bpy.data.objects and source.hide_get()
    assert len(source.data.vertices) == 8
    # the copy is selected and active in the original's stead
    assert bpy.context.view_layer.objects.active == obj and obj.select_get() and not source.select_get()


def test_a_result_is_made_active_only_in_object_mode(bpy):
    """Like Blender's Add menu, a result is left selected and active; a result that arrives
    while the artist edits another mesh's vertices leaves their work alone."""
    box = trimesh.creation.box(extents=(1.0, 0.5, 0.5))
    v, f = np.asarray(box.vertices, np.float32), np.asarray(box.faces, np.int32)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, -6, 0))
    working = bpy.context.active_object
    box_job = _job("text_to_3d", "a box", placement().at_cursor((0.0, 0.0, 0.0), 1.0))
    first = _place(bpy, box_job, v, f, "tiny", smooth=False)
    assert bpy.context.view_layer.objects.active == first and first.select_get() and not working.select_get()
    bpy.context.view_layer.objects.active = working
    assert bpy.ops.object.mode_set(mode="EDIT") == {"FINISHED"}
    try:
        second = _place(bpy, box_job, v, f, "tiny", smooth=False)
        assert second.name in bpy.data.objects
        assert bpy.context.view_layer.objects.active == working and bpy.context.mode == "EDIT_MESH"
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")


def _apply_edit_result(bpy, session, source, instruction: str, fields: dict):
    """An edit result for `source` (a quad of its own vertices) with `fields`, as a backend
    sends it, applied the way the pump applies one; its job."""
    pump, protocol = harness.module("pump"), harness.module("wire.protocol")
    matrix = np.array(source.matrix_world, np.float32)
    vertices = np.array([list(v.co) for v in source.data.vertices], np.float32) + matrix[:3, 3]
    faces = np.array([[0, 1, 2], [2, 3, 0]], np.int32)
    job = _job("edit", instruction, placement().over(source.name, matrix, hide_source=False))
    event = protocol.event("result", "j1", fields, {"vertices": vertices, "faces": faces})
    pump._apply_result(bpy.context, session, job, event)
    return job


def test_an_edit_result_records_how_the_model_read_the_instruction(bpy, tmp_path):
    """A backend whose model names edit kinds sends `edit_kind` with the result: the edited
    object keeps it and the artist is told, so a wrong read is plain to see (and Ctrl+Z)."""
    session = harness.module("session").Session(tmp_path)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 6, 0))
    source = bpy.context.active_object
    missing = object()
    # a missing, non-string or empty kind (a garbled backend) leaves the object untouched
    for kind, expected in (("taller", "taller"), (missing, None), (7, None), (["taller"], None), ("", None)):
        fields = {"task": "edit"} if kind is missing else {"task": "edit", "edit_kind": kind}
        job = _apply_edit_result(bpy, session, source, "make it taller", fields)
        assert bpy.data.objects[job.result_name].get("shapellm_edit_kind") == expected
    assert session.notices == [("INFO", 'make it taller: read as "taller"')]


def test_the_report_says_how_sure_the_model_was_of_its_read(bpy, tmp_path):
    """edit_kind_confidence (0-1) is told with the read; a value that is no share is left out."""
    session = harness.module("session").Session(tmp_path)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 8, 0))
    source = bpy.context.active_object
    for sure, told in ((0.62, " (62% sure)"), (1, " (100% sure)"), (1.5, ""), (-0.1, ""), ("0.6", ""), (True, ""),
                       (None, "")):
        session.notices.clear()
        fields = {"task": "edit", "edit_kind": "thinner", "edit_kind_confidence": sure}
        _apply_edit_result(bpy, session, source, "make it slimmer", fields)
        assert session.notices == [("INFO", f'make it slimmer: read as "thinner"{told}')], sure
