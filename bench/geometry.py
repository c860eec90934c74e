"""Geometry core, measured side by side in one run.

    .venv/bin/pip install open3d          # benchmark-only extra, never a runtime dependency
    sudo apt-get install libusb-1.0-0     # open3d's wheel links libusb; without it the import fails
    .venv/bin/python bench/geometry.py [--repeats 7] [--fixtures DIR] [--quick]

--quick (CI's smoke test, seconds): two fixtures, one repeat. Part 1 is skipped, saying why,
when open3d or its libusb is missing; the rest always runs.

1. Voxelisation at 64^3 on every fixture: ours (backend.geometry.voxelize) against open3d's
   VoxelGrid.create_from_triangle_mesh_within_bounds on the same normalised vertices (the
   reference's demo path: one scalar min/max, clipped to +-(0.5 - 1e-6), voxel size 1/64,
   bounds [-0.5, 0.5]^3). open3d's time covers what the reference does to get a grid: build
   the TriangleMesh, voxelise, read grid_index of get_voxels(). Agreement IoU and speed ratio.
2. Round trip mesh -> voxels -> mesh on the fixtures (training convention, the file's up
   axis), smooth and blocky: voxel IoU of the result re-voxelised against the input's grid,
   and the symmetric Chamfer distance to the input (mean of both directions, 20k surface
   points each way against 400k points of the other surface), as a fraction of the input's bounding box diagonal.
3. occupancy_to_mesh(smooth) on typical 64^3 grids (the fixtures' surface shells, the kind of
   grid the VQVAE decodes), smoothing included; target <= 20 ms. Beside it, the same grid
   with PyMCubes' constrained smoothing (the slow optimiser) as a yardstick.

Times are the minimum over --repeats runs, both wall clock and process CPU time (the CPU
time is the steadier one on a shared machine); in 1. the runs of ours and open3d's alternate,
so that both sides see the same load. OMP_NUM_THREADS=1 for both sides.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy.spatial import cKDTree

from backend.geometry.meshio import file_up_axis, load_mesh
from backend.geometry.normalize import normalize
from backend.geometry.surface import occupancy_to_mesh
from backend.geometry.validate import clean_mesh
from backend.geometry.voxelize import fill_enclosed, mesh_to_grid, voxelize_surface

RES = 64
DEFAULT_FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "meshes"


def timed(fn, repeats):
    """-> (result, best wall seconds, best CPU seconds)."""
    best_wall = best_cpu = float("inf")
    result = None
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - w)
        best_cpu = min(best_cpu, time.process_time() - c)
    return result, best_wall, best_cpu


def timed_pair(fn_a, fn_b, repeats):
    """timed() for two functions, their runs alternating, so that a slow spell of a shared
    machine hits both sides alike: -> ((result, wall, cpu) of a, (result, wall, cpu) of b)."""
    a = [None, float("inf"), float("inf")]
    b = [None, float("inf"), float("inf")]
    for _ in range(repeats):
        for fn, best in ((fn_a, a), (fn_b, b)):
            w, c = time.perf_counter(), time.process_time()
            best[0] = fn()
            best[1] = min(best[1], time.perf_counter() - w)
            best[2] = min(best[2], time.process_time() - c)
    return tuple(a), tuple(b)


def iou(a, b):
    union = (a | b).sum()
    return (a & b).sum() / union if union else 1.0


def open3d_grid(o3d, v_unit, f):
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(v_unit.astype(np.float64)),
                                     o3d.utility.Vector3iVector(f.astype(np.int32)))
    vg = o3d.geometry.VoxelGrid.create_from_triangle_mesh_within_bounds(
        mesh, voxel_size=1.0 / RES, min_bound=(-0.5,) * 3, max_bound=(0.5,) * 3)
    index = np.array([voxel.grid_index for voxel in vg.get_voxels()], dtype=np.int64).reshape(-1, 3)
    grid = np.zeros((RES,) * 3, dtype=bool)
    inside = ((index >= 0) & (index < RES)).all(axis=1)
    grid[tuple(index[inside].T)] = True
    return grid


def sample_surface(v, f, count, rng):
    a, b, c = (v[f[:, i]].astype(np.float64) for i in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    pick = rng.choice(len(f), size=count, p=area / area.sum())
    r1, r2 = rng.random(count), rng.random(count)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    return a[pick] + r1[:, None] * (b - a)[pick] + r2[:, None] * (c - a)[pick]


def chamfer(v1, f1, v2, f2, rng, count=20_000, dense=400_000):
    """Mean distance from `count` points of each surface to a dense sample of the other
    (dense enough that sampling adds well under 0.1% of the diagonal)."""
    one_way = []
    for (va, fa), (vb, fb) in (((v1, f1), (v2, f2)), ((v2, f2), (v1, f1))):
        tree = cKDTree(sample_surface(vb, fb, dense, rng))
        one_way.append(tree.query(sample_surface(va, fa, count, rng))[0].mean())
    return 0.5 * sum(one_way)


def open3d_problem() -> str | None:
    """Why open3d cannot be imported here, or None."""
    try:
        import open3d  # noqa: F401
    except (ImportError, OSError) as err:
        if "libusb" in str(err):
            return f"open3d needs the system library libusb (apt-get install libusb-1.0-0): {err}"
        return f"open3d is not installed (.venv/bin/pip install open3d): {err}"
    return None


def bench_voxelise(fixtures, repeats):
    problem = open3d_problem()
    if problem:
        print(f"1. skipped: {problem}")
        return
    import open3d as o3d

    print(f"\n1. Voxelisation at {RES}^3: ours vs open3d (same vertices; times in ms, best of {repeats})")
    print(f"{'fixture':18s} {'faces':>8s} {'IoU':>7s} {'ours wall':>10s} {'o3d wall':>9s} {'ratio':>6s}"
          f" {'ours cpu':>9s} {'o3d cpu':>8s} {'ratio':>6s}")
    ratios_wall, ratios_cpu, ious = [], [], []
    for path in fixtures:
        v, f = clean_mesh(*load_mesh(path))
        unit, _ = normalize(v, "demo", "z")
        unit = np.clip(unit.astype(np.float64), -0.5 + 1e-6, 0.5 - 1e-6)
        (ours, ow, oc), (theirs, tw, tc) = timed_pair(
            lambda: voxelize_surface(unit, f, RES), lambda: open3d_grid(o3d, unit, f), repeats)
        ious.append(iou(ours, theirs))
        ratios_wall.append(tw / ow)
        ratios_cpu.append(tc / oc)
        print(f"{path.name:18s} {len(f):8d} {ious[-1]:7.4f} {ow * 1e3:10.1f} {tw * 1e3:9.1f} {tw / ow:5.1f}x"
              f" {oc * 1e3:9.1f} {tc * 1e3:8.1f} {tc / oc:5.1f}x")
    print(f"min IoU {min(ious):.4f} (target >= 0.99); speed ratio open3d/ours: wall min "
          f"{min(ratios_wall):.1f}x, median {np.median(ratios_wall):.1f}x; CPU min "
          f"{min(ratios_cpu):.1f}x, median {np.median(ratios_cpu):.1f}x (target >= 5x)")


def bench_round_trip(fixtures):
    print(f"\n2. Round trip mesh -> {RES}^3 voxels -> mesh (training convention, file's up axis)")
    print(f"{'fixture':18s} {'mode':7s} {'faces':>7s} {'surface IoU':>11s} {'solid IoU':>9s} {'Chamfer/diag':>12s}")
    rng = np.random.default_rng(0)
    for path in fixtures:
        v, f = clean_mesh(*load_mesh(path))
        grid, norm = mesh_to_grid(v, f, "training", file_up_axis(path), RES)
        solid = fill_enclosed(grid)
        diag = float(np.linalg.norm(np.ptp(v, axis=0)))
        for mode in ("smooth", "blocky"):
            unit, faces = occupancy_to_mesh(grid, mode)
            again = voxelize_surface(unit, faces, RES)
            back = norm.from_unit(unit)
            print(f"{path.name:18s} {mode:7s} {len(faces):7d} {iou(again, grid):11.3f}"
                  f" {iou(fill_enclosed(again), solid):9.3f} {chamfer(back, faces, v, f, rng) / diag:12.4f}")


def bench_surface(fixtures, repeats, quick=False):
    print(f"\n3. occupancy_to_mesh on {RES}^3 surface-shell grids (ms, best of {repeats}; target <= 20)")
    print(f"{'grid from':18s} {'voxels':>7s} {'smooth wall':>11s} {'smooth cpu':>10s} {'blocky cpu':>10s}"
          f" {'constrained cpu':>15s}")
    worst = 0.0
    for path in fixtures:
        grid, _ = mesh_to_grid(*load_mesh(path), "training", file_up_axis(path), RES)
        _, sw, sc = timed(lambda: occupancy_to_mesh(grid, "smooth"), repeats)
        _, _, bc = timed(lambda: occupancy_to_mesh(grid, "blocky"), repeats)
        constrained = ""
        if path == fixtures[0] and not quick:  # seconds per grid: not for the smoke test
            _, _, cc = timed(lambda: occupancy_to_mesh(grid, "smooth", smoothing="constrained"), 1)
            constrained = f"{cc * 1e3:15.0f}"
        worst = max(worst, sc)
        print(f"{path.name:18s} {grid.sum():7d} {sw * 1e3:11.1f} {sc * 1e3:10.1f} {bc * 1e3:10.1f} {constrained}")
    print(f"slowest smooth: {worst * 1e3:.1f} ms CPU (target <= 20 ms)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--quick", action="store_true", help="two fixtures, one repeat: a smoke test for CI")
    args = parser.parse_args(argv)
    fixtures = sorted(p for p in args.fixtures.iterdir() if p.is_file())
    if args.quick:
        fixtures, args.repeats = [p for p in fixtures if p.name in ("teapot.stl", "torus.STL")] or fixtures[:2], 1
    bench_voxelise(fixtures, args.repeats)
    bench_round_trip(fixtures)
    bench_surface(fixtures, args.repeats, args.quick)


if __name__ == "__main__":
    main()
