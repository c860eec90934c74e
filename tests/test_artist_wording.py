"""The artist stage's data: its prompt grammar, its attribute shapes, and the bench's voxel
reading of those attributes (checked here against the shapes' known parameters)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from backend.embedded import artist_wording as W
from backend.embedded import language as L
from backend.embedded.artist_stage import ATTRIBUTE_VARIANTS, ArtistSampler, artist_shapes
from backend.embedded.shape import sample_shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.artist import has_arms, has_back, proportions, read_tsv, shelf_count, supports, top_is_round  # noqa: E402


@pytest.fixture(scope="module")
def shapes():
    made, sizes = artist_shapes()
    return made, sizes


def _prompts(shapes, count=4):
    rng = np.random.default_rng(0)
    return [(s, W.artist_prompt(s, rng)) for s in shapes for _ in range(count)]


def test_prompts_never_use_a_held_out_frame_or_a_blind_sentence(shapes):
    made, sizes = shapes
    drawn = [p for _, p in _prompts(made + sizes)] + [W.unknown_prompt(np.random.default_rng(k)) for k in range(300)]
    frames = [f.replace("{d}", "").strip().lower() for f in L.FRAMES["held_out"]]
    for frame in frames:  # the fixed words of each held-out frame, around the noun
        before, _, after = frame.partition("  ")
        assert not any(p.startswith(before + " ") and p.endswith(after) for p in drawn if before), frame
    blind = {row["prompt"].lower() for name in ("prompts_category", "prompts_attributes", "prompts_unknown")
             for row in read_tsv(ROOT / f"bench/blind/{name}.tsv")}
    assert not blind & set(drawn)


def test_prompts_state_the_shapes_attributes_and_never_the_opposite(shapes):
    made, _ = shapes
    for shape, prompt in _prompts(made, 12):
        p = shape.params
        if shape.category == "chair" and not p.get("back", True):
            assert "with a back" not in prompt and "backed" not in prompt.replace("backless", "")
        if shape.category == "table" and p.get("pedestal"):
            assert "four legs" not in prompt and "4 legs" not in prompt
        if shape.category == "stool":
            other = {3: ("four", "4"), 4: ("three", "3", "tripod")}[p["legs"]]
            assert not any(f"{w} leg" in prompt or f"{w}-leg" in prompt or w == "tripod" and w in prompt for w in other)
        assert prompt == prompt.lower() and "  " not in prompt


def test_unknown_prompts_name_no_category():
    rng = np.random.default_rng(1)
    for _ in range(400):
        prompt = W.unknown_prompt(rng)
        assert L.category_in_text(prompt) is None, prompt


def test_sampler_draws_every_kind_of_example(shapes):
    from backend.embedded.train_llm import embedded_prompts, make_tokenizer
    made, sizes = shapes
    tokenizer = make_tokenizer(edit_kinds=True)
    known = made + sizes
    data = {"shape_codes": np.zeros((len(known) + 2, 1024), np.int64), "made": len(made), "sizes": len(sizes),
            "described": 0, "unfamiliar": 2, "shapes": known}
    sampler = ArtistSampler(tokenizer, data, embedded_prompts(True), seed=0)
    answers = [tokenizer.decode(ids[start:]) for ids, start in (sampler.sample_kind_question() for _ in range(60))]
    assert any(W.UNKNOWN_ANSWER in a for a in answers) and any("<edit-" in a or "edit" in a for a in answers)
    described = [tokenizer.decode(ids[start:]) for ids, start in (sampler.sample("describe") for _ in range(60))]
    assert any(W.UNFAMILIAR_ANSWER in a for a in described)
    made_ids = [sampler.sample("text_to_3d") for _ in range(10)]
    assert all("<mesh-start>" in tokenizer.decode(ids[start:]) for ids, start in made_ids)


@pytest.mark.parametrize("category, params, check", [
    ("chair", dict(back=True, part=False), lambda o: has_back(o) and not has_arms(o)),
    ("chair", dict(back=False, part=False), lambda o: not has_back(o)),
    ("chair", dict(back=True, part=True), lambda o: has_back(o) and has_arms(o)),
    ("sofa", dict(part=True), has_arms),
    ("sofa", dict(part=False), lambda o: not has_arms(o)),
    ("bench", dict(part=True), has_back),
    ("bench", dict(part=False), lambda o: not has_back(o)),
    ("table", dict(round_top=True, pedestal=True), lambda o: top_is_round(o) and supports(o, 0.3) == 1),
    ("table", dict(round_top=False, pedestal=False), lambda o: not top_is_round(o) and supports(o, 0.3) == 4),
    ("stool", dict(legs=3), lambda o: supports(o, 0.15) == 3),
    ("stool", dict(legs=4), lambda o: supports(o, 0.15) == 4),
    ("shelf", dict(boards=2, part=False), lambda o: shelf_count(o) == 2),
    ("shelf", dict(boards=5, part=False), lambda o: shelf_count(o) == 5),
])
def test_the_bench_reads_attributes_off_true_shapes(category, params, check):
    for seed in (11, 12, 13):
        assert check(sample_shape(category, seed).with_params(**params).occupancy()), (category, params, seed)


def test_size_variants_change_proportions_the_bench_way(shapes):
    _, sizes = shapes
    chair = [s for s in sizes if s.category == "chair"]
    tall, low, wide, narrow = (proportions(s.occupancy()) for s in chair)
    assert tall[0] > low[0] * 1.5 and wide[1] > narrow[1] * 1.5


def test_attribute_variants_cover_the_asked_attributes():
    asked = {(c, k) for c, p in ATTRIBUTE_VARIANTS for k in p}
    assert {("chair", "back"), ("chair", "part"), ("table", "round_top"), ("table", "pedestal"), ("stool", "legs"),
            ("shelf", "boards"), ("sofa", "part"), ("bench", "part")} <= asked
