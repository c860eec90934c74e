"""The documented training command, every stage at a tiny size: it writes a preset the
pipeline loads, the polish stage continues the llm stage's model and the edit stage the polished
one, and a rerun resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from backend.errors import TaskError
from backend.pipeline import Pipeline

pytestmark = pytest.mark.slow   # runs the training command end to end

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--per-category", "2", "--held-per-category", "1", "--fit-per-category", "2", "--llm-per-category", "2",
        "--edits-per-category", "1", "--llm-steps", "2", "--llm-hidden", "32", "--llm-layers", "1",
        "--polish-steps", "3", "--kinds-steps", "2", "--edit-steps", "2", "--decoder-steps", "2", "--threads", "1"]


def _train(work, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "backend.embedded.train", "--workdir", str(work), "--out", str(out),
                           *TINY, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return (work / "train.log").read_text()


STAGES = ["--stages", "data,vqvae,codes,decoder,llm,polish,edit", "--edit-fill", "0.75", "--edit-copy-bias", "3"]


def test_every_stage_runs_and_the_preset_loads(tmp_path):
    work, out = tmp_path / "work", tmp_path / "preset"
    log = _train(work, out, *STAGES)
    note = json.loads((out / "training.json").read_text())
    assert note["polish_step"] == 3 and note["polish"]["made_up_frames"] > 0
    assert note["edit_step"] == 2 and note["edit"]["mesh_patterns"]
    # each stage starts from the saved model of the one before and moves it
    base = load_file(str(work / "llm_base" / "model.safetensors"))
    polished = load_file(str(work / "llm_polished" / "model.safetensors"))
    edited = load_file(str(out / "llm" / "model.safetensors"))
    assert base.keys() == polished.keys() == edited.keys()
    assert any(not np.array_equal(base[k], polished[k]) for k in base)
    assert any(not np.array_equal(polished[k], edited[k]) for k in base)
    assert "exported the preset at polish step 3" in log and "exported the preset at edit step 2" in log
    preset = json.loads((out / "preset.json").read_text())
    assert preset["edit_fill"] == 0.75 and preset["edit_copy_bias"] == 3
    # the decoder stage moves the decoder alone (the codes stay), and the preset has it
    import torch
    fitted, tuned = (torch.load(work / name, weights_only=True) for name in ("vqvae_final.pt", "vqvae_decoder.pt"))
    assert all(torch.equal(fitted[k], tuned[k]) for k in fitted if not k.startswith("Decoder."))
    assert any(not torch.equal(fitted[k], tuned[k]) for k in fitted if k.startswith("Decoder."))
    assert "decoder: 2 steps" in log
    from backend.models.checkpoints import load_vqvae
    exported = load_vqvae(out / "vqvae", device="cpu").state_dict()
    assert all(torch.equal(exported[k], tuned[k]) for k in tuned)

    pipe = Pipeline(str(out), device="cpu")
    try:
        assert set(pipe.info()["supports"]) >= {"text_to_3d", "describe", "edit"}
        answer = pipe.describe(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32),
                               np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32),
                               {"max_new_tokens": 4})
        assert isinstance(answer, str)
    finally:
        pipe.release()

    # a rerun finds every stage done: it resumes at the end, trains nothing, writes the same model
    again = _train(work, out, *STAGES)[len(log):]
    assert "resumed llm at step 2" in again and "resumed polish at step 3" in again and "resumed edit at step 2" in again
    rewritten = load_file(str(out / "llm" / "model.safetensors"))
    assert all(np.array_equal(edited[k], rewritten[k]) for k in edited)
    # export alone writes the newest stage's checkpoint out again
    (out / "llm" / "model.safetensors").unlink()
    _train(work, out, "--stages", "export", "--edit-fill", "0.75", "--edit-copy-bias", "3")
    exported = load_file(str(out / "llm" / "model.safetensors"))
    assert all(np.array_equal(edited[k], exported[k]) for k in edited)
    # a run that stops at polish records the stages its model went through, not the edit stage
    _train(work, out, "--stages", "llm,polish", "--edit-fill", "0.75")
    note = json.loads((out / "training.json").read_text())
    assert "polish" in note and "edit" not in note and "edit_step" not in note


def test_codes_of_another_edit_frame_are_refused_clearly(tmp_path):
    """A workdir whose edit pairs were made with another --edit-fill must not train silently."""
    import pytest

    from backend.embedded.train import load_codes

    codes = np.zeros((1, 1024), np.int16)
    np.savez(tmp_path / "codes.npz", shape_codes=codes, shape_meta="[]", edit_src=codes, edit_tgt=codes,
             edit_meta="[]", edit_fill=0.75)
    assert load_codes(tmp_path, 0.75)["edit_src"].shape == (1, 1024)
    with pytest.raises(SystemExit, match="--edit-fill"):
        load_codes(tmp_path, 1.0)


def test_moves_edit_data_are_every_shape_moved_and_parts_added_or_removed(tmp_path):
    from backend.embedded import moves
    from backend.embedded.categories import CATEGORIES
    from backend.embedded.metrics import empty_code
    from backend.embedded.train import load_codes, load_trained_vqvae

    work = tmp_path / "work"
    fill = "0.7407407407407407"
    _train(work, tmp_path / "preset", "--stages", "data,vqvae,codes", "--edit-data", "moves", "--edit-fill", fill)
    data = load_codes(work, float(fill), "moves")
    vqvae = load_trained_vqvae(work)
    empty = empty_code(vqvae)
    kinds = [m["edit"] for m in data["edit_meta"]]
    assert set(kinds) >= {"taller", "shorter", "wider", "thinner"} and set(kinds) & {"add", "remove"}
    shapes = {(m["category"], m["seed"]) for m in data["edit_meta"]}
    assert len(shapes) == 2 * len(CATEGORIES)  # every training shape is a source
    for src, tgt, meta in zip(data["edit_src"], data["edit_tgt"], data["edit_meta"]):
        if meta["edit"] in moves.MOVE_KINDS:
            assert np.array_equal(tgt, moves.move(src, meta["edit"], meta["category"], empty))
        else:
            assert CATEGORIES[meta["category"]].part and (meta["edit"] == "remove") == meta["part"]
            assert not np.array_equal(tgt, src)
    # a workdir of moves is refused to a run asking for stretches, and moves need the edit frame
    import pytest
    with pytest.raises(SystemExit, match="--edit-data"):
        load_codes(work, float(fill), "stretch")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "backend.embedded.train", "--workdir", str(tmp_path / "w2"),
                           "--out", str(tmp_path / "p2"), *TINY, "--stages", "data,vqvae,codes", "--edit-data", "moves"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "--edit-fill below 1" in done.stderr


def test_an_edit_stage_with_the_kind_cue_grows_the_vocabulary_and_the_pipeline_edits(tmp_path):
    """--edit-kind-cue on a stage that continues a model without the kind tokens: the exported
    model has six more rows, its preset says edit_kind_cue and holds the kind question, and an
    edit runs through the pipeline."""
    work, out = tmp_path / "work", tmp_path / "preset"
    fill = ["--edit-fill", "0.75", "--grid-edit-positions", "1"]
    _train(work, out, "--stages", "data,vqvae,codes,decoder,llm,polish", *fill)
    polished = load_file(str(work / "llm_polished" / "model.safetensors"))
    _train(work, out, "--stages", "edit", "--edit-kind-cue", "1", *fill)
    edited = load_file(str(out / "llm" / "model.safetensors"))
    rows = {k: v.shape[0] for k, v in polished.items() if "embed_tokens" in k or "lm_head" in k}
    assert rows and all(edited[k].shape[0] == n + 6 for k, n in rows.items())
    preset = json.loads((out / "preset.json").read_text())
    assert preset["edit_kind_cue"] is True and preset["grid_edit_positions"] is True
    assert preset["prompts"]["edit"].endswith("{mesh}\n{instruction}")
    assert "{mesh}" not in preset["prompts"]["edit_kind"]  # the kind is asked of the instruction alone

    from backend.embedded.shape import sample_shape

    pipe = Pipeline(str(out), device="cpu")
    try:
        v, f = sample_shape("chair", 1).mesh()
        result = pipe.edit(v, f, "make it taller", {"seed": 0})
        assert result.codes.shape == (1024,)
        from backend.models.codec import EDIT_KINDS
        assert pipe.edit_kind("Make it TALLER") in EDIT_KINDS  # the kind question, through the pipeline
    finally:
        pipe.release()


def test_the_default_stages_end_with_kinds_and_a_preset_that_resizes(tmp_path):
    """The documented command's stages end with the kinds stage (the model learns to name edit
    kinds): the exported preset says edit_resize and holds the kind question, and an edit
    through the pipeline is the source resized or the model's own answer, whichever kind the
    model names."""
    from backend.embedded.shape import sample_shape
    from backend.embedded.train import EMBEDDED_EDIT_MIN_OVERLAP
    from backend.geometry.resize import PROPORTION_KINDS

    work, out = tmp_path / "work", tmp_path / "preset"
    log = _train(work, out)  # the default --stages
    assert "exported the preset at polish step 3" in log and "exported the preset at kinds step 2" in log
    preset = json.loads((out / "preset.json").read_text())
    assert preset["edit_resize"] is True and preset["edit_kind_cue"] is False and preset["edit_fill"] == 1.0
    assert preset["edit_min_overlap"] == EMBEDDED_EDIT_MIN_OVERLAP > 0  # add/remove answers checked
    assert "{mesh}" not in preset["prompts"]["edit_kind"]
    pipe = Pipeline(str(out), device="cpu")
    try:
        v, f = sample_shape("table", 1).mesh()
        kind = pipe.edit_kind("make it taller")
        try:
            result = pipe.edit(v, f, "make it taller", {"seed": 0})
        except TaskError as err:
            # a tiny, barely trained model may name a resize that does not fit, or answer an add
            # or remove with another shape, which the preset refuses
            assert err.code == "no_shape"
            assert kind in PROPORTION_KINDS or "could not make this edit" in err.message
        else:
            assert result.codes.shape == (1024,) and result.edit_kind == kind
    finally:
        pipe.release()
