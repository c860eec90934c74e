"""The backend supervisor with real child processes (no model needed): start failures are
clear, a crash is noticed by the job pump with the log's last words, stop leaves nothing."""

import os
import signal
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender and real backend processes


@pytest.fixture()
def bpy():
    bpy = harness.installed_blender()
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
    saved = prefs.backend_python, prefs.backend_args, prefs.backend_folder
    yield bpy
    harness.module("session").get().stop_backend()
    # fetched again: a test that disables and re-enables the add-on frees the old preferences,
    # and writing through the stale pointer crashed Blender (a segfault in one .ci/run)
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
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
    assert session.state == "offline"
    assert harness.pump_until(lambda: not session.supervisor.stopping, 10)  # the pump reaps it
    assert process.poll() is not None and session.message == "Backend stopped"


# A stand-in backend that takes a second to shut down after SIGTERM (like a real one finishing
# its decoding step), or ignores SIGTERM altogether; it says when its handler is in place.
SLOW_TO_STOP = ('-c "import signal, sys, time; '
                'signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0))); '
                'print(\'ready\', flush=True); time.sleep(60)"')
DEAF_TO_SIGTERM = ('-c "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
                   'print(\'ready\', flush=True); time.sleep(60)"')


def start_stand_in(bpy, args):
    configure(bpy, sys.executable, args)
    bpy.ops.shapellm.backend_start()
    session = harness.module("session").get()
    assert harness.pump_until(lambda: "ready" in session.supervisor.log_tail(), 20)
    return session, session.supervisor.process


def test_stop_returns_before_the_backend_has_exited_and_the_pump_reaps_it(bpy):
    session, process = start_stand_in(bpy, SLOW_TO_STOP)
    assert bpy.ops.shapellm.backend_stop() == {"FINISHED"}
    assert process.poll() is None          # Stop did not wait for the exit
    assert session.state == "offline" and session.message == "Backend stopping"
    assert harness.pump_until(lambda: not session.supervisor.stopping, 10)  # reaped by the pump
    assert process.returncode == 0         # its own clean exit, not a kill
    assert session.message == "Backend stopped"


def test_a_backend_deaf_to_stop_is_killed_after_the_grace_time(bpy, monkeypatch):
    monkeypatch.setattr(harness.module("supervisor"), "STOP_GRACE_S", 1.0)
    session, process = start_stand_in(bpy, DEAF_TO_SIGTERM)
    bpy.ops.shapellm.backend_stop()
    assert process.poll() is None
    assert harness.pump_until(lambda: not session.supervisor.stopping, 10)
    assert process.returncode == -signal.SIGKILL


def test_disabling_the_add_on_while_a_backend_is_stopping_leaves_no_process(bpy, monkeypatch):
    import addon_utils

    monkeypatch.setattr(harness.module("supervisor"), "STOP_GRACE_S", 1.0)
    session, process = start_stand_in(bpy, DEAF_TO_SIGTERM)
    bpy.ops.shapellm.backend_stop()
    addon_utils.disable(harness.PACKAGE, default_set=True)
    try:
        assert process.poll() is not None   # disable waits (up to the grace time), then kills
    finally:
        addon_utils.enable(harness.PACKAGE, default_set=True)


def test_the_backend_is_told_to_exit_with_blender(bpy):
    session, process = start_stand_in(bpy, SLOW_TO_STOP)
    assert process.args[-2:] == ["--parent-pid", str(os.getpid())]


def test_a_malformed_address_is_refused_before_anything_starts(bpy):
    prefs = bpy.context.preferences.addons[harness.PACKAGE].preferences
    saved = prefs.address
    prefs.address = "localhost:5577"   # no tcp://
    try:
        configure(bpy, sys.executable, SLOW_TO_STOP)
        with pytest.raises(RuntimeError, match="not a usable backend address"):
            bpy.ops.shapellm.backend_start()
        session = harness.module("session").get()
        assert not session.backend_running and session.state == "offline"
        configure(bpy, "", "")       # no backend to start: connect only
        with pytest.raises(RuntimeError, match="not a usable backend address"):
            bpy.ops.shapellm.backend_start()
    finally:
        prefs.address = saved
