"""Which builder primitive is which part (categories.py), for checking part edits against the truth.

    labels = vertex_parts(shape)   # one name per vertex of shape.mesh(): "legs", "slab", "back", ...

Names are those of geometry/parts.py ("slab" is the seat, top or a sofa's base; "shelf" a board
an edit may add or remove; "other" anything else). Only the categories whose parts the edits
know are listed; others raise KeyError.
"""

from __future__ import annotations

import numpy as np

from .shape import Shape


def primitive_parts(shape: Shape) -> list[str]:
    p, category = shape.params, shape.category
    if category == "chair":
        return ["legs"] * 4 + ["slab", "back"] + (["arms"] * 4 if p["part"] else [])
    if category == "table":
        return ["legs"] * 4 + ["slab"] + (["shelf"] if p["part"] else [])
    if category == "stool":
        return ["slab"] + ["legs"] * p["legs"] + (["other"] * 2 if p["part"] else [])
    if category == "bench":
        return ["legs"] * (2 if p["slab_legs"] else 4) + ["slab"] + (["back"] * 2 if p["part"] else [])
    if category == "sofa":
        return ["legs"] * 4 + ["slab", "back"] + (["arms"] * 2 if p["part"] else [])
    if category == "shelf":
        boards = p["boards"]
        return ["other"] * 2 + ["other"] + ["shelf"] * (boards - 2) + ["slab"] + (["other"] if p["part"] else [])
    raise KeyError(category)


def vertex_parts(shape: Shape) -> np.ndarray:
    """The part name of each vertex of shape.mesh() (primitives are concatenated in order)."""
    names = primitive_parts(shape)
    counts = [len(primitive.mesh().vertices) for primitive in shape.parts()]
    assert len(names) == len(counts), (shape.category, len(names), len(counts))
    return np.repeat(np.array(names), counts)


def primitive_index(shape: Shape) -> np.ndarray:
    """The primitive each vertex of shape.mesh() belongs to."""
    counts = [len(primitive.mesh().vertices) for primitive in shape.parts()]
    return np.repeat(np.arange(len(counts)), counts)
