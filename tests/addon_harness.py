"""Blender as the bpy module, with our extension built by .ci/build_extension.py and installed
from its zip through Blender's own operator, once per test run.

BLENDER_USER_RESOURCES points at a temporary folder before bpy is imported, so nothing of the
machine's own Blender setup is read or written.
"""

from __future__ import annotations

import importlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.backend_process import session_temp_dir

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "bl_ext.user_default.shapellm_omni"
_built: dict = {}


def import_bpy():
    if "bpy" not in sys.modules:
        os.environ["BLENDER_USER_RESOURCES"] = str(session_temp_dir("shapellm-blender-user-"))
    import bpy

    return bpy


def build_zips(out_dir: Path) -> list[Path]:
    done = subprocess.run([sys.executable, str(REPO / ".ci" / "build_extension.py"), "--out", str(out_dir)],
                          check=True, capture_output=True, text=True)
    return [Path(line) for line in done.stdout.splitlines() if line.endswith(".zip")]


def linux_zip() -> Path:
    if "zips" not in _built:
        _built["zips"] = build_zips(session_temp_dir("shapellm-dist-"))
    return next(p for p in _built["zips"] if p.name.endswith("linux_x64.zip"))


def installed_blender():
    """bpy with the extension installed from the zip and enabled."""
    bpy = import_bpy()
    import addon_utils

    if "installed" not in _built:
        result = bpy.ops.extensions.package_install_files(
            filepath=str(linux_zip()), repo="user_default", enable_on_install=True)
        assert result == {"FINISHED"}
        _built["installed"] = True
    if not addon_utils.check(PACKAGE)[1]:
        addon_utils.enable(PACKAGE, default_set=True)
    return bpy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auto_start_backend(bpy, backend_args: str) -> None:
    """The add-on set to start `python -m backend ...` (backend_args, holding {address}) from this
    checkout, on a free local port, when a job needs it."""
    prefs = bpy.context.preferences.addons[PACKAGE].preferences
    prefs.backend_python = sys.executable
    prefs.backend_args = backend_args
    prefs.backend_folder = str(REPO)
    prefs.address = f"tcp://127.0.0.1:{free_port()}"
    prefs.auto_start = True


def stop_backend() -> None:
    """Stops the backend the add-on started and drops its connection."""
    session = module("session").get()
    if session is not None:
        session.stop_backend()
        session.disconnect()


EMBEDDED_BACKEND = "-m backend serve --preset embedded --bind {address}"


def blender_with_backend(backend_args: str = EMBEDDED_BACKEND):
    """A module fixture's body: bpy with the extension, an empty scene and the add-on set to
    auto-start the backend (backend_args as in auto_start_backend); the backend stopped after."""
    bpy = installed_blender()
    clear_scene(bpy)
    auto_start_backend(bpy, backend_args)
    yield bpy
    stop_backend()


def module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def clear_scene(bpy) -> None:
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    for mesh in list(bpy.data.meshes):
        bpy.data.meshes.remove(mesh)
    for collection in list(bpy.data.collections):
        bpy.data.collections.remove(collection)
    bpy.context.scene.cursor.location = (0, 0, 0)


def pump_until(condition, timeout: float, budget_s: float = 0.002):
    """Drive the add-on's job pump like the timer would, until condition() or timeout."""
    pump = module("pump")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pump.pump(budget_s=budget_s)
        if condition():
            return True
        time.sleep(0.01)
    return False


def shape_object(bpy, name: str, shape, location):
    """A procedural shape (shape.mesh()) as an artist's mesh object at location, selected and active."""
    v, f = shape.mesh()
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([tuple(map(float, p)) for p in v], [], [tuple(map(int, t)) for t in f])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    return obj


def run_edit(bpy, instruction: str, timeout: float = 180):
    """Runs the Edit operator on the active object with `instruction`; the job, once finished."""
    session = module("session").get
    bpy.context.scene.shapellm.instruction = instruction
    assert bpy.ops.shapellm.edit() == {"FINISHED"}
    job = list(session().book.jobs.values())[-1]
    assert pump_until(lambda: not job.active and not session().results, timeout), job.state
    return job
