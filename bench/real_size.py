"""The published model's size on this machine's CPU: random weights with the published shapes.

    .venv/bin/python bench/real_size.py --folder /big/disk/shapellm-random        # full size
    .venv/bin/python bench/real_size.py --folder out/rs --scale 0.02 --decode-tokens 4   # quick

Run by hand, not in CI: the full size writes ~16.7 GB (bf16 shards) and loads up to ~17 GB.

1. Builds (once; reused when the folder already holds this scale) a Qwen2.5-VL folder laid out
   like yejunliang23/ShapeLLM-7B-omni: config.json in the published (flat, `torch_dtype`
   bfloat16) format, the published key names (`model.layers.N...`, `visual.blocks.N...`,
   `lm_head.weight`) in bf16 safetensors shards with model.safetensors.index.json, and a
   tokenizer with the published ids (<mesh0> = 151665, <mesh-start> = 159857). Shapes: 8.35 B
   parameters, vocab 159,859, the full vision tower. Every tensor is written chunk by chunk
   straight into its shard: never a whole tensor, let alone two copies, in memory.
   --scale S < 1 shrinks widths and depths (same structure, same vocabulary) for a quick run.
2. For each dtype (default float32 and bfloat16), in a fresh process: the memory plan (it refuses
   float32 at full size on a 24-32 GiB machine: that is the point), then, where it fits, the load
   through ShapeLLMRuntime.load, peak RSS (VmHWM; and the process's own memory apart from mapped
   weight files, which is what the plan bounds), load time, prefill s/token (a describe prompt:
   the 1026-token mesh block and the question) and decode s/token of mesh tokens with the
   mesh-rows lm_head and with the whole head (identical tokens, and their time ratio).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

PUBLISHED_VOCAB = 159859  # 151665 Qwen2.5-VL tokens + 8194 mesh tokens
QWEN_BASE = 151643  # BPE entries before the added tokens
SHARD_BYTES = 4 * 10**9  # ~4 GB shards, like the published Qwen2.5-VL-7B repos
CHUNK_ELEMENTS = 1 << 24  # random values generated 16 M at a time (64 MB of float32)
SAFETENSORS_DTYPES = {torch.bfloat16: "BF16", torch.float16: "F16", torch.float32: "F32"}
MARKER = "real_size.json"


# ------------------------------------------------------------------------------------------
# The published config, scaled


def published_config(scale: float = 1.0) -> dict:
    """config.json in the published format (transformers 4.49's flat Qwen2.5-VL layout).
    scale < 1 keeps head sizes (128 text, 80 vision) and shrinks counts and widths."""

    def n(full, least=1):
        return max(least, round(full * scale))

    heads = n(28)
    kv_heads = 4 if heads % 4 == 0 else 1
    vision_heads = n(16)
    depth = n(32)
    return {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"],
        "model_type": "qwen2_5_vl",
        "attention_dropout": 0.0,
        "bos_token_id": 151643,
        "eos_token_id": 151645,
        "vision_start_token_id": 151652,
        "vision_end_token_id": 151653,
        "vision_token_id": 151654,
        "image_token_id": 151655,
        "video_token_id": 151656,
        "hidden_act": "silu",
        "hidden_size": 128 * heads,
        "initializer_range": 0.02,
        "intermediate_size": 64 * n(18944 / 64, 2),
        "max_position_embeddings": 128000,
        "max_window_layers": 28,
        "num_attention_heads": heads,
        "num_hidden_layers": n(28, 2),
        "num_key_value_heads": kv_heads,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]},
        "rope_theta": 1000000.0,
        "sliding_window": 32768,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.49.0",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": PUBLISHED_VOCAB,
        "vision_config": {
            "depth": depth,
            "hidden_act": "silu",
            "hidden_size": 80 * vision_heads,
            "intermediate_size": n(3420, 16),
            "num_heads": vision_heads,
            "in_chans": 3,
            "out_hidden_size": 128 * heads,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "spatial_patch_size": 14,
            "window_size": 112,
            "fullatt_block_indexes": [i for i in range(depth) if i % 8 == 7] or [depth - 1],
            "tokens_per_second": 2,
            "temporal_patch_size": 2,
        },
    }


def published_tensors(folder: Path) -> list[tuple[str, tuple[int, ...]]]:
    """(published key, shape) of every weight: the model is built on the meta device (no
    memory) and its names mapped back to the checkpoint's (`model.language_model.` ->
    `model.`, `model.visual.` -> `visual.`), as transformers maps them when loading."""
    from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration

    config = AutoConfig.from_pretrained(str(folder))
    with torch.device("meta"):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config)
    out = []
    for name, p in model.state_dict().items():
        name = name.replace("model.language_model.", "model.", 1).replace("model.visual.", "visual.", 1)
        out.append((name, tuple(p.shape)))
    return out


# ------------------------------------------------------------------------------------------
# Writing safetensors tensor by tensor


def write_shard(path: Path, tensors: list[tuple[str, tuple[int, ...]]], dtype: torch.dtype, generator) -> None:
    """A safetensors file (8-byte header length, JSON header, raw data) whose tensors are
    generated and written in chunks: norms 1, everything else N(0, 0.02)."""
    size = torch.empty((), dtype=dtype).element_size()
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        count = math.prod(shape)
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + count * size]}
        offset += count * size
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in tensors:
            left = math.prod(shape)
            is_norm = name.endswith("norm.weight") or ".norm1." in name or ".norm2." in name or "ln_q" in name
            while left:
                n = min(left, CHUNK_ELEMENTS)
                if is_norm:
                    chunk = torch.ones(n, dtype=dtype)
                else:
                    chunk = torch.randn(n, generator=generator).mul_(0.02).to(dtype)
                f.write(chunk.view(torch.uint8).numpy().tobytes())
                left -= n


def build(folder: Path, scale: float, seed: int = 0) -> dict:
    """Writes the random model folder (skipped when `folder` already holds this scale)."""
    marker = folder / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("scale") == scale:
        return json.loads(marker.read_text())
    from backend.models.tiny_llm import TINY_CORPUS, TINY_MAX_PIXELS, TINY_MIN_PIXELS, write_processor_files
    from backend.models.tokenizer_build import build_tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    (folder / "config.json").write_text(json.dumps(published_config(scale), indent=2))
    (folder / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": 151643, "eos_token_id": [151645, 151643], "pad_token_id": 151643, "do_sample": True,
         "repetition_penalty": 1.05, "temperature": 0.1, "top_k": 1, "top_p": 0.001}, indent=2))
    tokenizer = build_tokenizer(TINY_CORPUS, base_size=QWEN_BASE)
    write_processor_files(folder, tokenizer, TINY_MIN_PIXELS, TINY_MAX_PIXELS)
    tensors = published_tensors(folder)
    size = 2  # bf16, as published
    shards, current, used = [], [], 0
    for name, shape in tensors:
        nbytes = math.prod(shape) * size
        if current and used + nbytes > SHARD_BYTES:
            shards.append(current)
            current, used = [], 0
        current.append((name, shape))
        used += nbytes
    shards.append(current)
    generator = torch.Generator().manual_seed(seed)
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        write_shard(folder / name, shard, torch.bfloat16, generator)
        for key, shape in shard:
            weight_map[key] = name
            total += math.prod(shape) * size
        print(f"  wrote {name} ({len(shard)} tensors)", flush=True)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    info = {"scale": scale, "parameters": total // size, "bytes": total, "shards": len(shards),
            "tensors": len(tensors), "build_s": round(time.perf_counter() - start, 1)}
    marker.write_text(json.dumps(info))
    return info


# ------------------------------------------------------------------------------------------
# Measuring (in a fresh process per dtype)


def status(field: str = "VmHWM") -> int:
    """Bytes of a /proc/self/status field: VmHWM (peak RSS), RssAnon (process memory), RssFile
    (resident pages of mapped files: the safetensors shards a same-dtype load maps without
    copying; the kernel can drop them, so they are not what the plan must fit)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss() -> int:
    return status("VmHWM")


def measure(folder: Path, dtype: str, decode_tokens: int) -> dict:
    import numpy as np
    from transformers import AutoConfig, DynamicCache

    from backend.errors import TaskError
    from backend.models.codec import NUM_CODES
    from backend.models.llm import Sampling, ShapeLLMRuntime
    from backend.models.memory import checkpoint_dtype, choose_dtype, plan_load
    from backend.models.presets import REFERENCE_PROMPTS

    cpu = torch.device("cpu")
    chosen = choose_dtype(dtype, cpu, checkpoint_dtype(folder))
    plan = plan_load(AutoConfig.from_pretrained(str(folder)), cpu, chosen)
    result = {"dtype": dtype, "plan": plan.describe(), "plan_needed": plan.needed, "plan_fits": plan.fits,
              "plan_alternatives": plan.alternatives}
    anon_before = status("RssAnon")
    start = time.perf_counter()
    try:
        rt = ShapeLLMRuntime.load(folder, dict(REFERENCE_PROMPTS), device="cpu", dtype=dtype)
    except TaskError as err:
        return {**result, "refused": f"{err.code}: {err.message}"}
    result["load_s"] = time.perf_counter() - start
    result["rss_after_load"] = peak_rss()
    with torch.inference_mode():  # a first forward pages in weights the load only mapped
        start = time.perf_counter()
        rt._prefill(rt._prompt_ids([{"type": "text", "text": "hello"}], None),
                    None, DynamicCache(config=rt.model.config.text_config))
        result["first_forward_s"] = time.perf_counter() - start
    ids = rt.tokenizer.convert_tokens_to_ids(["<mesh0>", "<mesh-start>", "<mesh-end>"])
    result["ids_ok"] = ids == [151665, 159857, 159858]

    codes = np.random.default_rng(0).integers(0, 8192, NUM_CODES).astype(np.int32)
    prompt = rt._prompt_ids([{"type": "text", "text": rt._with_mesh(rt.prompts["describe"], codes)}], None)
    with torch.inference_mode():
        start = time.perf_counter()
        rt._prefill(prompt, None, DynamicCache(config=rt.model.config.text_config))
        result["prefill_s_per_token"] = (time.perf_counter() - start) / len(prompt)
    result["prefill_tokens"] = len(prompt)

    text = rt.prompts["text_to_3d"].replace("{text}", "a wooden chair")
    mesh_prompt = rt._prompt_ids([{"type": "text", "text": text}], None) + [rt.codec.start_id]
    sampling = Sampling.from_options({"temperature": 0, "max_new_tokens": decode_tokens}, rt.model.generation_config)
    runs = {}
    for rows in (True, False, True, False):  # alternately: both see the same machine state
        rt.mesh_rows_head = rows
        stamps = []
        answer = rt._decode(mesh_prompt, None, rt._constraint(allow_blocks=True, in_block=True), sampling,
                            decode_tokens + 1, lambda *_: stamps.append(time.perf_counter()), None)
        steps = sorted(b - a for a, b in zip(stamps, stamps[1:]))  # the first stamp follows the prefill
        median = steps[len(steps) // 2]
        if rows in runs and runs[rows][0] != answer:
            raise SystemExit("greedy answers differ between repeats")
        runs[rows] = (answer, min(median, runs.get(rows, (None, float("inf")))[1]))
    result["identical_tokens"] = runs[True][0] == runs[False][0]
    result["decode_s_per_token_rows"] = runs[True][1]
    result["decode_s_per_token_whole"] = runs[False][1]
    result["lm_head_ratio"] = runs[False][1] / runs[True][1]
    result["peak_rss"] = peak_rss()
    result["anon_growth"] = status("RssAnon") - anon_before
    result["file_rss"] = status("RssFile")
    return result


def report(r: dict) -> None:
    print(f"{r['dtype']}:")
    print(f"  memory plan: {r['plan']}")
    if "refused" in r:
        print(f"  refused before loading: {r['refused']}")
        return
    gb = 2**30
    print(f"  load {r['load_s']:.1f} s (+ {r['first_forward_s']:.1f} s first forward), RSS after load "
          f"{r['rss_after_load'] / gb:.2f} GiB, peak RSS {r['peak_rss'] / gb:.2f} GiB")
    print(f"  process memory grown by the load and the runs {r['anon_growth'] / gb:.2f} GiB + mapped file pages "
          f"{r['file_rss'] / gb:.2f} GiB; the plan: {r['plan_needed'] / gb:.2f} GiB; "
          f"tokenizer ids published: {r['ids_ok']}")
    print(f"  prefill {r['prefill_s_per_token']:.4f} s/token ({r['prefill_tokens']} tokens)")
    print(f"  decode  {r['decode_s_per_token_rows']:.4f} s/token with the mesh-rows lm_head, "
          f"{r['decode_s_per_token_whole']:.4f} with the whole head: ratio {r['lm_head_ratio']:.3f}x; "
          f"identical tokens: {r['identical_tokens']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folder", required=True, type=Path, help="where the random model is (or will be) written")
    parser.add_argument("--scale", type=float, default=1.0, help="1: the published size; e.g. 0.02 for a quick run")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--decode-tokens", type=int, default=16, help="mesh tokens decoded per head variant")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # child process: one dtype
    args = parser.parse_args(argv)
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.measure:
        print("RESULT " + json.dumps(measure(args.folder, args.measure, args.decode_tokens)), flush=True)
        return 0
    if not 0 < args.scale <= 1:
        parser.error("--scale must be in (0, 1]")
    print(f"building random weights, scale {args.scale}, in {args.folder} ...", flush=True)
    info = build(args.folder, args.scale)
    print(f"  {info['parameters'] / 1e9:.3f} B parameters, {info['bytes'] / 1e9:.2f} GB in {info['shards']} shards, "
          f"{info['tensors']} tensors (built in {info['build_s']} s)")
    results = []
    for dtype in args.dtypes.split(","):
        command = [sys.executable, __file__, "--folder", str(args.folder), "--measure", dtype,
                   "--decode-tokens", str(args.decode_tokens), "--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if done.returncode != 0 or line is None:
            print(f"{dtype}: the measuring process failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            results.append({"dtype": dtype, "failed": done.returncode})
            continue
        results.append(json.loads(line[len("RESULT "):]))
        report(results[-1])
    if args.json:
        args.json.write_text(json.dumps({"build": info, "results": results}, indent=2))
    return 0 if all("failed" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
