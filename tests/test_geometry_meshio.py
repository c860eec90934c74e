"""Mesh files: round trips in every format, scenes, n-gons, bad files."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.geometry.errors import GeometryError
from backend.geometry.meshio import file_up_axis, load_mesh, save_mesh

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "meshes")


def _tetra():
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32) * 0.37 + 1.5
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    return v, f


def _triangles(v, f):
    """Triangles as sorted coordinate tuples: compares meshes whatever the vertex order."""
    tri = np.asarray(v, np.float64)[np.asarray(f)]
    start = np.argmin(tri.sum(axis=2), axis=1)  # keep the winding, rotate to a fixed corner
    tri = np.stack([np.roll(t, -s, axis=0) for t, s in zip(tri, start)])
    return sorted(map(tuple, np.round(tri.reshape(len(tri), -1), 5)))


@pytest.mark.parametrize("ext", [".glb", ".obj", ".ply", ".stl", ".STL"])
def test_round_trip(tmp_path, ext):
    v, f = _tetra()
    path = tmp_path / f"shape{ext}"
    save_mesh(path, v, f)
    v2, f2 = load_mesh(path)
    assert v2.dtype == np.float32 and f2.dtype == np.int32
    assert len(f2) == len(f)
    assert _triangles(v2, f2) == _triangles(v, f)
    assert not [p for p in os.listdir(tmp_path) if p != f"shape{ext}"]  # no temporary left


def test_quads_ngons_and_several_objects_from_obj(tmp_path):
    path = tmp_path / "ngon.obj"
    path.write_text("o a\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nf 1 2 3 4\n"
                    "o b\nv 0 0 1\nv 1 0 1\nv 2 1 1\nv 1 2 1\nv 0 1 1\nf 5 6 7 8 9\n")
    v, f = load_mesh(path)
    assert len(f) == 2 + 3
    area = 0.5 * np.linalg.norm(np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]]), axis=1)
    assert area[v[f[:, 0], 2] == 0].sum() == pytest.approx(1.0)
    assert area[v[f[:, 0], 2] == 1].sum() == pytest.approx(2.5)


@pytest.mark.parametrize("name", sorted(os.listdir(FIXTURES)))
def test_fixtures_load(name):
    v, f = load_mesh(os.path.join(FIXTURES, name))
    assert v.dtype == np.float32 and f.dtype == np.int32
    assert len(f) > 0 and np.isfinite(v).all()
    assert f.min() >= 0 and f.max() < len(v)


def test_scene_transforms_are_applied(tmp_path):
    import trimesh
    v, f = _tetra()
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.Trimesh(v, f, process=False), node_name="a")
    shift = np.eye(4)
    shift[:3, 3] = [10, 0, 0]
    scene.add_geometry(trimesh.Trimesh(v, f, process=False), node_name="b", transform=shift)
    path = tmp_path / "two.glb"
    scene.export(path)
    v2, f2 = load_mesh(path)
    assert len(f2) == 8
    assert v2[:, 0].max() == pytest.approx(v[:, 0].max() + 10, abs=1e-5)


def test_up_axis_by_format():
    assert file_up_axis("a/b.GLB") == "y" and file_up_axis("x.obj") == "y"
    assert file_up_axis("x.stl") == "z" and file_up_axis("x.ply") == "z"


def test_bad_files(tmp_path):
    with pytest.raises(GeometryError) as err:
        load_mesh(tmp_path / "missing.stl")
    assert err.value.code == "file_not_found"
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(GeometryError) as err:
        load_mesh(tmp_path / "notes.txt")
    assert err.value.code == "unsupported_format"
    (tmp_path / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    with pytest.raises(GeometryError) as err:
        load_mesh(tmp_path / "broken.glb")
    assert err.value.code == "read_failed"
    (tmp_path / "points.obj").write_text("v 0 0 0\nv 1 0 0\n")
    with pytest.raises(GeometryError) as err:
        load_mesh(tmp_path / "points.obj")
    assert err.value.code == "empty_mesh"


def test_failed_save_loses_nothing(tmp_path):
    v, f = _tetra()
    path = tmp_path / "keep.stl"
    save_mesh(path, v, f)
    before = path.read_bytes()
    bad = v.copy()
    bad[0, 0] = np.nan
    for args, code in [((bad, f), "non_finite"), ((v, f + 10), "invalid_mesh")]:
        with pytest.raises(GeometryError) as err:
            save_mesh(path, *args)
        assert err.value.code == code
    with pytest.raises(GeometryError) as err:
        save_mesh(tmp_path / "x.gltf", v, f)
    assert err.value.code == "unsupported_format"
    with pytest.raises(GeometryError) as err:
        save_mesh(tmp_path / "no" / "such" / "dir.stl", v, f)
    assert err.value.code == "write_failed"
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.stl"]
