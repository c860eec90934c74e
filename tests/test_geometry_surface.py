"""Occupancy grid -> mesh: blocky exactness, smooth watertightness, cavities, components."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
from scipy import ndimage

from backend.geometry.errors import GeometryError
from backend.geometry.surface import occupancy_to_mesh
from backend.geometry.voxelize import voxelize_surface


def _edges_ok(f):
    """Closed and consistently wound: every directed edge appears once, and its reverse too."""
    directed = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    unique, counts = np.unique(directed, axis=0, return_counts=True)
    pairs = {tuple(e) for e in unique}
    return counts.max() == 1 and all((b, a) in pairs for a, b in unique)


def _volume(v, f):
    a, b, c = (v[f[:, i]].astype(np.float64) for i in range(3))
    return np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0


def _components(f):
    n = f.max() + 1
    parent = np.arange(n)
    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for a, b, c in f:
        for x, y in ((a, b), (b, c)):
            parent[find(x)] = find(y)
    return len({find(i) for i in np.unique(f)})


def _ball(res=32, radius=0.35, center=(0, 0, 0)):
    c = (np.arange(res) + 0.5) / res - 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return (x - center[0]) ** 2 + (y - center[1]) ** 2 + (z - center[2]) ** 2 <= radius ** 2


def test_blocky_box_is_exact():
    res, k = 16, 4
    occ = np.zeros((res,) * 3, bool)
    occ[2:2 + k, 5:5 + k, 7:7 + k] = True
    v, f = occupancy_to_mesh(occ, "blocky")
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert len(f) == 12 * k * k            # 6 sides of k*k quads, no face inside the box
    assert len(v) == 6 * k * k + 2         # shared corners (Euler: V - E + F = 2)
    assert _edges_ok(f)
    np.testing.assert_allclose(_volume(v, f), (k / res) ** 3, rtol=1e-5)
    # Corners sit exactly on voxel corners i / R - 0.5.
    np.testing.assert_allclose(v.min(axis=0), np.array([2, 5, 7]) / res - 0.5, atol=1e-7)
    np.testing.assert_allclose(v.max(axis=0), (np.array([2, 5, 7]) + k) / res - 0.5, atol=1e-7)
    np.testing.assert_allclose((v + 0.5) * res, np.round((v + 0.5) * res), atol=1e-5)


def test_blocky_has_one_quad_per_exposed_voxel_face():
    rng = np.random.default_rng(3)
    occ = ndimage.binary_opening(rng.random((12, 12, 12)) < 0.6)
    occ[0] = False
    v, f = occupancy_to_mesh(occ, "blocky", min_component_voxels=1, fill_cavities=False)
    padded = np.pad(occ, 1)
    exposed = sum(
        (padded[1:-1, 1:-1, 1:-1] & ~np.roll(padded, shift, axis)[1:-1, 1:-1, 1:-1]).sum()
        for axis in range(3) for shift in (1, -1))
    assert len(f) == 2 * exposed
    assert _volume(v, f) == pytest.approx(occ.sum() / 12 ** 3, rel=1e-5)


def test_smooth_ball_is_closed_outward_and_true_to_the_voxels():
    occ = _ball()
    v, f = occupancy_to_mesh(occ, "smooth")
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert _edges_ok(f)
    assert _volume(v, f) > 0  # outward winding
    assert _volume(v, f) == pytest.approx(occ.sum() / 32 ** 3, rel=0.1)
    r = np.linalg.norm(v, axis=1)
    assert np.abs(r - 0.35).max() < 1.5 / 32  # within about a voxel of the true sphere
    assert np.abs(v).max() <= 0.5


def test_shell_is_filled_into_one_surface():
    # A sphere's surface voxelised like the reference does: a one-voxel shell.
    u, w = np.meshgrid(np.linspace(0, np.pi, 40), np.linspace(0, 2 * np.pi, 80), indexing="ij")
    pts = 0.4 * np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1)
    grid_v = pts.reshape(-1, 3)
    idx = np.arange(40 * 80).reshape(40, 80)
    a, b, c, d = idx[:-1, :-1], idx[1:, :-1], idx[1:, (np.arange(80) + 1) % 80][:, :-1], idx[:-1, (np.arange(80) + 1) % 80][:, :-1]
    faces = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])
    shell = voxelize_surface(grid_v, faces, 32)
    for mode in ("smooth", "blocky"):
        v, f = occupancy_to_mesh(shell, mode)
        assert _components(f) == 1 and _volume(v, f) > 0
        v2, f2 = occupancy_to_mesh(shell, mode, fill_cavities=False)
        assert _components(f2) == 2  # outer wall plus the inner, inward-facing wall
        assert _volume(v2, f2) < _volume(v, f)


def test_tiny_components_are_dropped_but_the_largest_is_kept():
    occ = _ball(32, 0.3)
    occ[1, 1, 1] = True          # a one-voxel speck
    occ[30, 30, 29:31] = True    # a two-voxel speck
    v, f = occupancy_to_mesh(occ, "blocky", min_component_voxels=3)
    assert _components(f) == 1
    v, f = occupancy_to_mesh(occ, "blocky", min_component_voxels=1)
    assert _components(f) == 3
    lonely = np.zeros((32,) * 3, bool)
    lonely[5, 5, 5] = True
    v, f = occupancy_to_mesh(lonely, "smooth", min_component_voxels=8)
    assert len(f) > 0


def test_thin_rod_survives_smoothing():
    occ = np.zeros((32,) * 3, bool)
    occ[16, 16, 4:28] = True   # one voxel thick
    v, f = occupancy_to_mesh(occ, "smooth")
    assert _components(f) == 1 and _edges_ok(f)
    extent = (v.max(axis=0) - v.min(axis=0)) * 32
    # A one-voxel shell rod is thinner than a voxel; it keeps a visible thickness.
    assert extent[2] > 22 and 0.25 < extent[0] < 1.0 and 0.25 < extent[1] < 1.0


def test_logits_and_bad_grids():
    logits = np.where(_ball(16), 3.0, -2.0).astype(np.float32)
    v, f = occupancy_to_mesh(logits, "smooth")
    v2, f2 = occupancy_to_mesh(logits > 0, "smooth")
    np.testing.assert_array_equal(v, v2)
    for bad, code in [(np.zeros((8, 8, 8), bool), "empty_mesh"), (np.ones((8, 8)), "invalid_grid"),
                      (np.ones((8, 8, 9)), "invalid_grid"), (np.full((4, 4, 4), "x"), "invalid_grid")]:
        with pytest.raises(GeometryError) as err:
            occupancy_to_mesh(bad)
        assert err.value.code == code
    with pytest.raises(GeometryError) as err:
        occupancy_to_mesh(_ball(16), mode="wavy")
    assert err.value.code == "invalid_argument"


def test_decimation_to_a_face_budget():
    v, f = occupancy_to_mesh(_ball(32), "smooth")
    dv, df = occupancy_to_mesh(_ball(32), "smooth", target_faces=600)
    assert 100 < len(df) <= 600 < len(f)
    assert dv.dtype == np.float32 and df.dtype == np.int32
    assert df.min() >= 0 and df.max() < len(dv)
    assert _volume(dv, df) == pytest.approx(_volume(v, f), rel=0.15)
    with pytest.raises(GeometryError):
        occupancy_to_mesh(_ball(16), target_faces=0)


def test_constrained_smoothing_option():
    v, f = occupancy_to_mesh(_ball(12, 0.3), "smooth", smoothing="constrained")
    assert _edges_ok(f) and _volume(v, f) > 0


def test_decimate_keeps_a_sphere_on_its_surface():
    from backend.geometry.decimate import decimate
    u, w = np.meshgrid(np.linspace(0, np.pi, 80), np.linspace(0, 2 * np.pi, 160, endpoint=False),
                       indexing="ij")
    v = np.stack([np.sin(u) * np.cos(w), np.sin(u) * np.sin(w), np.cos(u)], -1).reshape(-1, 3)
    idx = np.arange(80 * 160).reshape(80, 160)
    nxt = np.roll(idx, -1, axis=1)
    f = np.concatenate([np.stack([idx[:-1], idx[1:], nxt[1:]], -1).reshape(-1, 3),
                        np.stack([idx[:-1], nxt[1:], nxt[:-1]], -1).reshape(-1, 3)])
    dv, df = decimate(v, f, 1000)
    assert 500 < len(df) <= 1000
    r = np.linalg.norm(dv, axis=1)
    assert np.abs(r - 1).mean() < 0.01 and np.abs(r - 1).max() < 0.05
    assert _volume(dv, df) == pytest.approx(4 / 3 * np.pi, rel=0.05)


def test_decimate_to_an_unreachable_budget_keeps_a_surface():
    v, f = occupancy_to_mesh(_ball(16), "blocky", target_faces=4)
    assert 0 < len(f) and f.max() < len(v)
