"""Presets: built-ins, preset folders, validation of preset.json."""

import json

import pytest

from backend.errors import TaskError
from backend.models import presets
from backend.models.presets import EditSettings, Preset, load_preset


def test_published_preset_matches_reference():
    p = load_preset("shapellm-omni-7b")
    assert p.vqvae_source() == "yejunliang23/3DVQVAE" and p.vqvae_file == "3DVQVAE.bin"
    assert p.llm_source() == "yejunliang23/ShapeLLM-7B-omni"
    assert p.generation == {"max_new_tokens": 2048, "top_k": 8192, "top_p": 0.7, "temperature": 0.7, "seed": 42}
    assert p.prompts["text_to_3d"].format(text="a chair") == (
        "Please generate a 3D asset based on the prompt I provided: a chair"
    )
    assert p.prompts["image_to_3d"] == "Generate a 3D mesh from the provided image."
    assert p.prompts["describe"] == "Give a quick overview of the object represented by this 3D mesh."
    assert p.normalization == "demo"
    assert all(p.supports(t) for t in presets.TASKS)
    assert p.model_text("A Chair") == "A Chair"  # the published model reads the artist's casing


def test_folder_round_trip_resolves_sub_folders(tmp_path):
    (tmp_path / "vqvae").mkdir()
    (tmp_path / "llm").mkdir()
    Preset(name="mine", vqvae="vqvae", llm="llm", tasks=["text_to_3d", "describe"],
           generation={"seed": 7}, lowercase_text=True, edit=EditSettings(aligned_positions=True, min_overlap=0.3)).save(tmp_path)
    p = load_preset(tmp_path)
    assert p.name == "mine" and p.folder == tmp_path.resolve()
    assert p.vqvae_source() == tmp_path.resolve() / "vqvae"
    assert p.llm_source() == tmp_path.resolve() / "llm"
    assert p.generation["seed"] == 7 and p.generation["top_p"] == 0.7  # the rest default
    assert p.supports("describe") and not p.supports("image_to_3d")
    assert p.lowercase_text and p.model_text("Make it TALLER") == "make it taller"
    assert p.edit == EditSettings(aligned_positions=True, read_kind=False, min_overlap=0.3)
    assert Preset(name="x", vqvae="v", llm="l").edit == EditSettings()  # the published model's: all off


def test_folder_may_name_a_hub_repo(tmp_path):
    (tmp_path / "preset.json").write_text(json.dumps(
        {"name": "hub", "vqvae": "yejunliang23/3DVQVAE", "vqvae_file": "3DVQVAE.bin", "llm": "llm"}))
    p = load_preset(str(tmp_path))
    assert p.vqvae_source() == "yejunliang23/3DVQVAE"
    assert p.llm_source() == tmp_path.resolve() / "llm"


@pytest.mark.parametrize("bad, words", [
    ({"normalization": "fancy"}, "normalization"),
    ({"tasks": ["text_to_3d", "dance"]}, "dance"),
    ({"prompts": {"text_to_3d": "no placeholder"}}, "{text}"),
    ({"generation": {"beams": 4}}, "beams"),
    ({"colour": "red"}, "colour"),
    ({"lowercase_text": "yes"}, "lowercase_text"),
    ({"edit": {"aligned_positions": 1}}, "edit.aligned_positions"),
    ({"edit": {"read_kind": 1}}, "edit.read_kind"),
    ({"edit": {"read_kind": True}}, "'edit_kind' prompt"),
    ({"edit": {"read_kind": True}, "prompts": {"edit_kind": "which edit?"}}, "'edit_kind' prompt"),
    ({"edit": {"min_overlap": 1.0}}, "edit.min_overlap"),
    ({"edit": {"min_overlap": -0.1}}, "edit.min_overlap"),
    ({"edit": {"min_overlap": "0.4"}}, "edit.min_overlap"),
    ({"edit": {"min_confidence": 1.0}}, "edit.min_confidence"),
    ({"edit": {"copy_bias": 4}}, "copy_bias"),
    ({"edit": [True]}, "edit must be an object"),
    # the experiment switches of earlier versions are gone, not silently ignored
    ({"edit_kind_cue": True}, "edit_kind_cue"),
])
def test_bad_preset_json_is_a_clear_error(tmp_path, bad, words):
    data = {"name": "x", "vqvae": "vqvae", "llm": "llm", **bad}
    (tmp_path / "preset.json").write_text(json.dumps(data))
    with pytest.raises(TaskError) as err:
        load_preset(tmp_path)
    assert err.value.code == "model_error" and words in err.value.message


def test_broken_json_and_unknown_names(tmp_path):
    (tmp_path / "preset.json").write_text("{not json")
    with pytest.raises(TaskError, match="cannot read"):
        load_preset(tmp_path)
    with pytest.raises(TaskError) as err:
        load_preset("no-such-preset")
    assert err.value.code == "model_unavailable" and "shapellm-omni-7b" in err.value.message


def test_embedded_missing_is_model_unavailable(tmp_path, monkeypatch):
    # Point the built-in at an empty folder: the trained model may or may not be committed yet.
    monkeypatch.setattr(presets, "EMBEDDED_FOLDER", tmp_path / "embedded")
    with pytest.raises(TaskError) as err:
        load_preset("embedded")
    assert err.value.code == "model_unavailable" and "embedded" in err.value.message
