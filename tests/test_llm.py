"""The LLM runtime on a tiny random Qwen2.5-VL, written and loaded through the same code paths
as the published 7B (save_pretrained folder -> ShapeLLMRuntime.load). Runs on the CPU; only
CUDA (bf16) and the hub download cannot be exercised here."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from backend.errors import Cancelled, TaskError
from backend.models.codec import NUM_CODES
from backend.models.llm import MeshBlockLogitsProcessor, Sampling, ShapeLLMRuntime
from backend.models.presets import REFERENCE_PROMPTS
from backend.models.tiny_llm import write_tiny_llm

torch.set_num_threads(1)

PROMPTS = REFERENCE_PROMPTS  # the published prompts
GREEDY = {"temperature": 0}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_tiny_llm(tmp_path_factory.mktemp("tiny_llm"), seed=0)


@pytest.fixture(scope="module")
def rt(folder):
    return ShapeLLMRuntime.load(folder, PROMPTS, device="auto")


def assert_shape(codes):
    assert isinstance(codes, np.ndarray) and codes.dtype == np.int32 and codes.shape == (NUM_CODES,)
    assert codes.min() >= 0 and codes.max() < 8192


def red_box_image():
    image = Image.new("RGB", (300, 200), "white")
    ImageDraw.Draw(image).rectangle([100, 40, 180, 160], fill=(200, 30, 30))
    return image


@pytest.mark.slow   # whole 1024-token generations
def test_all_four_tasks_return_valid_outputs(rt):
    assert rt.device == "cpu" and next(rt.model.parameters()).dtype == torch.float32
    events = []
    codes = rt.generate_shape(text="a wooden chair", progress=lambda *e: events.append(e))
    assert_shape(codes)
    assert events == [("tokens", n, NUM_CODES) for n in range(1, NUM_CODES + 1)]

    from_image = rt.generate_shape(image=red_box_image(), options=GREEDY)
    assert_shape(from_image)

    text = rt.describe(codes, options={"max_new_tokens": 12})
    assert isinstance(text, str)
    assert "<mesh" not in text  # mesh tokens are banned in a description

    edited = rt.edit(codes, "make it taller", options=GREEDY)
    assert_shape(edited)


def test_image_prompt_carries_one_pad_per_merged_patch(rt):
    pixels = rt.image_processor(images=[red_box_image()], return_tensors="pt")
    ids = rt._prompt_ids([{"type": "image"}, {"type": "text", "text": "x"}], pixels)
    expected = int(pixels["image_grid_thw"][0].prod()) // 4
    assert ids.count(rt.image_token_id) == expected > 1


def test_constraint_holds_for_a_random_model_at_high_temperature(rt):
    wild = {"temperature": 5.0, "top_p": 1.0, "top_k": 100000, "seed": 7}
    codes = rt.generate_shape(text="anything", options=wild)
    assert_shape(codes)
    assert len(np.unique(codes)) > 500  # really sampled from a flat distribution


def test_constraint_forces_a_shape_from_a_model_that_never_picks_mesh_tokens(folder):
    rt = ShapeLLMRuntime.load(folder, PROMPTS)
    with torch.no_grad():  # every <meshK> gets the logit 0; text tokens win unconstrained
        rt.model.lm_head.weight[torch.as_tensor(rt.codec.code_ids)] = 0
        rt.model.lm_head.weight[rt.codec.end_id] = 0
        rt.model.lm_head.weight[rt.codec.start_id] = 0
    prompt = rt._prompt_ids([{"type": "text", "text": "a cup"}], None) + [rt.codec.start_id]
    free = rt.model.generate(
        input_ids=torch.tensor([prompt]), max_new_tokens=5, do_sample=False, repetition_penalty=1.0
    )[0, len(prompt) :].tolist()
    assert all(rt.codec.code_of(t) is None for t in free)  # the model itself would write text
    codes = rt.generate_shape(text="a cup", options=GREEDY)
    assert_shape(codes)
    rt.release()


def test_cancel_is_seen_within_one_step(rt):
    steps = []

    def cancelled():
        return len(steps) >= 5

    with pytest.raises(Cancelled):
        rt.generate_shape(text="a lamp", progress=lambda *e: steps.append(e), cancelled=cancelled)
    assert len(steps) == 5
    with pytest.raises(Cancelled):  # set before the start: not even the prompt runs
        rt.describe(np.zeros(NUM_CODES, np.int32), cancelled=lambda: True, progress=lambda *e: steps.append(e))
    assert len(steps) == 5


@pytest.mark.slow   # whole 1024-token generations
def test_greedy_is_deterministic_and_matches_generate_with_the_same_grammar(rt):
    first = rt.generate_shape(text="a table", options=GREEDY)
    again = rt.generate_shape(text="a table", options=GREEDY)
    np.testing.assert_array_equal(first, again)

    prompt = rt._prompt_ids([{"type": "text", "text": PROMPTS["text_to_3d"].replace("{text}", "a table")}], None)
    prompt += [rt.codec.start_id]
    out = _greedy_generate_with_grammar(rt, prompt)
    assert out[-1] == rt.codec.end_id and len(out) == NUM_CODES + 1
    np.testing.assert_array_equal(rt.codec.parse_ids(out).codes, first)


def test_describe_takes_a_custom_question(rt):
    codes = np.zeros(NUM_CODES, np.int32)
    seen = []
    rt.describe(codes, options={"question": "What is it?", "max_new_tokens": 3}, progress=lambda *e: seen.append(e))
    # One event per token, stopping at max_new_tokens (or earlier at an end-of-turn token).
    assert 1 <= len(seen) <= 3 and seen == [("tokens", n, 3) for n in range(1, len(seen) + 1)]
    prompt = rt._prompt_ids([{"type": "text", "text": rt._with_mesh("What is it?", codes)}], None)
    text = rt.tokenizer.decode(prompt)
    assert text.index("<mesh-end>\nWhat is it?<|im_end|>") > text.index("<mesh-start>")
    with pytest.raises(TaskError) as err:
        rt.describe(codes, options={"question": " "})
    assert err.value.code == "bad_prompt"


@pytest.mark.slow   # whole 1024-token generations
def test_image_task_matches_generate_so_the_3d_rope_positions_are_right(rt):
    from backend.models.images import prepare_image

    ours = rt.generate_shape(image=red_box_image(), options=GREEDY)
    pixels = rt.image_processor(images=[prepare_image(red_box_image())], return_tensors="pt")
    content = [{"type": "image"}, {"type": "text", "text": PROMPTS["image_to_3d"]}]
    prompt = rt._prompt_ids(content, pixels) + [rt.codec.start_id]
    ids = torch.tensor([prompt])
    out = _greedy_generate_with_grammar(rt, prompt, pixel_values=pixels["pixel_values"],
                                        image_grid_thw=pixels["image_grid_thw"],
                                        mm_token_type_ids=(ids == rt.image_token_id).int())
    np.testing.assert_array_equal(rt.codec.parse_ids(out).codes, ours)


def test_seeded_sampling_is_reproducible(rt):
    codes = np.random.default_rng(0).integers(0, 8192, NUM_CODES).astype(np.int32)
    a = rt.describe(codes, options={"seed": 3, "max_new_tokens": 20})
    b = rt.describe(codes, options={"seed": 3, "max_new_tokens": 20})
    c = rt.describe(codes, options={"seed": 4, "max_new_tokens": 20})
    assert a == b and a != c


def test_bad_input_gets_clear_errors(rt, tmp_path):
    codes = np.zeros(NUM_CODES, np.int32)
    cases = [
        (lambda: rt.generate_shape(text="   "), "bad_prompt"),
        (lambda: rt.generate_shape(text="x" * 5000), "bad_prompt"),
        (lambda: rt.edit(codes, ""), "bad_prompt"),
        (lambda: rt.describe(codes[:100]), "bad_field"),
        (lambda: rt.describe(np.full(NUM_CODES, 9000)), "bad_field"),
        (lambda: rt.generate_shape(text="a", options={"top_p": 0}), "bad_field"),
        (lambda: rt.generate_shape(text="a", options={"temperature": "hot"}), "bad_field"),
        (lambda: rt.generate_shape(image="not an image"), "bad_image"),
        (lambda: ShapeLLMRuntime.load(tmp_path, PROMPTS), "model_unavailable"),
        (lambda: ShapeLLMRuntime.load(tmp_path / "nope", PROMPTS), "model_unavailable"),
    ]
    for call, code in cases:
        with pytest.raises(TaskError) as err:
            call()
        assert err.value.code == code, (code, err.value.message)


def test_missing_repo_offline_names_the_repo(monkeypatch, tmp_path):
    # The hub itself cannot be reached here: an empty cache with HF_HUB_OFFLINE stands in.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(TaskError) as err:
        ShapeLLMRuntime.load("yejunliang23/ShapeLLM-7B-omni", PROMPTS)
    assert err.value.code == "model_unavailable"
    assert "yejunliang23/ShapeLLM-7B-omni" in err.value.message and "HF_HUB_OFFLINE" in err.value.message


def test_release_frees_the_model(folder):
    rt = ShapeLLMRuntime.load(folder, PROMPTS)
    rt.release()
    assert rt.model is None
    with pytest.raises(TaskError) as err:
        rt.generate_shape(text="a chair")
    assert err.value.code == "model_error"


def test_sampling_defaults_are_the_reference_ones():
    s = Sampling.from_options(None)
    assert (s.seed, s.temperature, s.top_p, s.top_k, s.max_new_tokens) == (42, 0.7, 0.7, 8192, 2048)
    assert not s.greedy and Sampling.from_options({"temperature": 0}).greedy


def _greedy_generate_with_grammar(rt, prompt: list[int], **inputs) -> list[int]:
    """Plain model.generate() after `prompt`, greedy, under the same mesh-block grammar."""
    ids = torch.tensor([prompt])
    processor = MeshBlockLogitsProcessor(rt._constraint(allow_blocks=True, in_block=True), len(prompt))
    return rt.model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=NUM_CODES + 1,
        do_sample=False,
        repetition_penalty=rt.model.generation_config.repetition_penalty,
        logits_processor=[processor],
        eos_token_id=[rt.codec.end_id],
        **inputs,
    )[0, len(prompt) :].tolist()
