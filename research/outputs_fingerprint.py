"""Fingerprint of the committed embedded weights' greedy outputs, to show a refactor kept them.

    python research/outputs_fingerprint.py OUT.json

Runs through the public Pipeline API only (text_to_3d, describe, edit), so the same script
runs before and after a change of the runtime: every prompt of bench/embedded_prompts.tsv,
describe of held-out shapes, and the edit bench's cases (held-out shapes, held-out wordings of
every edit kind, plus the train wordings), each hashed (codes, vertices, faces, text, the edit's
kind and confidence, or the error). Compare two runs with `diff`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402


def digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    return h.hexdigest()[:16]


def main(out: str) -> None:
    import torch

    torch.set_num_threads(2)
    from backend.embedded import language as L
    from backend.embedded.shape import sample_shape
    from backend.embedded.splits import CATEGORY_NAMES, shape_seed
    from backend.errors import TaskError
    from backend.pipeline import Pipeline

    pipe = Pipeline("embedded", device="cpu")
    report = {"text_to_3d": {}, "describe": {}, "edit": {}}
    for line in (ROOT / "bench/embedded_prompts.tsv").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            prompt = line.split("\t")[0]
            r = pipe.text_to_3d(prompt)
            report["text_to_3d"][prompt] = digest(r.codes, r.vertices, r.faces)
    rng = np.random.default_rng(42)
    for c in CATEGORY_NAMES:
        shape = sample_shape(c, shape_seed(c, 150, held_out=True))
        v, f = shape.mesh()
        question = L.describe_question(rng, "held_out")
        report["describe"][f"{c}: {question}"] = pipe.describe(v, f, {"question": question})
    for wording in ("held_out", "independent", "train"):
        edit_rng = np.random.default_rng(43)
        for c in CATEGORY_NAMES:
            for k in range(2):
                shape = sample_shape(c, shape_seed(c, 170 + k, held_out=True))
                for kind in L.possible_edits(shape):
                    instruction = L.edit_instruction(shape, kind, edit_rng, wording)
                    v, f = shape.mesh()
                    key = f"{wording} {c}{k} {kind}: {instruction}"
                    try:
                        r = pipe.edit(v, f, instruction)
                        report["edit"][key] = [r.edit_kind, round(r.edit_kind_confidence, 6),
                                               digest(r.codes, r.vertices, r.faces, r.voxels)]
                    except TaskError as err:
                        report["edit"][key] = ["error", err.code, err.message]
    Path(out).write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"{out}: {sum(len(v) for v in report.values())} outputs")


if __name__ == "__main__":
    main(sys.argv[1])
