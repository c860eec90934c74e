"""K variations of one prompt decoded as one batch in our own loop (ShapeLLMRuntime.generate_shapes),
on the committed embedded model and on the tiny random Qwen2.5-VL (for images). Nothing mocked."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import hashlib

import numpy as np
import pytest
import torch

from backend.errors import Cancelled, TaskError
from backend.models.codec import CODEBOOK_SIZE, NUM_CODES
from backend.models.llm import Sampling, choose_tokens

torch.set_num_threads(1)

SAMPLED = {"temperature": 0.8, "seed": 4}
# sha256 (first 16 hex digits) of the int32 codes through generate_shape, with the embedded
# preset's options: greedy, and one sampled answer. First recorded before the batched loop
# (commit 10e6366); recorded again through generate_shape when the weights changed (artist stage).
BEFORE = {("a lamp", None): "0ce05fda4eed50bc", ("a mug", None): "ab1bee69d6eb8aa5",
          ("a lamp", 11): "94d2769173bf2f3a"}


def digest(codes) -> str:
    return hashlib.sha256(np.asarray(codes, np.int32).tobytes()).hexdigest()[:16]


@pytest.fixture(scope="module")
def rt(embedded_pipe):
    embedded_pipe._models(lambda *a: None, lambda: False)
    return embedded_pipe._llm


def llm_options(pipe, **extra):
    return {**pipe._llm_options(pipe._options({}, "text_to_3d")), **extra}


def test_one_variation_is_the_single_loop_of_before(embedded_pipe, rt):
    for (prompt, seed), expected in BEFORE.items():
        options = llm_options(embedded_pipe) if seed is None else llm_options(embedded_pipe, temperature=0.7, seed=seed)
        batch = rt.generate_shapes(text=prompt, options=options, count=1)
        assert batch.shape == (1, NUM_CODES) and digest(batch[0]) == expected, (prompt, seed)
        assert digest(rt.generate_shape(text=prompt, options=options)) == expected


@pytest.mark.slow   # seven whole 1024-token answers
def test_a_batch_gives_valid_different_shapes_each_its_own_seeds(embedded_pipe, rt):
    events = []
    batch = rt.generate_shapes(text="a lamp", options=llm_options(embedded_pipe, **SAMPLED), count=3,
                               progress=lambda *e: events.append(e))
    assert batch.shape == (3, NUM_CODES) and batch.dtype == np.int32
    assert batch.min() >= 0 and batch.max() < CODEBOOK_SIZE
    assert len({row.tobytes() for row in batch}) == 3  # sampling: three different shapes
    # one progress event per step, all rows at once: real tokens of 1024, not K * 1024
    assert events == [("tokens", n, NUM_CODES) for n in range(1, NUM_CODES + 1)]
    # Row i draws with seed + i: the single run with that seed gives the same shape (measured
    # equal here; only float summation order in the batched matmuls could part them)
    for i, row in enumerate(batch):
        alone = rt.generate_shape(text="a lamp", options=llm_options(embedded_pipe, **{**SAMPLED, "seed": 4 + i}))
        np.testing.assert_array_equal(row, alone)
    # greedy rows of one batch are the greedy single answer, every one of them
    greedy = rt.generate_shapes(text="a mug", options=llm_options(embedded_pipe), count=2)
    assert digest(greedy[0]) == digest(greedy[1]) == BEFORE[("a mug", None)]


def test_cancel_mid_batch_stops_within_one_step(embedded_pipe, rt):
    steps, flag_at = [], []

    def cancelled():
        if len(steps) >= 40 and not flag_at:
            flag_at.append(len(steps))
        return bool(flag_at)

    with pytest.raises(Cancelled):
        rt.generate_shapes(text="a chair", options=llm_options(embedded_pipe, **SAMPLED), count=4,
                           progress=lambda *e: steps.append(e), cancelled=cancelled)
    assert flag_at == [40] and len(steps) == 40  # no step after the flag was seen


def test_a_bad_count_is_refused(rt):
    for count in (0, 9, 2.0, "3"):
        with pytest.raises(TaskError) as err:
            rt.generate_shapes(text="a chair", count=count)
        assert err.value.code == "bad_field" and "[1, 8]" in err.value.message


def test_greedy_variations_are_refused_before_any_work(embedded_pipe):
    with pytest.raises(TaskError) as err:
        embedded_pipe.text_to_3d_variations("a chair", {"variations": 2})
    assert err.value.code == "bad_field" and "temperature" in err.value.message
    with pytest.raises(TaskError) as err:
        embedded_pipe.describe(np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32), {"variations": 2})
    assert err.value.code == "bad_field" and "variations" in err.value.message


@pytest.mark.slow   # whole 1024-token answers
def test_the_pipeline_returns_k_meshes_with_their_seeds(embedded_pipe):
    events = []
    made = embedded_pipe.text_to_3d_variations("a lamp", {**SAMPLED, "variations": 2},
                                               progress=lambda *e: events.append(e))
    assert [(m.index, m.seed) for m in made] == [(0, 4), (1, 5)]
    assert all(len(m.vertices) > 100 and m.faces.max() < len(m.vertices) for m in made)
    stages = [e for e in events if e[0] in ("decode", "surface")]
    assert stages == [("decode", 0, 2), ("decode", 1, 2), ("decode", 1, 2), ("decode", 2, 2),
                      ("surface", 0, 2), ("surface", 1, 2), ("surface", 1, 2), ("surface", 2, 2)]


def test_batched_sampling_equals_each_row_alone():
    """choose_tokens on [rows, n] with penalty, top-k and top-p gives each row the token that
    row alone with its generator gives."""
    torch.manual_seed(0)
    logits = torch.randn(4, 500) * 3
    seen = torch.rand(4, 500) < 0.2
    s = Sampling(seed=9, temperature=0.9, top_p=0.8, top_k=50, max_new_tokens=1, repetition_penalty=1.3)
    together = choose_tokens(logits, seen, s, [torch.Generator().manual_seed(9 + i) for i in range(4)])
    alone = [choose_tokens(logits[i:i + 1], seen[i:i + 1], s, [torch.Generator().manual_seed(9 + i)])[0]
             for i in range(4)]
    assert together == alone


@pytest.mark.slow   # whole 1024-token answers
def test_image_variations_prefill_the_image_once(tmp_path):
    """Image to 3D on the tiny random Qwen2.5-VL (the embedded model reads no images)."""
    from PIL import Image

    from backend.models.llm import ShapeLLMRuntime
    from backend.models.presets import REFERENCE_PROMPTS
    from backend.models.tiny_llm import write_tiny_llm

    tiny = ShapeLLMRuntime.load(write_tiny_llm(tmp_path / "llm", seed=0), REFERENCE_PROMPTS, device="cpu")
    image = Image.new("RGB", (120, 90), (200, 30, 30))
    batch = tiny.generate_shapes(image=image, options=SAMPLED, count=2)
    assert batch.shape == (2, NUM_CODES) and batch[0].tobytes() != batch[1].tobytes()
    np.testing.assert_array_equal(batch[1], tiny.generate_shape(image=image, options={**SAMPLED, "seed": 5}))
