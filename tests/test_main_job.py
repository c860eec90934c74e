"""The README's main job, run as the README runs it (plus an edit): headless Blender (the bpy
module) installs the built extension, the add-on starts the backend on the embedded model
itself, generates, edits the result and writes the scene, the glTF and the renders."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

pytestmark = pytest.mark.slow   # the README's main job: Blender, the embedded model, renders

REPO = Path(__file__).resolve().parents[1]


def test_the_main_job_generates_edits_and_writes_its_files(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "tools/blender_demo.py", "--prompt", "a dining table",
                           "--edit", "make it taller", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'make it taller: read as "taller"' in done.stdout
    for name in ("scene.blend", "result.glb", "render.png", "edit.png"):
        assert (out / name).stat().st_size > 0, name
    # the scene holds the table and its edited copy: taller, as wide and deep, the table hidden
    script = ("import bpy, json, sys; bpy.ops.wm.open_mainfile(filepath=sys.argv[1]); "
              "print(json.dumps([(o.name, tuple(o.dimensions), o.hide_get()) for o in bpy.data.objects "
              "if o.name.startswith('Dining table')]))")
    read = subprocess.run([sys.executable, "-c", script, str(out / "scene.blend")], capture_output=True, text=True,
                          env=dict(env, BLENDER_USER_RESOURCES=str(tmp_path / "reader")), timeout=300)
    objects = {name: (np.array(size), hidden) for name, size, hidden in json.loads(read.stdout.strip().splitlines()[-1])}
    (table, table_hidden), (edited, edited_hidden) = objects["Dining table"], objects["Dining table edited"]
    assert table_hidden and not edited_hidden
    assert edited[2] / table[2] > 1.2 and np.allclose(edited[:2], table[:2], rtol=0.08), (table, edited)
    # the glTF is the edited copy (Y up in glTF)
    mesh = trimesh.load(out / "result.glb", force="mesh")
    np.testing.assert_allclose(mesh.extents[[0, 2, 1]], edited, rtol=0.02)
    # the renders show something besides the ground and the sky: the object's own colour
    for name in ("render.png", "edit.png"):
        image = Image.open(out / name)
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
        orange = (pixels[:, 0] > pixels[:, 2] + 40) & (pixels[:, 0] > 90)
        assert orange.mean() > 0.01, name
        # no path of this machine in the PNG's metadata (Blender stamps the .blend's file name)
        assert not any(str(tmp_path) in str(v) for v in image.info.values()), name
