"""Our own decoding loop vs vLLM, side by side in one run, on the embedded model (CPU).

    .venv/bin/python bench/engines.py            # 8 jobs from 8 clients; agreement on 20 prompts
    .venv/bin/python bench/engines.py --quick    # CI's smoke run: 2 jobs, 2 prompts, no target judged

Needs the vLLM engine: bash .ci/setup-vllm.

1. Throughput: N concurrent text-to-3D jobs from N clients over ZeroMQ, through two real
   backend processes: `--engine own` (one job at a time, its queue) and `--engine vllm
   --max-jobs N` (batched). Wall time from the first submit to the last result, both warmed
   by one job first (vLLM's start and our model load are not counted).
2. Agreement: greedy codes of held-out prompts (bench/embedded_prompts.tsv) through vLLM
   (all sent at once, so batched) vs our loop. Target: identical for >= 19 of 20.

The engine is started once here (backend/models/vllm_process.py) and the vLLM backend and
the agreement part use it by URL (`--engine-url`), as a studio's server would be used.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np

from addon.wire.client import Client, run_job
from tests.backend_process import backend_process

PROMPTS_FILE = ROOT / "bench" / "embedded_prompts.tsv"


def held_out_prompts(count: int) -> list[str]:
    lines = [line.split("\t")[0] for line in PROMPTS_FILE.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    return lines[:count]


def concurrent_jobs(address: str, prompts: list[str]) -> tuple[float, list]:
    """N clients, one job each, all submitted at once: (wall seconds, terminal events)."""
    clients = [Client(address) for _ in prompts]
    try:
        barrier = threading.Barrier(len(prompts))

        def one(index: int):
            barrier.wait()
            return run_job(clients[index], "text_to_3d", {"prompt": prompts[index]}, timeout=1800)

        started = time.perf_counter()
        with ThreadPoolExecutor(len(prompts)) as pool:
            events = list(pool.map(one, range(len(prompts))))
        return time.perf_counter() - started, events
    finally:
        for client in clients:
            client.close()


def throughput(engine_url: str, prompts: list[str]) -> dict:
    walls = {}
    for name, args in (("own", ["--engine", "own"]),
                       ("vllm", ["--engine", "vllm", "--engine-url", engine_url, "--max-jobs", len(prompts)])):
        with backend_process("embedded", args=args, timeout=120, wait_ready=True) as backend:
            client = backend.client()
            warm = run_job(client, "text_to_3d", {"prompt": "a chair"}, timeout=600)  # loads the models
            assert warm.type == "result", warm.fields
            try:
                wall, events = concurrent_jobs(backend.address, prompts)
            except ConnectionError:  # the server went silent: show why
                print(backend.log()[-4000:], file=sys.stderr)
                raise
            bad = [e.fields for e in events if e.type != "result"]
            assert not bad, f"{name}: {bad}"
            walls[name] = wall
            print(f"  {name:5s}: {len(prompts)} jobs in {wall:6.1f} s ({wall / len(prompts):.2f} s a shape)", flush=True)
    print(f"  vLLM batched vs own sequential: {walls['own'] / walls['vllm']:.2f}x the throughput")
    return walls


def agreement(engine_url: str, prompts: list[str]) -> int:
    from backend.pipeline import Pipeline

    own = Pipeline("embedded", device="cpu")
    vllm = Pipeline("embedded", device="cpu", engine="vllm", engine_url=engine_url, max_jobs=len(prompts))
    with ThreadPoolExecutor(min(8, len(prompts))) as pool:  # 8 at once: vLLM batches them
        theirs = list(pool.map(lambda p: vllm.text_to_3d(p).codes, prompts))
    same = 0
    for prompt, codes in zip(prompts, theirs):
        mine = own.text_to_3d(prompt).codes
        differ = int((mine != codes).sum())
        same += differ == 0
        first = "" if not differ else f", first at token {int(np.argmax(mine != codes))}"
        print(f"  {'same' if not differ else 'DIFFERENT':9s} {differ:4d} codes differ{first}: {prompt}")
    print(f"  identical greedy codes: {same} of {len(prompts)}")
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 jobs, 2 prompts; no target judged")
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=20)
    args = parser.parse_args()
    jobs, count = (2, 2) if args.quick else (args.jobs, args.prompts)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    from backend.models.llm import resolve_llm_folder
    from backend.models.presets import load_preset
    from backend.models.vllm_process import LocalVllmEngine

    started = time.perf_counter()
    engine = LocalVllmEngine.start(resolve_llm_folder(load_preset("embedded").llm_source()),
                                   max_jobs=max(jobs, count), dtype="float32")
    print(f"vLLM engine up in {time.perf_counter() - started:.1f} s at {engine.url} "
          f"({'text-only' if engine.text_only else 'Qwen2.5-VL'})", flush=True)
    try:
        prompts = held_out_prompts(max(jobs, count))
        print(f"1. {jobs} concurrent text-to-3D jobs from {jobs} clients (embedded model, CPU):")
        walls = throughput(engine.url, prompts[:jobs])
        print(f"2. agreement, greedy codes, vLLM (batched) vs our loop, {count} held-out prompts:")
        same = agreement(engine.url, prompts[:count])
    finally:
        engine.stop()
    if args.quick:
        return 0
    ok = same >= count - 1
    print(f"target identical >= {count - 1} of {count}: {'met' if ok else 'NOT met'}; "
          f"throughput {walls['own'] / walls['vllm']:.2f}x")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
