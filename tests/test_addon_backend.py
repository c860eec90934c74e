"""The add-on end to end under the real bpy module, against real backend processes over real
ZeroMQ sockets, with the tiny test preset (backend.models.tiny: a real model of the published
formats, random weights) in place of the published checkpoints, which cannot run here.

Timers do not fire in the bpy module, so the tests drive the add-on's job pump directly, as
the timer would. The tests share one add-on-supervised backend and run in file order.
"""

import os
import signal
import sys
import threading
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import tests.addon_harness as harness  # noqa: E402

pytestmark = pytest.mark.slow   # real Blender and a real backend process

FULL_GENERATION_S = 120   # generous: a 1024-token tiny generation takes ~10 s on a busy CPU


free_port = harness.free_port


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    from backend.models.tiny import write_tiny_preset

    return write_tiny_preset(tmp_path_factory.mktemp("tiny") / "preset")


@pytest.fixture(scope="module")
def bpy(tiny_preset):
    bpy = harness.installed_blender()
    harness.clear_scene(bpy)
    harness.auto_start_backend(bpy, f'-m backend serve --preset "{tiny_preset}" --bind {{address}}')
    yield bpy
    harness.stop_backend()


def session():
    return harness.module("session").get()


def prefs(bpy):
    return bpy.context.preferences.addons[harness.PACKAGE].preferences


def newest_jobs(n):
    return list(session().book.jobs.values())[-n:]


def wait_done(job, timeout=FULL_GENERATION_S):
    assert harness.pump_until(lambda: not job.active and not session().results, timeout), \
        f"{job.task} still {job.state} after {timeout} s"
    assert job.state == "done", job.message


def select(bpy, obj):
    bpy.ops.object.select_all(action="DESELECT")
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


def test_generate_auto_starts_the_backend_and_places_the_result(bpy):
    settings = bpy.context.scene.shapellm
    settings.prompt, settings.seed, settings.variations = "a chair with four legs", 3, 2
    bpy.context.scene.cursor.location = (1.0, 2.0, 0.5)
    try:
        assert bpy.ops.shapellm.generate() == {"FINISHED"}   # returns at once; the backend starts
    finally:
        settings.variations = 1
    assert session().backend_running
    (job,) = newest_jobs(1)   # one job for both variations: one batch on the backend
    # sent before the backend said whether its model samples: the panel's temperature goes along
    assert job.options["variations"] == 2 and job.options["temperature"] == pytest.approx(settings.temperature)
    seen = set()
    assert harness.pump_until(lambda: seen.add((job.stage, job.total)) or not job.active, FULL_GENERATION_S)
    wait_done(job)
    assert ("tokens", 1024) in seen                    # real progress, tokens of 1024
    assert session().connected and session().server_info["preset"] == "tiny"
    obj = bpy.data.objects[job.result_name]
    assert obj.name.startswith("Chair with four legs")
    assert obj.users_collection[0].name == "ShapeLLM"
    assert tuple(obj.location) == pytest.approx((1.0, 2.0, 0.5))
    assert max(obj.dimensions) == pytest.approx(prefs(bpy).object_size, rel=1e-4)
    assert len(obj.data.polygons) > 100
    assert obj["shapellm_prompt"] == "a chair with four legs" and obj["shapellm_seed"] == 3
    assert obj["shapellm_preset"] == "tiny" and obj["shapellm_task"] == "text_to_3d"
    assert obj["shapellm_variation"] == 0
    assert session().history.entries[1]["result"] == obj.name
    # The second variation: next seed, laid out beside the first (a gap between their boxes).
    other = bpy.data.objects[job.result_names[1]]
    assert other["shapellm_seed"] == 4 and other["shapellm_variation"] == 1 and other.location.y == obj.location.y
    bpy.context.view_layer.update()
    right = max((obj.matrix_world @ v.co).x for v in obj.data.vertices)
    left = min((other.matrix_world @ v.co).x for v in other.data.vertices)
    assert left - right == pytest.approx(prefs(bpy).object_size * 0.25, abs=1e-4)


def test_describe_puts_the_caption_in_the_panel_the_report_and_the_object(bpy, capfd):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=1.0, location=(-3, 0, 0))
    obj = bpy.context.active_object
    assert bpy.ops.shapellm.describe() == {"FINISHED"}
    (job,) = newest_jobs(1)
    wait_done(job)
    caption = bpy.context.scene.shapellm.caption
    assert caption and obj["shapellm_caption"] == caption and obj["shapellm_task"] == "describe"
    assert caption[:20] in capfd.readouterr().out    # the info report


def test_edit_makes_a_copy_where_the_source_stands_and_keeps_the_source(bpy):
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(4, -2, 1), rotation=(0, 0, 0.5), scale=(1, 2, 1))
    source = bpy.context.active_object
    source.modifiers.new("Bevel", "BEVEL")
    before = np.array([list(v.co) for v in source.data.vertices])
    bpy.context.scene.shapellm.instruction = "make it taller"
    assert bpy.ops.shapellm.edit() == {"FINISHED"}
    (job,) = newest_jobs(1)
    wait_done(job)
    edited = bpy.data.objects[job.result_name]
    assert edited.name.startswith(source.name) and edited["shapellm_instruction"] == "make it taller"
    np.testing.assert_allclose(np.array(edited.matrix_world), np.array(source.matrix_world), atol=1e-6)
    # The source is untouched (same vertices, same modifier), only hidden under its copy.
    np.testing.assert_array_equal(np.array([list(v.co) for v in source.data.vertices]), before)
    assert [m.name for m in source.modifiers] == ["Bevel"] and source.hide_get()
    # The edit stands where the source stands (in world space, within the source's size).
    bpy.context.view_layer.update()
    world = np.array([list(edited.matrix_world @ v.co) for v in edited.data.vertices])
    centre = (world.min(0) + world.max(0)) / 2
    assert np.linalg.norm(centre - np.array([4, -2, 1])) < 1.5


def test_a_result_waits_for_object_mode(bpy, capfd):
    """A result that arrives while the artist is in Edit Mode is placed only back in Object
    Mode (adding objects mid-edit would land in the edit's undo history), with one notice."""
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 6, 0))
    source = bpy.context.active_object
    bpy.context.scene.shapellm.instruction = "make it shorter"
    assert bpy.ops.shapellm.edit() == {"FINISHED"}
    (job,) = newest_jobs(1)
    assert bpy.ops.object.mode_set(mode="EDIT") == {"FINISHED"}
    try:
        capfd.readouterr()
        assert harness.pump_until(lambda: not job.active and session().results_held, FULL_GENERATION_S)
        for _ in range(5):
            harness.module("pump").pump()
        assert job.state == "done" and not job.result_name and len(session().results) == 1
        assert bpy.context.mode == "EDIT_MESH" and bpy.context.active_object == source
        assert capfd.readouterr().out.count("placed when you return to Object Mode") == 1
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    assert harness.pump_until(lambda: not session().results, 10)
    assert job.result_name in bpy.data.objects and not session().results_held


def _undo_steps(bpy, capfd):
    """The undo stack as Blender prints it (its only listing outside the UI)."""
    import ctypes

    capfd.readouterr()
    bpy.context.window_manager.print_undo_steps()
    ctypes.CDLL(None).fflush(None)   # Blender prints with C stdio: flush it into the capture
    return capfd.readouterr().out.splitlines()


def test_an_edit_result_is_one_undo_step_and_undo_leaves_the_source_as_it_was(bpy, capfd):
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(-4, 3, 0))
    source_name = bpy.context.active_object.name
    before = np.array([list(v.co) for v in bpy.context.active_object.data.vertices])
    objects_before = sorted(o.name for o in bpy.data.objects)
    meshes_before = len(bpy.data.meshes)
    # The bpy module starts with an empty undo stack (Blender's UI pushes one when it loads a
    # file, and operators run from Python push none): this step stands for that one.
    assert bpy.ops.ed.undo_push(message="Before the edit") == {"FINISHED"}
    assert prefs(bpy).hide_source_on_edit  # the default: the edited copy takes the original's place
    bpy.context.scene.shapellm.instruction = "make it wider"
    assert bpy.ops.shapellm.edit() == {"FINISHED"}
    (job,) = newest_jobs(1)
    # Pumped from a context without a window, as a timer may be: the step is pushed anyway.
    with bpy.context.temp_override(window=None):
        assert bpy.context.window is None and not bpy.ops.ed.undo_push.poll()
        wait_done(job)
    result = job.result_name
    assert result in bpy.data.objects and bpy.data.objects[source_name].hide_get()
    assert bpy.data.objects[source_name].hide_render and not bpy.data.objects[result].hide_render
    # the copy is what the next click applies to
    assert bpy.context.view_layer.objects.active.name == result and bpy.data.objects[result].select_get()
    steps = _undo_steps(bpy, capfd)
    active = [line for line in steps if line.startswith("[*")]
    assert len(active) == 1 and "name='ShapeLLM edit'" in active[0], steps
    assert "name='Before the edit'" in steps[steps.index(active[0]) - 1]

    assert bpy.ops.ed.undo() == {"FINISHED"}
    # One undo removes the whole result and brings the source back as it was. Undo reloads
    # Blender's data, so every object is looked up again by name.
    assert result not in bpy.data.objects
    assert sorted(o.name for o in bpy.data.objects) == objects_before
    assert len(bpy.data.meshes) == meshes_before
    source = bpy.data.objects[source_name]
    assert not source.hide_get() and not source.hide_render and bpy.context.view_layer.objects.active == source
    np.testing.assert_array_equal(np.array([list(v.co) for v in source.data.vertices]), before)

    assert bpy.ops.ed.redo() == {"FINISHED"}   # and redo brings the result back whole
    assert result in bpy.data.objects and bpy.data.objects[source_name].hide_get()


def test_cancel_stops_a_running_job_and_adds_nothing(bpy):
    objects = len(bpy.data.objects)
    bpy.context.scene.shapellm.prompt = "a long generation to cancel"
    bpy.ops.shapellm.generate()
    (job,) = newest_jobs(1)
    assert harness.pump_until(lambda: job.stage == "tokens", FULL_GENERATION_S)
    bpy.ops.shapellm.cancel_job(key=job.key)
    assert harness.pump_until(lambda: not job.active, 10)
    assert job.state == "cancelled"
    assert len(bpy.data.objects) == objects


def test_history_re_imports_a_past_result(bpy):
    index = next(i for i, e in enumerate(session().history.entries) if e["file"])
    bpy.context.scene.cursor.location = (0, 9, 0)
    objects = set(bpy.data.objects)
    assert bpy.ops.shapellm.reimport(index=index) == {"FINISHED"}
    (new,) = set(bpy.data.objects) - objects
    vertices, _ = session().history.geometry(index)
    assert len(new.data.vertices) == len(vertices)


def test_release_gpu_memory_is_acknowledged(bpy, capfd):
    assert bpy.ops.shapellm.release_gpu() == {"FINISHED"}
    assert harness.pump_until(lambda: "released its model memory" in capfd.readouterr().out, 10)


def test_blend_saved_and_reopened_during_a_job(bpy, tmp_path):
    settings = bpy.context.scene.shapellm
    settings.prompt = "a lamp"
    bpy.ops.shapellm.generate()
    (job,) = newest_jobs(1)
    path = str(tmp_path / "during_job.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.open_mainfile(filepath=path)
    wait_done(job)
    obj = bpy.data.objects[job.result_name]   # in the reopened file's data
    assert obj.name in bpy.context.scene.objects and bpy.context.scene.shapellm.prompt == "a lamp"


def test_two_million_triangles_warn_then_work(bpy, capfd):
    bridge = harness.module("mesh_bridge")
    n = 1001   # a 1000 x 1000 quad grid, two triangles a quad: 2,000,000 triangles
    xs, ys = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, n), indexing="ij")
    vertices = np.stack([xs.ravel(), ys.ravel(), 0.3 * np.sin(3 * xs.ravel())], 1).astype(np.float32)
    grid = np.arange(n * n).reshape(n, n)
    a, b, c, d = grid[:-1, :-1].ravel(), grid[1:, :-1].ravel(), grid[1:, 1:].ravel(), grid[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)]).astype(np.int32)
    obj = bpy.data.objects.new("Big", bridge.build_mesh("Big", vertices, faces))
    bpy.context.scene.collection.objects.link(obj)
    select(bpy, obj)
    capfd.readouterr()
    assert bpy.ops.shapellm.describe() == {"FINISHED"}
    assert "2,000,000 triangles" in capfd.readouterr().out
    (job,) = newest_jobs(1)
    wait_done(job)
    assert obj["shapellm_caption"]


def test_generate_from_a_blender_image(bpy):
    settings = bpy.context.scene.shapellm
    image = bpy.data.images.new("Reference photo", 96, 64)
    image.generated_type = "UV_GRID"
    settings.image_source, settings.image = "IMAGE", image
    bpy.context.scene.cursor.location = (0, -6, 0)
    images = set(bpy.data.images)
    assert bpy.ops.shapellm.generate_image() == {"FINISHED"}
    assert set(bpy.data.images) == images   # the temporary PNG copy is gone again
    (job,) = newest_jobs(1)
    wait_done(job)
    obj = bpy.data.objects[job.result_name]
    assert obj.name.startswith("Reference photo") and obj["shapellm_task"] == "image_to_3d"
    assert tuple(obj.location) == pytest.approx((0, -6, 0))


def test_missing_image_file_is_refused_before_sending(bpy, tmp_path):
    settings = bpy.context.scene.shapellm
    settings.image_source, settings.image_path = "FILE", str(tmp_path / "nowhere.png")
    jobs = len(session().book.jobs)
    with pytest.raises(RuntimeError, match="Image file not found"):
        bpy.ops.shapellm.generate_image()
    (tmp_path / "not_an_image.png").write_bytes(b"plain text")
    settings.image_path = str(tmp_path / "not_an_image.png")
    with pytest.raises(RuntimeError, match="bad_image"):
        bpy.ops.shapellm.generate_image()
    if os.path.isfile("/proc/self/mem"):  # a file that exists but refuses reads at offset 0
        settings.image_path = "/proc/self/mem"
        with pytest.raises(RuntimeError, match="Cannot read image file /proc/self/mem"):
            bpy.ops.shapellm.generate_image()
    assert len(session().book.jobs) == jobs


def test_backend_killed_mid_job_fails_the_job_fast_and_restarts_on_request(bpy):
    bpy.context.scene.shapellm.prompt = "a generation that the crash interrupts"
    bpy.ops.shapellm.generate()
    (job,) = newest_jobs(1)
    assert harness.pump_until(lambda: job.stage == "tokens", FULL_GENERATION_S)
    session().supervisor.process.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert harness.pump_until(lambda: job.state == "failed", 3.0), "not marked failed within 3 s"
    assert "exited" in job.message and time.monotonic() - killed < 3.0
    assert session().state == "lost" and not session().backend_running
    # Restart on request: Start brings a fresh backend up.
    assert bpy.ops.shapellm.backend_start() == {"FINISHED"}
    assert harness.pump_until(lambda: session().connected, 60), session().message


def test_external_backend_killed_mid_job_is_noticed(bpy, tiny_preset):
    from tests.backend_process import backend_process

    session().stop_backend()
    saved = prefs(bpy).backend_python, prefs(bpy).address
    with backend_process(tiny_preset) as backend:
        prefs(bpy).backend_python, prefs(bpy).address = "", backend.address
        try:
            bpy.ops.shapellm.backend_start()   # no backend to start: connects to the address
            assert harness.pump_until(lambda: session().connected, 30), session().message
            bpy.context.scene.shapellm.prompt = "a job on a backend that dies"
            bpy.ops.shapellm.generate()
            (job,) = newest_jobs(1)
            assert harness.pump_until(lambda: job.stage == "tokens", FULL_GENERATION_S)
            backend.process.kill()
            killed = time.monotonic()
            # Only silence tells: 0.5 s pings and a 2.5 s silence window (addon.wire.client).
            assert harness.pump_until(lambda: job.state == "failed", 3.0), "not marked failed within 3 s"
            print(f"external backend death noticed after {time.monotonic() - killed:.2f} s")
            assert "stopped answering" in job.message and session().state == "lost"
        finally:
            prefs(bpy).backend_python, prefs(bpy).address = saved
            session().disconnect()


def _fake_backend_of_version(version, stop):
    """A ROUTER that answers every request with a message of another protocol version."""
    import zmq

    from addon.wire import protocol

    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")

    def serve():
        while not stop.is_set():
            if router.poll(50):
                identity, header, *_ = router.recv_multipart()
                import json

                job = json.loads(header)["job"]
                reply = protocol.Message("hello", job, {"server": {"protocol": version}}, version=version)
                router.send_multipart([identity, *protocol.encode(reply)])
        router.close(0)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"tcp://127.0.0.1:{port}", thread


def test_backend_of_another_protocol_version_is_refused_clearly(bpy):
    stop = threading.Event()
    address, thread = _fake_backend_of_version(99, stop)
    saved = prefs(bpy).backend_python, prefs(bpy).address
    prefs(bpy).backend_python, prefs(bpy).address = "", address
    try:
        bpy.ops.shapellm.backend_start()
        assert harness.pump_until(lambda: session().state == "incompatible", 10)
        assert "version 99" in session().message
        bpy.context.scene.shapellm.prompt = "anything"
        with pytest.raises(RuntimeError, match="Incompatible backend"):
            bpy.ops.shapellm.generate()
    finally:
        stop.set()
        thread.join(5)
        prefs(bpy).backend_python, prefs(bpy).address = saved
        session().disconnect()


def test_no_backend_gives_a_clear_message_and_start_connects(bpy, monkeypatch):
    monkeypatch.setattr(harness.module("session"), "CONNECT_TIMEOUT_S", 1.0)
    saved = prefs(bpy).backend_python, prefs(bpy).address
    prefs(bpy).backend_python, prefs(bpy).address = "", f"tcp://127.0.0.1:{free_port()}"
    try:
        bpy.context.scene.shapellm.prompt = "a chair"
        with pytest.raises(RuntimeError, match="No backend running: press Start"):
            bpy.ops.shapellm.generate()
        bpy.ops.shapellm.backend_start()
        assert session().state == "connecting"
        assert harness.pump_until(lambda: session().state == "offline", 5)
        assert session().message.startswith("No backend answers at tcp://127.0.0.1:")
    finally:
        prefs(bpy).backend_python, prefs(bpy).address = saved


def test_remote_backend_over_curvezmq(bpy, tiny_preset, tmp_path, monkeypatch):
    import subprocess

    from tests.backend_process import start_backend

    for name in ("server", "artist"):
        subprocess.run([sys.executable, "-m", "backend", "keygen", "--out", str(tmp_path), "--name", name],
                       check=True, cwd=harness.REPO, capture_output=True)
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "artist.key").write_bytes((tmp_path / "artist.key").read_bytes())
    process = start_backend(tiny_preset, ["--curve-secret", tmp_path / "server.key_secret",
                                          "--allowed-clients", allowed])
    p = prefs(bpy)
    try:
        address = process.stdout.readline().split()[-1]
        p.use_remote, p.remote_address = True, address
        p.server_public_key, p.client_key_file = "", str(tmp_path / "artist.key_secret")
        with pytest.raises(RuntimeError, match="needs the server's public key"):
            bpy.ops.shapellm.backend_start()
        p.server_public_key = str(tmp_path / "server.key")
        bpy.context.preferences.system.use_online_access = False
        with pytest.raises(RuntimeError, match="Online access is off"):
            bpy.ops.shapellm.backend_start()
        bpy.context.preferences.system.use_online_access = True
        bpy.ops.shapellm.backend_start()
        assert harness.pump_until(lambda: session().connected, 30), session().message
        assert session().server_info["authenticated"] is True
        bpy.ops.mesh.primitive_cone_add()
        bpy.ops.shapellm.describe()
        (job,) = newest_jobs(1)
        wait_done(job)
        # A client key the server does not know gets no answer at all.
        session().disconnect()
        monkeypatch.setattr(harness.module("session"), "CONNECT_TIMEOUT_S", 1.5)
        p.client_key_file = str(tmp_path / "server.key_secret")
        bpy.ops.shapellm.backend_start()
        assert harness.pump_until(lambda: session().state == "offline", 5)
        assert "No backend answers" in session().message
    finally:
        p.use_remote, p.client_key_file, p.server_public_key = False, "", ""
        bpy.context.preferences.system.use_online_access = False
        session().disconnect()
        process.terminate()
        process.wait(20)
        process.stdout.close()


def test_stop_during_a_job_returns_at_once_and_the_backend_exits_cleanly(bpy):
    bpy.context.scene.shapellm.prompt = "a job the Stop button ends"
    bpy.ops.shapellm.generate()                     # auto-starts our backend
    (job,) = newest_jobs(1)
    assert harness.pump_until(lambda: job.stage == "tokens", FULL_GENERATION_S)
    process = session().supervisor.process
    assert bpy.ops.shapellm.backend_stop() == {"FINISHED"}
    assert process.poll() is None                   # Stop did not wait: the backend still runs
    assert job.state == "failed" and "stopped" in job.message and session().state == "offline"
    assert harness.pump_until(lambda: not session().supervisor.stopping, 30)  # reaped by the pump
    assert process.returncode == 0                  # a clean SIGTERM shutdown
    assert session().message == "Backend stopped" and "shutting down" in session().supervisor.log_tail(40)


def test_disabling_the_add_on_during_a_job_leaves_no_timer_socket_or_process(bpy):
    import addon_utils

    bpy.context.scene.shapellm.prompt = "a job the add-on outlives"
    bpy.ops.shapellm.generate()                     # auto-starts our backend again
    (job,) = newest_jobs(1)
    assert harness.pump_until(lambda: job.state == "running", FULL_GENERATION_S)
    timer, live = harness.module("pump").timer, session()
    process, socket_ = live.supervisor.process, live.client._socket
    addon_utils.disable(harness.PACKAGE, default_set=True)
    assert not bpy.app.timers.is_registered(timer)
    assert socket_.closed
    assert process.poll() is not None               # stopped and reaped, not orphaned
    assert harness.module("session").get() is None
    addon_utils.enable(harness.PACKAGE, default_set=True)
    assert harness.module("session").get().state == "offline"


def test_stop_with_an_external_backend_ends_our_jobs_there_and_here(bpy, tiny_preset):
    from tests.backend_process import backend_process

    # Runs after the disable test: a fresh session that never started a backend of its own.
    assert session().supervisor is None
    saved = prefs(bpy).backend_python, prefs(bpy).address
    with backend_process(tiny_preset) as backend:
        prefs(bpy).backend_python, prefs(bpy).address = "", backend.address
        try:
            bpy.ops.shapellm.backend_start()
            assert harness.pump_until(lambda: session().connected, 30), session().message
            bpy.context.scene.shapellm.prompt = "a job on a backend we only disconnect from"
            bpy.ops.shapellm.generate()
            (job,) = newest_jobs(1)
            assert harness.pump_until(lambda: job.stage == "tokens", FULL_GENERATION_S)
            bpy.ops.shapellm.backend_stop()
            assert not job.active and "disconnected" in job.message   # not left "running" forever
            assert backend.process.poll() is None                     # not ours to stop
            deadline = time.monotonic() + 30
            while f"job {job.key} text_to_3d -> " not in backend.log():
                assert time.monotonic() < deadline, "the backend kept running the job"
                time.sleep(0.1)
            assert f"job {job.key} text_to_3d -> cancelled" in backend.log()
        finally:
            prefs(bpy).backend_python, prefs(bpy).address = saved
            session().disconnect()


def test_nothing_was_written_into_the_add_on_folder(bpy):
    import zipfile

    folder = os.path.dirname(harness.module("session").__file__)
    on_disk = {os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
               for root, _, names in os.walk(folder) for name in names}
    with zipfile.ZipFile(harness.linux_zip()) as z:
        shipped = {n for n in z.namelist() if not n.endswith("/")}
    assert on_disk == shipped
