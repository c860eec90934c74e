"""Issue 31, the command line: files stand upright in their format's convention (glTF and OBJ are
Y-up), `--up` for files of unknown convention, messages that say what to do, and no library
FutureWarnings on the terminal."""

import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from backend import cli
from backend.geometry.errors import GeometryError
from backend.geometry.meshio import load_mesh
from tests.backend_process import REPO_ROOT, tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")


def tall_box():
    """A box twice as tall (Z, Blender's up) as it is wide, standing on z = 0."""
    v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 2)], np.float32)
    f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                  [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    return v, f


def tallest_axis(vertices) -> int:
    return int(np.argmax(np.ptp(np.asarray(vertices), axis=0)))


@pytest.mark.parametrize("ext", [".glb", ".obj"])
def test_y_up_formats_are_written_y_up(tmp_path, ext):
    v, f = tall_box()
    path = tmp_path / f"box{ext}"
    cli._save_mesh(str(path), v, f)
    raw = trimesh.load(str(path), force="mesh", process=False)  # as any viewer reads the file
    assert tallest_axis(raw.vertices) == 1, "the shape lies on its side"


@pytest.mark.parametrize("ext", [".glb", ".obj", ".stl", ".ply"])
def test_a_written_file_reads_back_as_written(tmp_path, ext):
    v, f = tall_box()
    path = tmp_path / f"box{ext}"
    cli._save_mesh(str(path), v, f)
    back, faces, up = cli._load_mesh(str(path))
    assert up == "z"  # converted to the pipeline's frame on read
    # STL stores a vertex per corner: compare the distinct points.
    np.testing.assert_allclose(np.unique(back.round(5), axis=0), np.unique(v, axis=0), atol=1e-6)


def test_up_overrides_a_files_convention(tmp_path):
    v, f = tall_box()
    path = tmp_path / "zup.obj"  # an OBJ some tool wrote Z-up
    trimesh.Trimesh(v, f, process=False).export(str(path))
    as_convention, _, _ = cli._load_mesh(str(path))
    assert tallest_axis(as_convention) != 2
    as_told, _, _ = cli._load_mesh(str(path), up="z")
    np.testing.assert_allclose(as_told, v, atol=1e-6)
    args = cli.build_parser().parse_args(["describe", str(path), "--up", "z"])
    assert args.up == "z"
    args = cli.build_parser().parse_args(["edit", str(path), "--instruction", "x", "-o", "o.glb"])
    assert args.up == "auto"


def test_a_point_cloud_error_names_the_fix(tmp_path):
    path = tmp_path / "cloud.ply"
    trimesh.PointCloud(np.random.default_rng(0).normal(size=(50, 3))).export(str(path))
    with pytest.raises(GeometryError) as info:
        load_mesh(str(path))
    assert "point cloud" in info.value.message and "surface" in info.value.message


def test_the_cli_prints_no_library_future_warnings(tmp_path):
    path = tmp_path / "box.stl"
    cli._save_mesh(str(path), *tall_box())
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONWARNINGS", None)
    run = subprocess.run([sys.executable, "-m", "backend", "describe", str(path), "--preset", str(tiny_preset()),
                          "--max-new-tokens", "4"], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr
    assert "Warning" not in run.stderr, run.stderr
