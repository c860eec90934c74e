"""The decoding loop against the transformers API it relies on, on a tiny random Qwen2.5-VL
written and loaded like the published 7B (save_pretrained folder -> ShapeLLMRuntime.load):

- the KV cache is really used (the `cache=` argument; `past_key_values` is deprecated and goes
  away in transformers 5.40, after which it would be swallowed by **kwargs: decoding without
  cache, wrong tokens, no error);
- inside a mesh block only the 8192 mesh rows of lm_head are computed, with the same tokens as
  the whole head."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import warnings

import numpy as np
import pytest
import torch
from transformers import DynamicCache

from backend.models.codec import CODEBOOK_SIZE, NUM_CODES
from backend.models.llm import ShapeLLMRuntime
from backend.models.presets import REFERENCE_PROMPTS
from backend.models.tiny_llm import write_tiny_llm

torch.set_num_threads(1)

PROMPTS = REFERENCE_PROMPTS  # the published prompts
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def rt(tmp_path_factory):
    folder = write_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), seed=0)
    return ShapeLLMRuntime.load(folder, PROMPTS, device="cpu")


def full_logits(rt, ids):
    """Last-position logits of a full recompute of `ids`, no cache."""
    with torch.inference_mode():
        return rt.model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]


@pytest.mark.parametrize("direct", [True, False], ids=["layer-by-layer", "text-model"])
def test_a_decode_step_fed_one_token_equals_a_full_recompute(rt, direct):
    """Each step feeds one token; only a cache holding the prompt makes its logits equal those
    of the whole sequence run at once, and the cache must grow by one token a step."""
    prompt = rt._prompt_ids([{"type": "text", "text": "a chair"}], None)
    with torch.inference_mode():
        cache = DynamicCache(config=rt.model.config.text_config)
        logits, position = rt._prefill(prompt, None, cache)
        assert cache.get_seq_length() == len(prompt)
        steps = torch.arange(position, position + 3).expand(3, -1)
        rope = rt._rope_table(steps) if direct else None
        ids = list(prompt)
        for step in range(3):
            token = int(torch.argmax(logits))
            ids.append(token)
            logits = rt._head(rt._step(token, steps[:, step], step, cache, rope))
            assert cache.get_seq_length() == len(ids)
            torch.testing.assert_close(logits, full_logits(rt, ids), rtol=1e-4, atol=1e-4)
        alone = full_logits(rt, [token])  # what a step without the cache would see
        assert not torch.allclose(logits, alone, rtol=1e-3, atol=1e-3)


def test_decoding_passes_no_deprecated_argument(rt):
    codes = np.arange(NUM_CODES, dtype=np.int32) % CODEBOOK_SIZE
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rt.describe(codes, options={**GREEDY, "max_new_tokens": 3})
        rt.edit(codes, "make it taller", options={**GREEDY, "seed": 1})
    deprecated = [str(w.message) for w in caught if "past_key_values" in str(w.message)]
    assert deprecated == []


def test_mesh_rows_of_lm_head_equal_the_whole_head(rt):
    """The slice's logits equal the whole head's at those rows, and greedy answers are the
    same token for token with the mesh-rows head on and off."""
    hidden = torch.randn(rt.model.config.text_config.hidden_size)
    first = rt.codec.first_code_id
    rows = slice(first, first + CODEBOOK_SIZE)
    assert rt.codec.contiguous
    with torch.inference_mode():  # float32: equal up to the kernel's summation order
        torch.testing.assert_close(rt._head(hidden, rows), rt.model.lm_head(hidden)[rows], rtol=1e-6, atol=1e-6)
    answers = {}
    for on in (True, False):
        rt.mesh_rows_head = on
        try:
            answers[on] = (rt.generate_shape(text="a wooden chair", options=GREEDY),
                           rt.generate_shape(text="a lamp", options={"temperature": 0.7, "seed": 3}))
        finally:
            rt.mesh_rows_head = True
    for a, b in zip(answers[True], answers[False]):
        np.testing.assert_array_equal(a, b)


def test_mesh_rows_head_in_bfloat16_keeps_greedy_tokens(rt, tmp_path):
    folder = write_tiny_llm(tmp_path / "llm", seed=1)
    half = ShapeLLMRuntime.load(folder, PROMPTS, device="cpu", dtype="bfloat16")
    assert half.model.lm_head.weight.dtype == torch.bfloat16
    first = half.codec.first_code_id
    rows = slice(first, first + CODEBOOK_SIZE)
    hidden = torch.randn(half.model.config.text_config.hidden_size, dtype=torch.bfloat16)
    with torch.inference_mode():  # (bitwise equal on this CPU; bf16 tolerance elsewhere)
        torch.testing.assert_close(half._head(hidden, rows), half.model.lm_head(hidden)[rows])
    with_rows = half.generate_shape(text="a wooden chair", options=GREEDY)
    half.mesh_rows_head = False
    np.testing.assert_array_equal(with_rows, half.generate_shape(text="a wooden chair", options=GREEDY))
