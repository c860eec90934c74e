"""Checkpoint loading: .bin and safetensors, local files and folders, the hub cache offline.

The hub is replaced by a hand-made cache folder laid out the way huggingface_hub lays out its
own (models--owner--name/refs/main + snapshots/<commit>/file): no network here. huggingface_hub
itself resolves files in it, with HF_HUB_OFFLINE=1.
"""

import pytest
import torch

from backend.errors import TaskError
from backend.models.checkpoints import (
    PUBLISHED_VQVAE_FILE,
    PUBLISHED_VQVAE_REPO,
    load_state_dict,
    load_vqvae,
    save_vqvae,
)
from backend.models.vqvae import VQVAE3D, VQVAEConfig

torch.set_num_threads(1)

SMALL = VQVAEConfig(channels=(8, 16, 32), num_res_blocks=1, num_res_blocks_middle=1)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(root, repo_id, files: dict) -> None:
    """Write `files` ({name: writer(path)}) into a huggingface_hub-style cache under `root`."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    for name, write in files.items():
        write(snapshot / name)


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def small_model(seed=0):
    torch.manual_seed(seed)
    model = VQVAE3D(SMALL)
    # Non-zero last convs so that a wrong load would change the output.
    for p in model.parameters():
        p.data.add_(torch.randn_like(p) * 0.01)
    return model.eval()


def test_save_and_load_folder_round_trip(tmp_path):
    model = small_model()
    save_vqvae(tmp_path / "vq", model)
    assert sorted(p.name for p in (tmp_path / "vq").iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_vqvae(tmp_path / "vq", device="cpu")
    assert loaded.config == SMALL
    codes = torch.randint(0, 8192, (1, 1024), generator=torch.Generator().manual_seed(0))
    assert torch.equal(loaded.decode(codes), model.decode(codes))


def test_bin_and_safetensors_give_the_same_tensors(tmp_path):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in small_model().state_dict().items()}
    torch.save(state, tmp_path / "w.bin")
    save_file(state, str(tmp_path / "w.safetensors"))
    from_bin = load_state_dict(tmp_path / "w.bin")
    from_st = load_state_dict(tmp_path, "w.safetensors")
    assert from_bin.keys() == state.keys() == from_st.keys()
    for k in state:
        assert torch.equal(from_bin[k], state[k]) and torch.equal(from_st[k], state[k])


def test_bin_refuses_pickled_objects(tmp_path):
    torch.save({"w": torch.zeros(1), "evil": object()}, tmp_path / "evil.bin")
    with pytest.raises(TaskError) as err:
        load_state_dict(tmp_path / "evil.bin")
    assert err.value.code == "model_error"


def test_missing_local_file_is_clear(tmp_path):
    with pytest.raises(TaskError) as err:
        load_state_dict(tmp_path, "nope.safetensors")
    assert err.value.code == "model_unavailable" and "nope.safetensors" in err.value.message


def test_wrong_keys_are_a_model_error(tmp_path):
    state = small_model().state_dict()
    state.pop("vq.embeddings.weight")
    torch.save(state, tmp_path / "w.bin")
    SMALL.save(tmp_path / "config.json")
    with pytest.raises(TaskError) as err:
        load_vqvae(tmp_path, filename="w.bin")
    assert err.value.code == "model_error" and "vq.embeddings.weight" in err.value.message


def test_published_repo_loads_full_size_bin_from_offline_cache(offline_cache):
    # Full-size tensors with the published keys (fp16 zeros plus a few marks, ~0.27 GB), saved
    # the way the published 3DVQVAE.bin is: a pickled state_dict.
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in VQVAE3D(VQVAEConfig()).state_dict().items()}
    state = {k: torch.zeros(s, dtype=torch.float16) for k, s in shapes.items()}
    state["vq.embeddings.weight"][7, 3] = 1.5
    state["Decoder.blocks.2.conv.bias"][1000] = -2.0
    fake_hub_cache(offline_cache, PUBLISHED_VQVAE_REPO, {PUBLISHED_VQVAE_FILE: lambda p: torch.save(state, p)})
    del state

    model = load_vqvae(PUBLISHED_VQVAE_REPO, device="cpu")
    assert len(model.state_dict()) == 149
    assert model.vq.embeddings.weight.dtype == torch.float32  # CPU: all fp32
    assert model.vq.embeddings.weight[7, 3] == 1.5
    assert model.Decoder.blocks[2].conv.bias[1000] == -2.0
    assert model.config.num_tokens == 1024


def test_offline_and_missing_names_repo_and_file(offline_cache):
    with pytest.raises(TaskError) as err:
        load_vqvae(PUBLISHED_VQVAE_REPO, device="cpu")
    assert err.value.code == "model_unavailable"
    assert PUBLISHED_VQVAE_REPO in err.value.message and PUBLISHED_VQVAE_FILE in err.value.message
    assert "HF_HUB_OFFLINE" in err.value.message


def test_repo_with_safetensors_from_offline_cache(offline_cache):
    model = small_model(3)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    from safetensors.torch import save_file

    fake_hub_cache(offline_cache, "someone/tiny", {"model.safetensors": lambda p: save_file(state, str(p))})
    loaded = load_state_dict("someone/tiny", "model.safetensors")
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_our_folder_format_from_an_offline_hub_repo(offline_cache):
    from safetensors.torch import save_file

    model = small_model(4)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    fake_hub_cache(offline_cache, "someone/small-vqvae", {
        "config.json": lambda p: SMALL.save(p),
        "model.safetensors": lambda p: save_file(state, str(p)),
    })
    loaded = load_vqvae("someone/small-vqvae", device="cpu")
    assert loaded.config == SMALL
    codes = torch.randint(0, 8192, (1, 1024), generator=torch.Generator().manual_seed(2))
    assert torch.equal(loaded.decode(codes), model.decode(codes))
    with pytest.raises(TaskError) as err:
        load_vqvae("someone/missing-vqvae", device="cpu")
    assert err.value.code == "model_unavailable" and "config.json" in err.value.message


def test_published_file_in_a_local_folder(tmp_path):
    # A local folder holding the published file name loads with the published config; wrong
    # shapes (our small model's tensors) are a clear model_error, not a crash.
    torch.save(small_model().state_dict(), tmp_path / PUBLISHED_VQVAE_FILE)
    with pytest.raises(TaskError) as err:
        load_vqvae(tmp_path, device="cpu")
    assert err.value.code == "model_error" and "shape mismatches" in err.value.message
    assert "missing keys: Encoder.blocks.1.norm1.weight" in err.value.message  # fewer blocks
