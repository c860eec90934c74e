"""Proportion edits on voxels (backend/geometry/resize.py): the asked side changes by the edit
factor, and the change goes into slices the shape repeats, so parts keep their own size."""

import numpy as np
import pytest

from backend.geometry.resize import EDIT_FACTOR, NoRoom, is_round_plan, resize, resize_along

R = 64


def table() -> np.ndarray:
    """A top 4 voxels thick on four legs 20 tall, 30 x 20 voxels, its low corner at (2, 3, 0)."""
    g = np.zeros((R, R, R), bool)
    g[2:32, 3:23, 20:24] = True
    for x, y in ((2, 3), (29, 3), (2, 20), (29, 20)):
        g[x:x + 3, y:y + 3, 0:20] = True
    return g


def extent(g: np.ndarray, axis: int) -> tuple[int, int]:
    idx = np.nonzero(g.any(axis=tuple(a for a in range(3) if a != axis)))[0]
    return int(idx[0]), int(idx[-1] - idx[0] + 1)


def test_taller_and_shorter_change_the_legs_and_keep_the_top():
    src = table()
    for kind, factor in (("taller", EDIT_FACTOR), ("shorter", 1 / EDIT_FACTOR)):
        out = resize(src, kind)
        first, height = extent(out, 2)
        assert first == 0 and height == round(24 * factor)
        top = np.nonzero(out[10, 10])[0]  # a column through the top alone
        assert len(top) == 4 and top[-1] == height - 1  # the top keeps its thickness
        assert extent(out, 0) == extent(src, 0) and extent(out, 1) == extent(src, 1)


def test_wider_lengthens_the_top_and_keeps_the_legs_thick():
    src = table()
    out = resize(src, "wider")
    assert extent(out, 0) == (2, round(30 * EDIT_FACTOR)) and extent(out, 1) == extent(src, 1)
    legs = out[:, 4, 5]  # a row through the two front legs below the top
    assert legs.sum() == 6 and extent(out, 2) == extent(src, 2)


def test_a_shape_without_repeats_is_resampled_evenly():
    z = np.arange(R)[None, None, :]
    x, y = np.mgrid[:R, :R]
    cone = ((x[..., None] - 30) ** 2 + (y[..., None] - 30) ** 2) < (20 - 0.4 * z) ** 2
    cone &= z < 40
    out = resize_along(cone, 2, EDIT_FACTOR)
    assert extent(out, 2) == (0, round(40 * EDIT_FACTOR))
    assert out.sum() == pytest.approx(cone.sum() * EDIT_FACTOR, rel=0.05)


def test_round_plans_widen_both_ways():
    x, y = np.mgrid[:R, :R]
    disc = ((x - 20) ** 2 + (y - 20) ** 2) < 15 ** 2
    cylinder = np.repeat(disc[..., None], 30, axis=2)
    cylinder = np.concatenate([cylinder, np.zeros((R, R, R - 30), bool)], axis=2)
    assert is_round_plan(cylinder) and not is_round_plan(table())
    out = resize(cylinder, "wider")
    assert extent(out, 0)[1] == extent(out, 1)[1] == round(29 * EDIT_FACTOR)
    assert extent(out, 2) == extent(cylinder, 2)


def test_no_room_is_a_clear_error():
    full = np.zeros((R, R, R), bool)
    full[10:20, 10:20, :] = True
    with pytest.raises(NoRoom, match="no room"):
        resize(full, "taller")
    flat = np.zeros((R, R, R), bool)
    flat[10:20, 10:20, 0:1] = True
    with pytest.raises(NoRoom, match="too small"):
        resize(flat, "shorter")
    with pytest.raises(NoRoom, match="empty"):
        resize(np.zeros((R, R, R), bool), "wider")


def test_a_grown_shape_stops_at_the_grid_side():
    src = np.zeros((R, R, R), bool)
    src[5:15, 5:15, 2:50] = True  # 48 tall from z=2: the factor would need 65
    out = resize(src, "taller")
    assert extent(out, 2) == (2, R - 2)


def test_a_shape_with_only_a_few_repeated_slices_is_resampled_not_extruded():
    """A ball, a few of whose slices repeat: widening it is an even resample, no slice
    copied more than three times (the old rule spread the whole change over those few: flat
    bands)."""
    from backend.geometry.resize import _long_run_repeats

    x, y, z = np.mgrid[:R, :R, :R]
    ball = (x - 24) ** 2 + (y - 24) ** 2 + (z - 24) ** 2 <= 16 ** 2
    body = ball[ball.any(axis=(1, 2))]
    change = round(len(body) * EDIT_FACTOR) - len(body)
    assert 1 <= len(_long_run_repeats(body)) and change > 3 * len(_long_run_repeats(body))
    out = resize_along(ball, 0, EDIT_FACTOR)
    assert extent(out, 0) == (extent(ball, 0)[0], round(len(body) * EDIT_FACTOR))
    slices = out[out.any(axis=(1, 2))]
    runs, n = [], 1
    for a, b in zip(slices[:-1], slices[1:]):
        n = n + 1 if np.array_equal(a, b) else 1
        runs.append(n)
    assert max(runs) <= 3, max(runs)
