"""The backend supervisor with real child processes (no model needed): start failures are
clear, a crash is noticed by the job pump with the log's last words, stop leaves nothing."""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402


@pytest.fixture()
def bpy():
    bpy = harness.installed_blender()
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
    saved = prefs.backend_python, prefs.backend_args, prefs.backend_folder
    yield bpy
    harness.module("session").get().stop_backend()
    prefs.backend_python, prefs.backend_args, prefs.backend_folder = saved


def configure(bpy, python, args, folder=""):
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
    prefs.backend_python, prefs.backend_args, prefs.backend_folder = python, args, folder


def test_missing_backend_python_is_a_clear_error(bpy, tmp_path):
    configure(bpy, str(tmp_path / "no-python"), "-m backend serve")
    with pytest.raises(RuntimeError, match="Could not start the backend"):
        bpy.ops.shapellm.backend_start()
    configure(bpy, sys.executable, "-m backend serve", str(tmp_path / "missing-folder"))
    with pytest.raises(RuntimeError, match="Backend folder does not exist"):
        bpy.ops.shapellm.backend_start()
    configure(bpy, sys.executable, '-c "unbalanced')
    with pytest.raises(RuntimeError, match="do not parse"):
        bpy.ops.shapellm.backend_start()


def test_a_backend_that_dies_at_start_is_reported_with_its_log(bpy):
    configure(bpy, sys.executable, "-c \"import sys; print('preset not found: nowhere'); sys.exit(3)\"")
    bpy.ops.shapellm.backend_start()
    session = harness.module("session").get()
    assert harness.pump_until(lambda: session.state == "lost", 10)
    assert "exited with code 3" in session.message and "preset not found" in session.message
    assert not session.backend_running


def test_stop_ends_the_process(bpy):
    configure(bpy, sys.executable, '-c "import time; time.sleep(60)"')
    bpy.ops.shapellm.backend_start()
    session = harness.module("session").get()
    process = session.supervisor.process
    assert process.poll() is None
    bpy.ops.shapellm.backend_stop()
    assert process.poll() is not None and session.state == "offline"
