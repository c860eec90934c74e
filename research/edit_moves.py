"""How well a preset makes each proportion edit as a code move, free-running and teacher-forced.

Runs against commit 45eb3b5 (research/README.md): it relies on runtime features gone from the
product (ShapeLLMRuntime.edit's kind_token= oracle, rt.edit_copy_bias, the edit kind cue, grid
positions, preset.edit_fill) and on presets trained with them.

    python research/edit_moves.py PRESET [--per-category 1] [--force-kind] [--pairs WORKDIR/codes.npz]

For held-out procedural shapes in the preset's edit frame, every move of research/moves.py
that fits (taller, shorter, wider, thinner; the true edit is the move of the source's codes),
with held-out instruction wordings:
- free-running, the preset's own greedy edit: how often the asked side grows or shrinks the
  asked way (decoded voxels), the share of the codes the move changes that the answer has
  right, and how many answers are closer (voxel IoU) to the true move than the source is; for
  a preset with the edit kind cue also how often the model names the asked kind, and with
  `--force-kind` the edit runs with the right kind given instead (an oracle: the moves alone);
- teacher-forced, the right kind given where the preset has the cue: the share of changed and
  of kept codes whose argmax is right given the true codes before them; `--pairs` adds the
  same on 40 training pairs of a workdir's codes.npz (made with --edit-data moves), so
  underfitting (both low) tells from overfitting (training pairs high only).
Results: docs/embedded-model.md, "Edit".
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from backend.embedded import language as L  # noqa: E402
from research import moves as M  # noqa: E402
from backend.embedded.metrics import aspect, decode_occupancy, voxel_iou, width_ratio  # noqa: E402
from backend.embedded.shape import sample_shape  # noqa: E402
from backend.embedded.splits import CATEGORY_NAMES, shape_seed  # noqa: E402
from backend.embedded.train_llm import shape_from_meta  # noqa: E402
from backend.models.checkpoints import load_vqvae  # noqa: E402
from backend.models.codec import EDIT_KINDS, NUM_CODES  # noqa: E402
from backend.models.llm import ShapeLLMRuntime  # noqa: E402
from backend.models.presets import load_preset  # noqa: E402
from backend.pipeline import Pipeline  # noqa: E402

GROWS = ("taller", "wider")


def load_runtime(preset) -> ShapeLLMRuntime:
    """The LLM as the pipeline loads it, with every option the preset declares."""
    return Pipeline(preset, device="cpu").llm_runtime()


def kind_token(rt: ShapeLLMRuntime, kind: str) -> int | None:
    return None if rt.edit_kind_ids is None else rt.edit_kind_ids[EDIT_KINDS.index(kind)]


@torch.no_grad()
def teacher_forced(rt: ShapeLLMRuntime, source: np.ndarray, target: np.ndarray, instruction: str,
                   kind: int | None) -> tuple[float, float]:
    """(changed, kept): the share of the codes the move changes / keeps whose argmax is the
    target's, reading the true codes before them, as the runtime would (positions, cue, prior)."""
    prompt = rt._prompt_ids([{"type": "text", "text": rt._edit_text(source, instruction)}], None)
    prompt = prompt + ([kind] if kind is not None else []) + [rt.codec.start_id]
    ids = prompt + [int(rt.codec.code_ids[c]) for c in target]
    embeds = rt.model.get_input_embeddings()(torch.tensor([ids]))
    if kind is not None:
        embeds[0, len(prompt):] += rt.model.get_input_embeddings().weight[kind]
    if rt.aligned_edit_positions:
        positions = torch.as_tensor(np.ascontiguousarray(rt._edit_positions(prompt)[:, : len(ids)])).view(3, 1, -1)
    else:
        positions = torch.arange(len(ids)).view(1, 1, -1).expand(3, 1, -1)
    hidden = rt.model.model(inputs_embeds=embeds, position_ids=positions).last_hidden_state[0]
    logits = rt.model.lm_head(hidden[len(prompt) - 1: len(prompt) - 1 + NUM_CODES])[:, rt.codec.code_ids]
    if rt.edit_copy_bias:
        logits[torch.arange(NUM_CODES), torch.as_tensor(source)] += rt.edit_copy_bias
    right = logits.argmax(-1).numpy() == target
    changed = target != source
    return float(right[changed].mean()) if changed.any() else float("nan"), float(right[~changed].mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("preset")
    ap.add_argument("--per-category", type=int, default=1)
    ap.add_argument("--force-kind", action="store_true", help="give the right kind (presets with the edit kind cue)")
    ap.add_argument("--pairs", type=Path, help="a workdir's codes.npz: teacher-forced on its training pairs too")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    preset = load_preset(args.preset)
    vqvae = load_vqvae(preset.vqvae_source(), device="cpu")
    rt = load_runtime(preset)
    if args.force_kind and rt.edit_kind_ids is None:
        raise SystemExit("--force-kind needs a preset with the edit kind cue")
    empty = M.empty_code(vqvae)
    rng = np.random.default_rng(5)
    free, forced_tf = defaultdict(lambda: defaultdict(list)), defaultdict(list)
    for kind in M.MOVE_KINDS:
        for category in CATEGORY_NAMES:
            for k in range(args.per_category):
                shape = sample_shape(category, shape_seed(category, 130 + k, held_out=True))
                occupancy = shape.occupancy(fill=preset.edit_fill)
                source = vqvae.encode(torch.from_numpy(occupancy).float()[None, None])[0].numpy().astype(np.int64)
                if not M.can_move(source, kind, category, empty):
                    continue
                target = M.move(source, kind, category, empty)
                instruction = preset.model_text(L.edit_instruction(shape, kind, rng, "held_out"))
                given = kind_token(rt, kind)
                answer = np.asarray(rt.edit(source, instruction, {"temperature": 0.0},
                                            kind_token=given if args.force_kind else None))
                after, before, truth = (decode_occupancy(vqvae, c[None])[0] for c in (answer, source, target))
                measure = aspect if kind in ("taller", "shorter") else width_ratio
                ratio = measure(after) / max(measure(before), 1e-6)
                row = free[kind]
                row["direction"].append(bool(after.any() and (ratio > 1 if kind in GROWS else ratio < 1)))
                changed = target != source
                row["changed_right"].append(float((answer[changed] == target[changed]).mean()))
                row["closer"].append(bool(voxel_iou(after, truth) > voxel_iou(before, truth)))
                if rt.edit_kind_ids is not None:
                    row["named"].append(rt.edit_kind(instruction) == kind)
                forced_tf[("held-out shapes", kind)].append(teacher_forced(rt, source, target, instruction, given))
    if args.pairs:
        raw = np.load(args.pairs)
        meta = json.loads(str(raw["edit_meta"]))
        for i in np.random.default_rng(3).choice(len(meta), 40, replace=False):
            kind = meta[i]["edit"]
            if kind in M.MOVE_KINDS:
                instruction = L.edit_instruction(shape_from_meta(meta[i]), kind, rng, "train")
                forced_tf[("training pairs", kind)].append(teacher_forced(
                    rt, raw["edit_src"][i].astype(np.int64), raw["edit_tgt"][i].astype(np.int64), instruction,
                    kind_token(rt, kind)))
    print(f"free-running ({'right kind forced' if args.force_kind else 'the preset as it is'}), held-out shapes "
          f"and wordings:")
    for kind, row in free.items():
        named = f", kind named {sum(row['named'])}" if row["named"] else ""
        n = len(row["direction"])
        print(f"  {kind}: {n} cases, direction right {sum(row['direction'])}, changed codes right "
              f"{np.mean(row['changed_right']):.3f}, closer than the source {sum(row['closer'])}{named}")
    print("teacher-forced (the right kind given where the preset has the cue): changed / kept codes right")
    for (split, kind), rows in sorted(forced_tf.items()):
        values = np.array(rows, float)
        print(f"  {split}, {kind}: {len(rows)} cases, {np.nanmean(values[:, 0]):.3f} / {np.nanmean(values[:, 1]):.3f}")


if __name__ == "__main__":
    main()
