"""The tiny test preset: a real preset folder, loaded through the published code paths."""

import numpy as np
import pytest
import torch

from backend.models.checkpoints import load_vqvae
from backend.models.presets import TASKS, load_preset
from backend.models.tiny import TINY_VQVAE_CONFIG, write_tiny_preset
from tests.backend_process import tiny_preset

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_folder():
    # Written once per test session by write_tiny_preset and shared with the server tests;
    # read-only here.
    return tiny_preset()


def test_tiny_preset_folder_layout(tiny_folder):
    preset = load_preset(tiny_folder)
    assert preset.tasks == TASKS and preset.normalization == "training"
    assert (preset.vqvae_source() / "config.json").is_file()
    assert (preset.vqvae_source() / "model.safetensors").is_file()
    assert (preset.llm_source() / "config.json").is_file()
    assert (preset.llm_source() / "tokenizer.json").is_file()


def test_tiny_vqvae_decodes_random_codes_to_one_blob(tiny_folder):
    from scipy import ndimage

    model = load_vqvae(load_preset(tiny_folder).vqvae_source(), device="cpu")
    assert model.config == TINY_VQVAE_CONFIG
    codes = torch.randint(0, 8192, (1, 1024), generator=torch.Generator().manual_seed(11))
    occ = (model.decode(codes)[0, 0] > 0).numpy()
    assert 0.15 < occ.mean() < 0.6  # neither empty nor full
    labels, n = ndimage.label(occ)
    biggest = np.bincount(labels.ravel())[1:].max()
    assert biggest > 0.9 * occ.sum()  # smooth blobs, not voxel noise


def test_tiny_preset_is_reproducible(tmp_path):
    a = load_vqvae(write_tiny_preset(tmp_path / "a", seed=3) / "vqvae")
    b = load_vqvae(write_tiny_preset(tmp_path / "b", seed=3) / "vqvae")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
