"""Variations in our own loop: K shapes of one prompt as ONE batch vs K single runs, one after another.

    .venv/bin/python bench/variations.py            # K=4, three prompts, embedded model, CPU
    .venv/bin/python bench/variations.py --k 8 --threads 2
    .venv/bin/python bench/variations.py --quick    # CI's smoke test: K=2, one prompt, no target judged

Both sides run in one process, side by side (alternating which goes first), on the committed
embedded model on the CPU, through ShapeLLMRuntime: the batch is generate_shapes(count=K) (prefill
once, the KV cache copied to K rows, one forward pass per step for all rows), the sequence is K
calls of generate_shape with seeds seed, seed+1, ... Each answer is one 1024-code mesh block,
sampled (variations need sampling). Throughput: mesh tokens a second; the ratio is sequential
time / batch time. Target: >= 2x at K=4. It also counts the rows whose codes equal the single
run with the same seed (expected: all; only float summation order could part them).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np
import torch

from backend.models.codec import NUM_CODES
from backend.models.llm import ShapeLLMRuntime
from backend.models.presets import load_preset

PROMPTS = ["a lamp", "a chair", "a table with four legs"]
SAMPLING = {"temperature": 0.8, "top_p": 1.0, "top_k": 8192, "max_new_tokens": NUM_CODES + 2}


def load_embedded() -> ShapeLLMRuntime:
    preset = load_preset("embedded")
    return ShapeLLMRuntime.load(str(preset.llm_source()), preset.prompts, device="cpu", edit=preset.edit)


def batch(rt, prompt: str, k: int, seed: int):
    start = time.perf_counter()
    rows = rt.generate_shapes(text=prompt, options={**SAMPLING, "seed": seed}, count=k)
    return rows, time.perf_counter() - start


def sequential(rt, prompt: str, k: int, seed: int):
    start = time.perf_counter()
    rows = np.stack([rt.generate_shape(text=prompt, options={**SAMPLING, "seed": seed + i}) for i in range(k)])
    return rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--k", type=int, default=4, help="variations per prompt (default 4)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--quick", action="store_true", help="K=2, one prompt, for CI (numbers mean nothing)")
    args = parser.parse_args()
    prompts = PROMPTS[:1] if args.quick else PROMPTS
    k = 2 if args.quick else args.k
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    rt = load_embedded()
    rt.generate_shape(text="a cup", options={**SAMPLING, "seed": 0})  # warm-up: first-call costs on neither side
    print(f"CPU, embedded model, {args.threads} thread(s), K={k} variations of each prompt, temperature "
          f"{SAMPLING['temperature']}")
    times = {"batch": [], "sequential": []}
    equal = 0
    for n, prompt in enumerate(prompts):
        seed = 100 * n
        runs = [("batch", batch), ("sequential", sequential)]
        if n % 2:
            runs.reverse()  # alternate which goes first: both see the same machine state on average
        got = {}
        for name, run in runs:
            got[name], seconds = run(rt, prompt, k, seed)
            times[name].append(seconds)
        equal += sum(np.array_equal(a, b) for a, b in zip(got["batch"], got["sequential"]))
        different = len({row.tobytes() for row in got["batch"]})
        print(f"  {prompt!r:26} batch {times['batch'][-1]:6.2f} s   sequential {times['sequential'][-1]:6.2f} s"
              f"   ratio {times['sequential'][-1] / times['batch'][-1]:5.2f}x   {different} different shapes")
    tokens = k * NUM_CODES
    t_batch, t_seq = statistics.median(times["batch"]), statistics.median(times["sequential"])
    ratio = t_seq / t_batch
    print(f"  median: batch {tokens / t_batch:7.1f} mesh tok/s ({t_batch:.2f} s for {k} shapes)   "
          f"sequential {tokens / t_seq:7.1f} mesh tok/s ({t_seq:.2f} s)")
    print(f"  rows equal to the single run with the same seed: {equal} of {k * len(prompts)}")
    verdict = "not judged (quick mode)" if args.quick else "met" if ratio >= 2 else "NOT met"
    print(f"  throughput ratio, batched / sequential: {ratio:.2f}x; target >= 2x at K=4: {verdict}")


if __name__ == "__main__":
    main()
