"""VQVAE loading and pipeline stage timings, measured side by side in one run.

    .venv/bin/python bench/vqvae.py [--quick]

--quick (CI's smoke test, seconds): the tiny VQVAE's config for 1., one text->3D job in 2.

1. Loading the published-size VQVAE (133 M parameters) from a state_dict: our loader (built on
   the meta device, tensors assigned) vs the plain way (random init, then load_state_dict).
   Random full-size values stand in for the published 3DVQVAE.bin (no hub here).
2. Per-stage times of one text->3D job and one edit on the tiny test preset (CPU).
3. With CUDA: full-size encode/decode with fp16 inner blocks vs all fp32.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import numpy as np
import torch

from backend.models.checkpoints import build_vqvae
from backend.models.vqvae import VQVAE3D, VQVAEConfig


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_loading(quick: bool = False) -> None:
    from backend.models.tiny import TINY_VQVAE_CONFIG

    config = TINY_VQVAE_CONFIG if quick else VQVAEConfig()
    state = {k: v.clone() for k, v in VQVAE3D(config).state_dict().items()}

    def plain():
        model = VQVAE3D(config)
        model.load_state_dict(state, strict=True)

    def ours():
        build_vqvae(config, state, "cpu")

    t_plain, t_ours = best_of(plain), best_of(ours)
    print(f"{'tiny (quick mode)' if quick else 'full-size'} VQVAE load from a state_dict (CPU): plain {t_plain:.3f} s, ours {t_ours:.3f} s, "
          f"ratio {t_plain / t_ours:.1f}x")


def bench_tiny_pipeline(quick: bool = False) -> None:
    from backend.geometry.meshio import load_mesh
    from backend.models.tiny import write_tiny_preset
    from backend.pipeline import Pipeline

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        folder = write_tiny_preset(Path(tmp) / "tiny")
        print(f"tiny preset written in {time.perf_counter() - start:.2f} s")
        pipe = Pipeline(str(folder), device="cpu")
        teapot = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "meshes" / "teapot.stl"
        v, f = load_mesh(str(teapot))
        jobs = [
            ("text_to_3d (first, loads models)", lambda p: pipe.text_to_3d("a chair", {"seed": 1}, p)),
            ("text_to_3d", lambda p: pipe.text_to_3d("a chair", {"seed": 2}, p)),
            ("edit", lambda p: pipe.edit(v, f, "make it taller", {"seed": 3}, p)),
        ]
        if quick:
            jobs = jobs[:1]
        for name, job in jobs:
            marks = []

            def progress(stage, done, total):
                if stage != "tokens" or done == total:
                    marks.append((stage, time.perf_counter()))

            start = time.perf_counter()
            job(progress)
            end = time.perf_counter()
            spans, previous = {}, start
            for stage, at in marks:
                spans[stage] = spans.get(stage, 0.0) + at - previous
                previous = at
            detail = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in spans.items())
            print(f"tiny {name}: {end - start:.2f} s ({detail})")
        pipe.release()


def bench_cuda() -> None:
    if not torch.cuda.is_available():
        print("CUDA: not available, skipped the GPU part")
        return
    torch.manual_seed(0)
    model = VQVAE3D(VQVAEConfig()).cuda().eval()
    occupancy = (torch.rand(1, 1, 64, 64, 64, device="cuda") > 0.9).float()
    codes = torch.randint(0, 8192, (1, 1024), device="cuda")

    def timed(fn):
        fn()
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(5):
            fn()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / 5

    enc32, dec32 = timed(lambda: model.encode(occupancy)), timed(lambda: model.decode(codes))
    model.set_inner_dtype(torch.float16)
    enc16, dec16 = timed(lambda: model.encode(occupancy)), timed(lambda: model.decode(codes))
    print(f"CUDA full-size encode: fp32 {enc32 * 1e3:.1f} ms, fp16 inner {enc16 * 1e3:.1f} ms ({enc32 / enc16:.1f}x); "
          f"decode: fp32 {dec32 * 1e3:.1f} ms, fp16 inner {dec16 * 1e3:.1f} ms ({dec32 / dec16:.1f}x)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test for CI: seconds, numbers mean nothing")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    np.random.seed(0)
    bench_loading(args.quick)
    bench_tiny_pipeline(args.quick)
    if not args.quick:
        bench_cuda()
    return 0


if __name__ == "__main__":
    sys.exit(main())
