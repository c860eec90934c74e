"""A tiny random model preset for tests: the same classes and files as the real presets.

    write_tiny_preset(folder) -> folder/
        preset.json   (reference prompts and sampling, "training" normalisation, all four tasks)
        vqvae/        (config.json + model.safetensors, written by save_vqvae)
        llm/          (a tiny Qwen2.5-VL with processor files, written by write_tiny_llm)

Everything is loaded back through the very loaders the published weights use. Random weights
make random shapes; the only tuning is the decoder's output bias, set so random codes decode to
about a third of the voxels occupied: every task then yields a non-empty, non-full mesh.
"""

from __future__ import annotations

from pathlib import Path

import torch

from backend.models.checkpoints import save_vqvae
from backend.models.presets import REFERENCE_GENERATION, REFERENCE_PROMPTS, TASKS, Preset
from backend.models.vqvae import ResBlock3d, Upsample3d, VQVAE3D, VQVAEConfig

# Small widths and no ResBlocks outside the middle keep a 64^3 encode or decode around 0.1-0.2 s
# on one CPU core; T stays 1024.
TINY_VQVAE_CONFIG = VQVAEConfig(channels=(8, 8, 16), num_res_blocks=0, num_res_blocks_middle=1)
TINY_OCCUPANCY = 0.33


def tiny_vqvae(seed: int = 0) -> VQVAE3D:
    """A random VQVAE3D of the tiny config whose random codes decode to ~1/3 occupancy."""
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = VQVAE3D(TINY_VQVAE_CONFIG).eval()
        smooth_decoder(model)
        # Spread the codebook so nearby codes are distinct after the encoder's LayerNorm scale.
        model.vq.embeddings.weight.data.normal_(0.0, 1.0)
        codes = torch.randint(0, model.config.codebook_size, (1, model.config.num_tokens))
        logits = model.decode(codes)
    finally:
        torch.random.set_rng_state(generator_state)
    threshold = torch.quantile(logits.flatten()[::3], 1.0 - TINY_OCCUPANCY)
    model.Decoder.out_layer[2].bias.data -= threshold
    return model


def smooth_decoder(model: VQVAE3D) -> None:
    """Make random decoder weights spatially smooth, so random codes give blobs, not voxel noise.

    Every 3x3x3 kernel becomes a box filter (its mean tap), and each upsampling conv gives all
    8 sub-voxels the same weights (its pixel shuffle becomes a nearest-neighbour upsampling).
    """
    for module in model.Decoder.modules():
        if isinstance(module, ResBlock3d):
            module.conv2.weight.data.normal_(0.0, 0.05)  # zero-initialised: give the block a job
    for module in model.Decoder.modules():
        if isinstance(module, torch.nn.Conv3d):
            w = module.weight.data
            w.copy_(w.mean(dim=(2, 3, 4), keepdim=True).expand_as(w))
    for module in model.Decoder.modules():
        if isinstance(module, Upsample3d):
            w, b = module.conv.weight.data, module.conv.bias.data
            first = w.reshape(-1, 8, *w.shape[1:])[:, :1]
            w.copy_(first.expand(-1, 8, *w.shape[1:]).reshape(w.shape))
            b.copy_(b.reshape(-1, 8)[:, :1].expand(-1, 8).reshape(-1))


def write_tiny_preset(folder: str | Path, seed: int = 0) -> Path:
    """Write a complete tiny preset folder (about 2 s) and return it."""
    from backend.models.tiny_llm import write_tiny_llm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_vqvae(folder / "vqvae", tiny_vqvae(seed))
    write_tiny_llm(folder / "llm", seed=seed)
    Preset(
        name="tiny",
        vqvae="vqvae",
        llm="llm",
        prompts=dict(REFERENCE_PROMPTS),
        normalization="training",
        up="z",
        generation=dict(REFERENCE_GENERATION),
        tasks=TASKS,
    ).save(folder)
    return folder
