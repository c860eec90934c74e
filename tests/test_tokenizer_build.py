"""The small tokenizer keeps the published ShapeLLM-Omni layout and survives save/load."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
from transformers import AutoTokenizer

from backend.models.tokenizer_build import (
    MESH_END,
    MESH_START,
    QWEN_ADDED_TOKENS,
    build_tokenizer,
    mesh_token_strings,
)

CORPUS = [
    "a wooden chair with four legs",
    "Please generate a 3D asset based on the prompt I provided: a red car.",
    "Give a quick overview of the object represented by this 3D mesh.",
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    tok = build_tokenizer(CORPUS, folder=folder)
    return tok, AutoTokenizer.from_pretrained(str(folder))


def test_added_tokens_follow_the_bpe_vocabulary_contiguously(saved):
    tok, _ = saved
    names = [t for t, _ in QWEN_ADDED_TOKENS] + mesh_token_strings()
    ids = tok.convert_tokens_to_ids(names)
    first = ids[0]
    assert ids == list(range(first, first + len(names)))
    # Same offsets as the published vocabulary: <mesh0> is 22 after <|endoftext|>.
    assert tok.convert_tokens_to_ids("<mesh0>") - tok.convert_tokens_to_ids("<|endoftext|>") == 22
    assert tok.convert_tokens_to_ids(MESH_END) == len(tok) - 1
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_mesh_tokens_are_single_non_special_tokens(saved):
    tok, _ = saved
    text = MESH_START + "<mesh0><mesh8191><mesh77>" + MESH_END
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert ids == tok.convert_tokens_to_ids([MESH_START, "<mesh0>", "<mesh8191>", "<mesh77>", MESH_END])
    # Non-special: they survive skip_special_tokens, chat tokens do not.
    assert tok.decode(ids + tok.convert_tokens_to_ids(["<|im_end|>"]), skip_special_tokens=True) == text


def test_save_load_gives_identical_ids_and_exact_round_trip(saved):
    tok, loaded = saved
    text = "<|im_start|>user\nan unseen wörd 日本 <mesh5>\t!<|im_end|>"
    ids = tok(text)["input_ids"]
    assert loaded(text)["input_ids"] == ids
    assert loaded.decode(ids) == text
    assert len(loaded) == len(tok)


def test_chat_template_matches_qwen_vl_layout(saved):
    _, loaded = saved
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]}]
    text = loaded.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_empty_corpus_is_a_clear_error():
    with pytest.raises(ValueError, match="non-empty"):
        build_tokenizer([])
