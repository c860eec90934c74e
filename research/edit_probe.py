"""Probe whether the model can learn one edit kind: "taller" as a seam move or as a stretch.

Runs against commit 45eb3b5 (research/README.md): `data` runs here, but the train command's
edit stage, --edit-fill and --grid-edit-positions, and the runtime's edit frame (preset
edit_fill) that `eval` relies on, are gone from the product.

    python research/edit_probe.py data --truth seam --source .cache/embedded --to .cache/probe
    python -m backend.embedded.train --workdir .cache/probe --out .cache/probe_preset \\
        --stages edit --edit-fill 0.7407407407407407 --edit-task-weights 0,0,1 --edit-steps 600
    python research/edit_probe.py eval .cache/probe_preset --truth seam

(add `--grid-edit-positions 1` to the train command for the grid-positions probe; `eval` reads
the preset's own settings.)

`data` copies a workdir whose codes were made with --edit-fill 0.7407 (and its llm_polished/
and VQVAE files) keeping only the "taller" pairs; with --truth seam their targets become the
seam move (the bottom token repeated, the rest moved up one token: legs one step longer),
made from the source codes alone (the VQVAE's codes move exactly with a one-token shift).
With --shapes-per-category N the pairs are instead made from the first N training shapes of
every category (stretched ones too), encoded in the edit frame here (about 0.1 s per encoding
on this CPU; a seam pair needs one, a stretch pair two), so a probe can see far more pairs.
`eval` runs the preset's edit on held-out shapes (2 per category, held-out wordings, the
preset's own decoding) and prints the share of answer codes equal to the true edit's, the
same over the codes the edit changes, the voxel IoU with the true edit (and the source's),
and how many answers are closer to the true edit than the source. Results:
docs/embedded-model.md, "Tried next".
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TOKEN_HEIGHT = 16  # voxels: one token is 4 latent cells of 4 voxels along Z


def seam_taller(occupancy: np.ndarray) -> np.ndarray:
    """The bottom token's height repeated, the rest moved up (the source must fit below the top token)."""
    return np.concatenate([occupancy[..., :TOKEN_HEIGHT], occupancy[..., :-TOKEN_HEIGHT]], axis=2)


def seam_codes(src: np.ndarray) -> np.ndarray:
    """The seam move on codes [N, 1024]: 4 tokens per (x, y) column, bottom first."""
    columns = src.reshape(len(src), -1, 4)
    return np.stack([columns[..., 0], columns[..., 0], columns[..., 1], columns[..., 2]], axis=2).reshape(len(src), -1)


def edit_frame_pairs(source: Path, per_category: int, truth: str) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Source codes, target codes and meta of "taller" pairs from the first `per_category`
    training shapes of each category (the list the training stages use), encoded in the edit
    frame with the workdir's VQVAE."""
    from backend.embedded import language as L
    from backend.embedded.train import PER_CATEGORY, encode_each, first_of_each_category, load_trained_vqvae
    from backend.embedded.train_llm import shape_meta
    from backend.embedded.splits import split_shapes

    shapes = split_shapes(PER_CATEGORY, held_out=False, stretch_fraction=0.5)  # as train.py's default stages
    picked = [shapes[i] for i in first_of_each_category(len(shapes), PER_CATEGORY, per_category)]
    vqvae = load_trained_vqvae(source)
    src = encode_each(vqvae, picked, lambda s: s.occupancy(fill=L.EDIT_FILL))
    if truth == "seam":
        tgt = seam_codes(src)
    else:
        tgt = encode_each(vqvae, picked, lambda s: L.edited_occupancy(s, "taller", L.EDIT_FILL))
    return src, tgt, [dict(shape_meta(s), edit="taller") for s in picked]


def make_data(source: Path, to: Path, truth: str, per_category: int = 0) -> None:
    to.mkdir(parents=True, exist_ok=True)
    codes = dict(np.load(source / "codes.npz"))
    if per_category:
        src, tgt, meta = edit_frame_pairs(source, per_category, truth)
    else:
        every = json.loads(str(codes["edit_meta"]))
        keep = [i for i, m in enumerate(every) if m["edit"] == "taller"]
        src, tgt, meta = codes["edit_src"][keep], codes["edit_tgt"][keep], [every[i] for i in keep]
        if truth == "seam":
            tgt = seam_codes(src).astype(src.dtype)
    codes.update(edit_src=src, edit_tgt=tgt, edit_meta=np.array(json.dumps(meta)))
    np.savez(to / "codes.npz", **codes)
    for name in ("vqvae_final.pt", "vqvae_decoder.pt", "vqvae_metrics.json"):
        shutil.copy(source / name, to / name)
    if not (to / "llm_polished").exists():
        shutil.copytree(source / "llm_polished", to / "llm_polished")
    print(f"{len(meta)} taller pairs ({truth} targets) in {to}")


def evaluate(preset: str, truth: str) -> dict:
    import torch

    from backend.embedded import language as L
    from backend.embedded.metrics import decode_occupancy, voxel_iou
    from backend.embedded.shape import sample_shape
    from backend.embedded.splits import CATEGORY_NAMES, shape_seed
    from backend.errors import TaskError
    from backend.models.checkpoints import load_vqvae
    from backend.pipeline import Pipeline

    torch.set_num_threads(2)
    pipe = Pipeline(preset, device="cpu")
    vqvae = load_vqvae(pipe.preset.vqvae_source(), device="cpu")

    def encode(occupancy):
        return vqvae.encode(torch.from_numpy(occupancy).float()[None, None])[0].numpy()

    rng = np.random.default_rng(7)
    right, changed_right, ious, source_ious = [], [], [], []
    for category in CATEGORY_NAMES:
        for k in range(2):
            shape = sample_shape(category, shape_seed(category, 170 + k, held_out=True))
            source, true_edit = L.edit_pair_occupancies(shape, "taller", L.EDIT_FILL)
            if truth == "seam":
                true_edit = seam_taller(source)
            before, target = encode(source), encode(true_edit)
            v, f = shape.mesh()
            try:
                answer = pipe.edit(v, f, L.edit_instruction(shape, "taller", rng, "held_out"), {"seed": 0}).codes
                after = decode_occupancy(vqvae, answer[None])[0]
            except TaskError:  # no shape: every code counts as wrong
                answer, after = np.full_like(target, -1), np.zeros_like(source)
            changed = target != before
            right.append(np.mean(answer == target))
            changed_right.append(np.mean(answer[changed] == target[changed]))
            ious.append(voxel_iou(after, true_edit))
            source_ious.append(voxel_iou(source, true_edit))
    closer = int(np.sum(np.array(ious) > np.array(source_ious)))
    print(f"{preset} ({truth} truths, {len(ious)} held-out shapes): codes right {np.mean(right):.3f}, changed codes "
          f"right {np.mean(changed_right):.3f}, IoU with the true edit {np.mean(ious):.3f} (the source "
          f"{np.mean(source_ious):.3f}), closer than the source {closer}/{len(ious)}")
    return {"codes_right": float(np.mean(right)), "changed_right": float(np.mean(changed_right)), "closer": closer}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data")
    data.add_argument("--source", type=Path, default=ROOT / ".cache/embedded")
    data.add_argument("--to", type=Path, required=True)
    data.add_argument("--truth", choices=("seam", "stretch"), default="seam")
    data.add_argument("--shapes-per-category", type=int, default=0,
                      help="pairs from this many training shapes per category (default: the workdir's pairs)")
    run = sub.add_parser("eval")
    run.add_argument("preset")
    run.add_argument("--truth", choices=("seam", "stretch"), default="seam")
    args = ap.parse_args(argv)
    if args.command == "data":
        make_data(args.source, args.to, args.truth, args.shapes_per_category)
    else:
        evaluate(args.preset, args.truth)


if __name__ == "__main__":
    main()
