"""Decoding speed: our KV-cache loop (backend/models/llm.py) vs plain model.generate().

    .venv/bin/python bench/llm.py            # CPU: tiny model; GPU too when CUDA is available
    .venv/bin/python bench/llm.py --cpu-only
    .venv/bin/python bench/llm.py --quick     # CI's smoke test: CPU part once, no target judged
    .venv/bin/python bench/llm.py --lm-head  # mesh-rows lm_head vs the whole head, embedded model

Both sides run the same task on the same model in one process, side by side, greedy, with the
same grammar (generate() gets it as MeshBlockLogitsProcessor) and the model's repetition
penalty, and must produce identical tokens; the script fails if they differ.

- CPU: the tiny random model of the tests (tiny_llm.write_tiny_llm). Task 1: a shape (1024
  mesh tokens). Task 2: a description (text tokens, mesh tokens banned). Target: >= 1.5x.
- GPU (when available): a randomly initialised model with the 7B's shapes, bf16, against the
  memory-bandwidth bound (bytes of weights read per token / HBM bandwidth) and generate().
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np
import torch

from backend.models.codec import NUM_CODES
from backend.models.llm import MeshBlockLogitsProcessor, ShapeLLMRuntime
from backend.models.presets import REFERENCE_PROMPTS

PROMPTS = REFERENCE_PROMPTS  # the published prompts
# HBM bandwidth of the GPUs named in the issue (bytes/s), by a substring of the device name.
HBM_BANDWIDTH = {"H200": 4.8e12, "H100": 3.35e12, "A100": 2.0e12}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours_shape(rt: ShapeLLMRuntime) -> tuple[list[int], float]:
    sync(rt._device)
    start = time.perf_counter()
    codes = rt.generate_shape(text="a wooden chair", options={"temperature": 0})
    sync(rt._device)
    return rt.codec.codes_to_ids(codes)[1:], time.perf_counter() - start  # codes + <mesh-end>


def generate_shape(rt: ShapeLLMRuntime) -> tuple[list[int], float]:
    text = PROMPTS["text_to_3d"].replace("{text}", "a wooden chair")
    prompt = rt._prompt_ids([{"type": "text", "text": text}], None) + [rt.codec.start_id]
    processor = MeshBlockLogitsProcessor(rt._constraint(allow_blocks=True, in_block=True), len(prompt))
    return _generate(rt, prompt, processor, NUM_CODES + 1, [rt.codec.end_id])


def describe_ids(rt: ShapeLLMRuntime, codes, max_new: int, ours: bool) -> tuple[list[int], float]:
    content = [{"type": "text", "text": rt._with_mesh(PROMPTS["describe"], codes)}]
    prompt = rt._prompt_ids(content, None)
    constraint = rt._constraint(allow_blocks=False, in_block=False)
    if not ours:
        processor = MeshBlockLogitsProcessor(constraint, len(prompt))
        return _generate(rt, prompt, processor, max_new, sorted(rt.stop_ids))
    from backend.models.llm import Sampling

    sampling = Sampling.from_options({"temperature": 0, "max_new_tokens": max_new}, rt.model.generation_config)
    sync(rt._device)
    start = time.perf_counter()
    ids = rt._decode(prompt, None, constraint, sampling, max_new, lambda *a: None, None)
    sync(rt._device)
    return ids, time.perf_counter() - start


def _generate(rt, prompt, processor, max_new, eos) -> tuple[list[int], float]:
    ids = torch.tensor([prompt], device=rt._device)
    sync(rt._device)
    start = time.perf_counter()
    with torch.inference_mode():
        out = rt.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            repetition_penalty=rt.model.generation_config.repetition_penalty,
            logits_processor=[processor],
            eos_token_id=eos,
            pad_token_id=rt.tokenizer.pad_token_id,
        )
    sync(rt._device)
    return out[0, len(prompt) :].tolist(), time.perf_counter() - start


def compare(name: str, ours, theirs, repeats: int) -> float:
    """Runs both `repeats` times alternately; checks identical tokens; prints the best rates."""
    best_ours = best_theirs = float("inf")
    for _ in range(repeats):
        ids_ours, t_ours = ours()
        ids_theirs, t_theirs = theirs()
        if ids_ours != ids_theirs:
            first = next(i for i, (a, b) in enumerate(zip(ids_ours + [None], ids_theirs + [None])) if a != b)
            raise SystemExit(f"{name}: outputs differ at token {first} ({len(ids_ours)} vs {len(ids_theirs)} tokens)")
        best_ours, best_theirs = min(best_ours, t_ours), min(best_theirs, t_theirs)
    n = len(ids_ours)
    ratio = best_theirs / best_ours
    print(
        f"  {name:<28} {n:5d} tokens  ours {n / best_ours:8.1f} tok/s   generate() {n / best_theirs:8.1f} tok/s"
        f"   ratio {ratio:5.2f}x   identical greedy outputs: yes"
    )
    return ratio


def cpu_bench(repeats: int, quick: bool = False) -> None:
    from backend.models.tiny_llm import write_tiny_llm

    torch.set_num_threads(1)
    print(f"CPU, tiny random Qwen2.5-VL (tests' model), 1 thread, best of {repeats}")
    with tempfile.TemporaryDirectory() as folder:
        write_tiny_llm(folder)
        rt = ShapeLLMRuntime.load(folder, PROMPTS, device="cpu")
    codes = np.random.default_rng(0).integers(0, 8192, NUM_CODES).astype(np.int32)
    ratios = [
        compare("text->3D shape (1024+1)", lambda: ours_shape(rt), lambda: generate_shape(rt), repeats),
        compare(
            "describe (text, <=256)",
            lambda: describe_ids(rt, codes, 256, ours=True),
            lambda: describe_ids(rt, codes, 256, ours=False),
            repeats,
        ),
    ]
    verdict = "not judged (quick mode)" if quick else "met" if min(ratios) >= 1.5 else "NOT met"
    print(f"  target >= 1.5x: {verdict} (min ratio {min(ratios):.2f}x)")


# Qwen2.5-VL-7B's shapes; the vocabulary as ShapeLLM-Omni's (151665 + 8194 mesh tokens, padded).
SEVEN_B = dict(vocab=159872, hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4,
               mrope=[16, 24, 24], vision_depth=32, vision_hidden=1280, vision_intermediate=3420)


def shaped_bench(device: torch.device, dims: dict, repeats: int) -> None:
    """A randomly initialised model of the given shapes (bf16 on CUDA, fp32 on CPU)."""
    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from backend.models.tiny_llm import write_tiny_llm
    from backend.models.tokenizer_build import CHAT_TEMPLATE

    with tempfile.TemporaryDirectory() as folder:
        write_tiny_llm(folder)  # only for its tokenizer and image processor files
        tokenizer = AutoTokenizer.from_pretrained(folder)
        image_processor = AutoImageProcessor.from_pretrained(folder)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=dims["vocab"],
            hidden_size=dims["hidden"],
            intermediate_size=dims["intermediate"],
            num_hidden_layers=dims["layers"],
            num_attention_heads=dims["heads"],
            num_key_value_heads=dims["kv_heads"],
            max_position_embeddings=128000,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": dims["mrope"]},
            eos_token_id=ids("<|im_end|>"),
        ),
        vision_config=dict(
            depth=dims["vision_depth"],
            hidden_size=dims["vision_hidden"],
            intermediate_size=dims["vision_intermediate"],
            num_heads=16,
            out_hidden_size=dims["hidden"],
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
    )
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=dtype).eval()
    model.generation_config.eos_token_id = [ids("<|im_end|>"), ids("<|endoftext|>")]
    model.generation_config.repetition_penalty = 1.05
    rt = ShapeLLMRuntime(model, tokenizer, image_processor, CHAT_TEMPLATE, PROMPTS, device)

    # Bytes read per decoded token: every weight of the text model except the embedding table
    # (one row is read), plus the LM head. The vision tower runs only on image prompts.
    text = model.model.language_model
    weight_bytes = sum(p.numel() * p.element_size() for n, p in text.named_parameters() if "embed_tokens" not in n)
    weight_bytes += model.lm_head.weight.numel() * model.lm_head.weight.element_size()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    bandwidth = next((bw for key, bw in HBM_BANDWIDTH.items() if key in name), None)
    print(f"{name}, random Qwen2.5-VL {dims['layers']} layers x {dims['hidden']}, {dtype}, best of {repeats}")
    print(f"  weights read per token: {weight_bytes / 1e9:.2f} GB")
    ours_shape(rt)  # warm-up: kernels, allocator
    ratio = compare("text->3D shape (1024+1)", lambda: ours_shape(rt), lambda: generate_shape(rt), repeats)
    ids_ours, seconds = ours_shape(rt)
    rate = len(ids_ours) / seconds
    if bandwidth:
        bound = bandwidth / weight_bytes
        print(f"  bandwidth bound {bound:.0f} tok/s at {bandwidth / 1e12:.2f} TB/s: ours {rate:.1f} tok/s = {rate / bound:.0%} of it")
    else:
        print(f"  no HBM bandwidth known for {name}: bound not computed (ours {rate:.1f} tok/s)")
    print(f"  ours vs generate(): {ratio:.2f}x")
    rt.release()


def lm_head_bench(repeats: int, threads: int) -> float:
    """Decode time of a greedy mesh answer (1 prefill + 1024 steps) on the embedded model with
    the whole lm_head vs only its 8192 mesh rows, alternately in one process; the tokens must
    be identical. Returns the ratio whole/rows."""
    from backend.models.presets import load_preset

    torch.set_num_threads(threads)
    preset = load_preset("embedded")
    rt = ShapeLLMRuntime.load(str(preset.llm_source()), preset.prompts, device="cpu", edit=preset.edit)
    vocab, hidden = rt.model.lm_head.weight.shape
    print(f"CPU, embedded model ({vocab} x {hidden} lm_head, {rt.plan.dtype}), {threads} thread(s), best of {repeats}")

    def run(rows: bool):
        rt.mesh_rows_head = rows
        ids, seconds = ours_shape(rt)
        return ids, seconds

    run(True)  # warm-up
    best = {True: float("inf"), False: float("inf")}
    answers = {}
    for _ in range(repeats):
        for rows in (False, True):
            ids, seconds = run(rows)
            best[rows] = min(best[rows], seconds)
            if answers.setdefault(rows, ids) != ids:
                raise SystemExit("greedy answers differ between repeats")
    if answers[True] != answers[False]:
        raise SystemExit("mesh-rows and whole lm_head give different tokens")
    n = len(answers[True])
    ratio = best[False] / best[True]
    print(f"  whole lm_head  {1e3 * best[False] / n:7.3f} ms/token")
    print(f"  mesh rows      {1e3 * best[True] / n:7.3f} ms/token")
    print(f"  ratio {ratio:.3f}x (whole/rows), {n} tokens, identical greedy tokens: yes")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-only", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="CPU part once, for CI (numbers mean nothing)")
    parser.add_argument("--lm-head", action="store_true", help="only the mesh-rows lm_head comparison")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for --lm-head (default 1)")
    args = parser.parse_args()
    if args.quick:
        args.cpu_only, args.repeats = True, 1
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    if args.lm_head:
        lm_head_bench(args.repeats, args.threads)
        return
    cpu_bench(args.repeats, args.quick)
    if torch.cuda.is_available() and not args.cpu_only:
        shaped_bench(torch.device("cuda"), SEVEN_B, args.repeats)
    elif not args.cpu_only:
        print("GPU: no CUDA device here; the 7B-shaped run needs one")


if __name__ == "__main__":
    main()
