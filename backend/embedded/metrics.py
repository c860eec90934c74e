"""Voxel metrics shared by training, tests and bench/quality.py."""

from __future__ import annotations

import numpy as np
import torch

from backend.models.vqvae import VQVAE3D


def voxel_iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = np.logical_or(pred, target).sum()
    return float(np.logical_and(pred, target).sum() / union) if union else 1.0


@torch.no_grad()
def decode_occupancy(model: VQVAE3D, codes: np.ndarray) -> np.ndarray:
    """codes [N, 1024] -> bool [N, R, R, R] (logit > 0)."""
    return (model.decode(torch.as_tensor(np.asarray(codes), dtype=torch.long)) > 0)[:, 0].numpy()


@torch.no_grad()
def round_trip_iou(model: VQVAE3D, occupancies: np.ndarray, batch: int = 8) -> list[float]:
    """IoU of decode(encode(occ)) against occ, for bool [N, R, R, R]."""
    model.eval()
    out = []
    for i in range(0, len(occupancies), batch):
        occ = occupancies[i:i + batch]
        codes = model.encode(torch.from_numpy(occ).float()[:, None])
        out += [voxel_iou(p, t) for p, t in zip(decode_occupancy(model, codes.numpy()), occ)]
    return out


def extent(occ: np.ndarray) -> np.ndarray:
    """Occupied extent along x, y, z in voxels (zeros when empty)."""
    idx = np.argwhere(occ)
    return idx.max(0) - idx.min(0) + 1 if len(idx) else np.zeros(3, dtype=int)


def aspect(occ: np.ndarray) -> float:
    """Height over the larger horizontal extent: what "taller"/"wider" change after normalising."""
    e = extent(occ)
    return float(e[2] / max(e[0], e[1], 1))


def width_ratio(occ: np.ndarray) -> float:
    """Width (X) over height: what "wider"/"thinner" change after normalising."""
    e = extent(occ)
    return float(e[0] / max(e[2], 1))
