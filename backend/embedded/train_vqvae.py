"""Training of the small embedded VQVAE (the published VQVAE3D class at a small config).

Recipe, chosen for a 2-core CPU:
- warm-up steps as a plain autoencoder (no quantisation), then the codebook is initialised
  from encoder outputs, so training never starts with a dead codebook;
- straight-through VQ with commitment loss; codes unused for a while are restarted on
  encoder outputs of the current batch;
- loss: BCE with a positive weight plus soft-Dice, since surface voxels are a few % of 64^3
  and IoU is what we are judged on.
Checkpoints (model + optimiser + step + RNG) every few minutes; a rerun resumes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backend.models.vqvae import VQVAE3D, VQVAEConfig

from .splits import unpack

SMALL_CONFIG = dict(channels=(8, 16, 32), num_res_blocks=0, num_res_blocks_middle=2)


@dataclass
class VQTrainSettings:
    steps: int = 1200
    batch: int = 4  # shapes per step; each gives two crops
    crop: int = 32
    lr: float = 2e-3
    warmup_ae_steps: int = 100
    restart_every: int = 100
    checkpoint_every_s: float = 120.0
    max_minutes: float = 60.0
    seed: int = 0


def reconstruction_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=torch.tensor(4.0))
    p = torch.sigmoid(logits)
    dims = tuple(range(1, target.dim()))
    dice = 1 - (2 * (p * target).sum(dims) + 1) / (p.sum(dims) + target.sum(dims) + 1)
    return bce + dice.mean()


def voxel_iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = np.logical_or(pred, target).sum()
    return float(np.logical_and(pred, target).sum() / union) if union else 1.0


@torch.no_grad()
def round_trip_iou(model: VQVAE3D, occupancies: np.ndarray, batch: int = 4) -> list[float]:
    """IoU of decode(encode(occ)) > 0 against occ, for bool [N, R, R, R]."""
    model.eval()
    out = []
    for i in range(0, len(occupancies), batch):
        occ = torch.from_numpy(occupancies[i:i + batch]).float()[:, None]
        pred = (model.decode(model.encode(occ)) > 0)[:, 0].numpy()
        out += [voxel_iou(p, t) for p, t in zip(pred, occupancies[i:i + batch])]
    return out


def _forward(model: VQVAE3D, x: torch.Tensor, quantise: bool):
    """The model's own training pass, on crops of any size that is a multiple of 16 voxels
    (one token spans 4x4x16 voxels), so its token grouping is the same as on full volumes."""
    c = model.config.latent_channels
    latent = model.Encoder(x)[:, :c]
    b, _, n = latent.shape[:3]
    z = model.latent_to_tokens(latent)
    if not quantise:
        vq_loss, codes, z_q = torch.zeros(()), None, z
    else:
        codes = model.vq.nearest(z.detach())
        q = model.vq.lookup(codes)
        vq_loss = F.mse_loss(q, z.detach()) + model.config.commitment_beta * F.mse_loss(z, q.detach())
        z_q = z + (q - z).detach()
    latent_q = z_q.reshape(b, n, n, n, c).permute(0, 4, 1, 2, 3).contiguous()
    return model.Decoder(latent_q), vq_loss, codes, z


def random_crops(occ: np.ndarray, crop: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` crops of crop^3 at multiples of 16 voxels, preferring crops with surface in them."""
    r = occ.shape[-1]
    starts = np.arange(0, r - crop + 1, 16)
    out = []
    while len(out) < count:
        shape = occ[rng.integers(len(occ))]
        i, j, k = rng.choice(starts, 3)
        piece = shape[i:i + crop, j:j + crop, k:k + crop]
        if piece.any() or rng.random() < 0.1:
            out.append(piece)
    return np.stack(out)


def _restart_dead_codes(model: VQVAE3D, usage: torch.Tensor, z: torch.Tensor, rng: torch.Generator) -> int:
    dead = torch.nonzero(usage == 0).flatten()
    if len(dead) == 0:
        return 0
    flat = z.detach().reshape(-1, z.shape[-1])
    pick = torch.randint(len(flat), (len(dead),), generator=rng)
    noise = 0.01 * torch.randn(len(dead), flat.shape[1], generator=rng)
    model.vq.embeddings.weight.data[dead] = flat[pick] + noise
    return len(dead)


def train_vqvae(train_packed: np.ndarray, held_packed: np.ndarray, workdir: Path, settings: VQTrainSettings,
                log=print) -> VQVAE3D:
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "vqvae_resume.pt"
    torch.manual_seed(settings.seed)
    model = VQVAE3D(VQVAEConfig(**SMALL_CONFIG))
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    rng = torch.Generator().manual_seed(settings.seed)
    np_rng = np.random.default_rng(settings.seed)
    step, usage = 0, torch.zeros(model.config.codebook_size)
    if ckpt_path.exists():
        state = torch.load(ckpt_path, weights_only=False)
        model.load_state_dict(state["model"]), opt.load_state_dict(state["opt"])
        rng.set_state(state["rng"])
        step, usage = state["step"], state["usage"]
        np_rng = np.random.default_rng(settings.seed + step)
        log(f"resumed VQVAE at step {step}")
    held = unpack(held_packed[::5])  # 4 per category
    start, last_ckpt = time.time(), time.time()

    def save():
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), rng=rng.get_state(), step=step,
                        usage=usage), ckpt_path)

    while step < settings.steps and (time.time() - start) < settings.max_minutes * 60:
        model.train()
        idx = torch.randint(len(train_packed), (settings.batch,), generator=rng).numpy()
        crops = random_crops(unpack(train_packed[idx]), settings.crop, settings.batch * 2, np_rng)
        x = torch.from_numpy(crops).float()[:, None]
        quantise = step >= settings.warmup_ae_steps
        logits, vq_loss, codes, z = _forward(model, x, quantise)
        if step == settings.warmup_ae_steps - 1:  # last warm-up step: seed the codebook from data
            _restart_dead_codes(model, torch.zeros_like(usage), z, rng)
        rec = reconstruction_loss(logits, x)
        loss = rec + vq_loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if codes is not None:
            usage += torch.bincount(codes.flatten(), minlength=len(usage)).float()
            if step % settings.restart_every == 0:
                z_now = model.latent_to_tokens(model.Encoder(x)[:, :model.config.latent_channels]).detach()
                n = _restart_dead_codes(model, usage, z_now, rng)
                log(f"step {step}: codes in use {int((usage > 0).sum())}, restarted {n}")
                usage.zero_()
        if step % 10 == 0:
            log(f"step {step} rec {rec.item():.4f} vq {float(vq_loss):.4f} {time.time() - start:.0f}s")
        if time.time() - last_ckpt > settings.checkpoint_every_s:
            save()
            last_ckpt = time.time()
        if step % 200 == 0 and quantise:
            log(f"step {step} held-out IoU {np.mean(round_trip_iou(model, held[::4])):.4f}")
    save()
    ious = round_trip_iou(model, held)
    log(f"final held-out round-trip IoU mean {np.mean(ious):.4f} over {len(ious)} shapes")
    (workdir / "vqvae_metrics.json").write_text(json.dumps({"heldout_iou": float(np.mean(ious)), "step": step}))
    return model.eval()
