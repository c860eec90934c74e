"""The training data's proportion edits as code moves (train.py --edit-data moves, bench truths).

The moves themselves are backend/models/code_moves.py, which the runtime uses too; here the
category says which axes wider and thinner move (X and Y for round objects, as the stretches of
language.edit_stretch do), where the runtime reads it off the shape's plan.
"""

from __future__ import annotations

import numpy as np

from backend.models import code_moves
from backend.models.code_moves import GRID, MOVE_KINDS, as_grid, occupied  # noqa: F401  (re-exported)

from .language import ROUND_CATEGORIES


def _axes(category: str) -> tuple[int, ...]:
    return code_moves.sideways_axes(category in ROUND_CATEGORIES)


def can_move(codes: np.ndarray, kind: str, category: str, empty: int) -> bool:
    """Whether the move fits in the grid and leaves a shape."""
    return code_moves.can_move(codes, kind, empty, _axes(category))


def move(codes: np.ndarray, kind: str, category: str, empty: int) -> np.ndarray:
    """The edited codes [1024] of `kind`; can_move must hold."""
    return code_moves.move(codes, kind, empty, _axes(category))
