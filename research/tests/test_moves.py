"""Proportion edits as code moves (research/moves.py), on code grids and through the
committed VQVAE (the moves must move the decoded shape, not just shuffle codes)."""

from pathlib import Path

import numpy as np
import pytest
import torch

from research import moves as M

EMPTY = 7


def box_codes(x: range, y: range, z: range) -> np.ndarray:
    """A grid whose occupied cells hold distinct codes (so a move's copies can be traced)."""
    g = np.full(M.GRID, EMPTY)
    for i in x:
        for j in y:
            for k in z:
                g[i, j, k] = 100 + 64 * i + 4 * j + k
    return g.reshape(-1)


def test_taller_repeats_the_bottom_token_and_moves_the_rest_up():
    src = box_codes(range(2, 6), range(3, 5), range(0, 3))
    out = M.as_grid(M.move(src, "taller", "chair", EMPTY))
    g = M.as_grid(src)
    assert np.array_equal(out[..., 0], g[..., 0]) and np.array_equal(out[..., 1], g[..., 0])
    assert np.array_equal(out[..., 2:], g[..., 1:3])


def test_taller_needs_an_empty_top_token():
    full_height = box_codes(range(2, 4), range(2, 4), range(0, 4))
    assert not M.can_move(full_height, "taller", "chair", EMPTY)
    assert M.can_move(box_codes(range(2, 4), range(2, 4), range(0, 3)), "taller", "chair", EMPTY)


def test_shorter_drops_the_bottom_token_and_needs_two():
    src = box_codes(range(0, 4), range(0, 4), range(0, 2))
    out = M.as_grid(M.move(src, "shorter", "table", EMPTY))
    assert np.array_equal(out[..., 0], M.as_grid(src)[..., 1])
    assert (out[..., 1:] == EMPTY).all()
    assert not M.can_move(box_codes(range(0, 4), range(0, 4), range(0, 1)), "shorter", "table", EMPTY)


def test_wider_repeats_the_middle_slice_along_x_only_for_square_objects():
    src = box_codes(range(0, 10), range(0, 6), range(0, 2))  # 10 cells wide: 4 more (35%, rounded)
    out = M.as_grid(M.move(src, "wider", "bench", EMPTY))
    g = M.as_grid(src)
    assert len(M.occupied(out, EMPTY, 0)) == 14 and len(M.occupied(out, EMPTY, 1)) == 6
    assert np.array_equal(out[:5], g[:5])  # up to the middle slice (index 4) unchanged
    assert all(np.array_equal(out[i], g[4]) for i in range(5, 9))  # the middle slice repeated
    assert np.array_equal(out[9:14], g[5:10])  # the far side moved out


def test_wider_round_objects_grow_in_x_and_y_and_must_fit():
    src = box_codes(range(0, 8), range(0, 8), range(0, 2))
    out = M.as_grid(M.move(src, "wider", "vase", EMPTY))
    assert len(M.occupied(out, EMPTY, 0)) == 11 and len(M.occupied(out, EMPTY, 1)) == 11
    too_wide = box_codes(range(0, 13), range(0, 4), range(0, 2))
    assert not M.can_move(too_wide, "wider", "bench", EMPTY)


def test_thinner_takes_out_the_middle_and_keeps_both_ends():
    src = box_codes(range(0, 12), range(0, 4), range(0, 2))
    out = M.as_grid(M.move(src, "thinner", "shelf", EMPTY))
    g = M.as_grid(src)
    kept = M.occupied(out, EMPTY, 0)
    assert len(kept) == 12 - 3  # 26% of 12, rounded
    assert np.array_equal(out[0], g[0]) and np.array_equal(out[kept[-1]], g[11])
    assert not M.can_move(box_codes(range(0, 2), range(0, 4), range(0, 2)), "thinner", "shelf", EMPTY)


def test_moves_move_the_decoded_shape_with_the_committed_vqvae():
    from backend.embedded.metrics import decode_occupancy, extent
    from backend.models.checkpoints import load_vqvae

    vqvae = load_vqvae(str(Path(__file__).resolve().parents[2] / "backend/weights/embedded/vqvae"), device="cpu")
    occ = np.zeros((64, 64, 64), bool)
    occ[4:40, 8:30, 0:30] = True  # a block 36 x 22 x 30 voxels at the low corner
    with torch.no_grad():
        empty = M.empty_code(vqvae)
        codes = vqvae.encode(torch.from_numpy(occ).float()[None, None])[0].numpy()
    before = extent(decode_occupancy(vqvae, codes[None])[0])
    for kind, axis, sign in (("taller", 2, 1), ("shorter", 2, -1), ("wider", 0, 1), ("thinner", 0, -1)):
        assert M.can_move(codes, kind, "cabinet", empty), kind
        after = extent(decode_occupancy(vqvae, M.move(codes, kind, "cabinet", empty)[None])[0])
        assert sign * (after[axis] - before[axis]) >= 4, (kind, before, after)  # a latent cell at least
        others = [a for a in range(3) if a != axis]
        # the decoder sees its neighbours: a voxel of wobble at the block's edges, no more
        assert np.abs(after[others] - before[others]).max() <= 1, (kind, before, after)


@pytest.mark.parametrize("kind", ["taller", "wider"])
def test_a_move_that_does_not_fit_is_refused_not_cut(kind):
    src = box_codes(range(0, 16), range(0, 4), range(0, 4))
    assert not M.can_move(src, kind, "bench", EMPTY)
