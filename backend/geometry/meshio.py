"""Read and write triangle meshes (GLB/glTF, OBJ, PLY, STL) through trimesh.

load_mesh(path) -> (v float32 [N,3], f int32 [M,3]): every mesh of the file in one array
pair, each placed by its scene-graph transform; quads and n-gons arrive as triangles;
textures, colours and normals are ignored (the model reads shape only). Coordinates stay in
the file's own frame: see file_up_axis() for the up axis a format implies.

save_mesh(path, v, f) writes to a temporary file next to the target and renames it, so a
failed write never leaves a half-written file or clobbers the old one.
"""

import os
import tempfile

import numpy as np
import trimesh

from .errors import (EMPTY_MESH, FILE_NOT_FOUND, INVALID_MESH, READ_FAILED,
                     UNSUPPORTED_FORMAT, WRITE_FAILED, GeometryError)
from .validate import as_faces, as_vertices, check_finite

FORMATS = {".glb": "glb", ".gltf": "gltf", ".obj": "obj", ".ply": "ply", ".stl": "stl"}
WRITABLE = (".glb", ".obj", ".ply", ".stl")  # .gltf would need side files
Y_UP_FORMATS = (".glb", ".gltf", ".obj")     # glTF is Y-up by specification, OBJ by habit


def file_up_axis(path) -> str:
    """"y" for formats that are Y-up by convention (glTF, OBJ), else "z"."""
    return "y" if _extension(path) in Y_UP_FORMATS else "z"


def load_mesh(path):
    ext = _extension(path)
    if ext not in FORMATS:
        raise GeometryError(UNSUPPORTED_FORMAT,
                            f"cannot read {ext or 'files without an extension'}; "
                            f"supported: {', '.join(sorted(FORMATS))}")
    if not os.path.isfile(path):
        raise GeometryError(FILE_NOT_FOUND, f"no such file: {path}")
    try:
        scene = trimesh.load_scene(str(path), file_type=FORMATS[ext], process=False)
    except Exception as exc:  # trimesh raises many types for malformed files
        raise GeometryError(READ_FAILED, f"could not read {os.path.basename(path)}: {exc}") from None

    vertices, faces, offset = [], [], 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        geom = scene.geometry.get(name)
        if not isinstance(geom, trimesh.Trimesh) or len(geom.faces) == 0:
            continue  # point clouds and curves carry no surface
        v = np.asarray(geom.vertices, dtype=np.float64)
        v = v @ transform[:3, :3].T + transform[:3, 3]
        vertices.append(v)
        faces.append(np.asarray(geom.faces, dtype=np.int64) + offset)
        offset += len(v)
    if not faces:
        raise GeometryError(EMPTY_MESH, f"{os.path.basename(path)} holds no triangles (a point cloud or "
                                        "curves?); the model needs a surface: mesh it first, e.g. "
                                        "Poisson surface reconstruction in MeshLab or Open3D")
    v = np.concatenate(vertices)
    check_finite(v)
    return v.astype(np.float32), np.concatenate(faces).astype(np.int32)


def save_mesh(path, v, f) -> None:
    ext = _extension(path)
    if ext not in WRITABLE:
        raise GeometryError(UNSUPPORTED_FORMAT,
                            f"cannot write {ext or 'files without an extension'}; "
                            f"supported: {', '.join(WRITABLE)}")
    v = as_vertices(v)
    f = as_faces(f)
    check_finite(v)
    if len(f) and (f.min() < 0 or f.max() >= len(v)):
        raise GeometryError(INVALID_MESH, "face indices out of range")
    mesh = trimesh.Trimesh(vertices=v, faces=f, process=False)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(suffix=ext, dir=folder)
    except OSError as exc:
        raise GeometryError(WRITE_FAILED, f"cannot write into {folder}: {exc}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            mesh.export(out, file_type=FORMATS[ext])
        os.replace(tmp, path)
    except Exception as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise GeometryError(WRITE_FAILED, f"could not write {os.path.basename(path)}: {exc}") from None


def _extension(path) -> str:
    return os.path.splitext(str(path))[1].lower()
