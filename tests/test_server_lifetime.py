"""What ends jobs, and the server, when the other side disappears without a word: a client that
crashed (its jobs are cancelled after --client-timeout of silence, the model is free for the
next client) and a parent process that was killed (`serve --parent-pid`). Real backend
processes, real client processes, real sockets; kill -9 is how a crash looks."""

import os
import signal
import subprocess
import sys
import time

import pytest

from addon.wire import protocol
from addon.wire.client import run_job, wait_for
from backend.parent_watch import ParentWatch
from tests.backend_process import REPO_ROOT, backend_process, session_temp_dir, tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytestmark = pytest.mark.slow   # real backend processes

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

# A client process: two long jobs, keeps polling (so it pings) and prints their ids once the
# first is generating tokens. The test then kills it: no close(), no cancel.
DYING_CLIENT = r"""
import sys
from addon.wire.client import Client

client = Client(sys.argv[1])
running = client.submit("text_to_3d", {"prompt": "a long table"})
queued = client.submit("text_to_3d", {"prompt": "a second table"})
announced = False
while True:
    for event in client.poll(timeout=0.1):
        if not announced and event.job == running and event.type == "progress" and event.fields["stage"] == "tokens":
            print(running, queued, flush=True)
            announced = True
"""


def test_client_timeout_default_is_one_named_constant_announced_in_hello():
    assert protocol.CLIENT_TIMEOUT_S >= 4 * protocol.PING_INTERVAL_S
    with backend_process(tiny_preset()) as backend:
        client = backend.client()
        info = wait_for(client, client.hello(), timeout=10).fields["server"]
        assert info["client_timeout_s"] == protocol.CLIENT_TIMEOUT_S


def test_jobs_of_a_killed_client_are_cancelled_and_the_next_client_runs():
    # The window must end well before the dead client's running job would: the tiny model's
    # whole job takes ~1.8 s here, and with a 2 s window it sometimes finished first (seen).
    window = 1.0
    with backend_process(tiny_preset(), args=["--client-timeout", window], wait_ready=True) as backend:
        dying = subprocess.Popen([sys.executable, "-c", DYING_CLIENT, backend.address], cwd=REPO_ROOT,
                                 env=ENV, stdout=subprocess.PIPE, text=True)
        try:
            running, queued = dying.stdout.readline().split()
        finally:
            dying.kill()
            dying.wait()
            dying.stdout.close()
        died = time.monotonic()
        other = backend.client()
        events = []
        result = run_job(other, "text_to_3d", {"prompt": "a chair", "options": {"seed": 1}}, timeout=120,
                         on_event=events.append)
        assert result.type == "result", result.fields
        assert events[0].type == "accepted" and events[0].fields["position"] == 2  # behind both dead jobs
        log = backend.log()
        # The running job was cancelled mid-generation (an error, not its result) ...
        assert f"job {running} text_to_3d: no message from its client for 1 s; cancelling it" in log
        assert f"job {running} text_to_3d -> error" in log
        # ... and the queued one never ran.
        assert f"job {queued} text_to_3d: no message from its client for 1 s; cancelling it" in log
        assert f"job {queued} text_to_3d -> " not in log
        print(f"dead client's jobs gone, next job done {time.monotonic() - died:.1f} s after the kill "
              f"(window {window} s)")
        status = wait_for(other, other.status(), timeout=10)
        assert status.fields["running"] is None and status.fields["queued"] == 0


def test_a_socket_closed_without_cancel_loses_its_job_but_a_polling_client_keeps_its_own():
    window = 1.0
    with backend_process(tiny_preset(), args=["--client-timeout", window], wait_ready=True) as backend:
        keeper, leaving = backend.client(), backend.client()
        kept = keeper.submit("text_to_3d", {"prompt": "a kept lamp"})
        lost = leaving.submit("text_to_3d", {"prompt": "a lost lamp"})
        deadline = time.monotonic() + 10
        while not any(e.job == lost and e.type == "accepted" for e in leaving.poll(timeout=0.1)):
            assert time.monotonic() < deadline, "the server never accepted the job"
        leaving.close(cancel_jobs=False)
        result = wait_for(keeper, kept, timeout=120)  # polls, so it pings every 0.5 s
        assert result.type == "result", result.fields
        assert result.fields["seconds"] > window, "precondition: the kept job outlasts the window"
        log = backend.log()
        assert f"job {kept} text_to_3d -> result" in log
        assert f"job {lost} text_to_3d: no message from its client for 1 s; cancelling it" in log
        status = wait_for(keeper, keeper.status(), timeout=10)
        assert status.fields["running"] is None and status.fields["queued"] == 0


# -- --parent-pid ------------------------------------------------------------------------------

# A parent process: starts the backend with --parent-pid of itself (directly, or through a
# middle process so the backend's own parent is not the watched one), prints the backend's pid
# and endpoint, then waits to be killed.
PARENT = r"""
import os, subprocess, sys, time

preset, log_path, through_middle = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
command = [sys.executable, "-m", "backend", "serve", "--preset", preset, "--bind", "tcp://127.0.0.1:0",
           "--parent-pid", str(os.getpid())]
if through_middle:  # a launcher in between (like a shell script or `conda run`)
    command = [sys.executable, "-c", "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))", *command]
backend = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log_path, "w"), text=True)
endpoint = backend.stdout.readline().split()[-1]
pid = backend.pid
if through_middle:  # the backend is the middle process's only child
    pid = int(open(f"/proc/{backend.pid}/task/{backend.pid}/children").read().split()[0])
print(pid, endpoint, flush=True)
time.sleep(600)
"""


def exited(pid: int) -> bool:
    """Gone, or a zombie nobody has reaped yet (orphans go to a PID 1 that may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def run_parent_and_kill_it(through_middle: bool):
    log_path = session_temp_dir("parent-watch-") / "backend.log"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tiny_preset()), str(log_path),
                               "1" if through_middle else "0"],
                              cwd=REPO_ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
    backend_pid = None
    try:
        backend_pid, endpoint = parent.stdout.readline().split()
        backend_pid = int(backend_pid)
        from addon.wire.client import Client

        with Client(endpoint) as client:
            assert wait_for(client, client.hello(), timeout=20).type == "hello"
        parent.send_signal(signal.SIGKILL)  # a crash: no chance to stop its child
        parent.wait()
        deadline = time.monotonic() + 15
        while not exited(backend_pid):
            assert time.monotonic() < deadline, "the backend outlived its parent by 15 s"
            time.sleep(0.1)
        log = log_path.read_text()
        assert f"parent process {parent.pid} is gone" in log and "shutting down" in log
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()
        if backend_pid is not None and not exited(backend_pid):
            os.kill(backend_pid, signal.SIGKILL)


def test_backend_exits_when_its_parent_is_killed():
    run_parent_and_kill_it(through_middle=False)


def test_backend_exits_when_the_watched_process_is_not_its_own_parent():
    run_parent_and_kill_it(through_middle=True)


def test_parent_watch_sees_a_process_end():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    watch = ParentWatch(child.pid)
    assert watch.alive()
    child.kill()
    child.wait()
    assert not watch.alive()


def test_a_port_in_use_is_a_clear_error_not_a_traceback():
    with backend_process(tiny_preset()) as backend:
        done = subprocess.run([sys.executable, "-m", "backend", "serve", "--preset", str(tiny_preset()),
                               "--bind", backend.address], cwd=REPO_ROOT, env=ENV, capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 2
    assert f"error: cannot listen on {backend.address}: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr
