"""Builds a small tokenizer laid out like the published ShapeLLM-Omni (Qwen2.5-VL) tokenizer.

The published tokenizer is Qwen2's byte-level BPE (151643 merges-based tokens), then the 22
Qwen2.5-VL chat/vision tokens, then 8194 non-special added tokens: `<mesh0>`..`<mesh8191>`,
`<mesh-start>`, `<mesh-end>` at contiguous ids. We keep that exact layout and pipeline
(NFC, Qwen's split regex, byte-level BPE) but train the BPE part on a small corpus, so a tiny
model can be trained and saved with it and loaded back by the same code as the 7B
(`Qwen2Tokenizer` rebuilds it from tokenizer.json exactly as it rebuilds the published one).

Byte-level BPE covers every byte, so any prompt tokenizes (no unknown words), and decoding
gives back the exact text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer
from transformers import PreTrainedTokenizerFast
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer

MESH_CODEBOOK_SIZE = 8192
MESH_START = "<mesh-start>"
MESH_END = "<mesh-end>"

# Qwen2.5-VL's added tokens, in id order (151643..151664 in the published vocabulary).
# (token, special): the tool-call tags are non-special there, so we keep them so.
QWEN_ADDED_TOKENS = [
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", True),
    ("<|fim_middle|>", True),
    ("<|fim_suffix|>", True),
    ("<|fim_pad|>", True),
    ("<|repo_name|>", True),
    ("<|file_sep|>", True),
]

# The Qwen2-VL / Qwen2.5-VL chat template: a default system turn, images as
# <|vision_start|><|image_pad|><|vision_end|> in place, an assistant header on request.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}"
    "{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def mesh_token_strings() -> list[str]:
    """The 8194 mesh tokens in id order, as the published tokenizer adds them."""
    return [f"<mesh{k}>" for k in range(MESH_CODEBOOK_SIZE)] + [MESH_START, MESH_END]


def _texts(words_or_corpus: str | Iterable[str]) -> list[str]:
    if isinstance(words_or_corpus, str):
        return [words_or_corpus]
    texts = [t for t in words_or_corpus if isinstance(t, str) and t]
    if not texts:
        raise ValueError("build_tokenizer needs at least one non-empty string to learn from")
    return texts


def _train_bpe(texts: list[str], vocab_size: int) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Trains a byte-level BPE with Qwen2's normaliser and pre-tokeniser; returns vocab, merges."""
    tok = Tokenizer(BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is unknown
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return model["vocab"], merges


def build_tokenizer(
    words_or_corpus: str | Iterable[str],
    folder: str | Path | None = None,
    vocab_size: int = 1024,
    base_size: int | None = None,
) -> PreTrainedTokenizerFast:
    """A Qwen2-style tokenizer trained on `words_or_corpus` (one string or many), with the
    Qwen2.5-VL chat tokens and template and the 8194 mesh tokens. `vocab_size` bounds the BPE
    part only (at least the 256 byte symbols); `base_size` pads it to that many entries (151643
    gives the published ids). Saved to `folder` when given."""
    vocab, merges = _train_bpe(_texts(words_or_corpus), max(int(vocab_size), 256))
    if base_size is not None:  # unreachable filler entries (no merge makes them): the added
        for i in range(len(vocab), base_size):  # tokens then get the published ids (151643: Qwen's)
            vocab[f"<|filler{i}|>"] = i
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|endoftext|>",  # the constructor adds these first: keep <|endoftext|> first
        pad_token="<|endoftext|>",
        errors="replace",
        model_max_length=32768,
    )
    # Qwen2Tokenizer's constructor may already have added its special tokens; adding an existing
    # token is a no-op, so this keeps the published order whatever it did.
    tokenizer.add_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN_ADDED_TOKENS])
    tokenizer.add_tokens(
        [AddedToken(t, special=False, normalized=False) for t in mesh_token_strings()]
    )
    _check_layout(tokenizer, len(vocab))
    tokenizer.eos_token = "<|im_end|>"  # as in Qwen2.5-VL-Instruct: the end of a chat turn
    tokenizer.chat_template = CHAT_TEMPLATE
    if folder is not None:
        tokenizer.save_pretrained(str(folder))
    return tokenizer


def _check_layout(tokenizer: PreTrainedTokenizerFast, base: int) -> None:
    """The published layout: chat tokens right after the BPE vocabulary, then mesh tokens."""
    expected = [t for t, _ in QWEN_ADDED_TOKENS] + mesh_token_strings()
    ids = tokenizer.convert_tokens_to_ids(expected)
    if ids != list(range(base, base + len(expected))):
        raise RuntimeError("tokenizer layout differs from the published one (added-token ids not contiguous)")
