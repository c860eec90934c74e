"""Edits of a preset whose model reads edit kinds (EditSettings.read_kind): the model names the edit kind, a proportion kind is the
source's voxels resized (backend/geometry/resize.py) and encoded, add and remove stay the
model's answer.

A tiny LLM of the embedded family (our tokenizer with the edit kind tokens, a Qwen2.5-VL written
by export_llm) and a tiny VQVAE, loaded by the pipeline through the published weights' loaders.
The LLM is untrained; its kind rows are set so that it names a chosen kind for each test
instruction, which is what training teaches it (tests/test_embedded_llm.py checks the kind
question is asked the same way in training and at run time)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh

from backend.embedded import train_llm as T
from backend.errors import TaskError
from backend.geometry.placement import best_shift_overlap, fit_edit_answer, placed_grid
from backend.geometry.resize import EDIT_FILL, resize
from backend.geometry.surface import MIN_COMPONENT_VOXELS, remove_small_components
from backend.models.checkpoints import save_vqvae
from backend.edit import source_fill
from backend.models.presets import REFERENCE_GENERATION, EditSettings, Preset
from backend.models.tiny import tiny_vqvae
from backend.pipeline import Pipeline

torch.set_num_threads(1)

# instruction -> the kind the tiny model is made to name
NAMED = {"make it wider": "wider", "give it a backrest": "add", "make it shorter": "shorter",
         "change its width": "wider"}


def _kind_rows(model, tokenizer) -> None:
    """Sets the kind tokens' output rows so the model names NAMED's kind for each instruction."""
    kinds = T.edit_kind_ids(tokenizer)
    hidden, targets = [], []
    for instruction, kind in NAMED.items():
        ids, start = T.encode_example(tokenizer, T.EDIT_KIND_PROMPT.format(instruction=instruction), "")
        with torch.no_grad():
            hidden.append(model.model(input_ids=torch.tensor([ids[:start]])).last_hidden_state[0, -1])
        targets.append([10.0 if k == kind else -10.0 for k in T.EDIT_KINDS])
    h, t = torch.stack(hidden, 1), torch.tensor(targets).T  # [hidden, n], [kinds, n]
    with torch.no_grad():
        model.lm_head.weight[kinds] = t @ torch.linalg.pinv(h)


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resize-preset")
    tokenizer = T.make_tokenizer(edit_kinds=True)
    torch.manual_seed(0)
    model = T.new_model(tokenizer, T.LLMTrainSettings(hidden=32, layers=1)).eval()
    _kind_rows(model, tokenizer)
    T.export_llm(model, tokenizer, folder / "llm", {"temperature": 0.0, "top_p": 1.0, "top_k": 1})
    save_vqvae(folder / "vqvae", tiny_vqvae())
    Preset(name="resize", vqvae="vqvae", llm="llm", prompts=T.embedded_prompts(edit_resize=True),
           normalization="corner", generation=dict(REFERENCE_GENERATION), tasks=("describe", "edit"),
           edit=EditSettings(aligned_positions=True, read_kind=True)).save(folder)
    pipeline = Pipeline(str(folder), device="cpu")
    yield pipeline
    pipeline.release()


def with_min_overlap(preset: Preset, share: float) -> Preset:
    return replace(preset, edit=replace(preset.edit, min_overlap=share))


def model_written(preset: Preset, min_overlap: float = 0.0) -> Preset:
    """The preset with read_kind off (as the published one): every edit is the model's answer.
    With read_kind on, add and remove are part edits on the artist's mesh (tests/test_part_edits.py)."""
    return replace(preset, edit=replace(preset.edit, read_kind=False, min_overlap=min_overlap))


def box(extents, at=(2.0, -1.0, 0.5)):
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(np.asarray(at) + np.asarray(extents) / 2)
    return np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)


def source(pipe, v, f, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(codes, voxels) of the source as the pipeline reads it for `kind`."""
    vqvae = pipe._models(lambda *a: None, lambda: False)[1]  # loaded whichever test runs first
    codes, _, grid = pipe._encode(vqvae, v, f, pipe._options(None), lambda *a: None, lambda: False,
                                  fill=source_fill(pipe.preset.edit, kind))
    return codes, grid


def test_the_model_names_each_instructions_kind(pipe):
    assert {text: pipe.edit_kind(text) for text in NAMED} == NAMED


def test_an_edit_says_how_sure_the_model_was_of_the_kind(pipe):
    """The kind's probability among the six: the tiny model's kind rows are set at +-10 apart,
    so it is all but certain; the result carries what the runtime read."""
    v, f = box((0.3, 0.5, 0.7))
    # words that speak of size but name no side: the model's read decides (backend/edit.py)
    kind, sure = pipe._models(lambda *a: None, lambda: False)[0].read_edit_kind("change its width")
    result = pipe.edit(v, f, "change its width")
    assert result.edit_kind == kind == "wider" and result.edit_kind_confidence == pytest.approx(sure)
    assert 0.99 < sure <= 1.0


def test_a_resize_reads_the_source_with_room_around_it(pipe):
    # the model's own answers stay in the frame it was trained in: each shape normalised on its own
    assert source_fill(pipe.preset.edit, "wider") == EDIT_FILL < 1 and source_fill(pipe.preset.edit, "add") == 1.0
    # a model that names no kind reads every source in that frame
    assert source_fill(EditSettings(), "wider") == 1.0


def test_a_proportion_edit_is_the_source_resized(pipe):
    v, f = box((0.3, 0.5, 0.7))
    before = v.copy(), f.copy()
    result = pipe.edit(v, f, "make it wider")
    codes, grid = source(pipe, v, f, "wider")
    resized = resize(grid, "wider")
    expected = pipe._vqvae.encode(torch.from_numpy(resized).float()[None, None])[0].numpy()
    assert not np.array_equal(expected, codes)
    assert np.array_equal(result.codes, expected) and result.edit_kind == "wider"
    # the mesh is made from the resized voxels (the untrained tiny VQVAE's decode of the codes
    # is nothing like a box): 1.35 times as wide, as deep and as tall as before, within 2 voxels
    assert np.array_equal(result.voxels, resized)
    voxel = 0.7 / (64 * EDIT_FILL)
    np.testing.assert_allclose(np.ptp(result.vertices, axis=0), [0.3 * 1.35, 0.5, 0.7], atol=2 * voxel)
    # the edit came back in the caller's frame, at the source's place
    assert np.all(result.vertices.min(0) > np.array([2.0, -1.0, 0.5]) - 0.2)
    assert np.array_equal(v, before[0]) and np.array_equal(f, before[1])  # the input is untouched


@pytest.mark.slow   # whole edit answers from the model
def test_a_preset_that_names_no_kind_gets_the_models_own_edit(pipe):
    v, f = box((0.3, 0.5, 0.7))
    written = Pipeline(model_written(pipe.preset), device="cpu")
    result = written.edit(v, f, "give it a backrest")
    codes, _ = source(pipe, v, f, "add")
    own = pipe._llm.edit(codes, "give it a backrest", options=pipe._llm_options(pipe._options(None)))
    assert np.array_equal(result.codes, own) and result.edit_kind is None and not result.kept_mesh


def test_a_move_with_no_room_is_a_clear_error(pipe):
    v, f = box((0.8, 0.6, 0.005))  # one voxel thick: nothing to take away
    with pytest.raises(TaskError) as err:
        pipe.edit(v, f, "make it shorter")
    assert err.value.code == "no_shape" and "shorter" in err.value.message


@pytest.mark.parametrize("vertices, faces, code", [
    (np.full((3, 3), np.nan, np.float32), np.array([[0, 1, 2]], np.int32), "bad_mesh"),
    (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), "empty_mesh"),
])
def test_a_broken_mesh_is_refused_before_any_model_loads_or_runs(pipe, vertices, faces, code):
    """The kind question depends only on the words, but a broken mesh is refused first."""
    fresh = Pipeline(pipe.preset, device="cpu")
    with pytest.raises(TaskError) as err:
        fresh.edit(vertices, faces, "make it wider")
    assert err.value.code == code and not fresh.loaded


def kept_share(pipe, v, f, instruction: str) -> float:
    """How much of the source the model's own answer keeps, measured as the guard measures it:
    placed like its mesh, compared at the best small shift."""
    _, grid = source(pipe, v, f, "add")
    answer = Pipeline(model_written(pipe.preset), device="cpu").edit(v, f, instruction).voxels
    scale, offset = fit_edit_answer(grid, remove_small_components(answer, MIN_COMPONENT_VOXELS))
    return best_shift_overlap(grid, placed_grid(answer, scale, offset))


@pytest.mark.slow   # whole edit answers from the model
def test_a_model_answer_that_is_another_shape_is_refused(pipe):
    """EditSettings.min_overlap: the untrained model's "add" answer is not the box with a part
    added, and with the guard on it is a clear error instead of a stray object."""
    v, f = box((0.3, 0.5, 0.7))
    kept = kept_share(pipe, v, f, "give it a backrest")
    assert kept < 0.5  # the premise: the answer keeps little of the box
    guarded = Pipeline(model_written(pipe.preset, 0.5), device="cpu")
    with pytest.raises(TaskError) as err:
        guarded.edit(v, f, "give it a backrest")
    assert err.value.code == "no_shape" and err.value.message.startswith("the model could not make this edit") and f"{kept:.0%}" in err.value.message
    # a resize is the artist's own shape and is never refused, even by a guard no answer passes
    strict = Pipeline(with_min_overlap(pipe.preset, 0.99), device="cpu")
    assert strict.edit(v, f, "make it wider").edit_kind == "wider"


@pytest.mark.slow   # whole edit answers from the model
def test_the_guard_compares_with_what_the_answer_keeps(pipe):
    """Just under the answer's share it passes, just over it the answer is refused."""
    v, f = box((0.3, 0.5, 0.7))
    kept = kept_share(pipe, v, f, "give it a backrest")
    assert kept > 0.02  # else "just under" would be no guard at all
    under = Pipeline(model_written(pipe.preset, kept - 0.01), device="cpu")
    assert under.edit(v, f, "give it a backrest").voxels is not None
    with pytest.raises(TaskError):
        Pipeline(model_written(pipe.preset, kept + 0.01), device="cpu").edit(v, f, "give it a backrest")
