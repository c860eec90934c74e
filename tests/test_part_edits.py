"""Part edits on the artist's own mesh (issue 29): the part found from the shape's structure
(geometry/parts.py) on held-out procedural shapes, whose parts the builder knows, and on the
real chair fixture; only that part changed (geometry/part_edit.py); remove keeps every other
face; add is a separate part; wider is the object's own width; refusals say why. The pipeline
cases run the committed embedded preset."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import trimesh  # noqa: E402

from backend.amounts import read_amount  # noqa: E402
from backend.edit_words import read_words  # noqa: E402
from backend.embedded.part_truth import primitive_index, vertex_parts  # noqa: E402
from backend.embedded.shape import sample_shape  # noqa: E402
from backend.embedded.splits import shape_seed  # noqa: E402
from backend.errors import TaskError  # noqa: E402
from backend.geometry.meshio import load_mesh  # noqa: E402
from backend.geometry.part_edit import edit_part  # noqa: E402
from backend.geometry.parts import PART_IDS, find_layout  # noqa: E402

MESHES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meshes"
NAMES = {v: k for k, v in PART_IDS.items()}


def held_out(category: str, k: int):
    return sample_shape(category, shape_seed(category, 400 + k, held_out=True))


@pytest.mark.parametrize("category", ["chair", "table", "shelf", "sofa", "bench", "stool"])
def test_parts_are_found_on_held_out_procedural_shapes(category):
    for k in range(6):
        shape = held_out(category, k)
        v, f = shape.mesh()
        truth, found = vertex_parts(shape), find_layout(v, f).labels
        for part in set(truth) - {"other"}:
            share = (found[truth == part] == PART_IDS[part]).mean()
            assert share >= 0.95, (category, k, part, share)


def test_the_real_chair_fixture_has_legs_a_seat_and_a_back():
    v, f = load_mesh(str(MESHES / "chair_model.obj"))
    layout = find_layout(v, f, up="y")
    assert layout.has_legs and layout.slab is not None and layout.back_axis is not None
    z = layout.frame[:, 2]
    legs, back = layout.mask("legs"), layout.mask("back")
    # legs under the seat (a loose leg may reach into it), the back above it
    assert z[legs].max() < layout.slab[1] and (z[legs] < layout.slab[0]).mean() > 0.9
    assert z[back].min() > layout.slab[1]
    # the back stands at one end of the seat: its band is beyond the seat's middle on its side
    seat = layout.frame[layout.mask("slab"), layout.back_axis]
    middle = (seat.min() + seat.max()) / 2
    assert (np.mean(layout.back_band) - middle) * layout.back_side > 0


def rigid_error(before, after, index, skip):
    """The largest distance of a vertex from its part's common move, over parts not in `skip`."""
    worst = 0.0
    for part in np.unique(index):
        if part in skip:
            continue
        move = after[index == part].astype(np.float64) - before[index == part]
        worst = max(worst, float(np.abs(move - move[0]).max()))
    return worst


def test_legs_longer_stretches_the_legs_and_moves_the_rest_rigidly():
    shape = held_out("chair", 1)
    v, f = shape.mesh()
    truth, index = vertex_parts(shape), primitive_index(shape)
    edit = edit_part(v, f, "legs", "longer", read_amount("make the legs 35 % longer", grows=True))
    legs = truth == "legs"
    height = lambda w: np.ptp(w[legs, 2])  # noqa: E731
    assert height(edit.vertices) / height(v) == pytest.approx(1.35, rel=1e-5)
    assert rigid_error(v, edit.vertices, index, set(np.unique(index[legs]))) < 1e-6
    np.testing.assert_array_equal(edit.vertices[:, :2], v[:, :2])  # nothing moves sideways
    assert edit.summary.startswith("legs x1.35")


def test_raise_the_backrest_changes_only_the_back():
    shape = held_out("chair", 2)
    v, f = shape.mesh()
    truth = vertex_parts(shape)
    edit = edit_part(v, f, "back", "longer", read_amount("a lot", grows=True))
    back = truth == "back"
    np.testing.assert_array_equal(edit.vertices[~back], v[~back])  # bit for bit
    assert np.ptp(edit.vertices[back, 2]) / np.ptp(v[back, 2]) == pytest.approx(1.8, rel=1e-5)


def test_a_thicker_top_grows_upwards_and_keeps_the_legs():
    shape = held_out("table", 0)
    v, f = shape.mesh()
    truth = vertex_parts(shape)
    edit = edit_part(v, f, "top", "thicker", read_amount("twice", grows=True))
    top, legs = truth == "slab", truth == "legs"
    assert np.ptp(edit.vertices[top, 2]) / np.ptp(v[top, 2]) == pytest.approx(2.0, rel=1e-5)
    np.testing.assert_array_equal(edit.vertices[legs], v[legs])


@pytest.mark.parametrize("category, part", [("chair", "back"), ("table", "legs"), ("sofa", "back")])
def test_remove_deletes_the_part_and_keeps_every_other_face_bit_for_bit(category, part):
    shape = held_out(category, 3)
    v, f = shape.mesh()
    truth = vertex_parts(shape)
    edit = edit_part(v, f, part, "remove")
    gone = np.zeros(len(f), bool)
    gone[edit.removed] = True
    assert (truth[f[gone]] == part).all()  # only the part's faces
    assert gone.sum() == (truth[f] == part).all(axis=1).sum()  # and all of them
    np.testing.assert_array_equal(edit.vertices, v)  # every vertex where it was
    kept = np.delete(f, edit.removed, axis=0)
    np.testing.assert_array_equal(kept, f[~gone])


def test_remove_keeps_faces_on_one_connected_mesh():
    """A chair welded into one mesh (no loose parts): the back goes by region, the seat's top
    face, which the back stands on, stays."""
    shape = held_out("chair", 0)
    v, f = shape.mesh()
    welded = trimesh.Trimesh(v, f, process=True)  # merges the touching corners
    edit = edit_part(np.asarray(welded.vertices, np.float32), welded.faces, "back", "remove")
    layout = find_layout(np.asarray(welded.vertices, np.float32), welded.faces)
    z = layout.frame[:, 2]
    gone = welded.faces[edit.removed]
    assert (z[gone].min(axis=1) >= layout.slab[1] - 1e-7).all() and (z[gone].max(axis=1) > layout.slab[1]).all()
    assert len(edit.removed) > 0


@pytest.mark.parametrize("category, k, part", [("chair", 5, "arms"), ("sofa", 0, "arms"), ("shelf", 1, "shelf"),
                                               ("table", 2, "shelf"), ("bench", 0, "back")])
def test_add_is_a_separate_part_that_touches_the_object(category, k, part):
    shape = held_out(category, k)
    key = {"arms": "part", "back": "part", "shelf": "part"}[part]
    if part != "shelf" or category == "table":
        shape = shape.with_params(**{key: False})
    else:  # a bookshelf of three boards: room for a fourth
        shape = shape.with_params(boards=3)
    v, f = shape.mesh()
    edit = edit_part(v, f, part, "add")
    np.testing.assert_array_equal(edit.vertices, v)
    added_v, added_f = edit.added
    assert added_f.min() >= 0 and added_f.max() < len(added_v)  # its own vertices only
    new = trimesh.Trimesh(added_v, added_f, process=False)
    assert new.is_watertight
    # it touches the object: its bounds meet or overlap the original's vertices' bounds
    gap = np.maximum(new.bounds[0] - v.max(axis=0), v.min(axis=0) - new.bounds[1]).max()
    assert gap <= 1e-6


def test_a_shelf_copies_a_board_of_the_frame():
    shape = held_out("shelf", 1).with_params(boards=3)
    v, f = shape.mesh()
    edit = edit_part(v, f, "shelf", "add")
    added = edit.added[0]
    board = vertex_parts(shape) == "shelf"
    assert np.ptp(added[:, 2]) == pytest.approx(np.ptp(v[board][:8, 2]), rel=1e-5)  # as thick as a board


@pytest.mark.parametrize("instruction, part, change", [
    ("make the legs longer", "legs", "longer"), ("raise the backrest", "back", "longer"),
    ("make the top thicker", "top", "thicker"), ("remove the armrests", "arms", "remove"),
    ("add a shelf", "shelf", "add"), ("add armrests", "arms", "add"), ("lower the seat a bit", "seat", "shorter"),
])
def test_the_words_name_part_and_change(instruction, part, change):
    words = read_words(instruction)
    assert (words.part, words.change) == (part, change)


def test_the_pipeline_makes_a_part_edit_on_the_callers_mesh(embedded_pipe):
    shape = held_out("chair", 1)
    v, f = shape.mesh()
    result = embedded_pipe.edit(v, f, "make the legs a little longer")
    assert result.kept_mesh and np.array_equal(result.faces, f) and result.vertices.shape == v.shape
    assert result.edit_kind == "legs longer" and result.edit_summary.startswith("legs x1.15")
    assert len(result.codes) == 1024


@pytest.mark.parametrize("instruction, says", [
    ("make it red", "not a change of shape"), ("add a tail", 'cannot add "tail"'),
    ("give it eyes", "cannot add"), ("make it look older", "not a change of shape"),
])
def test_instructions_that_are_no_shape_edit_are_refused_with_what_it_can_do(embedded_pipe, instruction, says):
    v, f = held_out("chair", 1).mesh()
    with pytest.raises(TaskError) as err:
        embedded_pipe.edit(v, f, instruction)
    assert err.value.code == "no_shape" and says in err.value.message and "It can make" in err.value.message


@pytest.mark.parametrize("category, instruction, says", [
    ("bowl", "remove the legs", "no legs"), ("vase", "make the backrest taller", "no back"),
    ("table", "add armrests", "no back"), ("bowl", "make the seat thicker", "no seat"),
])
def test_a_part_the_shape_does_not_have_is_refused(embedded_pipe, category, instruction, says):
    v, f = held_out(category, 0).mesh()
    with pytest.raises(TaskError) as err:
        embedded_pipe.edit(v, f, instruction)
    assert err.value.code == "no_shape" and says in err.value.message


def test_an_edit_with_no_room_is_refused():
    """A bookshelf whose boards leave no gap for another: nothing added."""
    shape = held_out("shelf", 0).with_params(boards=12)
    v, f = shape.mesh()
    with pytest.raises(ValueError, match="no gap"):
        edit_part(v, f, "shelf", "add")


def test_wider_is_the_objects_own_width_even_when_its_long_side_is_y(embedded_pipe):
    """A table is wide along its own X, whichever side is long; a sofa turned a quarter in its
    own coordinates is wide along its length, which its back tells (the back is at the rear)."""
    table = held_out("table", 0)
    v, f = table.mesh()
    turned = v[:, [1, 0, 2]].copy()  # long side now Y
    for mesh in (v, turned):
        result = embedded_pipe.edit(mesh, f[:, ::-1] if mesh is turned else f, "make it wider")
        assert np.ptp(result.vertices[:, 0]) / np.ptp(mesh[:, 0]) == pytest.approx(1.35, rel=1e-4)
        np.testing.assert_array_equal(result.vertices[:, 1:], mesh[:, 1:])
    sofa = held_out("sofa", 0)
    v, f = sofa.mesh()
    quarter = np.stack([v[:, 1], -v[:, 0], v[:, 2]], axis=1).astype(np.float32)  # back now at +x
    result = embedded_pipe.edit(quarter, f, "make it wider")
    assert np.ptp(result.vertices[:, 1]) / np.ptp(quarter[:, 1]) == pytest.approx(1.35, rel=1e-4)
    np.testing.assert_array_equal(result.vertices[:, [0, 2]], quarter[:, [0, 2]])


def test_thicker_legs_grow_each_about_its_own_middle():
    shape = held_out("table", 1)
    v, f = shape.mesh()
    truth, index = vertex_parts(shape), primitive_index(shape)
    edit = edit_part(v, f, "legs", "thicker", read_amount("make the legs thicker", grows=True))
    legs = truth == "legs"
    for leg in np.unique(index[legs]):
        rows = index == leg
        for axis in (0, 1):
            assert np.ptp(edit.vertices[rows, axis]) / np.ptp(v[rows, axis]) == pytest.approx(1.35, rel=1e-5)
            assert edit.vertices[rows, axis].mean() == pytest.approx(v[rows, axis].mean(), abs=1e-6)
    np.testing.assert_array_equal(edit.vertices[~legs], v[~legs])
    np.testing.assert_array_equal(edit.vertices[:, 2], v[:, 2])


def test_deeper_is_the_objects_own_depth(embedded_pipe):
    """'Deeper' and 'front to back' change the depth: Y for a chair whose back is at +Y."""
    v, f = held_out("chair", 1).mesh()
    result = embedded_pipe.edit(v, f, "make it 20 % deeper")
    assert np.ptp(result.vertices[:, 1]) / np.ptp(v[:, 1]) == pytest.approx(1.2, rel=1e-4)
    np.testing.assert_array_equal(result.vertices[:, [0, 2]], v[:, [0, 2]])
    assert result.edit_kind == "deeper"


@pytest.mark.parametrize("instruction, part, change", [
    # the second blind set's misses (bench/blind2, no longer blind): "too ..." means the
    # opposite, a size noun with its direction, "back of the chair" is the backrest
    ("the back is too tall, bring it down to half", "back", "shorter"),
    ("reduce the thickness of the top by 40%", "top", "thinner"), ("thinner backrest please", "back", "thinner"),
    ("could the shelves be a bit less thick?", "shelf", "thinner"), ("remove the back of the chair", "back", "remove"),
    ("the legs have to go", "legs", "remove"), ("turn this stool into a chair by adding a back", "back", "add"),
    ("more shelves please, like five in total", "shelf", "add"), ("add 5 cm to the legs", "legs", "longer"),
    ("the legs are too short", "legs", "longer"), ("make the legs at the back of the chair longer", "legs", "longer"),
    # the third blind set's misses (bench/blind3, after its one run): an amount between "chop"
    # and "off" shortens, "fat"/"sturdy"/"bulk up" thicken, a common typo
    ("chop a few cm off the legs", "legs", "shorter"), ("chop the legs off", "legs", "remove"),
    ("can u make the legs more fat and sturdy", "legs", "thicker"), ("legs thiner", "legs", "thinner"),
    ("The seat board looks flimsy, bulk it up by 2 cm", "seat", "thicker"),
])
def test_the_words_of_blind_misses(instruction, part, change):
    assert (read_words(instruction).part, read_words(instruction).change) == (part, change)


@pytest.mark.parametrize("instruction, side", [
    ("compress the width to half", "thinner"), ("squish it horizontally, it's too broad", "thinner"),
    ("extend the depth of the shelf unit by 15 cm", "deeper"), ("pull it out front to back so it's deeper", "deeper"),
    ("stretch it vertically", "taller"), ("it is too tall", "shorter"), ("set the height to 1.2 m", "taller"),
])
def test_the_words_name_a_dimension_and_its_way(instruction, side):
    words = read_words(instruction)
    assert words.part is None and words.side == side


def test_adding_something_that_is_no_part_is_named_as_such():
    words = read_words("add cup holders to the sofa arms")
    assert words.change == "add" and words.part is None and words.unknown_thing == "cup holders"


@pytest.mark.parametrize("part, axes", [("back", None), ("shelf", (2,))])
def test_a_thicker_back_or_thinner_shelves_change_each_piece_about_its_middle(part, axes):
    shape = held_out("chair" if part == "back" else "shelf", 1)
    v, f = shape.mesh()
    layout = find_layout(v, f)
    axes = axes or (layout.back_axis,)
    truth, index = vertex_parts(shape), primitive_index(shape)
    change = "thicker" if part == "back" else "thinner"
    edit = edit_part(v, f, part, change, read_amount("twice" if part == "back" else "half", grows=part == "back"))
    mask = layout.mask(part)
    assert mask.any()
    ratio = 2.0 if part == "back" else 0.5
    for piece in np.unique(index[mask & (truth == part)]):
        rows = (index == piece) & mask
        for axis in axes:
            assert np.ptp(edit.vertices[rows, axis]) / np.ptp(v[rows, axis]) == pytest.approx(ratio, rel=1e-5)
            assert edit.vertices[rows, axis].mean() == pytest.approx(v[rows, axis].mean(), abs=1e-6)
    np.testing.assert_array_equal(edit.vertices[~mask], v[~mask])  # nothing else moves


def test_a_length_said_in_centimetres_is_added_to_the_part():
    shape = held_out("table", 0)
    v, f = shape.mesh()
    legs = vertex_parts(shape) == "legs"
    edit = edit_part(v, f, "legs", "longer", read_amount("legs 10 cm longer", grows=True))
    assert np.ptp(edit.vertices[legs, 2]) - np.ptp(v[legs, 2]) == pytest.approx(0.1, abs=1e-5)


def test_giving_a_shape_a_part_it_lacks_adds_one(embedded_pipe):
    v, f = held_out("bench", 0).mesh()
    assert find_layout(v, f).back_axis is None
    result = embedded_pipe.edit(v, f, "give it a tall back")
    assert result.edit_kind == "back add" and result.added is not None
    np.testing.assert_array_equal(result.vertices, v)


def test_adding_an_unknown_thing_to_a_part_is_refused(embedded_pipe):
    v, f = held_out("sofa", 0).mesh()
    with pytest.raises(TaskError) as err:
        embedded_pipe.edit(v, f, "add cup holders to the sofa arms")
    assert err.value.code == "no_shape" and 'cannot add "cup holders"' in err.value.message


def test_lengths_are_in_the_scene_s_metres_for_a_scaled_object(embedded_pipe):
    """An object scaled 2x in the scene: its mesh's units are 2 m, so 10 cm is 0.05 of them."""
    shape = held_out("table", 0)
    v, f = shape.mesh()
    legs = vertex_parts(shape) == "legs"
    result = embedded_pipe.edit(v, f, "make the legs 10 cm longer", {"metres_per_unit": [2.0, 2.0, 2.0]})
    assert np.ptp(result.vertices[legs, 2]) - np.ptp(v[legs, 2]) == pytest.approx(0.05, abs=1e-5)


@pytest.mark.parametrize("bad", [[1.0, 1.0], [0.0, 1.0, 1.0], "2", [1.0, float("nan"), 1.0]])
def test_a_bad_metres_per_unit_is_refused(embedded_pipe, bad):
    v, f = held_out("table", 0).mesh()
    with pytest.raises(Exception, match="metres_per_unit"):
        embedded_pipe.edit(v, f, "make the legs 10 cm longer", {"metres_per_unit": bad})


def truck_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A box on four wheels, 4 m long along X, 2 m across Y: a truck modelled along X."""
    body = trimesh.creation.box(extents=(4.0, 2.0, 1.5))
    body.apply_translation((0, 0, 1.25))
    wheels = [trimesh.creation.cylinder(radius=0.4, height=0.3, transform=trimesh.transformations.rotation_matrix(
        np.pi / 2, (1, 0, 0), (0, 0, 0))) for _ in range(4)]
    for wheel, (x, y) in zip(wheels, [(-1.4, -1.0), (-1.4, 1.0), (1.4, -1.0), (1.4, 1.0)]):
        wheel.apply_translation((x, y, 0.4))
    mesh = trimesh.util.concatenate([body] + wheels)
    return mesh.vertices.astype(np.float32), mesh.faces.astype(np.int32)


def test_a_vehicle_named_so_is_made_wider_across_its_length(embedded_pipe):
    """Its name says it is a truck (a vehicle's length runs front to back): "wider" grows Y, its
    short side; an object with no such name is wide along its own X, as before."""
    v, f = truck_mesh()
    truck = embedded_pipe.edit(v, f, "make it wider", {"object_name": "Truck.001"})
    assert np.ptp(truck.vertices[:, 1]) / np.ptp(v[:, 1]) == pytest.approx(1.35, rel=1e-4)
    np.testing.assert_array_equal(truck.vertices[:, [0, 2]], v[:, [0, 2]])
    box = embedded_pipe.edit(v, f, "make it wider", {"object_name": "Cube"})
    assert np.ptp(box.vertices[:, 0]) / np.ptp(v[:, 0]) == pytest.approx(1.35, rel=1e-4)
    longer = embedded_pipe.edit(v, f, "make it 20 % deeper", {"object_name": "PickupTruck"})
    assert np.ptp(longer.vertices[:, 0]) / np.ptp(v[:, 0]) == pytest.approx(1.2, rel=1e-4)


@pytest.mark.parametrize("bad", ["", "x" * 257, 7])
def test_a_bad_object_name_is_refused(embedded_pipe, bad):
    v, f = truck_mesh()
    with pytest.raises(Exception, match="object_name"):
        embedded_pipe.edit(v, f, "make it wider", {"object_name": bad})
