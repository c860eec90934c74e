"""The procedural dataset of the embedded model: shapes, occupancy, wording, splits, edits."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.embedded import language as L
from backend.embedded.categories import CATEGORIES
from backend.embedded.metrics import aspect, extent, width_ratio
from backend.embedded.shape import RESOLUTION, sample_shape
from backend.embedded.train import EMBEDDED_NORMALIZATION
from backend.embedded.splits import CATEGORY_NAMES, is_held_out_seed, shape_seed, split_shapes
from backend.geometry.normalize import normalize
from backend.geometry.voxelize import voxelize_surface




def test_at_least_twelve_categories_with_distinct_shapes():
    assert len(CATEGORIES) >= 12
    occs = [sample_shape(c, 3).occupancy() for c in CATEGORY_NAMES]
    for i in range(len(occs)):
        for j in range(i + 1, len(occs)):
            assert (occs[i] != occs[j]).any(), (CATEGORY_NAMES[i], CATEGORY_NAMES[j])


@pytest.mark.parametrize("category", CATEGORY_NAMES)
def test_shape_is_normalised_and_mesh_agrees_with_occupancy(category):
    shape = sample_shape(category, 11)
    v, f = shape.mesh()
    lo, hi = v.min(0), v.max(0)
    # corner convention: low corner at -0.5, longest side exactly 1
    assert np.isclose((hi - lo).max(), 1.0, atol=1e-5)
    assert np.allclose(lo, -0.5, atol=1e-5)
    occ = shape.occupancy()
    assert occ.shape == (RESOLUTION,) * 3 and occ.dtype == bool
    assert extent(occ).max() == RESOLUTION  # the longest side spans the grid
    # the pipeline's normalisation leaves it as it is, so describe/edit see the same voxels
    v_unit, _ = normalize(v, convention=EMBEDDED_NORMALIZATION, up="z")
    assert np.allclose(v_unit, v, atol=1e-6)
    assert (voxelize_surface(v_unit, f, resolution=RESOLUTION) == occ).all()


def test_parameters_are_continuous_and_seeded():
    a, b = sample_shape("chair", 1), sample_shape("chair", 2)
    assert a.params["seat_h"] != b.params["seat_h"]
    assert sample_shape("chair", 1).params == a.params  # same seed, same shape


def test_held_out_split_is_disjoint_from_training():
    train = {(s.category, s.seed) for s in split_shapes(30, held_out=False)}
    held = {(s.category, s.seed) for s in split_shapes(30, held_out=True)}
    assert not train & held
    assert all(is_held_out_seed(s) for _, s in held) and not any(is_held_out_seed(s) for _, s in train)
    assert shape_seed("table", 0, True) != shape_seed("table", 0, False)


def test_wording_varies_and_held_out_frames_never_appear_in_training():
    rng = np.random.default_rng(0)
    shape = sample_shape("sofa", 5)
    prompts = {L.text_prompt(shape, rng) for _ in range(60)}
    assert len(prompts) > 20
    assert not set(L.FRAMES["train"]) & set(L.FRAMES["held_out"])
    assert not set(L.DESCRIBE_QUESTIONS["train"]) & set(L.DESCRIBE_QUESTIONS["held_out"])
    for kind, pools in L.EDIT_PHRASES.items():
        held_out = set().union(*(set(p) for name, p in pools.items() if name != "train"))
        assert len(pools) == 6 and not set(pools["train"]) & held_out, kind
    answers = {L.describe_answer(shape, rng) for _ in range(40)}
    assert len(answers) > 5 and all(L.category_in_text(a) == "sofa" for a in answers)


def test_the_wide_pool_varies_names_the_part_and_never_draws_a_held_out_phrase():
    rng = np.random.default_rng(0)
    chair = sample_shape("chair", 3)
    held_out = L.held_out_phrases()
    assert "get rid of the armrests" in held_out and "attach armrests to it" in held_out
    for kind in L.possible_edits(chair):
        drawn = [L.edit_instruction(chair, kind, rng, "wide") for _ in range(3000)]
        assert len(set(drawn)) > 300, kind
        assert not {d.lower() for d in drawn} & held_out, kind
        training = {L.with_part(p, kind, "armrests") for p in L.EDIT_PHRASES[kind]["train"]}
        assert 0.2 < sum(d in training for d in drawn) / len(drawn) < 0.5, kind  # WIDE_TRAIN_SHARE, and a few from the grammar
        if kind in ("add", "remove"):
            assert all("armrests" in d for d in drawn), kind
    # the grammar alone would draw a held-out phrase ("lose the armrests" is in held_out_3);
    # a phrase that is held out is drawn again
    from backend.embedded.wide_wording import wide_instruction
    grammar = {wide_instruction("remove", "chair", "armrests", np.random.default_rng(s)) for s in range(3000)}
    assert "lose the armrests" in grammar
    again = {wide_instruction("remove", "chair", "armrests", np.random.default_rng(s), frozenset({"lose the armrests"}))
             for s in range(3000)}
    assert "lose the armrests" not in again and len(again) > 300


def test_filler_words_are_made_up_and_keep_the_wording_in_order():
    rng = np.random.default_rng(0)
    text = "a dining chair with armrests"
    assert all(L.with_filler(text, rng, 0.0) == text for _ in range(20))
    filled = [L.with_filler(text, rng, 1.0) for _ in range(200)]
    for out in filled:
        words = out.split(" ")
        extra = len(words) - len(text.split(" "))
        assert 1 <= extra <= 3, out
        # the original words survive in their order, with made-up ones between them
        rest = iter(words)
        assert all(any(w == v for v in rest) for w in text.split(" ")), out
    made_up = {w.rstrip("?!:,") for out in filled for w in out.split(" ")} - set(text.split(" "))
    assert made_up and all(w.isalpha() and w.islower() for w in made_up)
    assert len(made_up) > 100  # random, not drawn from a word list
    half = sum(L.with_filler(text, rng, 0.5) != text for _ in range(400))
    assert 150 < half < 250


def test_made_up_frames_hold_the_noun_phrase_among_made_up_words():
    rng = np.random.default_rng(1)
    shape = sample_shape("bed", 4)
    frames = [L.made_up_frame(rng) for _ in range(200)]
    assert len(set(frames)) > 150 and all(f.count("{d}") == 1 for f in frames)
    for frame in frames:
        others = frame.replace("a {d}", "").replace("{d}", "").split()
        assert all(w.rstrip("?!:,").isalpha() for w in others), frame
    # text_prompt takes them at the asked rate, and keeps its old draws when the rate is 0
    known = {w for _ in range(3000) for w in L.text_prompt(shape, rng).split()}
    prompts = [L.text_prompt(shape, rng, made_up=0.5) for _ in range(400)]
    strange = sum(any(w not in known for w in p.split()) for p in prompts)
    assert 140 < strange < 230  # 0.5 x 11/12 of them: a made-up frame may hold no word but "a"
    assert all(L.category_in_text(p) == "bed" for p in prompts)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    assert [L.text_prompt(shape, a) for _ in range(20)] == [L.text_prompt(shape, b, made_up=0.0) for _ in range(20)]


def test_category_in_text_prefers_the_longest_name():
    assert L.category_in_text("A table lamp with a finial.") == "lamp"
    assert L.category_in_text("a kitchen table") == "table"
    assert L.category_in_text("a couch") == "sofa"
    assert L.category_in_text("a chair and a table") is None
    assert L.category_in_text("a spaceship") is None




@pytest.mark.parametrize("category", ["chair", "vase", "bed"])
def test_edits_change_proportions_after_normalisation(category):
    shape = sample_shape(category, 4)
    base = aspect(shape.occupancy())
    assert aspect(L.apply_edit(shape, "taller").occupancy()) > base * 1.1
    assert aspect(L.apply_edit(shape, "shorter").occupancy()) < base / 1.1
    width = width_ratio(shape.occupancy())
    assert width_ratio(L.apply_edit(shape, "wider").occupancy()) > width * 1.1
    assert width_ratio(L.apply_edit(shape, "thinner").occupancy()) < width / 1.1


@pytest.mark.parametrize("category,kind", [("chair", "taller"), ("bed", "wider"), ("bottle", "taller"),
                                           ("mug", "add"), ("table", "shorter")])
def test_edit_pairs_keep_the_source_scale_and_fit_the_cube(category, kind):
    """The edit frame: the source fills 1/EDIT_FACTOR of the cube, the edited shape keeps that
    scale (a taller shape really is taller) and still fits; what the edit leaves alone stays."""
    shape = sample_shape(category, 7)
    if kind == "add":
        shape = shape.with_params(part=False)
    src, tgt = L.edit_pair_occupancies(shape, kind, L.EDIT_FILL)
    e_src, e_tgt = extent(src), extent(tgt)
    assert e_src.max() == pytest.approx(64 * L.EDIT_FILL, abs=1.5)
    assert np.argwhere(src).min(0).tolist() == [0, 0, 0] == np.argwhere(tgt).min(0).tolist()
    if kind in ("taller", "shorter"):
        factor = L.EDIT_FACTOR if kind == "taller" else 1 / L.EDIT_FACTOR
        assert e_tgt[2] == pytest.approx(e_src[2] * factor, abs=1.5)
        assert (e_tgt[:2] == e_src[:2]).all()  # the footprint keeps its size
        assert (tgt[..., 0] == src[..., 0]).mean() > 0.999  # and the floor layer its voxels
    elif kind == "wider":
        assert e_tgt[0] == pytest.approx(e_src[0] * L.EDIT_FACTOR, abs=1.5) and e_tgt[2] == e_src[2]
    else:
        assert tgt.sum() > src.sum() and (src & ~tgt).sum() < 0.2 * src.sum()


def test_edit_pairs_with_fill_one_are_each_normalised_on_their_own():
    """The committed weights' data: source and edited shape each fill the cube."""
    shape = sample_shape("chair", 7)
    src, tgt = L.edit_pair_occupancies(shape, "taller")
    assert np.array_equal(src, shape.occupancy())
    assert np.array_equal(tgt, L.apply_edit(shape, "taller").occupancy())
    assert extent(tgt).max() == RESOLUTION


def test_add_and_remove_part_edits_toggle_the_part():
    shape = sample_shape("mug", 0).with_params(part=False)
    assert "add" in L.possible_edits(shape)
    with_handle = L.apply_edit(shape, "add")
    assert with_handle.params["part"] and "remove" in L.possible_edits(with_handle)
    # the handle sticks out along +X: the occupied x extent grows relative to y
    e0, e1 = extent(shape.occupancy()), extent(with_handle.occupancy())
    assert e1[0] / e1[1] > e0[0] / e0[1] * 1.1
    assert L.edit_instruction(shape, "add", np.random.default_rng(0)).count("handle") == 1
