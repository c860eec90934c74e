"""Placing an edit answer that was normalised on its own (the model-written edits of backend/edit.py).

The answers here are the true edits of procedural shapes, voxelised the way such a model
reads and writes them (each shape normalised on its own): what a perfect model would answer.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.embedded import language as L
from backend.embedded.shape import sample_shape
from backend.geometry.errors import INVALID_ARGUMENT, GeometryError
from backend.geometry.placement import MAX_SCALE, best_shift_overlap, fit_edit_answer, occupied_box, placed_grid

VOXEL = 1 / 64


def placed_box(source_shape, answer_grid):
    scale, offset = fit_edit_answer(source_shape.occupancy(), answer_grid)
    lo, hi = occupied_box(answer_grid)
    return lo * scale + offset, hi * scale + offset, scale


def true_box(shape, kind):
    """The true edit at the source's scale, in the source's unit frame (its low corner stays)."""
    v, _ = L.apply_edit(shape, kind).mesh(scale_of=shape)
    return v.min(0), v.max(0)


@pytest.mark.parametrize("category, seed, kind", [
    ("chair", 3, "taller"), ("lamp", 2, "taller"), ("cabinet", 1, "shorter"),
    ("table", 4, "wider"), ("sofa", 5, "thinner"), ("bench", 2, "taller"), ("chair", 7, "remove"),
])
def test_the_answer_gets_the_true_edits_size_on_the_sources_floor_and_footprint(category, seed, kind):
    shape = sample_shape(category, seed)
    answer = L.apply_edit(shape, kind).occupancy()  # normalised on its own: longest side 1
    lo, hi, scale = placed_box(shape, answer)
    true_lo, true_hi = true_box(shape, kind)
    sides, true_sides = hi - lo, true_hi - true_lo
    assert np.all(np.abs(sides - true_sides) <= np.maximum(1.5 * VOXEL, 0.04 * true_sides)), (sides, true_sides)
    source_lo, source_hi = occupied_box(shape.occupancy())
    assert lo[2] == pytest.approx(source_lo[2])  # stands on the source's floor
    assert (lo[:2] + hi[:2]) / 2 == pytest.approx((source_lo[:2] + source_hi[:2]) / 2)  # same footprint centre


def test_a_shape_already_tallest_in_z_made_taller_comes_back_taller_not_narrower():
    """The bug this fixes: kept at its own normalisation, the answer had the source's height."""
    shape = sample_shape("lamp", 2)
    source_lo, source_hi = occupied_box(shape.occupancy())
    assert np.argmax(source_hi - source_lo) == 2
    answer = L.apply_edit(shape, "taller").occupancy()
    answer_lo, answer_hi = occupied_box(answer)
    assert answer_hi[2] - answer_lo[2] == pytest.approx(source_hi[2] - source_lo[2])  # as read: same height
    lo, hi, scale = placed_box(shape, answer)
    assert (hi - lo)[2] > 1.25 * (source_hi - source_lo)[2]
    assert (hi - lo)[:2] == pytest.approx((source_hi - source_lo)[:2], abs=1.5 * VOXEL)


def test_an_edit_of_two_sides_alike_keeps_the_proportions_but_not_the_size():
    """The documented limit: a round shape made wider in X and Y reads like one made shorter."""
    shape = sample_shape("vase", 3)
    answer = L.apply_edit(shape, "wider").occupancy()
    lo, hi, _ = placed_box(shape, answer)
    true_lo, true_hi = true_box(shape, "wider")
    sides, true_sides = hi - lo, true_hi - true_lo
    assert sides[0] / sides[2] == pytest.approx(true_sides[0] / true_sides[2], rel=0.08)
    assert not np.allclose(sides, true_sides, rtol=0.08)


def test_empty_thin_and_stray_answers_keep_a_sane_size():
    source = sample_shape("chair", 3).occupancy()
    assert fit_edit_answer(source, np.zeros_like(source)) == (1.0, pytest.approx(np.zeros(3)))
    # a flat answer (one voxel thick): no ratio is trusted, the scale stays 1
    flat = np.zeros_like(source)
    flat[10:50, 10:50, 0] = True
    scale, offset = fit_edit_answer(source, flat)
    assert scale == 1.0
    # a small stray blob from a weak model is not blown up to the source's size
    blob = np.zeros_like(source)
    blob[:4, :4, :4] = True
    assert fit_edit_answer(source, blob)[0] == MAX_SCALE


def test_grids_of_different_sizes_are_refused_clearly():
    with pytest.raises(GeometryError) as err:
        fit_edit_answer(np.ones((8, 8, 8), bool), np.ones((16, 16, 16), bool))
    assert err.value.code == INVALID_ARGUMENT and "shape" in err.value.message


def test_placed_grid_scales_and_moves_the_answer_like_its_vertices():
    grid = np.zeros((64, 64, 64), bool)
    grid[16:32, 16:32, 0:16] = True  # unit coords [-0.25, 0) x [-0.25, 0) x [-0.5, -0.25)
    placed = placed_grid(grid, 2.0, np.array([0.25, 0.25, 0.5]))
    lo, hi = occupied_box(placed)
    np.testing.assert_allclose(lo, [-0.25, -0.25, -0.5])
    np.testing.assert_allclose(hi, [0.25, 0.25, 0.0])
    assert placed.sum() == 8 * grid.sum()
    # identity, and a shift that pushes the answer out of the cube
    assert np.array_equal(placed_grid(grid, 1.0, np.zeros(3)), grid)
    assert not placed_grid(grid, 1.0, np.array([2.0, 0.0, 0.0])).any()


@pytest.mark.parametrize("category, kind", [("mug", "add"), ("mug", "remove"), ("lamp", "add"), ("table", "remove")])
def test_true_part_edits_keep_most_of_the_source_once_placed(category, kind):
    """A true add or remove, normalised on its own, placed back and compared at the best small
    shift keeps over half the source; the raw IoU of the two unit grids says far less (a mug's
    handle moves its thin walls off themselves: about 0.1)."""
    shape = sample_shape(category, 3).with_params(part=(kind == "remove"))
    before, truth = L.edit_pair_occupancies(shape, kind, 1.0)
    scale, offset = fit_edit_answer(before, truth)
    assert best_shift_overlap(before, placed_grid(truth, scale, offset)) > 0.5
    raw = (before & truth).sum() / (before | truth).sum()
    if category == "mug":
        assert raw < 0.3


def test_best_shift_overlap_finds_a_small_offset_and_not_another_shape():
    a = np.zeros((64, 64, 64), bool)
    a[20:44, 20:44, 0:40] = True
    a[22:42, 22:42, 2:40] = False  # a thin-walled cup
    shifted = np.roll(a, 6, axis=0)
    assert (a & shifted).sum() / (a | shifted).sum() < 0.5
    assert best_shift_overlap(a, shifted) > 0.9
    other = np.zeros_like(a)
    other[0:64, 28:36, 50:58] = True  # a bar elsewhere
    assert best_shift_overlap(a, other) < 0.1
    assert best_shift_overlap(a, a) == 1.0 and best_shift_overlap(a, np.zeros_like(a)) == 0.0
