"""Blender meshes <-> numpy arrays, without Python loops over vertices or faces.

Reading never changes the source: the evaluated mesh (modifiers applied) is copied to a
temporary mesh, triangulated in memory through loop_triangles, and freed again.
Building uses foreach_set on flat numpy buffers (no from_pydata), edges computed here in numpy.
"""

from __future__ import annotations

import bpy
import numpy as np

# Above this many triangles the operator warns before sending (the wire still carries it).
LARGE_MESH_TRIANGLES = 500_000


class MeshInputError(ValueError):
    """The object cannot be read as a mesh; the message is meant for the artist."""


def read_object_triangles(obj, depsgraph, evaluated: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluated (modifiers applied), or with `evaluated` False the object's own mesh data,
    triangulated, in its own coordinates.

    Returns vertices float32 [N,3], triangles int32 [M,3] and the 4x4 world matrix (float32).
    """
    if obj is None:
        raise MeshInputError("Select a mesh object first")
    if obj.type != "MESH":
        raise MeshInputError(f'"{obj.name}" is a {obj.type.lower()}, not a mesh')
    source = obj.evaluated_get(depsgraph) if evaluated else None
    mesh = source.to_mesh() if evaluated else obj.data
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
        if source is not None:
            source.to_mesh_clear()
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


# Odd 64-bit multipliers for multiplicative hashing of edge keys, one per hashing round.
_EDGE_HASH_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F)


def triangle_edges(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The unique edges of triangles [M,3] and, for each corner, the index of its edge.

    Returns edge vertex pairs int32 [E,2] (lower index first, like Blender's own edge
    calculation; the order of the edges is arbitrary) and corner edges int32 [3M], where
    corner j of triangle i starts the edge (faces[i, j], faces[i, (j + 1) % 3]).
    Sorting all 3M corner keys costs as much as Blender's calculation, so most keys are
    deduplicated in one linear pass through a hash table (numpy scatter then gather: each
    slot keeps one key, every copy of that key finds it); the few keys that lost their
    slot to another key go through a second table, and what is left through np.unique.
    """
    starts = faces.ravel()
    ends = faces[:, [1, 2, 0]].ravel()
    keys = (np.minimum(starts, ends).astype(np.int64) << 32) | np.maximum(starts, ends)
    corner_edge = np.empty(len(keys), dtype=np.int32)
    edge_keys = []
    found = 0  # edges so far
    todo = np.arange(len(keys))  # corners still without their edge
    for multiplier in _EDGE_HASH_MULTIPLIERS:
        if len(todo) < 4096:
            break
        pending = keys if len(todo) == len(keys) else keys[todo]
        bits = len(pending).bit_length()  # a table at least as large as the keys: few collisions
        slots = ((pending.view(np.uint64) * np.uint64(multiplier)) >> np.uint64(64 - bits)).view(np.intp)
        table = np.full(1 << bits, -1, dtype=np.int64)
        table[slots] = pending  # one key per slot survives; which one does not matter
        hit = table[slots] == pending
        used = table >= 0
        slot_edge = np.cumsum(used, dtype=np.int32) + np.int32(found - 1)
        edge_keys.append(table[used])
        found += len(edge_keys[-1])
        corner_edge[todo] = slot_edge[slots]  # right for the hits; the rest is redone below
        todo = todo[~hit]
    unique, inverse = np.unique(keys[todo], return_inverse=True)
    corner_edge[todo] = found + inverse.ravel()
    edge_keys.append(unique)
    all_keys = np.concatenate(edge_keys)
    edges = np.empty((len(all_keys), 2), dtype=np.int32)
    edges[:, 0] = all_keys >> 32
    edges[:, 1] = all_keys & 0xFFFFFFFF
    return edges, corner_edge


def build_mesh(name: str, vertices: np.ndarray, faces: np.ndarray, smooth: bool = True):
    """A new mesh datablock from vertices [N,3] and triangles [M,3].

    Every array Blender keeps for a triangle mesh is written whole, edges included, so
    mesh.update() has nothing left to derive and no validate() is needed: check_arrays
    and triangle_edges make the arrays valid by construction.
    """
    v, f = check_arrays(vertices, faces)
    edges, corner_edge = triangle_edges(f)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(len(v))
    mesh.edges.add(len(edges))
    mesh.loops.add(f.size)
    mesh.polygons.add(len(f))
    # The raw attributes take a buffer in one copy; vertices.co / loops.vertex_index go
    # item by item and are several times slower.
    attributes = mesh.attributes
    attributes["position"].data.foreach_set("vector", v.ravel())
    attributes[".edge_verts"].data.foreach_set("value", edges.ravel())
    attributes[".corner_vert"].data.foreach_set("value", f.ravel())
    attributes[".corner_edge"].data.foreach_set("value", corner_edge)
    # Face offsets have no raw attribute; loop_total follows from the next face's start.
    mesh.polygons.foreach_set("loop_start", np.arange(0, f.size, 3, dtype=np.int32))
    mesh.update()  # edges exist, so this only marks normals and other caches for recomputation
    if smooth:
        mesh.shade_smooth()
    else:
        mesh.shade_flat()
    return mesh
