"""How much of an edit answer is a copy of the input's codes, for two ways to define "taller".

    python research/edit_copyability.py [--per-category 4]

In the edit frame (the source fills 1/1.35 of the cube, low corner at -0.5, Z up) with the
committed VQVAE, for held-out procedural shapes:
- "stretch": the true edit of the dataset (the whole shape scaled 1.35 in Z);
- "seam": the bottom 16 voxels (one token's height) repeated, the rest moved up one token,
  i.e. legs (or a base) made longer by one step, everything above kept.
For each it prints the codes that differ from the input's at the same place, the share of
answer codes that equal the input's code at the same place or one token before, and the
share of the changed codes that are the input's code one token before. A model with rotary
positions can learn "copy the code at a fixed offset"; a stretch asks it to make new codes.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from research.edit_probe import TOKEN_HEIGHT, seam_taller  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-category", type=int, default=4, help="held-out shapes per category")
    ap.add_argument("--preset", default=str(ROOT / "backend/weights/embedded"))
    args = ap.parse_args(argv)

    import torch

    from backend.embedded import language as L
    from backend.embedded.shape import sample_shape
    from backend.embedded.splits import CATEGORY_NAMES, shape_seed
    from backend.models.checkpoints import load_vqvae
    from backend.models.presets import load_preset

    torch.set_num_threads(2)
    vqvae = load_vqvae(load_preset(args.preset).vqvae_source(), device="cpu")

    def encode(occupancy):
        return vqvae.encode(torch.from_numpy(occupancy).float()[None, None])[0].numpy()

    stats = defaultdict(list)
    for category in CATEGORY_NAMES:
        for k in range(args.per_category):
            shape = sample_shape(category, shape_seed(category, 170 + k, held_out=True))
            source, stretched = L.edit_pair_occupancies(shape, "taller", L.EDIT_FILL)
            assert not source[..., -TOKEN_HEIGHT:].any()  # the source fits below the top token
            seam = seam_taller(source)
            before = encode(source)
            for name, occupancy in (("stretch", stretched), ("seam", seam)):
                after = encode(occupancy)
                same = after == before
                one_before = np.r_[False, after[1:] == before[:-1]]
                changed = ~same
                stats[name, "changed"].append(changed.sum())
                stats[name, "copied"].append((same | one_before).mean())
                stats[name, "changed = one before"].append((changed & one_before).sum() / max(changed.sum(), 1))

    shapes = len(stats["seam", "changed"])
    print(f"{shapes} held-out shapes, 'make it taller' in the edit frame")
    print(f"{'definition':<12}{'changed codes':>15}{'copied (k or k-1)':>20}{'changed = k-1':>16}")
    for name in ("stretch", "seam"):
        print(f"{name:<12}{np.mean(stats[name, 'changed']):>15.1f}{np.mean(stats[name, 'copied']):>20.3f}"
              f"{np.mean(stats[name, 'changed = one before']):>16.3f}")
    return {f"{a} {b}": float(np.mean(v)) for (a, b), v in stats.items()}


if __name__ == "__main__":
    main()
