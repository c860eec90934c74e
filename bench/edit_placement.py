"""How often an edit answer comes back at the right size, side by side for two placements.

    python bench/edit_placement.py [--per-category 8]

A model that reads and writes every shape normalised on its own (the published model and the
embedded one; backend/edit.py) answers with a shape whose size is lost. Two ways to put it back in the artist's scene:
- "longest side" (before): map it back through the source's normalisation, so its longest
  side equals the source's;
- "fit" (backend/geometry/placement.py): size it from the sides the edit kept, on the source's
  floor and footprint centre.
The answers are the true edits of held-out procedural shapes (what a perfect model answers),
so this measures the placement alone, not any model. A case is right when every side of the
placed answer is within 4% (at least 1.5 voxels) of the true edited shape's side.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-category", type=int, default=8, help="held-out shapes per category")
    ap.add_argument("--quick", action="store_true", help="one shape of two categories (seconds; no figure to quote)")
    args = ap.parse_args(argv)
    if args.quick:
        args.per_category = 1

    from backend.embedded import language as L
    from backend.embedded.shape import RESOLUTION, sample_shape
    from backend.embedded.splits import CATEGORY_NAMES, shape_seed
    from backend.geometry.placement import fit_edit_answer, occupied_box

    right = defaultdict(lambda: {"cases": 0, "longest side": 0, "fit": 0})
    for category in CATEGORY_NAMES[:2] if args.quick else CATEGORY_NAMES:
        for k in range(args.per_category):
            shape = sample_shape(category, shape_seed(category, 170 + k, held_out=True))
            source = shape.occupancy()
            for kind in L.possible_edits(shape):
                edited = L.apply_edit(shape, kind)
                v, _ = edited.mesh(scale_of=shape)
                true_sides = v.max(0) - v.min(0)
                answer = edited.occupancy()  # normalised on its own, as the model answers
                lo, hi = occupied_box(answer)
                scale, _ = fit_edit_answer(source, answer)
                tolerance = np.maximum(1.5 / RESOLUTION, 0.04 * true_sides)
                group = "round " + kind if category in L.ROUND_CATEGORIES and kind in ("wider", "thinner") else kind
                counts = right[group]
                counts["cases"] += 1
                counts["longest side"] += bool(np.all(np.abs((hi - lo) - true_sides) <= tolerance))
                counts["fit"] += bool(np.all(np.abs((hi - lo) * scale - true_sides) <= tolerance))

    total = {key: sum(c[key] for c in right.values()) for key in ("cases", "longest side", "fit")}
    print(f"{'edit':<16}{'cases':>6}{'longest side':>14}{'fit':>8}")
    for group, c in sorted(right.items()):
        print(f"{group:<16}{c['cases']:>6}{c['longest side'] / c['cases']:>14.2f}{c['fit'] / c['cases']:>8.2f}")
    old, new = total["longest side"] / total["cases"], total["fit"] / total["cases"]
    print(f"{'all':<16}{total['cases']:>6}{old:>14.2f}{new:>8.2f}   fit / longest side = {new / old:.2f}x")
    return {"per_edit": dict(right), "all": total}


if __name__ == "__main__":
    main()
