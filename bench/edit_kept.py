"""Proportion edits of real meshes: is the artist's mesh kept, and is the asked side changed?

    python bench/edit_kept.py [--fixtures ../shared/fixtures/meshes] [--quick]

Every fixture mesh (and one of about 100k triangles made by subdividing the bunny) is edited
through the embedded preset's Pipeline with the four button wordings ("make it taller", ...).
For each edit it prints: whether the result has the input's faces and vertex count, the largest
move of a coordinate on an axis the edit does not change (0 means bit-for-bit), the asked
side's ratio (target EDIT_FACTOR, 1.35, within 5%) and the edit's time. Edits the policy
refuses (no room, a flat side) are listed with their message. --quick: two small fixtures, one
kind (seconds, no targets: for CI to see the bench still runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

WORDINGS = {"taller": "make it taller", "shorter": "make it shorter", "wider": "make it wider",
            "thinner": "make it thinner"}
AXIS_OF = {"taller": 2, "shorter": 2, "wider": 0, "thinner": 0}


def meshes(folder: Path, quick: bool):
    import trimesh

    from backend.geometry.meshio import file_up_axis, load_mesh

    names = ["torus.STL", "chair_model.obj"] if quick else sorted(p.name for p in folder.iterdir() if p.suffix != ".md")
    for name in names:
        v, f = load_mesh(str(folder / name))
        yield name, np.asarray(v, np.float32), np.asarray(f, np.int32), file_up_axis(name)
    if not quick:  # the speed case: about 100k triangles
        v, f = load_mesh(str(folder / "bunny.ply"))
        big = trimesh.Trimesh(v, f, process=False)
        while len(big.faces) < 100_000:
            big = big.subdivide()
        yield f"bunny subdivided ({len(big.faces)} tris)", np.asarray(big.vertices, np.float32), \
            np.asarray(big.faces, np.int32), "z"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared/fixtures/meshes")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from backend.errors import TaskError
    from backend.geometry.resize import EDIT_FACTOR
    from backend.pipeline import Pipeline

    pipe = Pipeline("embedded", device="cpu")
    pipe.text_to_3d("a chair")  # load the models outside the timings
    kinds = ["taller"] if args.quick else list(WORDINGS)
    rows, refused = [], []
    for name, v, f, up in meshes(args.fixtures, args.quick):
        for kind in kinds:
            start = time.perf_counter()
            try:
                result = pipe.edit(v, f, WORDINGS[kind], {"up": up})
            except TaskError as err:
                refused.append((name, kind, err.message))
                print(f"{name:32s} {kind:8s} refused: {err.message}", flush=True)
                continue
            seconds = time.perf_counter() - start
            # the asked side in the file's own frame: Z-up's height is a Y-up file's Y
            axis = AXIS_OF[kind] if up == "z" or AXIS_OF[kind] == 0 else 1
            moved_axes = {m.axis for m in result.deform or []}
            kept_axes = [a for a in range(3) if a not in moved_axes]
            kept = bool(result.faces.shape == f.shape and np.array_equal(result.faces, f) and len(result.vertices) == len(v))
            still = float(np.abs(result.vertices[:, kept_axes] - v[:, kept_axes]).max()) if kept and kept_axes else float("nan")
            ratio = float(np.ptp(result.vertices[:, axis]) / np.ptp(v[:, axis])) if kept else float("nan")
            want = EDIT_FACTOR if kind in ("taller", "wider") else 1 / EDIT_FACTOR
            right = kept and abs(ratio / want - 1) <= 0.05 and axis in moved_axes and still == 0.0
            rows.append(dict(mesh=name, kind=kind, kept=kept, other_axes_max_move=still, ratio=ratio,
                             right=right, seconds=seconds, read=result.edit_kind))
            print(f"{name:32s} {kind:8s} read {result.edit_kind:8s} kept {kept!s:5s} other axes moved {still:.1e}  "
                  f"side x{ratio:.3f} (want x{want:.3f})  {'right' if right else 'WRONG'}  {seconds:.2f}s", flush=True)
    done = len(rows)
    summary = {"edits": done, "refused": len(refused),
               "kept": sum(r["kept"] for r in rows), "right": sum(r["right"] for r in rows),
               "max_seconds": max((r["seconds"] for r in rows), default=float("nan"))}
    print(f"\nkept mesh {summary['kept']}/{done}, asked side by the asked amount with every other axis "
          f"bit-for-bit {summary['right']}/{done}, refused {len(refused)}, slowest edit {summary['max_seconds']:.2f}s")
    return summary


if __name__ == "__main__":
    main()
