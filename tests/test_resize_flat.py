"""Issue 31 item 9: a flat shape's proportion edit names the real cause (it has no height to
stretch), not a lack of room in the grid."""

import numpy as np
import pytest

from backend.geometry.resize import NoRoom, resize


def test_a_flat_plane_cannot_be_made_taller_and_the_message_says_why():
    grid = np.zeros((64, 64, 64), bool)
    grid[10:50, 10:50, 30] = True  # a plane: one voxel thick, zero height
    with pytest.raises(NoRoom) as info:
        resize(grid, "taller")
    message = str(info.value)
    assert "flat" in message and "height" in message and "room" not in message


def test_a_shape_at_the_top_of_the_grid_still_reports_no_room():
    grid = np.zeros((64, 64, 64), bool)
    grid[10:50, 10:50, 0:64] = True
    with pytest.raises(NoRoom) as info:
        resize(grid, "taller")
    assert "room" in str(info.value)
