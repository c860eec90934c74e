"""The pipeline end to end on the tiny preset: real tiny models written and loaded through the
same loaders as the published weights, real geometry, all four tasks to a mesh."""

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from backend.errors import Cancelled, TaskError
from backend.geometry.meshio import load_mesh
from backend.geometry.normalize import normalize
from backend.geometry.placement import fit_edit_answer
from backend.geometry.surface import MIN_COMPONENT_VOXELS, occupancy_to_mesh, remove_small_components
from backend.geometry.voxelize import voxelize_surface
from backend.models.presets import load_preset
from tests.backend_process import tiny_preset
from backend.pipeline import Pipeline

torch.set_num_threads(1)

MESHES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures" / "meshes"


@pytest.fixture(scope="module")
def tiny_folder():
    # Written once per test session by write_tiny_preset and shared with the server tests;
    # read-only here.
    return tiny_preset()


@pytest.fixture(scope="module")
def pipe(tiny_folder):
    pipeline = Pipeline(str(tiny_folder), device="cpu")
    yield pipeline
    pipeline.release()


class Recorder:
    def __init__(self, cancel_at=None):
        self.events = []
        self.cancel_at = cancel_at  # (stage, done) after which cancelled() turns true
        self.flag = False

    def progress(self, stage, done, total):
        self.events.append((stage, done, total))
        if self.cancel_at == (stage, done):
            self.flag = True

    def cancelled(self):
        return self.flag

    def stages(self):
        seen = []
        for stage, _, _ in self.events:
            if not seen or seen[-1] != stage:
                seen.append(stage)
        return seen


def check_mesh(result):
    assert result.vertices.dtype == np.float32 and result.vertices.ndim == 2 and result.vertices.shape[1] == 3
    assert result.faces.dtype == np.int32 and len(result.faces) > 0
    assert result.faces.min() >= 0 and result.faces.max() < len(result.vertices)
    assert np.isfinite(result.vertices).all()
    assert result.codes.dtype == np.int32 and result.codes.shape == (1024,)
    assert result.codes.min() >= 0 and result.codes.max() < 8192


def teapot():
    v, f = load_mesh(str(MESHES / "teapot.stl"))
    return v * 2.0 + np.array([10.0, -4.0, 3.0], np.float32), f  # far from the unit cube


def test_info(pipe):
    info = pipe.info()
    assert info == {"preset": "tiny", "device": "cpu", "greedy": False, "engine": "own", "max_jobs": 1,
                    "supports": {"text_to_3d": True, "image_to_3d": True, "describe": True, "edit": True}}


def test_text_to_3d_is_seeded_and_reports_stages(pipe):
    rec = Recorder()
    a = pipe.text_to_3d("a wooden chair", {"seed": 3}, rec.progress, rec.cancelled)
    check_mesh(a)
    # The unit frame; a surface may reach a voxel beyond the outer voxel centres.
    assert np.abs(a.vertices).max() <= 0.5 + 1 / 64
    stages = rec.stages()
    assert stages[stages.index("tokens"):] == ["tokens", "decode", "surface"]
    assert ("tokens", 1024, 1024) in rec.events
    b = pipe.text_to_3d("a wooden chair", {"seed": 3, "mesh_style": "blocky"})
    assert np.array_equal(a.codes, b.codes)  # same seed, same shape
    # Blocky faces are axis-aligned voxel faces: every coordinate on the voxel-corner lattice.
    corners = (b.vertices + 0.5) * 64
    assert np.allclose(corners, np.round(corners), atol=1e-3)


def test_codes_to_mesh_is_deterministic(pipe):
    codes = np.random.default_rng(0).integers(0, 8192, 1024).astype(np.int32)
    vqvae = pipe._models(lambda *a: None, lambda: False)[1]
    def to_mesh():
        codes_out, logits = pipe._decode(vqvae, codes, lambda *a: None, lambda: False)
        return (codes_out, logits) + pipe._surface(logits > 0, {"mesh_style": "smooth"}, lambda *a: None, lambda: False)

    first, second = to_mesh(), to_mesh()
    assert all(np.array_equal(x, y) for x, y in zip(first, second))
    # codes -> logits -> occupancy -> codes twice gives the same codes.
    occ = (vqvae.decode(torch.from_numpy(codes[None]).long()) > 0).float()
    assert torch.equal(vqvae.encode(occ), vqvae.encode(occ))


def test_image_to_3d(pipe):
    image = Image.new("RGB", (200, 160), "white")
    ImageDraw.Draw(image).ellipse((50, 30, 150, 130), fill=(200, 30, 30))
    png = io.BytesIO()
    image.save(png, "PNG")
    rec = Recorder()
    result = pipe.image_to_3d(png.getvalue(), {"seed": 1}, rec.progress, rec.cancelled)
    check_mesh(result)
    assert "surface" in rec.stages()


def test_describe_a_real_mesh(pipe):
    v, f = teapot()
    rec = Recorder()
    text = pipe.describe(v, f, {"seed": 0, "max_new_tokens": 12}, rec.progress, rec.cancelled)
    assert isinstance(text, str)
    assert rec.stages()[rec.stages().index("encode"):] == ["encode", "tokens"]


def test_edit_lands_where_the_original_stood(pipe):
    """The tiny preset reads and writes each shape normalised on its own, so the
    answer is sized from the sides the edit kept and stands on the source's floor and footprint."""
    v, f = teapot()
    result = pipe.edit(v, f, "make it taller", {"seed": 0})
    check_mesh(result)
    voxel = (v.max(0) - v.min(0)).max() / 64  # in the caller's units
    assert abs(result.vertices[:, 2].min() - v[:, 2].min()) <= 1.5 * voxel
    centre = (result.vertices.min(0) + result.vertices.max(0)) / 2
    assert np.allclose(centre[:2], ((v.min(0) + v.max(0)) / 2)[:2], atol=1.5 * voxel)


def test_edit_of_a_y_up_file_maps_back_into_its_frame(pipe):
    v, f = load_mesh(str(MESHES / "Duck.glb"))
    result = pipe.edit(v, f, "make it round", {"seed": 5, "up": "y"})
    # The same codes meshed in the unit frame, mapped back through an independently computed
    # Y-up normalisation, give the returned vertices.
    # (placed on the source's floor and footprint first, as every model-written answer is).
    vqvae = pipe._vqvae
    logits = vqvae.decode(torch.from_numpy(result.codes[None]).long())[0, 0].numpy()
    v_unit, _ = occupancy_to_mesh(logits, mode="smooth")
    v_source, norm = normalize(v, convention="training", up="y")
    source = voxelize_surface(v_source, f, resolution=64)
    scale, offset = fit_edit_answer(source, remove_small_components(logits > 0, MIN_COMPONENT_VOXELS))
    placed = v_unit * np.float32(scale) + offset.astype(np.float32)
    assert np.allclose(result.vertices, norm.from_unit(placed), atol=1e-5)
    # And that map is not the Z-up one (the duck's box is not a cube, the rotation matters).
    _, norm_z = normalize(v, convention="training", up="z")
    assert not np.allclose(result.vertices, norm_z.from_unit(placed), atol=1e-3)


def test_cancel_during_tokens_is_prompt(pipe):
    rec = Recorder(cancel_at=("tokens", 10))
    with pytest.raises(Cancelled):
        pipe.text_to_3d("a lamp", {"seed": 1}, rec.progress, rec.cancelled)
    tokens = [d for s, d, _ in rec.events if s == "tokens"]
    assert max(tokens) <= 11  # stopped within one decoding step
    assert "decode" not in rec.stages()


def test_cancel_between_stages(pipe):
    v, f = teapot()
    rec = Recorder(cancel_at=("encode", 1))
    with pytest.raises(Cancelled):
        pipe.edit(v, f, "make it taller", {"seed": 1}, rec.progress, rec.cancelled)
    assert "tokens" not in rec.stages()
    already = Recorder()
    already.flag = True
    with pytest.raises(Cancelled):
        pipe.text_to_3d("a lamp", None, already.progress, already.cancelled)
    assert already.events == []


@pytest.mark.parametrize("call, code", [
    (lambda p: p.text_to_3d("   "), "bad_prompt"),
    (lambda p: p.text_to_3d("x" * 2001), "bad_prompt"),
    (lambda p: p.text_to_3d("a cup", {"colour": "red"}), "bad_field"),
    (lambda p: p.text_to_3d("a cup", {"mesh_style": "wavy"}), "bad_field"),
    (lambda p: p.image_to_3d(b"not an image"), "bad_image"),
    (lambda p: p.image_to_3d(b""), "bad_image"),
    (lambda p: p.edit(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32), "taller"), "empty_mesh"),
    (lambda p: p.edit(np.full((3, 3), np.nan, np.float32), np.array([[0, 1, 2]], np.int32), "taller"), "bad_mesh"),
    (lambda p: p.describe(np.eye(3, dtype=np.float32), np.array([[0, 1, 5]], np.int32)), "bad_mesh"),
    (lambda p: p.edit(*teapot(), ""), "bad_prompt"),
    (lambda p: p.describe(*teapot(), {"up": "x"}), "bad_field"),
])
def test_bad_input_is_a_clear_task_error(pipe, call, code):
    with pytest.raises(TaskError) as err:
        call(pipe)
    assert err.value.code == code and err.value.message


def test_gif_is_refused(pipe):
    gif = io.BytesIO()
    Image.new("RGB", (8, 8)).save(gif, "GIF")
    with pytest.raises(TaskError) as err:
        pipe.image_to_3d(gif.getvalue())
    assert err.value.code == "bad_image" and "GIF" in err.value.message


def test_unsupported_task(tiny_folder):
    preset = dataclasses.replace(load_preset(tiny_folder), tasks=("text_to_3d",))
    p = Pipeline(preset, device="cpu")
    assert p.info()["supports"]["edit"] is False
    with pytest.raises(TaskError) as err:
        p.describe(*teapot())
    assert err.value.code == "unsupported"


def test_missing_weights_fail_at_first_task_with_a_clear_error(tiny_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_folder, broken)
    (broken / "vqvae" / "model.safetensors").unlink()
    p = Pipeline(str(broken), device="cpu")  # nothing loads yet
    with pytest.raises(TaskError) as err:
        p.text_to_3d("a cup")
    assert err.value.code == "model_unavailable" and "model.safetensors" in err.value.message


def test_release_then_the_next_task_loads_again(tiny_folder):
    p = Pipeline(str(tiny_folder), device="cpu")
    v, f = teapot()
    p.describe(v, f, {"max_new_tokens": 2})
    assert p._llm is not None and p._vqvae is not None
    p.release()
    assert p._llm is None and p._vqvae is None
    rec = Recorder()
    p.describe(v, f, {"max_new_tokens": 2}, rec.progress, rec.cancelled)
    assert ("load", 0, 2) in rec.events
    p.release()


def test_published_preset_offline_without_weights_names_the_missing_file(tmp_path, monkeypatch):
    # No hub here: an empty huggingface_hub cache with HF_HUB_OFFLINE=1 stands in for a
    # machine that never downloaded the published weights.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    p = Pipeline("shapellm-omni-7b", device="cpu")
    assert p.info()["preset"] == "shapellm-omni-7b"
    with pytest.raises(TaskError) as err:
        p.text_to_3d("a chair")
    assert err.value.code == "model_unavailable"
    assert "yejunliang23/3DVQVAE" in err.value.message and "3DVQVAE.bin" in err.value.message
