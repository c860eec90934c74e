"""The add-on under the real bpy module, its backend auto-started on the committed embedded
preset over real sockets: an edit the tool cannot make is refused with what it can do, and the
artist's object is left exactly as it was. Timers do not fire in the bpy module, so
the test drives the add-on's job pump as the timer would (as tests/test_addon_backend.py)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402
from tests.addon_harness import run_edit  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender and a backend on the embedded model


@pytest.fixture(scope="module")
def bpy():
    yield from harness.blender_with_backend()


def chair_object(bpy, name: str):
    """A held-out procedural chair (splits.py seeds) as an artist's mesh object."""
    from backend.embedded.shape import sample_shape

    return harness.shape_object(bpy, name, sample_shape("chair", 500070), location=(2.0, 1.0, 0.0)), "add a tail"


def test_an_edit_the_tool_cannot_make_is_refused_and_the_object_is_untouched(bpy, capfd):
    chair, instruction = chair_object(bpy, "Chair")
    vertices = np.array([list(v.co) for v in chair.data.vertices])
    objects = sorted(o.name for o in bpy.data.objects)
    job = run_edit(bpy, instruction)
    assert job.state == "failed" and 'cannot add "tail"' in job.message and "(no_shape)" in job.message
    assert "Error: edit failed: the tool cannot add" in capfd.readouterr().out  # the report
    # nothing added, and the chair as it was: same vertices, visible, selected and active
    assert sorted(o.name for o in bpy.data.objects) == objects
    np.testing.assert_array_equal(np.array([list(v.co) for v in chair.data.vertices]), vertices)
    assert not chair.hide_get() and not chair.hide_render and chair.select_get()
    assert bpy.context.view_layer.objects.active == chair

    # the same chair made taller works: the proportion edits are resizes of the artist's shape
    job = run_edit(bpy, "make it taller")
    assert job.state == "done", job.message
    edited = bpy.data.objects[job.result_name]
    assert edited.dimensions.z / chair.dimensions.z > 1.2 and chair.hide_get()


def test_a_proportion_edit_keeps_the_artists_mesh_uvs_materials_and_modifiers(bpy, capfd):
    """Made taller, a UV-mapped cube with a material and a bevel modifier comes back as a copy of
    the same object: same vertices and faces, its UV layer, material and modifier; X and Y of
    every vertex exactly as they were, the bottom face where it was; the original untouched."""
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(-3.0, 2.0, 0.5))
    cube = bpy.context.active_object
    cube.name = "Crate"
    cube.scale = (0.6, 0.8, 0.5)
    material = bpy.data.materials.new("Wood")
    cube.data.materials.append(material)
    cube.modifiers.new("Bevel", "BEVEL")
    before = np.array([list(v.co) for v in cube.data.vertices])
    uvs = np.array([list(d.uv) for d in cube.data.uv_layers[0].data])
    job = run_edit(bpy, "make it taller")
    assert job.state == "done", job.message
    edited = bpy.data.objects[job.result_name]
    assert edited is not cube and edited.data is not cube.data
    assert len(edited.data.vertices) == len(before) and len(edited.data.polygons) == len(cube.data.polygons)
    assert [layer.name for layer in edited.data.uv_layers] == [layer.name for layer in cube.data.uv_layers]
    np.testing.assert_array_equal(np.array([list(d.uv) for d in edited.data.uv_layers[0].data]), uvs)
    assert [slot.material for slot in edited.material_slots] == [material]
    assert [m.type for m in edited.modifiers] == ["BEVEL"]
    after = np.array([list(v.co) for v in edited.data.vertices])
    np.testing.assert_array_equal(after[:, :2], before[:, :2])
    low = before[:, 2] == before[:, 2].min()
    np.testing.assert_array_equal(after[low, 2], before[low, 2])
    assert np.ptp(after[:, 2]) / np.ptp(before[:, 2]) == pytest.approx(1.35, abs=0.05)
    # the original is kept as it was, hidden under the copy
    np.testing.assert_array_equal(np.array([list(v.co) for v in cube.data.vertices]), before)
    assert cube.hide_get() and not edited.hide_get()
    report = capfd.readouterr().out
    assert 'read as "taller"' in report and "z x1.3" in report  # the report says what was done
