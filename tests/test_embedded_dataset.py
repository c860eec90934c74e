"""The procedural dataset of the embedded model: shapes, occupancy, wording, splits, edits."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import trimesh

from backend.embedded import language as L
from backend.embedded.categories import CATEGORIES
from backend.embedded.shape import RESOLUTION, sample_shape, surface_shell
from backend.embedded.splits import CATEGORY_NAMES, is_held_out_seed, shape_seed, split_shapes


def extent(occ: np.ndarray) -> np.ndarray:
    """Occupied extent along x, y, z in voxels."""
    idx = np.argwhere(occ)
    return idx.max(0) - idx.min(0) + 1


def test_at_least_twelve_categories_with_distinct_shapes():
    assert len(CATEGORIES) >= 12
    occs = [sample_shape(c, 3).occupancy() for c in CATEGORY_NAMES]
    for i in range(len(occs)):
        for j in range(i + 1, len(occs)):
            assert (occs[i] != occs[j]).any(), (CATEGORY_NAMES[i], CATEGORY_NAMES[j])


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_shape_is_normalised_and_mesh_agrees_with_occupancy(category):
    shape = sample_shape(category, 11)
    v, f = shape.mesh()
    lo, hi = v.min(0), v.max(0)
    # training convention: centred, longest side exactly 1
    assert np.isclose((hi - lo).max(), 1.0, atol=1e-5)
    assert np.allclose((hi + lo) / 2, 0.0, atol=1e-5)
    occ = shape.occupancy()
    assert occ.shape == (RESOLUTION,) * 3 and occ.dtype == bool
    assert extent(occ).max() == RESOLUTION  # the longest side spans the grid
    # every surface voxel lies on (or next to) the mesh surface: the analytic occupancy and
    # the mesh describe the same object (mesh faces inside the union of parts have no voxels)
    points, _ = trimesh.sample.sample_surface(trimesh.Trimesh(v, f, process=False), 40000, seed=0)
    idx = np.clip(np.floor((points + 0.5) * RESOLUTION).astype(int), 0, RESOLUTION - 1)
    near = np.zeros_like(occ)
    near[idx[:, 0], idx[:, 1], idx[:, 2]] = True
    for axis in range(3):
        near = near | np.roll(near, 1, axis=axis) | np.roll(near, -1, axis=axis)
    assert near[occ].mean() > 0.97


def test_surface_shell_keeps_only_voxels_next_to_empty_space():
    solid = np.zeros((8, 8, 8), bool)
    solid[1:7, 1:7, 1:7] = True
    shell = surface_shell(solid)
    assert shell.sum() == 6**3 - 4**3
    assert not shell[2:6, 2:6, 2:6].any()


def test_parameters_are_continuous_and_seeded():
    a, b = sample_shape("chair", 1), sample_shape("chair", 2)
    assert a.params["seat_h"] != b.params["seat_h"]
    assert sample_shape("chair", 1).params == a.params  # same seed, same shape


def test_held_out_split_is_disjoint_from_training():
    train = {(s.category, s.seed) for s in split_shapes(30, held_out=False)}
    held = {(s.category, s.seed) for s in split_shapes(30, held_out=True)}
    assert not train & held
    assert all(is_held_out_seed(s) for _, s in held) and not any(is_held_out_seed(s) for _, s in train)
    assert shape_seed("table", 0, True) != shape_seed("table", 0, False)


def test_wording_varies_and_held_out_frames_never_appear_in_training():
    rng = np.random.default_rng(0)
    shape = sample_shape("sofa", 5)
    prompts = {L.text_prompt(shape, rng) for _ in range(60)}
    assert len(prompts) > 20
    assert not set(L.FRAMES["train"]) & set(L.FRAMES["held_out"])
    assert not set(L.DESCRIBE_QUESTIONS["train"]) & set(L.DESCRIBE_QUESTIONS["held_out"])
    for kind, pools in L.EDIT_PHRASES.items():
        assert not set(pools["train"]) & set(pools["held_out"]), kind
    answers = {L.describe_answer(shape, rng) for _ in range(40)}
    assert len(answers) > 5 and all(L.category_in_text(a) == "sofa" for a in answers)


def test_category_in_text_prefers_the_longest_name():
    assert L.category_in_text("A table lamp with a finial.") == "lamp"
    assert L.category_in_text("a kitchen table") == "table"
    assert L.category_in_text("a couch") == "sofa"
    assert L.category_in_text("a chair and a table") is None
    assert L.category_in_text("a spaceship") is None


def aspect(occ: np.ndarray) -> float:
    e = extent(occ)
    return e[2] / max(e[0], e[1])


@pytest.mark.parametrize("category", ["chair", "vase", "bed"])
def test_edits_change_proportions_after_normalisation(category):
    shape = sample_shape(category, 4)
    base = aspect(shape.occupancy())
    assert aspect(L.apply_edit(shape, "taller").occupancy()) > base * 1.1
    assert aspect(L.apply_edit(shape, "shorter").occupancy()) < base / 1.1
    assert aspect(L.apply_edit(shape, "wider").occupancy()) < base / 1.1


def test_add_and_remove_part_edits_toggle_the_part():
    shape = sample_shape("mug", 0).with_params(part=False)
    assert "add" in L.possible_edits(shape)
    with_handle = L.apply_edit(shape, "add")
    assert with_handle.params["part"] and "remove" in L.possible_edits(with_handle)
    # the handle sticks out along +X: the occupied x extent grows relative to y
    e0, e1 = extent(shape.occupancy()), extent(with_handle.occupancy())
    assert e1[0] / e1[1] > e0[0] / e0[1] * 1.1
    assert L.edit_instruction(shape, "add", np.random.default_rng(0)).count("handle") == 1
