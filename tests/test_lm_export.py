"""The text-model export for vLLM on CPU (backend/models/lm_export.py): the Qwen2ForCausalLM folder
gives the same logits as the Qwen2.5-VL model on text (M-RoPE with equal sections is RoPE)."""

import json

import torch

from backend.models.lm_export import MARKER, export_text_model, text_config, text_key
from backend.models.presets import load_preset


def test_key_mapping_of_both_layouts():
    assert text_key("model.layers.3.mlp.up_proj.weight") == "model.layers.3.mlp.up_proj.weight"
    assert text_key("model.language_model.norm.weight") == "model.norm.weight"
    assert text_key("lm_head.weight") == "lm_head.weight"
    assert text_key("visual.blocks.0.attn.qkv.weight") is None
    assert text_key("model.visual.merger.ln_q.weight") is None


def test_published_config_layout():
    """transformers 4.x keeps the text settings on top, with rope_scaling of type mrope."""
    published = {"architectures": ["Qwen2_5_VLForConditionalGeneration"], "hidden_size": 3584,
                 "num_hidden_layers": 28, "num_key_value_heads": 4, "rope_theta": 1000000.0,
                 "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "vocab_size": 159872,
                 "torch_dtype": "bfloat16", "vision_config": {"depth": 32}}
    config = text_config(published)
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["rope_theta"] == 1e6
    assert config["rope_parameters"] == {"rope_type": "default", "rope_theta": 1e6}
    assert config["hidden_size"] == 3584 and config["vocab_size"] == 159872 and config["dtype"] == "bfloat16"


def test_exported_model_gives_the_same_logits(tmp_path):
    from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2ForCausalLM

    source = load_preset("embedded").llm_source()
    out = export_text_model(source, tmp_path / "text")
    assert json.loads((out / MARKER).read_text())["source"] == str(source.resolve())
    assert export_text_model(source, tmp_path / "text") == out  # the second call reuses it
    ids = torch.tensor([[600, 5, 17, 42, 99, 612 - 1, 8814, 700, 701]])
    vl = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(source), dtype=torch.float32).eval()
    text = Qwen2ForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.inference_mode():
        expected = vl(input_ids=ids).logits
        got = text(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5), (got - expected).abs().max()
