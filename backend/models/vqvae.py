"""The ShapeLLM-Omni 3D VQVAE: 64^3 occupancy <-> 1024 codebook indices.

Written from the facts in ../shared/reference/shapellm-omni.md (sections 1 and 2). Module names
match the published checkpoint (`Encoder.*`, `Decoder.*`, `vq.embeddings.weight`) so that its
149-tensor state_dict loads with strict=True. Widths and depths come from `VQVAEConfig`, so a
small model for tests or for the embedded default uses the very same class.

Shapes at the published size (B = batch):
    occupancy [B, 1, 64, 64, 64] -> Encoder -> [B, 16, 16, 16, 16] (mean | logvar)
    mean [B, 8, 16, 16, 16] -> channels last [B, 16, 16, 16, 8] -> [B, 1024, 32] -> codes [B, 1024]
    codes -> codebook [B, 1024, 32] -> [B, 8, 16, 16, 16] -> Decoder -> logits [B, 1, 64, 64, 64]
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

# One token groups this many latent cells, consecutive along the last (Z) axis.
CELLS_PER_TOKEN = 4


@dataclass
class VQVAEConfig:
    resolution: int = 64
    in_channels: int = 1
    latent_channels: int = 8
    channels: tuple[int, ...] = (32, 128, 512)
    num_res_blocks: int = 2
    num_res_blocks_middle: int = 2
    codebook_size: int = 8192
    code_dim: int = 32
    commitment_beta: float = 0.25

    def __post_init__(self):
        self.channels = tuple(int(c) for c in self.channels)
        if not self.channels:
            raise ValueError("VQVAEConfig.channels must name at least one width")
        if self.code_dim != self.latent_channels * CELLS_PER_TOKEN:
            raise ValueError(
                f"code_dim ({self.code_dim}) must be {CELLS_PER_TOKEN} x latent_channels "
                f"({self.latent_channels}): one code covers {CELLS_PER_TOKEN} latent cells"
            )
        if self.latent_resolution * self.downsample_factor != self.resolution:
            raise ValueError(
                f"resolution {self.resolution} is not divisible by {self.downsample_factor}"
            )
        if self.latent_resolution % CELLS_PER_TOKEN:
            raise ValueError(
                f"latent resolution {self.latent_resolution} must be a multiple of {CELLS_PER_TOKEN}"
            )

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.channels) - 1)

    @property
    def latent_resolution(self) -> int:
        return self.resolution // self.downsample_factor

    @property
    def num_tokens(self) -> int:
        """T: codes per shape (1024 at the published size)."""
        return self.latent_resolution**3 // CELLS_PER_TOKEN

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "VQVAEConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown VQVAE config keys: {sorted(unknown)}")
        return cls(**d)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "VQVAEConfig":
        return cls.from_dict(json.loads(Path(path).read_text()))


class ChannelLayerNorm32(nn.LayerNorm):
    """LayerNorm over the channel dim of [B, C, X, Y, Z], always computed in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float().movedim(1, -1)
        h = F.layer_norm(h, self.normalized_shape, self.weight, self.bias, self.eps)
        return h.movedim(-1, 1).to(x.dtype)


class ResBlock3d(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.norm1 = ChannelLayerNorm32(channels, eps=1e-5)
        self.conv1 = nn.Conv3d(channels, channels, 3, padding=1)
        self.norm2 = ChannelLayerNorm32(channels, eps=1e-5)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1)
        # Zero-initialised last conv: a fresh block starts as the identity.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return x + h


class Downsample3d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def pixel_shuffle_3d(x: torch.Tensor, factor: int) -> torch.Tensor:
    """[B, C*f^3, X, Y, Z] -> [B, C, X*f, Y*f, Z*f]; channel c*f^3 + i*f^2 + j*f + k -> offset (i, j, k)."""
    b, c, nx, ny, nz = x.shape
    c_out = c // factor**3
    x = x.reshape(b, c_out, factor, factor, factor, nx, ny, nz)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)  # b, c, X, i, Y, j, Z, k
    return x.reshape(b, c_out, nx * factor, ny * factor, nz * factor)


class Upsample3d(nn.Module):
    """Sub-pixel upsampling: a 3x3x3 conv to 8x the channels, then a 3D pixel shuffle by 2."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels * 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_shuffle_3d(self.conv(x), 2)


def _stage_blocks(channels: tuple[int, ...], num_res_blocks: int, resample) -> nn.ModuleList:
    """Per width: `num_res_blocks` ResBlocks, then a resample to the next width (not after the last)."""
    blocks = []
    for i, ch in enumerate(channels):
        blocks.extend(ResBlock3d(ch) for _ in range(num_res_blocks))
        if i + 1 < len(channels):
            blocks.append(resample(ch, channels[i + 1]))
    return nn.ModuleList(blocks)


class _InnerDtypeMixin:
    """`blocks` and `middle_block` may run in fp16 (CUDA); input/output layers stay fp32."""

    def set_inner_dtype(self, dtype: torch.dtype) -> None:
        for module in list(self.blocks.modules()) + list(self.middle_block.modules()):
            if isinstance(module, nn.Conv3d):
                module.to(dtype)

    def _run_inner(self, h: torch.Tensor, first, second) -> torch.Tensor:
        out_dtype = h.dtype
        h = h.to(self._conv_dtype())
        for block in first:
            h = block(h)
        for block in second:
            h = block(h)
        return h.to(out_dtype)

    def _conv_dtype(self) -> torch.dtype:
        for module in self.middle_block.modules():
            if isinstance(module, nn.Conv3d):
                return module.weight.dtype
        for module in self.blocks.modules():
            if isinstance(module, nn.Conv3d):
                return module.weight.dtype
        return self.input_layer.weight.dtype


class Encoder3d(_InnerDtypeMixin, nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = cfg.channels
        self.input_layer = nn.Conv3d(cfg.in_channels, ch[0], 3, padding=1)
        self.blocks = _stage_blocks(ch, cfg.num_res_blocks, Downsample3d)
        self.middle_block = nn.ModuleList(ResBlock3d(ch[-1]) for _ in range(cfg.num_res_blocks_middle))
        # 2x latent channels (mean, logvar) as in the TRELLIS KL-VAE it descends from.
        self.out_layer = nn.Sequential(
            ChannelLayerNorm32(ch[-1], eps=1e-5),
            nn.SiLU(),
            nn.Conv3d(ch[-1], cfg.latent_channels * 2, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(x)
        h = self._run_inner(h, self.blocks, self.middle_block)
        return self.out_layer(h)


class Decoder3d(_InnerDtypeMixin, nn.Module):
    def __init__(self, cfg: VQVAEConfig):
        super().__init__()
        ch = tuple(reversed(cfg.channels))
        self.input_layer = nn.Conv3d(cfg.latent_channels, ch[0], 3, padding=1)
        self.middle_block = nn.ModuleList(ResBlock3d(ch[0]) for _ in range(cfg.num_res_blocks_middle))
        self.blocks = _stage_blocks(ch, cfg.num_res_blocks, Upsample3d)
        self.out_layer = nn.Sequential(
            ChannelLayerNorm32(ch[-1], eps=1e-5),
            nn.SiLU(),
            nn.Conv3d(ch[-1], cfg.in_channels, 3, padding=1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.input_layer(z)
        h = self._run_inner(h, self.middle_block, self.blocks)
        return self.out_layer(h)


class VectorQuantizer(nn.Module):
    """One flat codebook; nearest entry by Euclidean distance."""

    def __init__(self, codebook_size: int, code_dim: int):
        super().__init__()
        self.embeddings = nn.Embedding(codebook_size, code_dim)
        nn.init.uniform_(self.embeddings.weight, -1.0 / codebook_size, 1.0 / codebook_size)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, T, D] -> indices long [B, T]."""
        codebook = self.embeddings.weight.float()
        flat = z.reshape(-1, z.shape[-1]).float()
        # |z|^2 is the same for every entry, so argmin of |e|^2 - 2 z.e picks the nearest.
        scores = codebook.pow(2).sum(1)[None, :] - 2.0 * flat @ codebook.t()
        return scores.argmin(dim=1).reshape(z.shape[:-1])

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long [B, T] -> vectors [B, T, D]."""
        return self.embeddings(codes)


class VQOutput(NamedTuple):
    logits: torch.Tensor  # [B, 1, R, R, R]
    vq_loss: torch.Tensor  # codebook + beta * commitment, a scalar
    codebook_loss: torch.Tensor  # |sg(z) - e|^2: moves the codebook towards the encoder
    commitment_loss: torch.Tensor  # |z - sg(e)|^2: keeps the encoder near its codes
    codes: torch.Tensor  # long [B, T]


class VQVAE3D(nn.Module):
    def __init__(self, config: VQVAEConfig | None = None):
        super().__init__()
        self.config = config or VQVAEConfig()
        self.Encoder = Encoder3d(self.config)
        self.Decoder = Decoder3d(self.config)
        self.vq = VectorQuantizer(self.config.codebook_size, self.config.code_dim)

    # -- precision --------------------------------------------------------------------------
    def set_inner_dtype(self, dtype: torch.dtype) -> "VQVAE3D":
        """fp16 for the convs inside `blocks`/`middle_block` (CUDA inference); fp32 elsewhere."""
        self.Encoder.set_inner_dtype(dtype)
        self.Decoder.set_inner_dtype(dtype)
        return self

    def prepare(self, device: str | torch.device) -> "VQVAE3D":
        """Move to `device` for inference: fp16 inner blocks on CUDA, everything fp32 on CPU."""
        device = torch.device(device)
        self.float().to(device).eval()
        if device.type == "cuda":
            self.set_inner_dtype(torch.float16)
        return self

    @property
    def device(self) -> torch.device:
        return self.vq.embeddings.weight.device

    # -- latent grid <-> token vectors (reference section 2) -------------------------------
    def latent_to_tokens(self, latent: torch.Tensor) -> torch.Tensor:
        """[B, C, X, Y, Z] -> [B, T, 4C], row-major over (x, y, z//4); element j = C*(z%4) + c.

        At 16^3: t = 64x + 4y + z//4 and j = 8(z%4) + c (reference section 2)."""
        b, c, nx, ny, nz = latent.shape
        return latent.permute(0, 2, 3, 4, 1).contiguous().reshape(b, nx * ny * nz // CELLS_PER_TOKEN, c * CELLS_PER_TOKEN)

    def tokens_to_latent(self, vectors: torch.Tensor) -> torch.Tensor:
        """Exact inverse of latent_to_tokens."""
        n = self.config.latent_resolution
        c = self.config.latent_channels
        b = vectors.shape[0]
        return vectors.reshape(b, n, n, n, c).permute(0, 4, 1, 2, 3).contiguous()

    # -- public API ------------------------------------------------------------------------
    def encode_latent(self, occupancy: torch.Tensor) -> torch.Tensor:
        """occupancy [B, 1, R, R, R] -> pre-quantisation token vectors [B, T, code_dim]."""
        self._check_occupancy(occupancy)
        moments = self.Encoder(occupancy.to(self.device, torch.float32))
        mean = moments[:, : self.config.latent_channels]
        return self.latent_to_tokens(mean)

    @torch.no_grad()
    def encode(self, occupancy: torch.Tensor) -> torch.Tensor:
        """occupancy [B, 1, R, R, R] (0/1 float or bool) -> codes long [B, T]."""
        return self.vq.nearest(self.encode_latent(occupancy))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes long [B, T] -> logits [B, 1, R, R, R]; a voxel is occupied where logit > 0."""
        codes = torch.as_tensor(codes, device=self.device).long()
        if codes.dim() == 1:
            codes = codes[None]
        if codes.dim() != 2 or codes.shape[1] != self.config.num_tokens:
            raise ValueError(f"codes must be [B, {self.config.num_tokens}], got {tuple(codes.shape)}")
        if codes.numel() and (codes.min() < 0 or codes.max() >= self.config.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.config.codebook_size})")
        return self.decode_vectors(self.vq.lookup(codes))

    def decode_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.Decoder(self.tokens_to_latent(vectors.float()))

    def forward(self, occupancy: torch.Tensor) -> VQOutput:
        """Training pass with a straight-through estimator through the quantiser."""
        z = self.encode_latent(occupancy)
        codes = self.vq.nearest(z.detach())
        q = self.vq.lookup(codes)
        codebook_loss = F.mse_loss(q, z.detach())
        commitment_loss = F.mse_loss(z, q.detach())
        vq_loss = codebook_loss + self.config.commitment_beta * commitment_loss
        z_q = z + (q - z).detach()  # forward uses the code, backward passes straight to z
        logits = self.decode_vectors(z_q)
        return VQOutput(logits, vq_loss, codebook_loss, commitment_loss, codes)

    def _check_occupancy(self, occupancy: torch.Tensor) -> None:
        r = self.config.resolution
        expected = (self.config.in_channels, r, r, r)
        if occupancy.dim() != 5 or tuple(occupancy.shape[1:]) != expected:
            raise ValueError(f"occupancy must be [B, {', '.join(map(str, expected))}], got {tuple(occupancy.shape)}")
