"""How well a preset understands artists' wordings, on sets written blind (bench/blind/).

    python bench/artist.py [--preset backend/weights/embedded] [--baseline PRESET] [--quick]

Through the real Pipeline (CPU), for each preset given (side by side when --baseline is):
- category: text to 3D on bench/blind/prompts_category.tsv (84 prompts written blind) and on
  the recipe's held-out prompts (bench/embedded_prompts.tsv), judged by nearest neighbour
  on occupancy (backend/embedded/judge.py); a refusal counts as wrong;
- attributes: bench/blind/prompts_attributes.tsv, the share of answers of the asked category
  that have the asked attribute, measured on the voxels (leg count, back, arms, round top,
  pedestal, shelves counted, tall/low and wide/narrow against the category's usual proportions);
- unknown objects: bench/blind/prompts_unknown.tsv, the share refused with a message;
- variety: one blind prompt per category, 4 seeds at the panel's temperature (0.7): distinct
  shapes (voxel IoU < 0.9) and the share of the right category;
- describe: the real-world fixtures (../shared/fixtures/meshes: none of the categories) and
  held-out procedural shapes; whether the answer names a category, says "unfamiliar", or
  contradicts itself ("with X" and "without X").
Writes a JSON report (default out/artist/report.json).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy import ndimage  # noqa: E402

BLIND = ROOT / "bench/blind"
PANEL_TEMPERATURE = 0.7  # addon/properties.py's temperature default
DISTINCT_IOU = 0.9


def read_tsv(path: Path) -> list[dict]:
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    header = lines[0].split("\t")
    return [dict(zip(header, ln.split("\t"))) for ln in lines[1:]]


# ------------------------------------------------------------------ attributes on voxels
def _extent(occ: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = np.argwhere(occ)
    return idx.min(0), idx.max(0) + 1


def seat_level(occ: np.ndarray) -> int:
    """The highest layer with most of the largest layer's area: a seat's or a top's upper face
    (surface voxels: a slab shows as full layers, the sides of a box as rings)."""
    areas = occ.sum((0, 1))
    return int(np.flatnonzero(areas >= 0.6 * areas.max()).max())


def has_back(occ: np.ndarray) -> bool:
    """Voxels well above the seat, at the rear (+y), in the middle of the width."""
    lo, hi = _extent(occ)
    seat = seat_level(occ)
    above = seat + max(3, int(0.3 * (seat - lo[2])))
    x0, x1 = lo[0] + (hi[0] - lo[0]) // 4, hi[0] - (hi[0] - lo[0]) // 4
    y0 = hi[1] - max(2, (hi[1] - lo[1]) // 4)
    return bool(occ[x0:x1, y0:hi[1], above:].any())


def has_arms(occ: np.ndarray) -> bool:
    """Voxels above the seat at both sides (x ends) in the front half (-y)."""
    lo, hi = _extent(occ)
    seat = seat_level(occ)
    edge = max(2, (hi[0] - lo[0]) // 7)
    ymid = (lo[1] + hi[1]) // 2
    above = seat + 2
    left = occ[lo[0]:lo[0] + edge, lo[1]:ymid, above:].any()
    right = occ[hi[0] - edge:hi[0], lo[1]:ymid, above:].any()
    return bool(left and right)


def supports(occ: np.ndarray, at: float) -> int:
    """Connected pieces in the horizontal slice at fraction `at` of the height."""
    lo, hi = _extent(occ)
    z = lo[2] + int(at * (hi[2] - lo[2]))
    _, n = ndimage.label(ndimage.binary_closing(occ[:, :, z], iterations=1))
    return int(n)


def top_is_round(occ: np.ndarray) -> bool:
    """The top layer fills about pi/4 of its bounding rectangle."""
    seat = seat_level(occ)
    layer = occ[:, :, seat]
    filled = ndimage.binary_fill_holes(layer)
    idx = np.argwhere(filled)
    box = np.prod(idx.max(0) - idx.min(0) + 1)
    return bool(filled.sum() / box < 0.88)


def shelf_count(occ: np.ndarray) -> int:
    """Runs of layers whose area is most of the largest layer's: the boards."""
    areas = occ.sum((0, 1)).astype(float)
    # a board's two faces may be two layers apart: runs that close gaps of up to two layers
    full = ndimage.binary_closing(np.pad(areas >= 0.6 * areas.max(), 3), structure=np.ones(4, bool))[3:-3]
    runs = np.diff(np.concatenate([[0], full.astype(int), [0]]))
    return int((runs == 1).sum())


def proportions(occ: np.ndarray) -> tuple[float, float]:
    """(height over the longer footprint side, width over height)."""
    lo, hi = _extent(occ)
    x, y, z = (hi - lo).astype(float)
    return z / max(x, y), x / z


class Attributes:
    """Reads the asked attribute from voxels; size words against the category's usual shapes."""

    def __init__(self):
        from backend.embedded.splits import CATEGORY_NAMES, shape_seed
        from backend.embedded.shape import sample_shape
        self.usual = {}
        for c in CATEGORY_NAMES:
            ratios = [proportions(sample_shape(c, shape_seed(c, k, False)).occupancy()) for k in range(6)]
            self.usual[c] = tuple(np.median(np.array(ratios), axis=0))

    def has(self, occ: np.ndarray, category: str, attribute: str, value: str) -> bool:
        if attribute == "back":
            return has_back(occ) == (value == "yes")
        if attribute == "arms":
            return has_arms(occ) == (value == "yes")
        if attribute == "top":
            return top_is_round(occ) == (value == "round")
        if attribute == "support":
            return (supports(occ, 0.3) == 1) == (value == "pedestal")
        if attribute == "legs":
            return supports(occ, 0.15) == int(value)
        if attribute == "shelves":
            return shelf_count(occ) == int(value)
        tall, wide = proportions(occ)
        usual_tall, usual_wide = self.usual[category]
        if attribute == "height":
            return tall > 1.1 * usual_tall if value == "tall" else tall < usual_tall / 1.1
        if attribute == "width":
            return wide > 1.1 * usual_wide if value == "wide" else wide < usual_wide / 1.1
        raise ValueError(f"unknown attribute {attribute!r}")


# ------------------------------------------------------------------ measures
def generate(pipe, prompt: str, options=None):
    """(voxels or None, the refusal message or None, seconds)."""
    from backend.errors import TaskError
    t = time.perf_counter()
    try:
        result = pipe.text_to_3d(prompt, options=options)
        return result.voxels, None, time.perf_counter() - t
    except TaskError as err:
        return None, err.message, time.perf_counter() - t


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def measure(pipe, judge, attributes, limit: int, log) -> dict:
    from backend.embedded.language import category_in_text
    report: dict = {}
    seconds = []

    def category_set(rows, key_prompt, key_cat):
        right, refused, wrong = 0, 0, []
        for row in rows:
            occ, message, s = generate(pipe, row[key_prompt])
            seconds.append(s)
            got = judge.category(occ) if occ is not None else None
            refused += occ is None
            if got == row[key_cat]:
                right += 1
            else:
                wrong.append([row[key_prompt], row[key_cat], got or "refused"])
        return {"right": right, "of": len(rows), "share": right / len(rows), "refused": refused, "wrong": wrong}

    blind = read_tsv(BLIND / "prompts_category.tsv")[:limit or None]
    report["blind_category"] = category_set(blind, "prompt", "category")
    log(f"blind category: {report['blind_category']['right']}/{len(blind)}")
    old = [dict(prompt=p, category=c) for p, c in
           (ln.split("\t") for ln in (ROOT / "bench/embedded_prompts.tsv").read_text().splitlines()
            if ln.strip() and not ln.startswith("#"))][:limit or None]
    report["held_out_category"] = category_set(old, "prompt", "category")
    log(f"held-out category: {report['held_out_category']['right']}/{len(old)}")

    rows = read_tsv(BLIND / "prompts_attributes.tsv")[:limit or None]
    per: dict = {}
    for row in rows:
        occ, _, s = generate(pipe, row["prompt"])
        seconds.append(s)
        key = f"{row['attribute']}={row['value']}"
        got = per.setdefault(key, {"asked": 0, "right_category": 0, "obeyed": 0})
        got["asked"] += 1
        if occ is not None and judge.category(occ) == row["category"]:
            got["right_category"] += 1
            got["obeyed"] += attributes.has(occ, row["category"], row["attribute"], row["value"])
    obeyed = sum(v["obeyed"] for v in per.values())
    right = sum(v["right_category"] for v in per.values())
    report["attributes"] = {"per": per, "obeyed": obeyed, "of_right_category": right, "asked": len(rows),
                            "share_of_right_category": obeyed / max(right, 1), "share_of_asked": obeyed / len(rows)}
    log(f"attributes: {obeyed} obeyed of {right} right-category answers ({len(rows)} asked)")

    rows = read_tsv(BLIND / "prompts_unknown.tsv")[:limit or None]
    refused = [row["prompt"] for row in rows if generate(pipe, row["prompt"])[1] is not None]
    report["unknown"] = {"refused": len(refused), "of": len(rows), "share": len(refused) / len(rows)}
    log(f"unknown objects refused: {len(refused)}/{len(rows)}")

    firsts = {}
    for row in blind:
        firsts.setdefault(row["category"], row["prompt"])
    variety = []
    for category, prompt in list(firsts.items())[: (limit or 14)]:
        shapes = [generate(pipe, prompt, {"temperature": PANEL_TEMPERATURE, "seed": seed})[0] for seed in range(4)]
        made = [s for s in shapes if s is not None]
        distinct: list[np.ndarray] = []
        for s in made:
            if all(iou(s, d) < DISTINCT_IOU for d in distinct):
                distinct.append(s)
        variety.append({"prompt": prompt, "category": category, "distinct": len(distinct),
                        "right": sum(judge.category(s) == category for s in made), "made": len(made)})
    report["variety"] = {"prompts": variety,
                         "with_3_or_more": sum(v["distinct"] >= 3 for v in variety), "of": len(variety),
                         "right_share": sum(v["right"] for v in variety) / max(sum(v["made"] for v in variety), 1)}
    log(f"variety: {report['variety']['with_3_or_more']}/{len(variety)} prompts with >= 3 distinct shapes")

    described = []
    fixtures = ROOT.parent / "shared/fixtures/meshes"
    from backend.geometry.meshio import load_mesh
    for path in sorted(fixtures.glob("*"))[: (limit or 99)]:
        if path.suffix.lower() not in (".obj", ".stl", ".ply", ".glb"):
            continue
        try:
            v, f = load_mesh(path)
            text = pipe.describe(v, f)
        except Exception as err:  # a fixture the loader refuses is not this bench's subject
            text = f"(not described: {err})"
        described.append({"mesh": path.name, "answer": text, "names": category_in_text(text),
                          "unfamiliar": "unfamiliar" in text.lower(), "contradicts": contradicts(text)})
    report["describe_fixtures"] = described
    report["seconds_per_shape"] = float(np.mean(seconds)) if seconds else None
    return report


def contradicts(text: str) -> bool:
    """Says "with X" and "without X" of the same X."""
    low = text.lower()
    without = set(re.findall(r"without (?:an? )?(\w+)", low))
    with_ = set(re.findall(r"\bwith (?:an? |\w+ )?(\w+)", low))
    return bool(without & with_)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default=str(ROOT / "backend/weights/embedded"))
    ap.add_argument("--baseline", help="another preset measured the same way, side by side")
    ap.add_argument("--quick", action="store_true", help="3 rows of each set (a smoke run)")
    ap.add_argument("--out", type=Path, default=ROOT / "out/artist/report.json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    from backend.embedded.judge import NearestShapeJudge
    from backend.pipeline import Pipeline
    judge, attributes = NearestShapeJudge(), Attributes()
    limit = 3 if args.quick else 0
    report = {}
    for name, preset in (("preset", args.preset), ("baseline", args.baseline)):
        if preset is None:
            continue
        print(f"== {name}: {preset}", flush=True)
        report[name] = measure(Pipeline(preset, device="cpu"), judge, attributes, limit,
                               lambda m: print(f"  {m}", flush=True))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=lambda x: x.item() if hasattr(x, "item") else str(x)) + "\n")
    print(f"report: {args.out}")
    return report


if __name__ == "__main__":
    main()
