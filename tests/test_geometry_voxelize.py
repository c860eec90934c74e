"""Surface voxelisation against a plain loop-per-voxel separating-axis test written here."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.geometry.errors import GeometryError
from backend.geometry.voxelize import fill_enclosed, mesh_to_grid, voxelize_surface
from backend.geometry.validate import clean_mesh
from backend.geometry.normalize import normalize

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "meshes")


def _reference(v_unit, faces, res):
    """One triangle at a time against each voxel of its candidate block floor(lo)..floor(hi)
    (open3d's range), with the plain 13-axis separating-axis test on box centres."""
    grid = np.zeros((res,) * 3, bool)
    p = (np.asarray(v_unit, float) + 0.5) * res
    for face in faces:
        tri = p[face]
        first = np.clip(np.floor(tri.min(axis=0)).astype(int), 0, res - 1)
        last = np.clip(np.floor(tri.max(axis=0)).astype(int), 0, res - 1)
        if (tri.max(axis=0) < 0).any() or (tri.min(axis=0) > res).any():
            continue
        cells = np.stack(np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(first, last)],
                                     indexing="ij"), -1).reshape(-1, 3)
        rel = tri[None, :, :] - (cells + 0.5)[:, None, :]          # [K, 3 corners, 3]
        e = [tri[1] - tri[0], tri[2] - tri[1], tri[0] - tri[2]]
        axes = list(np.eye(3)) + [np.cross(e[0], e[1])]
        axes += [np.cross(unit, edge) for unit in np.eye(3) for edge in e]
        touched = np.ones(len(cells), bool)
        for a in axes:
            proj = rel @ a                                          # [K, 3]
            r = 0.5 * np.abs(a).sum()
            touched &= ~((proj.min(axis=1) > r) | (proj.max(axis=1) < -r))
        grid[tuple(cells[touched].T)] = True
    return grid


def _random_triangles(rng, count, size, spread=0.45):
    centers = rng.uniform(-spread, spread, (count, 1, 3))
    v = (centers + rng.normal(0, size, (count, 3, 3))).reshape(-1, 3)
    return v, np.arange(len(v)).reshape(-1, 3)


@pytest.mark.parametrize("size", [0.01, 0.05, 0.2, 0.6])
def test_matches_reference_on_random_triangles(size):
    rng = np.random.default_rng(int(size * 1000))
    v, f = _random_triangles(rng, 150, size)  # the big ones cross the grid's border too
    got = voxelize_surface(v, f, resolution=16)
    assert got.any()
    np.testing.assert_array_equal(got, _reference(v, f, 16))


def test_matches_reference_on_slivers_and_grid_aligned_faces():
    rng = np.random.default_rng(7)
    res = 16
    # Slivers: long thin triangles in random directions.
    a = rng.uniform(-0.4, 0.4, (25, 3))
    b = rng.uniform(-0.4, 0.4, (25, 3))
    c = a + rng.normal(0, 0.003, (25, 3))
    slivers = np.stack([a, b, c], axis=1)
    # Faces lying exactly on grid planes and edges exactly on grid lines (CAD-like meshes).
    k = rng.integers(2, 14, (25, 3)) / res - 0.5
    m = rng.integers(2, 14, (25, 3)) / res - 0.5
    aligned = np.stack([k, np.stack([m[:, 0], k[:, 1], k[:, 2]], 1),
                        np.stack([k[:, 0], m[:, 1], k[:, 2]], 1)], axis=1)
    # Degenerate: segments and points.
    degenerate = np.stack([a, b, (a + b) / 2], axis=1)[:5]
    # Nearly degenerate: edges and normals with tiny or subnormal components.
    needles = np.stack([a, b, b + rng.choice([1e-300, 1e-17, 1e-9], (25, 3))], axis=1)
    tri = np.concatenate([slivers, aligned, degenerate, needles])
    v, f = tri.reshape(-1, 3), np.arange(len(tri) * 3).reshape(-1, 3)
    np.testing.assert_array_equal(voxelize_surface(v, f, res), _reference(v, f, res))


def test_matches_reference_on_triangles_inside_one_voxel_row():
    # Triangles whose blocks are one voxel thick on two axes and up to 16 long on the third.
    rng = np.random.default_rng(3)
    res, tris = 16, []
    for axis in range(3):
        centre = (rng.integers(0, res, (40, 1, 3)) + rng.uniform(0.05, 0.95, (40, 1, 3))) / res
        t = centre + rng.uniform(-0.3, 0.3, (40, 3, 3)) / res
        t[:, :, axis] = rng.uniform(0, 1, (40, 3))
        tris.append(t - 0.5)
    v = np.concatenate(tris).reshape(-1, 3)
    f = np.arange(len(v)).reshape(-1, 3)
    np.testing.assert_array_equal(voxelize_surface(v, f, res), _reference(v, f, res))


@pytest.mark.slow   # the pure-Python reference at 64^3 on real meshes
@pytest.mark.parametrize("name", sorted(os.listdir(FIXTURES)))
def test_matches_reference_on_fixtures_at_64(name):
    # Real meshes; featuretype is a CAD part whose faces fall exactly on grid planes at 64^3.
    from backend.geometry.meshio import load_mesh
    v, f = clean_mesh(*load_mesh(os.path.join(FIXTURES, name)))
    unit, _ = normalize(v, "demo")
    got = voxelize_surface(unit, f, 64)
    assert got.any()
    np.testing.assert_array_equal(got, _reference(unit, f, 64))


def test_repeated_and_reordered_triangles_change_nothing():
    rng = np.random.default_rng(5)
    v, f = _random_triangles(rng, 60, 0.15, spread=0.3)
    repeats = np.concatenate([f, f[:, [1, 2, 0]], f[:20, [2, 1, 0]]])
    np.testing.assert_array_equal(voxelize_surface(v, repeats, 16), _reference(v, f, 16))


def test_axis_order_and_voxel_centres():
    res = 8
    # A tiny triangle around the centre of voxel (6, 1, 3).
    c = (np.array([6, 1, 3]) + 0.5) / res - 0.5
    v = c + np.array([[0.01, 0, 0], [0, 0.01, 0], [0, 0, 0.01]])
    grid = voxelize_surface(v, [[0, 1, 2]], res)
    assert grid.shape == (res, res, res) and grid.dtype == bool
    assert np.argwhere(grid).tolist() == [[6, 1, 3]]


def test_plane_on_a_grid_plane_marks_one_layer():
    # A square exactly on z = 0, a grid plane at resolution 8: one layer, the upper one.
    v = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    grid = voxelize_surface(v, [[0, 1, 2], [0, 2, 3]], 8)
    assert grid[:, :, 4].all() and grid.sum() == 64


def _cube(lo=-0.3, hi=0.3):
    v = np.array([[x, y, z] for x in (lo, hi) for y in (lo, hi) for z in (lo, hi)])
    f = [[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
         [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]]
    return v, np.array(f)


def test_fill_interior_of_closed_mesh():
    v, f = _cube(-0.3, 0.3)  # spans voxels 3..12 at resolution 16 (0.2 * 16 = 3.2)
    shell = voxelize_surface(v, f, 16)
    solid = voxelize_surface(v, f, 16, fill_interior=True)
    assert shell.sum() == 10 ** 3 - 8 ** 3
    assert solid.sum() == 10 ** 3 and solid[3:13, 3:13, 3:13].all()
    np.testing.assert_array_equal(fill_enclosed(shell), solid)


def test_faces_on_the_cube_boundary_and_outside_parts():
    # Training normalisation puts faces exactly on +-0.5: they must still mark the border.
    v, f = _cube(-0.5, 0.5)
    grid = voxelize_surface(v, f, 8)
    inner = np.zeros((8, 8, 8), bool)
    inner[1:-1, 1:-1, 1:-1] = True
    np.testing.assert_array_equal(grid, ~inner)
    # A mesh reaching outside the cube is cut at its border.
    big = voxelize_surface(*_cube(-0.9, 0.9), 8)
    assert not big.any()
    # Corners far outside (beyond int32 voxel indices) still cut through the grid exactly.
    far = np.array([[-1e9, -0.1, -0.2], [1e9, 0.05, 0.1], [0.0, 3e8, -0.05],
                    [0.1, -0.1, -1e10], [0.1, 0.1, 1e10], [-0.2, 0.0, 0.0]])
    far_faces = np.array([[0, 1, 2], [3, 4, 5]])
    got = voxelize_surface(far, far_faces, 8)
    assert got.any()
    np.testing.assert_array_equal(got, _reference(far, far_faces, 8))
    # Beyond what float64 can test exactly: a clear error, not a guess.
    with pytest.raises(GeometryError) as err:
        voxelize_surface(far * 1e4, far_faces, 8)
    assert err.value.code == "invalid_mesh" and "normalise" in err.value.message


def test_resolution_and_bad_input():
    v, f = _cube()
    assert voxelize_surface(v, f, 32).shape == (32, 32, 32)
    for res in (0, -1, 2.5, True):
        with pytest.raises(GeometryError) as err:
            voxelize_surface(v, f, res)
        assert err.value.code == "invalid_argument"
    with pytest.raises(GeometryError) as err:
        voxelize_surface(v, [[0, 1, 99]])
    assert err.value.code == "invalid_mesh"
    bad = v.copy()
    bad[0, 0] = np.nan
    with pytest.raises(GeometryError) as err:
        voxelize_surface(bad, f)
    assert err.value.code == "non_finite"


def test_mesh_to_grid_is_clean_normalise_voxelise():
    v, f = _cube(1.0, 3.0)
    v = v * np.array([1.0, 2.0, 0.5])
    f = np.concatenate([f, [[0, 0, 1]]])  # a degenerate face that cleaning drops
    grid, norm = mesh_to_grid(v, f, "training", "y", 32)
    cv, cf = clean_mesh(v, f)
    unit, norm2 = normalize(cv, "training", "y")
    np.testing.assert_array_equal(grid, voxelize_surface(unit, cf, 32))
    np.testing.assert_allclose(norm.to_unit(v), norm2.to_unit(v))
