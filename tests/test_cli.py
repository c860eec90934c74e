"""The command line: one-shot tasks in-process on the tiny preset (real pipeline, real files),
bad input caught before any model loads, keygen/serve are covered in test_server_control.py."""

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest

from backend import cli
from backend.geometry.meshio import load_mesh
from tests.backend_process import tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")
MESHES = Path("../shared/fixtures/meshes")


@pytest.fixture(autouse=True)
def repo_root(monkeypatch):
    monkeypatch.chdir(Path(__file__).resolve().parents[1])  # fixture paths are relative to it


def run(capsys, *args):
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow   # three whole tasks through the command line
def test_generate_describe_edit_write_real_files_with_a_progress_bar(capsys, tmp_path):
    preset = tiny_preset()
    out = tmp_path / "chair.glb"
    code, stdout, stderr = run(capsys, "generate", "--prompt", "a chair", "-o", out, "--preset", preset,
                               "--seed", 1, "--codes", tmp_path / "codes.npy")
    assert code == 0, stderr
    assert "tokens" in stderr and "1024/1024" in stderr and "surface" in stderr  # the progress bar
    vertices, faces = load_mesh(str(out))
    assert len(vertices) > 0 and len(faces) > 0 and f"{len(faces)} triangles" in stdout
    codes = np.load(tmp_path / "codes.npy")
    assert codes.shape == (1024,) and codes.dtype == np.int32

    code, stdout, stderr = run(capsys, "describe", out, "--preset", preset)
    assert code == 0, stderr
    assert stdout.endswith("\n")  # the caption (random words from a random model)

    source = MESHES / "torus.STL"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    edited = tmp_path / "torus_taller.obj"
    code, stdout, stderr = run(capsys, "edit", source, "--instruction", "make it taller", "-o", edited, "--preset", preset)
    assert code == 0, stderr
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before  # the input is never touched
    v, f = load_mesh(str(edited))
    original, _ = load_mesh(str(source))
    assert len(f) > 0
    # Edits come back in the input's own coordinates: same place and scale, not the unit cube.
    centre, size = original.mean(0), np.ptp(original, 0).max()
    assert np.abs(v.mean(0) - centre).max() < 0.5 * size and 0.2 * size < np.ptp(v, 0).max() < 2 * size


@pytest.mark.parametrize("args, code", [
    (["generate", "--prompt", "   ", "-o", "{tmp}/x.glb"], "bad_prompt"),
    (["generate", "--prompt", "x" * 5000, "-o", "{tmp}/x.glb"], "bad_prompt"),
    (["generate", "--prompt", "a cup", "-o", "{tmp}/x.xyz"], "unsupported_format"),
    (["generate", "--prompt", "a cup", "-o", "{tmp}/x.glb", "--top-p", "3"], "bad_field"),
    (["generate", "--image", "{tmp}/not_an_image.png", "-o", "{tmp}/x.glb"], "bad_image"),
    (["describe", "{tmp}/missing.obj"], "file_not_found"),
    (["describe", "{tmp}/broken.obj"], "empty_mesh"),
    (["edit", str(MESHES / "teapot.stl"), "--instruction", "", "-o", "{tmp}/x.obj"], "bad_prompt"),
    (["generate", "--prompt", "a cup", "-o", "{tmp}/x.glb", "--preset", "no-such-preset"], "model_unavailable"),
])
def test_bad_input_gets_a_coded_error_and_writes_nothing(capsys, tmp_path, args, code):
    (tmp_path / "not_an_image.png").write_text("definitely text")
    (tmp_path / "broken.obj").write_text("# an OBJ with no faces\nv 0 0 0\n")
    exit_code, stdout, stderr = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert exit_code == 1
    assert f"error: {code}:" in stderr, stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.obj", "not_an_image.png"]


def test_progress_bar_prints_stage_lines_when_not_a_terminal():
    stream = io.StringIO()
    bar = cli.ProgressBar(stream)
    bar("load", 0, 2)
    for done in range(1, 1025):
        bar("tokens", done, 1024)
    bar("decode", 1, 1)
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("load") and "0/2" in lines[0]
    assert any(line.startswith("tokens") and line.endswith("1024/1024") for line in lines)
    assert len(lines) < 10  # throttled: not one line per token
    assert lines[-1].startswith("decode") and "#" * cli.ProgressBar.WIDTH in lines[-1]


def test_commands_can_be_added_from_other_modules(capsys):
    seen = {}
    cli.add_command("echo-test", "test command", lambda p: p.add_argument("word"),
                    lambda args: seen.setdefault("word", args.word) and 3)
    try:
        assert cli.main(["echo-test", "hi"]) == 3 and seen == {"word": "hi"}
        with pytest.raises(ValueError):
            cli.add_command("echo-test", "again", lambda p: None, lambda a: 0)
    finally:
        del cli.COMMANDS["echo-test"]


def test_edit_with_the_embedded_model_says_how_it_read_the_instruction(capsys, tmp_path):
    """The CLI prints how the instruction was read ("wider": its words say so, no model guess
    to be sure of) and what the edit did to the file's own mesh. The torus fixture is an STL
    (Z up), so it reaches the model upright."""
    edited = tmp_path / "torus_wider.obj"
    code, stdout, stderr = run(capsys, "edit", MESHES / "torus.STL", "--instruction", "make it wider", "-o", edited,
                               "--preset", "embedded")
    assert code == 0, stderr
    line = next(x for x in stdout.splitlines() if x.startswith("read as"))
    assert line == 'read as "wider"'
    assert "kept the mesh: x x1.35" in stdout
    assert edited.stat().st_size > 0
