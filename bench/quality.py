"""Quality of a model preset (the embedded one by default) on held-out data.

    python bench/quality.py [--preset backend/weights/embedded] [--prompts bench/embedded_prompts.tsv]

Reports, through the real Pipeline (geometry + VQVAE + LLM, CPU):
- text -> 3D: accuracy per category on a prompt file (prompt <TAB> expected category per line),
  judged by nearest neighbour on occupancy against training-split reference shapes
  (backend/embedded/judge.py; no learned weights, separate from the generator);
- VQVAE round-trip voxel IoU on held-out procedural shapes and on ../shared/fixtures/meshes;
- describe accuracy (the answer names the shape's category) on held-out shapes;
- edit success on held-out shapes with held-out instruction wording (`--edit-wording
  held_out_2` .. `held_out_4`, `independent`: more held-out sets; `train`: the training pool's
  wordings, the same shapes, to tell wording from the edit itself): the asked proportion
  changes by >= 5% (taller/shorter: height over footprint; wider/thinner: width over height;
  add/remove: occupied voxels up/down) and the judge reads the answer as the shape it reads
  the true edit as (a true edit it reads as another category sets that category; the older
  "same category as the source" reading failed 16% of true edits, docs/embedded-model.md);
  the answer is the occupancy its mesh was made from (the decoded codes, or for a resize edit
  the resized voxels; the strict success read from the decoded codes is reported beside it);
  the strict success also asks the answer to be closer (voxel IoU) to the true edited shape
  than the unedited source is, i.e. the change was made and the rest of the shape stayed; the
  same judge run on the true edits themselves says how much of that a perfect model could
  score; edits the pipeline refuses with an error (an empty answer, or one that keeps too
  little of the source: preset edit_min_overlap) count as misses and are listed ("refused");
- for a preset with the edit kind cue, how often the model names the right edit kind for each
  held-out instruction wording;
- tokens/s of mesh generation and seconds per text -> 3D end to end;
and writes PNG contact sheets of the generated shapes and of the edits (source, answer, true
edit) (default out/quality/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def parse_prompt_file(path: Path) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise SystemExit(f"{path}:{n}: expected 'prompt<TAB>category', got {line!r}")
        rows.append((parts[0].strip(), parts[1].strip()))
    return rows


class Timer:
    """Progress callback that records when mesh tokens start and stop arriving."""

    def __init__(self):
        self.first = self.last = None
        self.tokens = 0

    def __call__(self, stage, done, total):
        if stage == "tokens":
            now = time.perf_counter()
            self.first = self.first or now
            self.last, self.tokens = now, done

    def rate(self) -> float | None:
        if self.first is None or self.last <= self.first or self.tokens < 2:
            return None
        return (self.tokens - 1) / (self.last - self.first)


def main(argv=None) -> dict:
    from backend.embedded import language as L  # numpy only; its wording pools are the choices below

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=str(ROOT / "backend/weights/embedded"))
    ap.add_argument("--quick", action="store_true",
                    help="two prompts, two categories, one shape of each per part, no fixtures (seconds; no figure to quote)")
    ap.add_argument("--prompts", type=Path, default=ROOT / "bench/embedded_prompts.tsv")
    ap.add_argument("--limit", type=int, default=0, help="use only the first N prompts (0 = all)")
    ap.add_argument("--parts", default="vqvae,text,describe,edit", help="which measurements to run")
    ap.add_argument("--describe-per-category", type=int, default=2)
    ap.add_argument("--edits-per-category", type=int, default=2)
    ap.add_argument("--edit-wording", default="held_out",
                    choices=tuple(L.EDIT_PHRASES["taller"]),  # every kind has the same pools
                    help="the instruction wordings of the edit cases: never seen in training (held_out, the "
                         "default; the later sets held_out_2 to held_out_4; independent, written by a helper "
                         "that saw neither the project nor the other sets), or the training pool's (the same "
                         "held-out shapes; tells wording from the edit itself)")
    ap.add_argument("--iou-per-category", type=int, default=4)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared/fixtures/meshes")
    ap.add_argument("--out", type=Path, default=ROOT / "out/quality")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="torch device for the models (cpu, cuda)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--temperature", type=float, help="override the preset's sampling (0 = greedy)")
    ap.add_argument("--top-k", type=int, help="override the preset's top_k")
    ap.add_argument("--top-p", type=float, help="override the preset's top_p")
    args = ap.parse_args(argv)
    if args.quick:
        args.limit, args.describe_per_category, args.edits_per_category, args.iou_per_category = 2, 1, 1, 1

    import torch

    torch.set_num_threads(args.threads)
    from backend.embedded.judge import NearestShapeJudge
    from backend.embedded.metrics import aspect, decode_occupancy, round_trip_iou, voxel_iou, width_ratio
    from backend.embedded.render import contact_sheet
    from backend.embedded.shape import sample_shape
    from backend.embedded.splits import CATEGORY_NAMES, shape_seed
    from backend.geometry.meshio import file_up_axis, load_mesh
    from backend.geometry.normalize import normalize
    from backend.geometry.surface import occupancy_to_mesh
    from backend.geometry.voxelize import voxelize_surface
    from backend.models.checkpoints import load_vqvae
    from backend.errors import TaskError
    from backend.geometry.errors import GeometryError
    from backend.edit import source_fill
    from backend.pipeline import Pipeline

    categories = CATEGORY_NAMES[:2] if args.quick else CATEGORY_NAMES
    prompts = parse_prompt_file(args.prompts)
    if args.limit:
        prompts = prompts[: args.limit]
    parts = set(args.parts.split(","))
    if "text" not in parts:
        prompts = []
    if "describe" not in parts:
        args.describe_per_category = 0
    if "edit" not in parts:
        args.edits_per_category = 0
    unknown = {c for _, c in prompts} - set(CATEGORY_NAMES)
    if unknown:
        raise SystemExit(f"unknown categories in {args.prompts}: {sorted(unknown)}")
    args.out.mkdir(parents=True, exist_ok=True)
    pipe = Pipeline(args.preset, device=args.device)
    vqvae = load_vqvae(pipe.preset.vqvae_source(), device="cpu")
    judge = NearestShapeJudge(per_category=2) if args.quick else NearestShapeJudge()
    report: dict = {"preset": str(args.preset), "supports": pipe.info()["supports"]}
    rng = np.random.default_rng(args.seed)
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k), ("top_p", args.top_p))
                if v is not None}
    report["sampling_overrides"] = sampling

    def held_out(category, k):
        return sample_shape(category, shape_seed(category, 100 + k, held_out=True))

    def judged_answer(result):
        """The category of an edit answer. The judge knows shapes at full scale, and an answer
        in the edit frame is smaller: its mesh is re-normalised first."""
        if result is None:
            return None
        try:
            return judge.category(voxelize_surface(normalize(result.vertices, "corner")[0], result.faces, 64))
        except GeometryError:  # too degenerate to re-normalise
            return None

    def judged_occupancy(occ):
        """judged_answer for an occupancy (a true edit), through the pipeline's own surface."""
        if not occ.any():
            return None
        v, f = occupancy_to_mesh(occ)
        return judged_answer(SimpleNamespace(vertices=v, faces=f))

    # -- the judge itself, on held-out ground truth -----------------------------------------
    truth = [(c, held_out(c, k).occupancy()) for c in categories for k in range(3)]
    report["judge_accuracy_on_ground_truth"] = float(np.mean([judge.category(o) == c for c, o in truth]))

    # -- VQVAE round trip ---------------------------------------------------------------------
    if "vqvae" in parts:
        occs = [held_out(c, k).occupancy() for c in categories for k in range(args.iou_per_category)]
        ious = round_trip_iou(vqvae, np.stack(occs)) if occs else np.full(1, np.nan)
        per_cat = {c: float(np.mean(ious[i * args.iou_per_category:(i + 1) * args.iou_per_category]))
                   for i, c in enumerate(categories)}
        report["vqvae_iou_heldout"] = {"mean": float(np.mean(ious)), "per_category": per_cat}
        fixtures = {}
        for path in sorted(args.fixtures.glob("*")) if args.fixtures.is_dir() and not args.quick else []:
            try:
                v, f = load_mesh(str(path))
                v_unit, _ = normalize(v, convention=pipe.preset.normalization, up=file_up_axis(str(path)))
                grid = voxelize_surface(v_unit, f, resolution=64)
                fixtures[path.name] = round_trip_iou(vqvae, grid[None])[0]
            except Exception as err:  # a fixture our loader rejects is reported, not fatal
                fixtures[path.name] = f"error: {err}"
        numeric = [x for x in fixtures.values() if isinstance(x, float)]
        report["vqvae_iou_fixtures"] = {"mean": float(np.mean(numeric)) if numeric else None, "per_mesh": fixtures}
        print(f"VQVAE round-trip IoU: held-out {np.mean(ious):.3f}, fixtures {report['vqvae_iou_fixtures']['mean']}",
              flush=True)

    # -- text -> 3D -----------------------------------------------------------------------------
    hits, seconds, rates, sheet, labels = defaultdict(list), [], [], [], []
    for i, (prompt, expected) in enumerate(prompts):
        timer = Timer()
        t = time.perf_counter()
        try:
            result = pipe.text_to_3d(prompt, {**sampling, "seed": args.seed + i}, progress=timer)
            occ = decode_occupancy(vqvae, result.codes[None])[0]
            got = judge.category(occ)
        except TaskError as err:  # e.g. no_shape: an all-empty answer counts as a miss
            occ, got = np.zeros((64, 64, 64), bool), err.code
        seconds.append(time.perf_counter() - t)
        if timer.rate():
            rates.append(timer.rate())
        hits[expected].append(got == expected)
        sheet.append(occ)
        labels.append(f"{expected}->{got}")
        print(f"text->3D {i + 1}/{len(prompts)} {prompt!r}: expected {expected}, judged {got}, "
              f"{seconds[-1]:.1f}s", flush=True)
    if prompts:
        report["text_to_3d"] = {
            "accuracy": float(np.mean([h for v in hits.values() for h in v])),
            "per_category": {c: float(np.mean(v)) for c, v in sorted(hits.items())},
            "prompts": len(prompts),
            "seconds_end_to_end": {"mean": float(np.mean(seconds)), "max": float(np.max(seconds))},
            "mesh_tokens_per_s": float(np.mean(rates)) if rates else None,
        }
        path = args.out / "text_to_3d_contact_sheet.png"
        contact_sheet(sheet, labels, columns=8, size=128).save(path)
        report["contact_sheet"] = str(path)

    # -- describe -------------------------------------------------------------------------------
    if report["supports"].get("describe") and args.describe_per_category:
        answers, ok = [], []
        for c in categories:
            for k in range(args.describe_per_category):
                shape = held_out(c, 50 + k)
                v, f = shape.mesh()
                question = L.describe_question(rng, "held_out")
                answer = pipe.describe(v, f, {**sampling, "seed": args.seed, "question": question})
                ok.append(L.category_in_text(answer) == c)
                answers.append({"category": c, "question": question, "answer": answer})
        report["describe"] = {"accuracy": float(np.mean(ok)), "shapes": len(ok), "examples": answers[:: max(1, len(answers) // 8)]}
        print(f"describe accuracy {np.mean(ok):.3f} over {len(ok)}", flush=True)

    # -- edit -----------------------------------------------------------------------------------
    if report["supports"].get("edit") and args.edits_per_category:
        edit_rng = np.random.default_rng(args.seed + 1)  # the same wordings whichever parts run
        results, strict, target_ious, source_ious = defaultdict(list), defaultdict(list), [], []
        from_codes = []  # strict success with the answer read from its decoded codes (the older reading)
        truth_results = defaultdict(list)  # the judge on the true edits themselves: its ceiling
        same_category = defaultdict(list)  # the older reading: the answer judged as the source's category
        edit_sheet, edit_labels = [], []
        refused = []  # edits the pipeline answered with an error (counted as misses)

        def made_change(kind, before, after, expected, judged):
            """The asked proportion changed by >= 5% and the judge reads `expected` (what it
            reads the true edit as; or the source's category, the older reading)."""
            measure = {"taller": aspect, "shorter": aspect, "wider": width_ratio, "thinner": width_ratio}
            if kind in measure:
                ratio = measure[kind](after) / max(measure[kind](before), 1e-6)
                changed = ratio > 1.05 if kind in ("taller", "wider") else ratio < 1 / 1.05
            else:
                ratio = after.sum() / max(before.sum(), 1)
                changed = ratio > 1.0 if kind == "add" else ratio < 1.0
            return bool(changed and after.any() and judged is not None and judged == expected)

        for c in categories:
            for k in range(args.edits_per_category):
                shape = held_out(c, 70 + k)
                kinds = L.possible_edits(shape)
                kind = kinds[(CATEGORY_NAMES.index(c) + k) % len(kinds)]
                instruction = L.edit_instruction(shape, kind, edit_rng, args.edit_wording)
                v, f = shape.mesh()
                # what the model reads and the true edit, in the frame the edit policy reads the
                # asked kind in (a resize: with room around the source; else re-normalised)
                fill = source_fill(pipe.preset.edit, kind)
                before, truth = L.edit_pair_occupancies(shape, kind, fill)
                try:
                    result = pipe.edit(v, f, instruction, {**sampling, "seed": args.seed})
                except TaskError as err:  # no_shape: an empty answer, or one refused as another shape
                    result = None
                    refused.append(f"{c} {kind}: {err.message}")
                # what the answer's mesh was made from: the decoded codes, or for a resize the
                # resized voxels themselves (the older reading, the codes decoded, is kept beside it)
                after = result.voxels if result else np.zeros_like(before)
                decoded = decode_occupancy(vqvae, result.codes[None])[0] if result else np.zeros_like(before)
                judged, judged_truth = judged_answer(result), judged_occupancy(truth)
                results[kind].append(made_change(kind, before, after, judged_truth, judged))
                from_codes.append(made_change(kind, before, decoded, judged_truth, judged_occupancy(decoded))
                                  and voxel_iou(decoded, truth) > voxel_iou(before, truth))
                same_category[kind].append(made_change(kind, before, after, c, judged))
                truth_results[kind].append(made_change(kind, before, truth, judged_truth, judged_truth))
                # how much of the shape stayed: voxel IoU with the true edited shape, against what
                # the unedited source scores (an answer closer to the truth than the source is)
                target_ious.append(float(voxel_iou(after, truth)))
                source_ious.append(float(voxel_iou(before, truth)))
                strict[kind].append(results[kind][-1] and target_ious[-1] > source_ious[-1])
                edit_sheet += [before, after, truth]
                edit_labels += [f"{c}", f"{kind}: {'ok' if strict[kind][-1] else 'miss'}", "true edit"]
        path = args.out / "edit_contact_sheet.png"
        contact_sheet(edit_sheet, edit_labels, columns=6, size=128).save(path)
        report["edit_contact_sheet"] = str(path)
        report["edit"] = {"success": float(np.mean([x for v in results.values() for x in v])),
                          "per_kind": {k: float(np.mean(v)) for k, v in results.items()},
                          "success_closer_than_source": float(np.mean([x for v in strict.values() for x in v])),
                          "per_kind_closer_than_source": {k: float(np.mean(v)) for k, v in strict.items()},
                          "success_closer_than_source_codes_decoded": float(np.mean(from_codes)),
                          "success_same_category_as_source": float(np.mean([x for v in same_category.values() for x in v])),
                          "true_edits_success": float(np.mean([x for v in truth_results.values() for x in v])),
                          "true_edits_per_kind": {k: float(np.mean(v)) for k, v in truth_results.items()},
                          "edit_wording": args.edit_wording,
                          "cases": sum(len(v) for v in results.values()),
                          "iou_with_true_edit": float(np.mean(target_ious)),
                          "source_iou_with_true_edit": float(np.mean(source_ious)),
                          "refused": refused}
        print(f"edit success {report['edit']['success']:.3f} (and closer to the true edit than the source: "
              f"{report['edit']['success_closer_than_source']:.3f}), voxel IoU with the true edit "
              f"{report['edit']['iou_with_true_edit']:.3f} (the unedited source: "
              f"{report['edit']['source_iou_with_true_edit']:.3f}); the true edits pass the same "
              f"judge {report['edit']['true_edits_success']:.3f}; refused with an error: {len(refused)}", flush=True)

    # -- the edit kind a model that names kinds names, on every wording of the --edit-wording pool --
    if report["supports"].get("edit") and pipe.preset.edit.read_kind and "edit" in parts:
        from backend.embedded.categories import CATEGORIES

        named = defaultdict(list)
        wrong = []
        for kind, phrases in L.EDIT_PHRASES.items():
            for phrase in phrases[args.edit_wording][:1] if args.quick else phrases[args.edit_wording]:
                # a wording that names a part, once per category with that part
                texts = sorted({L.with_part(phrase, kind, c.part) for c in CATEGORIES.values() if c.part})
                for text in texts[:1] if args.quick else texts:
                    got = pipe.edit_kind(text)
                    named[kind].append(got == kind)
                    if got != kind:
                        wrong.append(f"{text} -> {got}")
        report["edit_kind_named"] = {"accuracy": float(np.mean([x for v in named.values() for x in v])),
                                     "per_kind": {k: float(np.mean(v)) for k, v in named.items()},
                                     "wordings": sum(len(v) for v in named.values()),
                                     "pool": args.edit_wording, "misses": wrong}
        print(f"edit kind named right {report['edit_kind_named']['accuracy']:.3f} over "
              f"{report['edit_kind_named']['wordings']} {args.edit_wording} wordings", flush=True)

    (args.out / "quality.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k not in ("describe",)}, indent=2))
    return report


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    main()
