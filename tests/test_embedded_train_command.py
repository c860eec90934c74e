"""The documented training command, every stage at a tiny size: it writes a preset the
pipeline loads, the polish stage continues the llm stage's model, the kinds stage the polished
one and the artist stage the kinds one, and a rerun resumes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from backend.errors import TaskError
from backend.models.presets import load_preset
from backend.pipeline import Pipeline

pytestmark = pytest.mark.slow   # runs the training command end to end

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--per-category", "2", "--held-per-category", "1", "--fit-per-category", "2", "--llm-per-category", "2",
        "--edits-per-category", "1", "--llm-steps", "2", "--llm-hidden", "32", "--llm-layers", "1",
        "--polish-steps", "3", "--kinds-steps", "2", "--decoder-steps", "2", "--artist-steps", "2",
        "--artist-unfamiliar", "4", "--threads", "1"]


def _train(work, out, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "backend.embedded.train", "--workdir", str(work), "--out", str(out),
                           *TINY, *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return (work / "train.log").read_text()


def test_every_stage_runs_resumes_and_the_preset_edits(tmp_path):
    """The default --stages end with the kinds stage (the model learns to name edit kinds) and the
    artist stage (artists' wordings, unknown objects declined): the exported preset reads the kind,
    names the objects it knows and checks add/remove answers, and an edit through the
    pipeline is the source resized or the model's own answer, whichever kind the model names."""
    from backend.embedded.shape import sample_shape
    from backend.embedded.train import EMBEDDED_EDIT_MIN_OVERLAP
    from backend.geometry.resize import PROPORTION_KINDS

    work, out = tmp_path / "work", tmp_path / "preset"
    log = _train(work, out)  # the default --stages
    note = json.loads((out / "training.json").read_text())
    assert note["polish_step"] == 3 and note["polish"]["made_up_frames"] > 0
    assert note["kinds_step"] == 2 and note["kinds"]["edit_resize"]
    assert note["artist_step"] == 2 and "exported the preset at artist step 2" in log
    # each stage starts from the saved model of the one before and moves it (kinds adds rows)
    base = load_file(str(work / "llm_base" / "model.safetensors"))
    polished = load_file(str(work / "llm_polished" / "model.safetensors"))
    kinds_saved = load_file(str(work / "llm_kinds" / "model.safetensors"))
    kinds = load_file(str(out / "llm" / "model.safetensors"))  # the artist stage's, the last
    assert base.keys() == polished.keys() == kinds.keys()
    assert any(not np.array_equal(base[k], polished[k]) for k in base)
    assert any(not np.array_equal(polished[k], kinds_saved[k]) for k in base)
    assert any(not np.array_equal(kinds_saved[k], kinds[k]) for k in base)
    assert "exported the preset at polish step 3" in log and "exported the preset at kinds step 2" in log
    preset = load_preset(out)
    assert "chairs" in preset.known_objects
    assert preset.edit.read_kind and preset.edit.aligned_positions
    assert preset.edit.min_overlap == EMBEDDED_EDIT_MIN_OVERLAP > 0  # add/remove answers checked
    assert "{mesh}" not in preset.prompts["edit_kind"]
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
        v, f = sample_shape("table", 1).mesh()
        kind = pipe.edit_kind("change the height")  # size words without a side: the model's read
        try:
            result = pipe.edit(v, f, "change the height", {"seed": 0})
        except TaskError as err:
            # a tiny, barely trained model may name a resize that does not fit, or answer an add
            # or remove with another shape, which the preset refuses
            assert err.code == "no_shape"
            assert kind in PROPORTION_KINDS or "not an edit this model knows" in err.message
        else:
            assert result.codes.shape == (1024,) and result.edit_kind == kind
    finally:
        pipe.release()

    # a rerun finds every stage done: it resumes at the end, trains nothing, writes the same model
    again = _train(work, out)[len(log):]
    assert "resumed llm at step 2" in again and "resumed polish at step 3" in again
    assert "resumed kinds at step 2" in again and "resumed artist at step 2" in again
    rewritten = load_file(str(out / "llm" / "model.safetensors"))
    assert all(np.array_equal(kinds[k], rewritten[k]) for k in kinds)
    # export alone writes the newest stage's checkpoint out again
    (out / "llm" / "model.safetensors").unlink()
    _train(work, out, "--stages", "export")
    exported = load_file(str(out / "llm" / "model.safetensors"))
    assert all(np.array_equal(kinds[k], exported[k]) for k in kinds)
    # a run that stops at polish records the stages its model went through, not the kinds stage,
    # and its preset does not read the kind
    _train(work, out, "--stages", "llm,polish")
    note = json.loads((out / "training.json").read_text())
    assert "polish" in note and "kinds" not in note and "kinds_step" not in note
    assert not load_preset(out).edit.read_kind and not load_preset(out).known_objects


def test_codes_of_an_experiment_are_refused_clearly(tmp_path):
    """A workdir whose edit pairs an experiment made (--edit-fill, --edit-data of commit 45eb3b5)
    must not train silently."""
    from backend.embedded.train import load_codes

    codes = np.zeros((1, 1024), np.int16)
    pairs = dict(shape_codes=codes, shape_meta="[]", edit_src=codes, edit_tgt=codes, edit_meta="[]")
    np.savez(tmp_path / "codes.npz", **pairs)
    assert load_codes(tmp_path)["edit_src"].shape == (1, 1024)
    np.savez(tmp_path / "codes.npz", **pairs, edit_fill=1.0, edit_data="stretch")  # the recipe's, older
    assert load_codes(tmp_path)["edit_src"].shape == (1, 1024)
    for made in (dict(edit_fill=0.75, edit_data="stretch"), dict(edit_fill=0.75, edit_data="moves")):
        np.savez(tmp_path / "codes.npz", **pairs, **made)
        with pytest.raises(SystemExit, match="experiment"):
            load_codes(tmp_path)
