"""Normalisation conventions, up axis, exact inverse; mesh validation and cleaning."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.geometry.errors import GeometryError
from backend.geometry.normalize import normalize
from backend.geometry.validate import clean_mesh

RNG = np.random.default_rng(11)
POINTS = RNG.normal(0, 1, (200, 3)) * np.array([3.0, 1.0, 0.5]) + np.array([10.0, -4.0, 2.0])


def test_training_convention_centres_each_axis_and_fits_the_longest_side():
    unit, norm = normalize(POINTS, "training", "z")
    assert unit.dtype == np.float32
    lo, hi = unit.min(axis=0), unit.max(axis=0)
    np.testing.assert_allclose((lo + hi) / 2, 0, atol=1e-6)
    assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(unit, (POINTS - (POINTS.min(0) + POINTS.max(0)) / 2)
                               / np.ptp(POINTS, axis=0).max(), atol=1e-6)


def test_demo_convention_is_the_published_formula():
    unit, _ = normalize(POINTS, "demo", "z")
    lo, hi = POINTS.min(), POINTS.max()  # one scalar over all coordinates
    np.testing.assert_allclose(unit, (POINTS - lo) / (hi - lo) - 0.5, atol=1e-6)
    # The published demo normalises in the file frame, then turns Y-up into Z-up.
    unit_y, _ = normalize(POINTS, "demo", "y")
    expected = (POINTS - lo) / (hi - lo) - 0.5
    np.testing.assert_allclose(unit_y, np.stack([expected[:, 0], -expected[:, 2], expected[:, 1]], 1),
                               atol=1e-6)


def test_y_up_is_turned_z_up():
    # A tall object along +Y in a Y-up file stands along +Z after normalising.
    v = np.array([[0, 0, 0], [0, 10, 0], [1, 0, 0], [0, 0, 2]], float)
    unit, norm = normalize(v, "training", "y")
    assert np.ptp(unit, axis=0).argmax() == 2
    assert unit[1, 2] > unit[0, 2]             # +Y -> +Z
    assert unit[3, 1] < unit[0, 1]             # +Z -> -Y
    assert np.linalg.det(norm.rotation) == pytest.approx(1.0)  # a rotation, not a mirror


@pytest.mark.parametrize("up", ["z", "y"])
def test_corner_convention_puts_the_low_corner_at_minus_half(up):
    unit, _ = normalize(POINTS, "corner", up)
    np.testing.assert_allclose(unit.min(axis=0), -0.5, atol=1e-6)
    assert np.ptp(unit, axis=0).max() == pytest.approx(1.0, abs=1e-6)
    # the same shape as "training", only moved
    training, _ = normalize(POINTS, "training", up)
    np.testing.assert_allclose(unit - unit.min(0), training - training.min(0), atol=1e-6)


@pytest.mark.parametrize("convention", ["training", "demo", "corner"])
@pytest.mark.parametrize("up", ["z", "y"])
@pytest.mark.parametrize("scale", [1e-4, 1.0, 1e4])
def test_inverse_maps_back_exactly(convention, up, scale):
    v = POINTS * scale
    unit, norm = normalize(v, convention, up)
    np.testing.assert_allclose(norm.to_unit(v), unit)
    back = norm.from_unit(unit)
    assert back.dtype == np.float32
    np.testing.assert_allclose(back, v, rtol=1e-6, atol=1e-6 * scale * 20)
    assert norm.to_dict()["convention"] == convention


@pytest.mark.parametrize("convention", ["training", "demo", "corner"])
def test_fill_shrinks_the_shape_about_its_anchor_and_maps_back(convention):
    full, _ = normalize(POINTS, convention, "z")
    unit, norm = normalize(POINTS, convention, "z", fill=0.5)
    # the corner convention keeps the low corner at -0.5; the others keep the centre
    anchor = -0.5 if convention == "corner" else 0.0
    np.testing.assert_allclose(unit - anchor, (full - anchor) * 0.5, atol=1e-6)
    np.testing.assert_allclose(norm.from_unit(unit), POINTS, atol=1e-5)
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(GeometryError) as err:
            normalize(POINTS, convention, fill=bad)
        assert err.value.code == "invalid_argument"


def test_scale_does_not_change_the_unit_shape():
    base, _ = normalize(POINTS, "training")
    for scale in (1e-4, 1e4):
        np.testing.assert_allclose(normalize(POINTS * scale, "training")[0], base, atol=1e-6)


def test_flat_plane_and_degenerate_input():
    plane = np.array([[0, 0, 5], [2, 0, 5], [2, 1, 5]], float)
    unit, norm = normalize(plane, "training")
    assert np.ptp(unit[:, 2]) == 0 and np.ptp(unit[:, 0]) == pytest.approx(1.0)
    np.testing.assert_allclose(norm.from_unit(unit), plane, atol=1e-6)
    for bad, code in [(np.ones((4, 3)), "degenerate_mesh"), (np.zeros((0, 3)), "empty_mesh"),
                      (np.array([[0, 0, np.inf]]), "non_finite"), (np.ones((4, 2)), "invalid_mesh")]:
        with pytest.raises(GeometryError) as err:
            normalize(bad)
        assert err.value.code == code
    for kwargs in ({"convention": "other"}, {"up": "x"}):
        with pytest.raises(GeometryError) as err:
            normalize(POINTS, **kwargs)
        assert err.value.code == "invalid_argument"


def test_clean_mesh_drops_only_what_has_no_surface():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [2, 0, 0], [9, 9, 9], [1, 0, 0]], float)
    f = np.array([[0, 1, 2],     # fine
                  [0, 1, 1],     # repeats a vertex
                  [0, 1, 3],     # collinear: zero area
                  [5, 2, 0]])    # fine, through a duplicate of vertex 1
    v0, f0 = v.copy(), f.copy()
    cv, cf = clean_mesh(v, f)
    assert cv.dtype == np.float32 and cf.dtype == np.int32
    assert len(cf) == 2
    np.testing.assert_array_equal(cv[cf], v[[[0, 1, 2], [5, 2, 0]]])
    assert len(cv) == 4  # the unused vertices 3 and 4 are gone, the duplicate 5 stays
    np.testing.assert_array_equal(v, v0)  # inputs untouched
    np.testing.assert_array_equal(f, f0)


def test_clean_mesh_errors():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], float)
    cases = [
        (v, [[0, 1, 3]], "invalid_mesh"),
        (v, [[0, -1, 2]], "invalid_mesh"),
        (v, [[0, 1]], "invalid_mesh"),
        (v, [[0.5, 1, 2]], "invalid_mesh"),
        (np.zeros((0, 3)), np.zeros((0, 3), int), "empty_mesh"),
        (v, np.zeros((0, 3), int), "empty_mesh"),
        (v, [[0, 0, 1]], "empty_mesh"),
        (np.where(np.eye(3, dtype=bool), np.nan, v), [[0, 1, 2]], "non_finite"),
        ("abc", [[0, 1, 2]], "invalid_mesh"),
    ]
    for verts, faces, code in cases:
        with pytest.raises(GeometryError) as err:
            clean_mesh(verts, faces)
        assert err.value.code == code, (faces, err.value)
        assert err.value.message
    # Whole-number float indices (as some loaders produce) are accepted.
    assert len(clean_mesh(v, np.array([[0.0, 1.0, 2.0]]))[1]) == 1
