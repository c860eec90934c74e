"""Part edits and local axes through the add-on under the real bpy module, its backend
auto-started on the committed embedded preset over real sockets (as tests/test_addon_embedded_edit.py):
the edit is a copy of the artist's object with its UVs and materials; remove deletes only the
part's polygons; add joins a separate part in a vertex group; wider is the object's own width
on a rotated object; a non-edit is refused with nothing added."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import math  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402
from tests.addon_harness import run_edit  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender and a backend on the embedded model


@pytest.fixture(scope="module")
def bpy():
    yield from harness.blender_with_backend()


def mesh_object(bpy, name: str, shape, rotation_z: float = 0.0):
    """A held-out procedural shape as an artist's object: a UV layer, a material, turned about Z."""
    obj = harness.shape_object(bpy, name, shape, location=(1.0, -2.0, 0.0))
    obj.data.uv_layers.new(name="UVMap")
    obj.data.materials.append(bpy.data.materials.new(f"{name} paint"))
    obj.rotation_euler = (0.0, 0.0, rotation_z)
    bpy.context.view_layer.update()
    return obj


def held_out(category: str, k: int, **params):
    from backend.embedded.shape import sample_shape
    from backend.embedded.splits import shape_seed

    shape = sample_shape(category, shape_seed(category, 450 + k, held_out=True))
    return shape.with_params(**params) if params else shape


def coordinates(obj) -> np.ndarray:
    return np.array([list(v.co) for v in obj.data.vertices])


def test_remove_deletes_only_the_parts_polygons_and_keeps_uvs_and_materials(bpy, capfd):
    from backend.embedded.part_truth import vertex_parts

    shape = held_out("chair", 0, part=True)
    chair = mesh_object(bpy, "Armchair", shape)
    before = coordinates(chair)
    polygons = len(chair.data.polygons)
    job = run_edit(bpy, "remove the armrests")
    assert job.state == "done", job.message
    edited = bpy.data.objects[job.result_name]
    arms = vertex_parts(shape) == "arms"
    # the arms' polygons (12 triangles a box, 4 boxes) gone, every other vertex bit for bit
    assert len(edited.data.polygons) == polygons - 48
    np.testing.assert_array_equal(coordinates(edited), before[~arms])
    assert [layer.name for layer in edited.data.uv_layers] == ["UVMap"]
    assert [slot.material.name for slot in edited.material_slots] == ["Armchair paint"]
    np.testing.assert_array_equal(coordinates(chair), before)  # the original as it was
    assert "removed the armrests" in capfd.readouterr().out


def test_add_joins_a_separate_part_in_a_vertex_group(bpy):
    chair = mesh_object(bpy, "Plain chair", held_out("chair", 1, part=False))
    before = coordinates(chair)
    job = run_edit(bpy, "add armrests")
    assert job.state == "done", job.message
    edited = bpy.data.objects[job.result_name]
    after = coordinates(edited)
    np.testing.assert_array_equal(after[: len(before)], before)  # the artist's vertices first, as they were
    group = edited.vertex_groups["ShapeLLM added"]
    members = [v.index for v in edited.data.vertices if any(g.group == group.index for g in v.groups)]
    assert members == list(range(len(before), len(after))) and len(members) == 32  # two bars, two posts
    # a separate part: no polygon joins an added vertex to an original one
    for polygon in edited.data.polygons:
        added = [i >= len(before) for i in polygon.vertices]
        assert all(added) or not any(added)


def test_wider_is_the_objects_own_width_when_it_is_rotated(bpy):
    table = mesh_object(bpy, "Turned table", held_out("table", 0), rotation_z=math.pi / 2)
    before = coordinates(table)
    job = run_edit(bpy, "make it wider")
    assert job.state == "done", job.message
    after = coordinates(bpy.data.objects[job.result_name])
    # the table's own X (world Y here) grows; its own depth and height are kept to the bit
    assert np.ptp(after[:, 0]) / np.ptp(before[:, 0]) == pytest.approx(1.35, rel=1e-4)
    np.testing.assert_array_equal(after[:, 1:], before[:, 1:])


def test_a_non_edit_is_refused_and_nothing_is_added(bpy):
    chair = mesh_object(bpy, "Red chair", held_out("chair", 2))
    objects = sorted(o.name for o in bpy.data.objects)
    job = run_edit(bpy, "make it red")
    assert job.state == "failed" and "not a change of shape" in job.message
    assert sorted(o.name for o in bpy.data.objects) == objects and not chair.hide_get()


def test_a_length_is_measured_in_the_scene_on_a_scaled_object(bpy):
    """Scaled 2x in the scene: "10 cm longer" adds 10 cm in the world, 5 cm of its own mesh."""
    table = mesh_object(bpy, "Big table", held_out("table", 1))
    table.scale = (2.0, 2.0, 2.0)
    bpy.context.view_layer.update()
    before = coordinates(table)
    job = run_edit(bpy, "make the legs 10 cm longer")
    assert job.state == "done", job.message
    after = coordinates(bpy.data.objects[job.result_name])
    assert np.ptp(after[:, 2]) - np.ptp(before[:, 2]) == pytest.approx(0.05, abs=1e-5)


def polygon_areas(mesh, uv_layer) -> tuple[np.ndarray, np.ndarray]:
    """Each polygon's surface area and UV area (fan triangles; the polygons here are convex)."""
    areas, uv_areas = [], []
    for polygon in mesh.polygons:
        co = [np.array(mesh.vertices[i].co) for i in polygon.vertices]
        uv = [np.array(uv_layer.data[i].uv) for i in polygon.loop_indices]
        areas.append(sum(np.linalg.norm(np.cross(co[k] - co[0], co[k + 1] - co[0])) / 2 for k in range(1, len(co) - 1)))
        uv_areas.append(sum(abs(np.cross(uv[k] - uv[0], uv[k + 1] - uv[0])) / 2 for k in range(1, len(uv) - 1)))
    return np.array(areas), np.array(uv_areas)


def test_an_added_part_gets_uvs_at_the_objects_texel_density_and_its_material(bpy):
    chair = mesh_object(bpy, "Textured chair", held_out("chair", 1, part=False))
    chair.data.materials.append(bpy.data.materials.new("Textured chair wood"))
    for polygon in chair.data.polygons:
        polygon.material_index = 1  # the wood everywhere; slot 0 unused
    layer = chair.data.uv_layers["UVMap"]
    for polygon in chair.data.polygons:  # a box projection at 3 UV units per metre
        axis = int(np.argmax(np.abs(polygon.normal)))
        across = [a for a in range(3) if a != axis]
        for loop in polygon.loop_indices:
            co = chair.data.vertices[chair.data.loops[loop].vertex_index].co
            layer.data[loop].uv = (3 * co[across[0]], 3 * co[across[1]])
    count = len(chair.data.polygons)
    job = run_edit(bpy, "add armrests")
    assert job.state == "done", job.message
    edited = bpy.data.objects[job.result_name]
    areas, uv_areas = polygon_areas(edited.data, edited.data.uv_layers["UVMap"])
    assert len(areas) > count
    assert np.allclose(uv_areas[count:] / areas[count:], 9.0, rtol=1e-3)  # 3 x 3 UV units per square metre
    assert all(p.material_index == 1 for p in list(edited.data.polygons)[count:])


def test_a_truck_is_made_wider_across_its_length(bpy):
    """The object's name reaches the backend: a "Truck" modelled along X widens along its Y."""
    from types import SimpleNamespace

    from tests.test_part_edits import truck_mesh

    truck = mesh_object(bpy, "Truck", SimpleNamespace(mesh=truck_mesh))
    before = coordinates(truck)
    job = run_edit(bpy, "make it wider")
    assert job.state == "done", job.message
    after = coordinates(bpy.data.objects[job.result_name])
    assert np.ptp(after[:, 1]) / np.ptp(before[:, 1]) == pytest.approx(1.35, rel=1e-4)
    np.testing.assert_array_equal(after[:, [0, 2]], before[:, [0, 2]])
