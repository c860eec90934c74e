"""Blender meshes <-> numpy arrays, without Python loops over vertices or faces.

Reading never changes the source: the evaluated mesh (modifiers applied) is copied to a
temporary mesh, triangulated in memory through loop_triangles, and freed again.
Building uses foreach_set on flat numpy buffers (no from_pydata).
"""

from __future__ import annotations

import bpy
import numpy as np

# Above this many triangles the operator warns before sending (the wire still carries it).
LARGE_MESH_TRIANGLES = 500_000


class MeshInputError(ValueError):
    """The object cannot be read as a mesh; the message is meant for the artist."""


def read_object_triangles(obj, depsgraph) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluated, triangulated geometry of obj in its own coordinates.

    Returns vertices float32 [N,3], triangles int32 [M,3] and the 4x4 world matrix (float32).
    """
    if obj is None:
        raise MeshInputError("Select a mesh object first")
    if obj.type != "MESH":
        raise MeshInputError(f'"{obj.name}" is a {obj.type.lower()}, not a mesh')
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.to_mesh()
    try:
        if len(mesh.polygons) == 0:
            raise MeshInputError(f'"{obj.name}" has no faces to read')
        mesh.calc_loop_triangles()
        vertices = np.empty(len(mesh.vertices) * 3, dtype=np.float32)
        mesh.attributes["position"].data.foreach_get("vector", vertices)
        # Triangle corners, then corner -> vertex through the raw ".corner_vert" attribute:
        # several times faster than loop_triangles' computed "vertices" property.
        corners = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int32)
        mesh.loop_triangles.foreach_get("loops", corners)
        corner_vert = np.empty(len(mesh.loops), dtype=np.int32)
        if len(corner_vert):
            mesh.attributes[".corner_vert"].data.foreach_get("value", corner_vert)
        triangles = corner_vert[corners]
    finally:
        evaluated.to_mesh_clear()
    if len(triangles) == 0:
        raise MeshInputError(f'"{obj.name}" has no faces to read')
    matrix = np.array(obj.matrix_world, dtype=np.float32)
    return vertices.reshape(-1, 3), triangles.reshape(-1, 3), matrix


def check_arrays(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate result arrays before they touch Blender data; returns contiguous copies-if-needed."""
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.int32)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3:
        raise MeshInputError(f"expected vertices [N,3] and faces [M,3], got {v.shape} and {f.shape}")
    if len(f) == 0 or len(v) == 0:
        raise MeshInputError("the result mesh is empty")
    if f.min() < 0 or f.max() >= len(v):
        raise MeshInputError("the result mesh has face indices outside its vertices")
    if not np.isfinite(v).all():
        raise MeshInputError("the result mesh has non-finite vertex positions")
    return v, f


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, smooth: bool = True):
    """A new mesh datablock from vertices [N,3] and triangles [M,3]."""
    v, f = check_arrays(vertices, faces)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(v))
    mesh.loops.add(f.size)
    mesh.polygons.add(len(f))
    # The raw attributes take a buffer in one copy; vertices.co / loops.vertex_index go
    # item by item and are several times slower.
    mesh.attributes["position"].data.foreach_set("vector", v.ravel())
    mesh.attributes[".corner_vert"].data.foreach_set("value", f.ravel())
    mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
    mesh.update()  # derives the edges
    if smooth:
        mesh.shade_smooth()
    else:
        mesh.shade_flat()
    return mesh
