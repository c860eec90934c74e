"""The artist stage: a continuation of the embedded model that reads artists' wordings
(artist_wording.py), obeys attributes, answers UNKNOWN_ANSWER for objects it cannot make and
UNFAMILIAR_ANSWER when describing a shape that is none of its categories.

It starts from the kinds stage's model (or the committed weights) and keeps its tokenizer, its
edit kind questions (replayed every step) and the shapes it learnt by heart, adding
attribute and size variants of them. Examples per step: a batch of long ones (text to 3D or
describe) and a batch of short ones (kind questions and unknown-object requests).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import trimesh

from backend.geometry.voxelize import voxelize_surface
from backend.models.codec import EDIT_KINDS, codes_to_text, edit_kind_token, with_mesh_block

from . import artist_wording as W
from . import language as L
from .primitives import Primitive, box, cylinder, lathe
from .shape import Shape, sample_shape
from .splits import CATEGORY_NAMES, shape_seed, split_shapes
from .train_llm import encode_example

MEMORISED_PER_CATEGORY = 3  # the recipe's text shapes (LLMTrainSettings.text_shapes_per_category)
DESCRIBED_PER_CATEGORY = 10  # more training shapes describe sees
UNFAMILIAR_SHAPES = 80
TALL, LOW = (1.0, 1.0, 1.35), (1.0, 1.0, 0.74)
# attribute variants: (category, params), seeds after the recipe's 250 training shapes
ATTRIBUTE_VARIANTS = [
    ("chair", dict(back=False, part=False)), ("chair", dict(back=True, part=True)),
    ("chair", dict(back=True, part=False)),
    ("table", dict(round_top=True, pedestal=True)), ("table", dict(round_top=True, pedestal=False)),
    ("table", dict(round_top=False, pedestal=True)), ("table", dict(round_top=False, pedestal=False)),
    ("stool", dict(legs=3)), ("stool", dict(legs=4)),
    ("bench", dict(part=True)), ("bench", dict(part=False)),
    ("shelf", dict(boards=2)), ("shelf", dict(boards=3)), ("shelf", dict(boards=4)), ("shelf", dict(boards=5)),
    ("sofa", dict(part=True)), ("sofa", dict(part=False)),
]
LEAD_CODES = 48  # codes of a shape's start in the short examples
SIZE_SHARE = 0.25  # share of text examples drawn from the tall / low / wide / narrow variants


def wide(category: str) -> tuple[float, float, float]:
    return (1.35, 1.35, 1.0) if category in L.ROUND_CATEGORIES else (1.35, 1.0, 1.0)


def narrow(category: str) -> tuple[float, float, float]:
    return (0.74, 0.74, 1.0) if category in L.ROUND_CATEGORIES else (0.74, 1.0, 1.0)


def artist_shapes(per_category: int = 250) -> tuple[list[Shape], list[Shape]]:
    """(shapes the model makes from text, their size variants). The first are the recipe's
    memorised shapes (the same list the codes stage encodes) and the attribute variants."""
    recipe = split_shapes(per_category, held_out=False, stretch_fraction=0.5)
    made = [s for i, s in enumerate(recipe) if i % per_category < MEMORISED_PER_CATEGORY]
    for k, (category, params) in enumerate(ATTRIBUTE_VARIANTS):
        made.append(sample_shape(category, shape_seed(category, 300 + k, False)).with_params(**params))
    sizes = []
    for category in CATEGORY_NAMES:
        first = next(s for s in made if s.category == category)
        sizes += [first.with_stretch(f) for f in (TALL, LOW, wide(category), narrow(category))]
    return made, sizes


def described_shapes(per_category: int = 250) -> list[Shape]:
    recipe = split_shapes(per_category, held_out=False, stretch_fraction=0.5)
    return [s for i, s in enumerate(recipe)
            if MEMORISED_PER_CATEGORY <= i % per_category < MEMORISED_PER_CATEGORY + DESCRIBED_PER_CATEGORY]


def unfamiliar_occupancy(rng: np.random.Generator) -> np.ndarray:
    """A random pile of 2-6 boxes, cylinders and lathes: a shape that is none of the categories,
    normalised like Shape (longest side 1, low corner at -0.5)."""
    parts = []
    for _ in range(int(rng.integers(2, 7))):
        c = tuple(rng.uniform(-0.4, 0.4, 3))
        h = tuple(rng.uniform(0.03, 0.35, 3))
        kind = rng.integers(4)
        if kind == 0:
            parts.append(box(c, tuple(2 * x for x in h)))
        elif kind == 1:
            parts.append(cylinder(c, h[0], 2 * h[2], axis=str(rng.choice(["x", "y", "z"]))))
        elif kind == 2:
            radii = tuple(rng.uniform(0.3, 1.0, int(rng.integers(3, 7))))
            parts.append(lathe(c, h[0] + 0.05, 2 * h[2] + 0.05, radii, wall=0.15, floor=0.1))
        else:  # a slanted bar: something no category has
            bar = trimesh.creation.box(extents=(2 * h[0], 0.04, 0.04))
            bar.apply_transform(trimesh.transformations.random_rotation_matrix(rng.random(3)))
            bar.apply_translation(c)
            parts.append(bar)
    meshes = [p if isinstance(p, trimesh.Trimesh) else p.mesh() for p in parts]
    m = trimesh.util.concatenate(meshes)
    lo, hi = m.bounds
    v = (m.vertices - lo) / float(np.max(hi - lo)) - 0.5
    return voxelize_surface(v.astype(np.float32), m.faces.astype(np.int32), resolution=64)


def build_data(vqvae, log=print, per_category: int = 250, unfamiliar: int = UNFAMILIAR_SHAPES) -> dict:
    """Codes of every shape the stage uses: made, size variants, described, unfamiliar."""
    from .train import encode_each
    t = time.time()
    made, sizes = artist_shapes(per_category)
    described = described_shapes(per_category)
    known = made + sizes + described
    codes = encode_each(vqvae, known, lambda s: s.occupancy())
    rng = np.random.default_rng(11)
    seeds = [int(x) for x in rng.integers(0, 2**31, unfamiliar)]
    odd = encode_each(vqvae, seeds, lambda s: unfamiliar_occupancy(np.random.default_rng(s)))
    log(f"artist data: {len(made)} made, {len(sizes)} size variants, {len(described)} described, "
        f"{len(seeds)} unfamiliar shapes encoded in {time.time() - t:.0f}s")
    return {"shape_codes": np.concatenate([codes, odd]).astype(np.int64),
            "made": len(made), "sizes": len(sizes), "described": len(described), "unfamiliar": len(seeds),
            "shapes": known}


def save_data(data: dict, path: Path) -> None:
    from .train_llm import shape_meta
    meta = [{**shape_meta(s), "params": {k: v for k, v in s.params.items()}} for s in data["shapes"]]
    np.savez(path, shape_codes=data["shape_codes"], counts=np.array([data[k] for k in ("made", "sizes", "described", "unfamiliar")]),
             meta=json.dumps(meta, default=lambda x: x.item() if hasattr(x, "item") else str(x)))


def load_data(path: Path) -> dict:
    raw = np.load(path)
    made, sizes, described, unfamiliar = (int(x) for x in raw["counts"])
    shapes = []
    for m in json.loads(str(raw["meta"])):
        s = sample_shape(m["category"], m["seed"]).with_params(**m["params"]).with_stretch(m["stretch"])
        shapes.append(s)
    return {"shape_codes": raw["shape_codes"].astype(np.int64), "made": made, "sizes": sizes,
            "described": described, "unfamiliar": unfamiliar, "shapes": shapes}


class ArtistSampler:
    """Draws the artist stage's examples; the interface train_llm expects of a sampler."""

    def __init__(self, tokenizer, data: dict, prompts: dict, seed: int):
        self.tok, self.data, self.prompts = tokenizer, data, prompts
        self.rng = np.random.default_rng(seed)
        made, sizes = data["made"], data["sizes"]
        self.shapes = data["shapes"]
        self.text_shapes = list(range(made + sizes))  # the codes text to 3D predicts
        self.made_of = {c: [i for i in range(made) if self.shapes[i].category == c] for c in CATEGORY_NAMES}
        self.sizes_of = {c: [i for i in range(made, made + sizes) if self.shapes[i].category == c] for c in CATEGORY_NAMES}
        self.known = len(self.shapes)
        self.unfamiliar = range(self.known, self.known + data["unfamiliar"])
        # the made shapes each edit kind is asked of: add / remove only of those that can take it
        self.edited_of = {kind: [i for i in range(made) if kind not in ("add", "remove")
                                 or kind in L.possible_edits(self.shapes[i])] or [0] for kind in EDIT_KINDS}

    def _pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def sample(self, task: str) -> tuple[list[int], int]:
        rng = self.rng
        codes = self.data["shape_codes"]
        if task == "text_to_3d":
            category = self._pick(CATEGORY_NAMES)
            i = self._pick(self.sizes_of[category] if rng.random() < SIZE_SHARE else self.made_of[category])
            user = self.prompts["text_to_3d"].format(text=W.artist_prompt(self.shapes[i], rng))
            return encode_example(self.tok, user, codes_to_text(codes[i]))
        question = self.prompts["describe"] if rng.random() < 0.5 else L.describe_question(rng)
        if rng.random() < 0.15:
            i = self._pick(self.unfamiliar)
            answer = W.UNFAMILIAR_ANSWER
        else:
            i = int(rng.integers(self.known))
            answer = L.describe_answer(self.shapes[i], rng)
        return encode_example(self.tok, with_mesh_block(question, codes[i]), answer)

    def sample_kind_question(self) -> tuple[list[int], int]:
        """A short example, one of three kinds evenly: a request for an object it cannot make
        (answered UNKNOWN_ANSWER), the start of a shape it can (the prompt and the answer's
        first LEAD_CODES codes, unfinished: as many known as unknown requests, so declining is
        no easier than starting), or an edit kind question (replayed so the edit reading stays)."""
        draw = self.rng.random()
        if draw < 1 / 3:
            user = self.prompts["text_to_3d"].format(text=W.unknown_prompt(self.rng))
            return encode_example(self.tok, user, W.UNKNOWN_ANSWER)
        if draw < 2 / 3:
            ids, start = self.sample("text_to_3d")
            return ids[: start + 1 + LEAD_CODES], start
        kind = self._pick(EDIT_KINDS)
        shape = self.shapes[self._pick(self.edited_of[kind])]
        instruction = L.edit_instruction(shape, kind, self.rng, "wide")
        return encode_example(self.tok, self.prompts["edit_kind"].format(instruction=instruction), edit_kind_token(kind))
