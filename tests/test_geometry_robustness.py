"""Real and messy meshes through the whole geometry path: file -> grid -> mesh -> file frame."""

import os
import tracemalloc

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from scipy import ndimage

from backend.geometry.errors import GeometryError
from backend.geometry.meshio import file_up_axis, load_mesh
from backend.geometry.surface import occupancy_to_mesh
from backend.geometry.validate import clean_mesh
from backend.geometry.voxelize import mesh_to_grid

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "meshes")


def _sphere(rows=24, cols=48, radius=0.8, center=(0.1, -0.2, 0.3)):
    u, w = np.meshgrid(np.linspace(0, np.pi, rows), np.linspace(0, 2 * np.pi, cols, endpoint=False),
                       indexing="ij")
    v = radius * np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1)
    idx = np.arange(rows * cols).reshape(rows, cols)
    nxt = np.roll(idx, -1, axis=1)
    a, b, c, d = idx[:-1], idx[1:], nxt[1:], nxt[:-1]
    f = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    return v.reshape(-1, 3) + np.asarray(center), f


@pytest.mark.parametrize("name", sorted(os.listdir(FIXTURES)))
def test_fixture_round_trip_lands_where_the_input_stood(name):
    path = os.path.join(FIXTURES, name)
    v, f = load_mesh(path)
    grid, norm = mesh_to_grid(v, f, "training", file_up_axis(path))
    assert grid.shape == (64, 64, 64) and grid.any()
    for mode in ("smooth", "blocky"):
        back, faces = occupancy_to_mesh(grid, mode, normalization=norm)
        unit, _ = occupancy_to_mesh(grid, mode)
        np.testing.assert_allclose(back, norm.from_unit(unit), rtol=1e-6, atol=1e-6)
        assert back.dtype == np.float32 and faces.dtype == np.int32
        size = np.ptp(v, axis=0).max()
        # Within about a voxel and a half of the input's bounding box.
        np.testing.assert_allclose(back.min(axis=0), v.min(axis=0), atol=1.5 * size / 64)
        np.testing.assert_allclose(back.max(axis=0), v.max(axis=0), atol=1.5 * size / 64)


def test_demo_convention_on_a_y_up_textured_file():
    path = os.path.join(FIXTURES, "Duck.glb")
    grid, norm = mesh_to_grid(*load_mesh(path), "demo", "y")
    assert norm.convention == "demo" and grid.sum() > 1000


def test_several_bodies_stay_separate():
    grid, _ = mesh_to_grid(*load_mesh(os.path.join(FIXTURES, "multibody.stl")), "training", "z")
    _, count = ndimage.label(grid, np.ones((3, 3, 3)))
    assert count >= 2


def test_soup_duplicates_and_degenerate_faces_change_nothing():
    v, f = _sphere()
    base, _ = mesh_to_grid(v, f)
    soup = v[f].reshape(-1, 3)                        # every triangle with its own vertices
    soup_grid, _ = mesh_to_grid(soup, np.arange(len(soup)).reshape(-1, 3))
    np.testing.assert_array_equal(soup_grid, base)
    junk = np.concatenate([f, [[0, 0, 5], [3, 3, 3]], f[:10, [0, 1, 1]]])   # lines and points
    np.testing.assert_array_equal(mesh_to_grid(v, junk)[0], base)


def test_random_triangle_soup_and_open_surface():
    rng = np.random.default_rng(5)
    soup = rng.uniform(-1, 1, (300, 3))
    grid, _ = mesh_to_grid(soup, np.arange(300).reshape(-1, 3))
    assert grid.sum() > 300
    unit, faces = occupancy_to_mesh(grid, "smooth")
    assert len(faces) > 0
    v, f = _sphere()
    open_f = f[v[f].mean(axis=1)[:, 2] > 0.3]        # the upper half: an open bowl
    grid, _ = mesh_to_grid(v, open_f)
    unit, faces = occupancy_to_mesh(grid, "smooth")  # nothing enclosed: a thin surface
    assert len(faces) > 0 and grid.sum() < 0.2 * 64 ** 3


@pytest.mark.parametrize("scale", [1e-4, 1e4])
def test_tiny_and_huge_coordinates_give_the_same_grid(scale):
    v, f = _sphere()
    base, _ = mesh_to_grid(v, f)
    grid, norm = mesh_to_grid(v * scale, f)
    assert (grid != base).sum() <= 2  # at most rounding at an exact voxel boundary
    unit, faces = occupancy_to_mesh(grid)
    back = norm.from_unit(unit)
    np.testing.assert_allclose(back.max(axis=0), (v * scale).max(axis=0), atol=2 * scale * 1.6 / 64)


def test_flat_plane():
    v = np.array([[0, 0, 3], [4, 0, 3], [4, 2, 3], [0, 2, 3]], float)
    grid, norm = mesh_to_grid(v, [[0, 1, 2], [0, 2, 3]])
    assert np.flatnonzero(grid.any(axis=(0, 1))).tolist() == [32]  # one layer
    unit, faces = occupancy_to_mesh(grid, "blocky")
    back = norm.from_unit(unit)
    assert np.ptp(back[:, 2]) == pytest.approx(4 / 64, rel=1e-4)   # one voxel of 4/64 units


def test_bad_meshes_get_clear_errors():
    v, f = _sphere()
    nan = v.copy()
    nan[7] = [np.nan, 0, np.inf]
    for args, code in [((nan, f), "non_finite"), ((np.zeros((0, 3)), np.zeros((0, 3), int)), "empty_mesh"),
                       ((v[:1].repeat(3, 0), [[0, 1, 2]]), "empty_mesh"), ((v, f + len(v)), "invalid_mesh")]:
        with pytest.raises(GeometryError) as err:
            mesh_to_grid(*args)
        assert err.value.code == code and err.value.message


def test_two_million_triangles_in_bounded_memory():
    v, f = _sphere(rows=708, cols=1414)
    assert len(f) >= 1_990_000
    tracemalloc.start()
    try:
        grid, _ = mesh_to_grid(v, f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.0e9, f"peak {peak / 1e6:.0f} MB"
    shell = grid.sum()
    assert shell > 0.8 * 4 * np.pi * 32 ** 2  # a closed shell of radius 32 voxels
    filled = occupancy_to_mesh(grid, "blocky")
    assert len(filled[1]) > 0
