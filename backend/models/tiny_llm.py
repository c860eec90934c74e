"""Writes a tiny random ShapeLLM-shaped LLM folder: the same classes and files as
`yejunliang23/ShapeLLM-7B-omni` (Qwen2_5_VLForConditionalGeneration with its vision tower,
the processor files: image processor config, tokenizer and chat template), at toy sizes.

Qwen2_5_VLProcessor itself cannot be built without torchvision (its video processor needs it),
so we write the processor's files directly, exactly as the published repo holds them; the
runtime loads tokenizer and image processor separately (see llm.py), the same way for both.

Tests, the server and the pipeline load it through the very loader the 7B uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2VLImageProcessor,
)

from .tokenizer_build import CHAT_TEMPLATE, build_tokenizer

# Enough text to give the BPE the words of the reference prompts.
TINY_CORPUS = [
    "Please generate a 3D asset based on the prompt I provided: a wooden chair",
    "Generate a 3D mesh from the provided image.",
    "Give a quick overview of the object represented by this 3D mesh.",
    "Edit this 3D mesh: make it taller. A small table, a red car, a lamp, a cup.",
    "You are a helpful assistant.",
]

# Image patches are 14 px and merged 2x2, so 28 px per LLM token; capping the pixels keeps a
# 512x512 reference image at 4x4 = 16 image tokens in the tiny model.
TINY_MAX_PIXELS = 112 * 112
TINY_MIN_PIXELS = 56 * 56


def tiny_config(tokenizer, hidden: int = 64, layers: int = 2, rope_theta: float = 1000000.0) -> Qwen2_5_VLConfig:
    """A Qwen2.5-VL config of toy size whose special ids come from `tokenizer`."""
    ids = tokenizer.convert_tokens_to_ids
    heads = 4
    head_dim = hidden // heads
    # mrope splits head_dim/2 rotary pairs over (time, height, width), like [16, 24, 24] at 7B.
    half = head_dim // 2
    mrope = [half - 2 * (half * 3 // 8), half * 3 // 8, half * 3 // 8]
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=hidden,
            intermediate_size=hidden * 2,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=2,
            max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": rope_theta, "mrope_section": mrope},
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
        ),
        vision_config=dict(
            depth=2,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=hidden,
            fullatt_block_indexes=[1],
            window_size=56,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )


def write_processor_files(folder: Path, tokenizer, min_pixels: int, max_pixels: int) -> None:
    """The processor files of the published repo: preprocessor_config.json (naming
    Qwen2_5_VLProcessor, so AutoProcessor finds it where torchvision is installed),
    the tokenizer files and chat_template.json."""
    image_processor = Qwen2VLImageProcessor(
        patch_size=14,
        merge_size=2,
        temporal_patch_size=2,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
    )
    image_processor.save_pretrained(str(folder))
    config_path = folder / "preprocessor_config.json"
    config = json.loads(config_path.read_text())
    config["processor_class"] = "Qwen2_5_VLProcessor"
    config["image_processor_type"] = "Qwen2VLImageProcessor"
    config_path.write_text(json.dumps(config, indent=2))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(folder))
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": CHAT_TEMPLATE}, indent=2))


def write_tiny_llm(folder: str | Path, seed: int = 0, corpus: list[str] | None = None) -> Path:
    """Saves a tiny random model + processor to `folder` (created if needed) and returns it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(corpus or TINY_CORPUS)
    config = tiny_config(tokenizer)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    # Reference-like generation defaults; eos = <|im_end|> and <|endoftext|> as in Qwen2.5-VL.
    ids = tokenizer.convert_tokens_to_ids
    model.generation_config = GenerationConfig(
        bos_token_id=ids("<|endoftext|>"),
        eos_token_id=[ids("<|im_end|>"), ids("<|endoftext|>")],
        pad_token_id=ids("<|endoftext|>"),
        do_sample=True,
        repetition_penalty=1.05,
        temperature=0.7,
        top_p=0.7,
        top_k=8192,
    )
    model.save_pretrained(str(folder))
    write_processor_files(folder, tokenizer, TINY_MIN_PIXELS, TINY_MAX_PIXELS)
    return folder
