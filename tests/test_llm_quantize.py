"""8-bit and 4-bit loading (bitsandbytes) of a tiny Qwen2.5-VL saved and loaded through the
loader of the published 7B. bitsandbytes (>= 0.50) runs on CPUs, so this runs here; it is an
optional extra (`pip install '.[quantize]'`): without it the quantised tests are skipped and
only the clear error is checked. CUDA, the target of 8-bit/4-bit, is not exercised here."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import builtins

import numpy as np
import pytest
import torch

from backend.errors import TaskError
from backend.models.codec import NUM_CODES
from backend.models.llm import ShapeLLMRuntime
from backend.models.presets import REFERENCE_PROMPTS
from backend.models.tiny_llm import write_tiny_llm

torch.set_num_threads(1)

PROMPTS = dict(REFERENCE_PROMPTS)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), seed=0)


def prefill_logits(rt, text="a wooden chair"):
    from transformers import DynamicCache

    prompt = rt._prompt_ids([{"type": "text", "text": rt.prompts["text_to_3d"].replace("{text}", text)}], None)
    with torch.inference_mode():
        return rt._prefill(prompt, None, DynamicCache(config=rt.model.config.text_config))[0].float()


@pytest.mark.parametrize("bits, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_quantised_loading_on_cpu(folder, bits, layer):
    pytest.importorskip("bitsandbytes", reason="the optional [quantize] extra is not installed")
    pytest.importorskip("accelerate", reason="the optional [quantize] extra is not installed")
    rt = ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", dtype="bfloat16", quantization=bits)
    text = rt.model.model.language_model
    assert type(text.layers[0].mlp.down_proj).__name__ == layer
    assert type(rt.model.model.visual.blocks[0].attn.qkv).__name__ == layer
    assert type(rt.model.lm_head) is torch.nn.Linear  # unquantised: the mesh-rows head slices it
    assert rt.plan.quantization == bits and rt.plan.weight_bytes < rt.plan.parameters * 2
    reference = ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", dtype="bfloat16")
    a, b = prefill_logits(rt), prefill_logits(reference)
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.98  # the same model, roughly
    codes = rt.generate_shape(text="a wooden chair", options={"temperature": 0})
    assert codes.shape == (NUM_CODES,) and codes.min() >= 0 and codes.max() < 8192


def test_quantised_loading_without_bitsandbytes_says_what_to_install(folder, monkeypatch):
    real_import = builtins.__import__

    def no_bitsandbytes(name, *args, **kwargs):
        if name == "bitsandbytes":
            raise ImportError("No module named 'bitsandbytes'", name="bitsandbytes")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_bitsandbytes)
    with pytest.raises(TaskError) as err:
        ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", quantization="4bit")
    assert err.value.code == "model_unavailable" and "[quantize]" in err.value.message


def test_an_unknown_quantization_is_refused(folder):
    with pytest.raises(TaskError, match="quantization must be one of"):
        ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", quantization="2bit")
