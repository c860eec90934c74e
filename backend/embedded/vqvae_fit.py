"""The embedded VQVAE: the published VQVAE3D class at a small config whose encoder and decoder
are exact space-to-depth / depth-to-space maps, and whose codebook is fitted to the data.

Why not gradient training: on this shared 2-core CPU a conv VQVAE step at 64^3 took 5-15 s and
reached a voxel IoU of 0.12 after 40 steps (measured), hopeless for IoU >= 0.90 in the budget.
With 64 latent channels a latent cell holds its 4x4x4 voxels exactly, so a token (4 cells along
Z) is one 4x4x16 voxel column and the whole model reduces to its codebook: 8192 column
patterns. Fitting that is vector quantisation of the columns (frequency seeding, then Lloyd
steps with a majority vote per voxel), which is fast and exact to reproduce.

The construction (all 3x3x3 kernels use only their centre tap; the middle residual blocks
start as the identity, their last conv zero):
  encoder: input conv copies the voxel; two stride-2 convs gather 2x2x2 blocks into channels
    (channel = d1 * 8 + d2 with d = 4i + 2j + k, the pixel-shuffle order); out layer
    LayerNorm + SiLU + identity keeps each voxel's sign: occupied > 0, empty <= 0.
  decoder: identity input conv; the two upsample convs are the inverse pixel shuffles; the
    last one also writes the negated value, so the final 2-channel LayerNorm sees [v, -v]
    (scaled down, SOFT_SIGN_SCALE) and turns it into sign(v); the out conv maps that to a
    logit > 0 exactly where v > 0.

The decoder is then fine-tuned (fine_tune_decoder): with the encoder and codebook fixed, the
codes of every shape stay the same, and the decoder learns from a code's neighbours what its
4x4x16 pattern only approximates (curved shells: lamp, vase, bowl).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn.functional as F

from backend.models.vqvae import VQVAE3D, VQVAEConfig

CONFIG = dict(channels=(2, 8, 128), num_res_blocks=0, num_res_blocks_middle=1, latent_channels=64, code_dim=256)
LOGIT_SCALE = 10.0
# The decoder's last upsample writes [s v, -s v]: small enough that the 2-channel LayerNorm
# after it (eps 1e-5) is a smooth sign, through which the decoder fine-tune gets gradients
# (with s = 1 it is a step); voxel values are ~3, so the sign itself is unchanged.
SOFT_SIGN_SCALE = 1e-2
# Channels 64..127 of the 16^3 stage hold constants +B, -B, ... Their variance dominates the
# encoder's last LayerNorm, so it no longer rescales a cell by how many voxels it has: latent
# values become ~3 for occupied voxels and ~0 for empty ones, and the quantiser's Euclidean
# distance tracks the number of differing voxels.
CONSTANT = 8.0
VOXEL_GAIN = 3.0


def _centre(conv: torch.nn.Conv3d) -> None:
    torch.nn.init.zeros_(conv.weight)
    torch.nn.init.zeros_(conv.bias)


@torch.no_grad()
def build_structured_vqvae() -> VQVAE3D:
    with torch.random.fork_rng(devices=[]):  # the middle blocks' first convs: the same on every run
        torch.manual_seed(0)
        model = VQVAE3D(VQVAEConfig(**CONFIG))
    enc, dec = model.Encoder, model.Decoder
    _centre(enc.input_layer)
    enc.input_layer.weight[0, 0, 1, 1, 1] = 1.0
    offsets = [(i, j, k) for i in range(2) for j in range(2) for k in range(2)]  # d = 4i + 2j + k
    down1, down2 = enc.blocks[0].conv, enc.blocks[1].conv
    _centre(down1), _centre(down2)
    for d, (i, j, k) in enumerate(offsets):
        down1.weight[d, 0, i, j, k] = 1.0
        for d1 in range(8):
            down2.weight[d1 * 8 + d, d1, i, j, k] = 1.0
    down2.bias[64:] = CONSTANT * torch.tensor([1.0, -1.0]).repeat(32)
    norm, out = enc.out_layer[0], enc.out_layer[2]
    torch.nn.init.zeros_(norm.weight), torch.nn.init.zeros_(norm.bias)
    norm.weight[:64] = VOXEL_GAIN * CONSTANT / np.sqrt(2.0)  # undo the ~B/sqrt(2) std
    _centre(out)
    for c in range(64):
        out.weight[c, c, 1, 1, 1] = 1.0  # the mean half; the logvar half stays zero
    for conv in (dec.input_layer, dec.blocks[0].conv):
        _centre(conv)
        for c in range(64):
            conv.weight[c, c, 1, 1, 1] = 1.0
    up2 = dec.blocks[1].conv
    _centre(up2)
    for d1 in range(8):
        up2.weight[d1, d1, 1, 1, 1] = SOFT_SIGN_SCALE  # channel 0 of the output voxel: s v
        up2.weight[8 + d1, d1, 1, 1, 1] = -SOFT_SIGN_SCALE  # channel 1: -s v
    norm, out = dec.out_layer[0], dec.out_layer[2]
    torch.nn.init.ones_(norm.weight), torch.nn.init.zeros_(norm.bias)
    _centre(out)
    # LayerNorm([v, -v]) ~ [g, -g], g = sign(v) (0 when v = 0); SiLU(1) - SiLU(-1) = 1
    out.weight[0, 0, 1, 1, 1] = LOGIT_SCALE
    out.weight[0, 1, 1, 1, 1] = -LOGIT_SCALE
    out.bias[0] = -0.5 * LOGIT_SCALE
    return model.eval()


@torch.no_grad()
def token_vectors(model: VQVAE3D, occupancies: np.ndarray, batch: int = 16) -> np.ndarray:
    """Pre-quantisation token vectors, float32 [N * 1024, 256]."""
    out = [model.encode_latent(torch.from_numpy(occupancies[i:i + batch]).float()[:, None]).reshape(-1, 256).numpy()
           for i in range(0, len(occupancies), batch)]
    return np.concatenate(out)


@torch.no_grad()
def fit_codebook(model: VQVAE3D, occupancies: np.ndarray, groups: np.ndarray, lloyd_steps: int = 1, log=print,
                 sample: int = 210_000, seed: int = 0) -> dict:
    """Fits the 8192 entries to the token columns of `occupancies` (bool [N, R, R, R]).

    `groups` (one label per shape, the category) balances the sample: every category gets the
    same number of non-empty columns, so curved objects, whose columns vary most, are not
    crowded out of the codebook by the many flat panels of furniture."""
    vectors = token_vectors(model, occupancies)
    rng = np.random.default_rng(seed)
    nonempty = (vectors > 0).any(1)
    token_group = np.repeat(np.asarray(groups), vectors.shape[0] // len(occupancies))
    labels = np.unique(token_group)
    keep = []
    for g in labels:
        pool = np.flatnonzero(nonempty & (token_group == g))
        keep.append(rng.choice(pool, min(len(pool), sample // len(labels)), replace=False))
    keep = np.concatenate(keep)
    # empty columns are one pattern: a few copies are enough to give it its entry
    vectors = vectors[np.concatenate([keep, np.flatnonzero(~nonempty)[:1000]])]
    packed = np.packbits(vectors > 0, axis=1)
    uniq, first, counts = np.unique(packed, axis=0, return_index=True, return_counts=True)
    order = np.argsort(-counts, kind="stable")[: model.config.codebook_size]
    codebook = vectors[first[order]].copy()
    coverage = float(counts[order].sum() / len(vectors))
    log(f"codebook: {len(uniq)} distinct columns in {len(vectors)} non-empty-biased samples; "
        f"the top {len(order)} cover {coverage:.3f}")
    for step in range(lloyd_steps):  # Lloyd steps: assign, then majority vote per voxel
        assign = assign_codes(codebook, vectors)
        sort = np.argsort(assign, kind="stable")
        bounds = np.searchsorted(assign[sort], np.arange(len(codebook) + 1))
        for code in range(len(codebook)):
            members = vectors[sort[bounds[code]:bounds[code + 1]]]
            if len(members) < 2:
                continue
            vote = (members > 0).mean(0) >= 0.5
            exact = np.flatnonzero(((members > 0) == vote).all(1))
            if len(exact):  # the majority pattern occurs: use its (exact) latent
                codebook[code] = members[exact[0]]
        log(f"codebook: Lloyd step {step + 1} done")
    full = np.full((model.config.codebook_size, codebook.shape[1]), -1.0, dtype=np.float32)
    full[: len(codebook)] = codebook  # unused entries (if any) decode to empty space
    model.vq.embeddings.weight.data = torch.from_numpy(full)
    return {"distinct_columns": int(len(uniq)), "top_coverage": coverage}


def assign_codes(codebook: np.ndarray, vectors: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Nearest entry per vector, like VQVAE3D's quantiser; columns whose exact pattern is an
    entry are looked up by hash first (distance 0, the same answer), the rest brute force."""
    keys = {row.tobytes(): i for i, row in reversed(list(enumerate(np.packbits(codebook > 0, axis=1))))}
    packed = np.packbits(vectors > 0, axis=1)
    out = np.array([keys.get(row.tobytes(), -1) for row in packed], dtype=np.int64)
    miss = np.flatnonzero(out < 0)
    cb = torch.from_numpy(np.ascontiguousarray(codebook, dtype=np.float32))
    norms = (cb * cb).sum(1)
    for i in range(0, len(miss), chunk):
        v = torch.from_numpy(vectors[miss[i:i + chunk]])
        out[miss[i:i + chunk]] = (norms[None] - 2 * v @ cb.t()).argmin(1).numpy()
    return out


@torch.no_grad()
def encode_fast(model: VQVAE3D, occupancies: np.ndarray) -> np.ndarray:
    """Codes [N, 1024] equal to model.encode (hash lookup first, see assign_codes)."""
    vectors = token_vectors(model, occupancies)
    codebook = model.vq.embeddings.weight.numpy()
    return assign_codes(codebook, vectors).reshape(len(occupancies), -1)


def fine_tune_decoder(model: VQVAE3D, occupancies: np.ndarray, codes: np.ndarray, steps: int, lr: float = 2e-4,
                      batch: int = 4, seed: int = 0, log=print) -> None:
    """Trains model.Decoder to decode codes [N, 1024] into occupancies bool [N, R, R, R]
    (binary cross-entropy plus a soft IoU term; warm-up, then cosine decay to 5%). The
    encoder and the codebook are not touched, so codes stay what they were."""
    decoder = model.Decoder
    decoder.train()
    optimiser = torch.optim.Adam(decoder.parameters(), lr=lr)
    warmup = min(50, steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: min(1.0, (s + 1) / warmup) * (
        0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps))))
    rng = np.random.default_rng(seed)
    started = time.time()
    for step in range(1, steps + 1):
        pick = rng.choice(len(codes), min(batch, len(codes)), replace=False)
        loss = decoder_loss(model, codes[pick], occupancies[pick])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == steps:
            log(f"decoder: step {step}/{steps} loss {loss.item():.4f} ({time.time() - started:.0f}s)")
    decoder.eval()


def decoder_loss(model: VQVAE3D, codes: np.ndarray, occupancies: np.ndarray) -> torch.Tensor:
    """Binary cross-entropy of the decoded logits plus 1 - soft IoU (the measure we report),
    for codes [B, 1024] against occupancies bool [B, R, R, R]."""
    target = torch.from_numpy(np.asarray(occupancies)).float()
    with torch.no_grad():
        vectors = model.vq.lookup(torch.as_tensor(codes, dtype=torch.long))
    logits = model.Decoder(model.tokens_to_latent(vectors))[:, 0]
    p = torch.sigmoid(logits)
    overlap = (p * target).sum((1, 2, 3))
    union = (p + target - p * target).sum((1, 2, 3))
    return F.binary_cross_entropy_with_logits(logits, target) + (1 - overlap / union).mean()
