"""The embedded VQVAE: structured VQVAE3D weights, codebook fitting, save/load round trip."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch

from backend.embedded.metrics import decode_occupancy, voxel_iou
from backend.embedded.shape import sample_shape
from backend.embedded.splits import CATEGORY_NAMES
from backend.embedded.vqvae_fit import (assign_codes, build_structured_vqvae, decoder_loss, encode_fast, fine_tune_decoder,
                                        fit_codebook, token_vectors)
from backend.models.checkpoints import load_vqvae, save_vqvae

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fitted():
    """A codebook fitted on a few shapes of three categories (small, so the test is fast)."""
    cats = ["chair", "table", "shelf"]
    shapes = [sample_shape(c, k) for c in cats for k in range(3)]
    model = build_structured_vqvae()
    info = fit_codebook(model, np.stack([s.occupancy() for s in shapes]), [s.category for s in shapes],
                        log=lambda _: None)
    return model, shapes, info


def test_structured_autoencoder_is_exact_before_quantisation():
    rng = np.random.default_rng(0)
    occ = rng.random((2, 1, 64, 64, 64)) < 0.2
    model = build_structured_vqvae()
    with torch.no_grad():
        logits = model.decode_vectors(model.encode_latent(torch.from_numpy(occ).float()))
    assert ((logits > 0).numpy() == occ).all()


def test_latent_sign_marks_occupied_voxels_and_distance_counts_differences():
    model = build_structured_vqvae()
    occ = np.zeros((1, 64, 64, 64), bool)
    occ[0, 0:4, 0:4, 0:16] = np.random.default_rng(1).random((4, 4, 16)) < 0.3
    v = token_vectors(model, occ)
    assert ((v[0] > 0).sum() == occ.sum()) and not (v[1:] > 0).any()
    # one flipped voxel costs about the same whatever else the column holds
    a = occ.copy()
    a[0, 0, 0, 0] = not a[0, 0, 0, 0]
    d = np.linalg.norm(token_vectors(model, a)[0] - v[0])
    assert 2.0 < d < 4.0


def test_fitted_codebook_round_trips_training_shapes(fitted):
    model, shapes, info = fitted
    occ = np.stack([s.occupancy() for s in shapes[:3]])
    codes = encode_fast(model, occ)
    with torch.no_grad():
        reference = model.encode(torch.from_numpy(occ).float()[:, None]).numpy()
    assert (codes == reference).all()  # the fast path is the model's own quantiser
    ious = [voxel_iou(p, t) for p, t in zip(decode_occupancy(model, codes), occ)]
    assert min(ious) > 0.95, ious
    assert info["distinct_columns"] > 10


def test_nearest_entry_for_unseen_column(fitted):
    model, shapes, _ = fitted
    cb = model.vq.embeddings.weight.detach().numpy()
    v = token_vectors(model, sample_shape("chair", 99).occupancy()[None])
    assert (assign_codes(cb, v) == model.vq.nearest(torch.from_numpy(v)).numpy()).all()


@pytest.mark.slow   # trains the decoder
def test_decoder_fine_tune_lowers_its_loss_and_keeps_the_codes(fitted):
    import copy

    model, shapes, _ = fitted
    tuned = copy.deepcopy(model)
    occ = np.stack([s.occupancy() for s in shapes])
    codes = encode_fast(model, occ)
    with torch.no_grad():
        before = decoder_loss(tuned, codes, occ).item()
    fine_tune_decoder(tuned, occ, codes, steps=6, lr=1e-3, batch=2, log=lambda _: None)
    with torch.no_grad():
        after = decoder_loss(tuned, codes, occ).item()
    assert after < before
    assert (encode_fast(tuned, occ) == codes).all()  # encoder and codebook untouched
    moved = [not torch.equal(a, b) for a, b in zip(model.Decoder.parameters(), tuned.Decoder.parameters())]
    assert any(moved)


def test_saved_and_loaded_through_the_checkpoint_code(tmp_path, fitted):
    model, shapes, _ = fitted
    save_vqvae(tmp_path / "vqvae", model)
    loaded = load_vqvae(tmp_path / "vqvae", device="cpu")
    occ = torch.from_numpy(shapes[0].occupancy()[None, None]).float()
    with torch.no_grad():
        assert (loaded.encode(occ) == model.encode(occ)).all()
        codes = model.encode(occ)
        assert torch.equal(loaded.decode(codes) > 0, model.decode(codes) > 0)
    assert len(CATEGORY_NAMES) >= 12
