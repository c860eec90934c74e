"""Export the language model of a Qwen2.5-VL folder as a plain `Qwen2ForCausalLM` folder.

Why: vLLM's Qwen2.5-VL class needs torchvision, and on a CPU host the package index's
torchvision is a CUDA build that fails beside CPU torch; so on CPU vLLM serves the language
model text-only. For text-only input Qwen2.5-VL's M-RoPE gives the three position sections
(time, height, width) the same index, so each rotary frequency turns by the same angle as in
plain RoPE: the text model IS a Qwen2 decoder, same weights, same numbers.

Key mapping (both checkpoint layouts, the published one and transformers 5's):
    model.layers.* / model.embed_tokens.* / model.norm.*     kept
    model.language_model.{layers,embed_tokens,norm}.*        -> model.{...}
    lm_head.weight                                            kept
    visual.* / model.visual.*                                 dropped (the vision tower)

The folder also gets the tokenizer files (vLLM detokenises streamed text with them) and a
generation_config.json with the stop ids. Written once per source; a marker file holds the
source's fingerprint, so a changed model is exported again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from backend.errors import TaskError

MARKER = "shapellm_export.json"  # says what the folder was exported from
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
                   "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "chat_template.json")
# Text-model config keys copied as they are (transformers' Qwen2Config names).
TEXT_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "rms_norm_eps", "max_position_embeddings", "vocab_size", "hidden_act", "bos_token_id",
             "eos_token_id", "pad_token_id", "attention_dropout", "initializer_range")


def text_config(vl_config: dict) -> dict:
    """A Qwen2 config.json (dict) from a Qwen2.5-VL config.json (dict, either layout)."""
    text = dict(vl_config.get("text_config") or vl_config)  # transformers 5 nests it; 4.x keeps it on top
    rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
    theta = float(rope.get("rope_theta", text.get("rope_theta", 1_000_000.0)))
    config = {k: text[k] for k in TEXT_KEYS if k in text}
    dtype = text.get("dtype") or text.get("torch_dtype") or vl_config.get("dtype") or vl_config.get("torch_dtype")
    config.update({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "tie_word_embeddings": bool(vl_config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        # M-RoPE with equal section positions is plain RoPE (module docstring)
        "rope_theta": theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": theta},
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": int(text.get("num_hidden_layers", 0)),
        "use_cache": True,
    })
    if dtype:
        config["torch_dtype"] = config["dtype"] = dtype
    return config


def text_key(name: str) -> str | None:
    """The Qwen2ForCausalLM name of a Qwen2.5-VL weight, or None for a vision weight."""
    if name.startswith(("visual.", "model.visual.")):
        return None
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith(("model.", "lm_head.")):
        return name
    raise TaskError("model_error", f"unexpected weight {name!r} in a Qwen2.5-VL checkpoint")


def fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of the source's files: cheap, changes with them."""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def export_text_model(source: str | Path, out: str | Path) -> Path:
    """Write `out` as a Qwen2ForCausalLM folder of `source`'s language model (once)."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    source, out = Path(source), Path(out)
    stamp = {"source": str(source.resolve()), "fingerprint": fingerprint(source)}
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()) == stamp:
        return out
    files = sorted(source.glob("*.safetensors"))
    if not files:
        raise TaskError("model_unavailable", f"{source} holds no .safetensors weights to export")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    vl_config = json.loads((source / "config.json").read_text())
    (out / "config.json").write_text(json.dumps(text_config(vl_config), indent=2) + "\n")
    index = {}
    for number, path in enumerate(files):  # shard by shard: a 7B never sits in memory twice
        tensors = {}
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                new = text_key(name)
                if new is not None:
                    tensors[new] = f.get_tensor(name).contiguous()
        if tensors:
            shard = f"model-{number:05d}.safetensors"
            save_file(tensors, str(out / shard), metadata={"format": "pt"})
            index.update({name: shard for name in tensors})
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": index}, indent=1))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    generation = source / "generation_config.json"
    if generation.is_file():
        shutil.copy2(generation, out / "generation_config.json")
    marker.write_text(json.dumps(stamp))  # last: a folder without it is an unfinished export
    return out
