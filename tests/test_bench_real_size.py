"""bench/real_size.py in its quick mode: a tiny scale of the published structure (vocabulary,
file layout, key names, tokenizer ids) built tensor by tensor, loaded strictly by the runtime's
loader, measured; SHAPELLM_MEMORY_AVAILABLE (a fake free-memory number) makes the plan refuse
float32 and accept bfloat16, as it does for the full size on a 24 GiB machine. The full-size run
(~17 GB) is by hand only."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import safe_open
from transformers import AutoConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import real_size  # noqa: E402

from backend.models.memory import count_parameters  # noqa: E402


def test_the_full_size_config_has_the_published_shapes(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(real_size.published_config(1.0)))
    config = AutoConfig.from_pretrained(str(tmp_path))
    assert config.text_config.vocab_size == 159859 and config.vision_config.depth == 32
    assert config.text_config.rope_parameters["mrope_section"] == [16, 24, 24]
    assert sum(count_parameters(config).values()) == 8_348_041_216


def test_quick_mode_builds_loads_and_measures(tmp_path):
    folder = tmp_path / "model"
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
           # the quick model in float32 needs ~1.2 GiB by the plan and ~1.1 GiB in bfloat16
           "SHAPELLM_MEMORY_AVAILABLE": str(int(1.13 * 2**30))}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "real_size.py"), "--folder", str(folder),
                           "--scale", "0.01", "--decode-tokens", "2", "--threads", "1", "--json", str(out)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(out.read_text())
    f32, bf16 = data["results"]
    assert "refused" in f32 and "not enough memory" in f32["refused"] and "--dtype bfloat16" in f32["refused"]
    assert "refused" not in bf16 and bf16["ids_ok"] and bf16["identical_tokens"]
    assert bf16["decode_s_per_token_rows"] > 0 and bf16["prefill_s_per_token"] > 0 and bf16["peak_rss"] > 0
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    keys = set(index["weight_map"])
    assert {"model.embed_tokens.weight", "lm_head.weight", "visual.patch_embed.proj.weight",
            "model.layers.0.self_attn.q_proj.bias", "visual.merger.mlp.2.weight"} <= keys
    with safe_open(str(folder / index["weight_map"]["lm_head.weight"]), "pt") as f:
        assert f.get_slice("lm_head.weight").get_dtype() == "BF16"
        assert f.get_slice("lm_head.weight").get_shape()[0] == 159859
