"""The server's control path over real sockets: hello, status, heartbeats, shutdown, remote-use
security (CurveZMQ) and the refusal to listen on the network without it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from addon.wire import protocol
from addon.wire.client import Client, wait_for
from backend.auth import is_loopback
from tests.backend_process import REPO_ROOT, backend_process, tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytestmark = pytest.mark.slow   # real backend processes


def run_cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "backend", *map(str, args)], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_hello_reports_versions_preset_and_limits_and_status_answers():
    with backend_process(tiny_preset(), args=["--queue-size", "3"]) as backend:
        client = backend.client()
        reply = wait_for(client, client.hello(), timeout=10)
        info = reply.fields["server"]
        assert info["protocol"] == protocol.PROTOCOL_VERSION
        assert info["version"] and info["versions"]["zmq"]
        assert info["queue_size"] == 3 and info["tasks"] == list(protocol.TASKS)
        assert info["authenticated"] is False
        assert client.server_info == info
        status = wait_for(client, client.status(), timeout=10)
        assert status.type == "status" and status.fields["running"] is None
        assert status.fields["queued"] == 0 and status.fields["your_jobs"] == []


def test_heartbeat_shows_a_dead_backend_within_three_seconds():
    with backend_process(tiny_preset()) as backend:
        client = backend.client()
        deadline = time.monotonic() + 5
        while not client.alive and time.monotonic() < deadline:
            client.poll(timeout=0.1)
        assert client.alive
        backend.process.kill()  # no goodbye: the way a crashed or unplugged backend looks
        backend.process.wait()
        died = time.monotonic()
        while client.alive:
            client.poll(timeout=0.1)
            assert time.monotonic() - died < 3.0, "client still thinks a dead backend is alive"
    assert not client.alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown_on_signal(sig):
    with backend_process(tiny_preset()) as backend:
        client = backend.client()
        wait_for(client, client.status(), timeout=10)
        started = time.monotonic()
        assert backend.stop(sig) == 0
        assert time.monotonic() - started < 15
        assert "shutting down" in backend.log()


def test_refuses_a_network_address_without_curve_keys():
    result = run_cli("serve", "--preset", tiny_preset(), "--bind", "tcp://0.0.0.0:0")
    assert result.returncode == 2
    assert "refusing to bind" in result.stderr and "keygen" in result.stderr


def test_loopback_detection():
    for endpoint in ["tcp://127.0.0.1:5577", "tcp://127.3.2.1:1", "tcp://localhost:9", "tcp://[::1]:5", "ipc:///tmp/x"]:
        assert is_loopback(endpoint), endpoint
    for endpoint in ["tcp://0.0.0.0:5577", "tcp://*:5577", "tcp://192.168.1.4:1", "tcp://eth0:1", "tcp://[::]:1"]:
        assert not is_loopback(endpoint), endpoint


def test_keygen_writes_a_key_pair_and_refuses_to_overwrite(tmp_path):
    result = run_cli("keygen", "--out", tmp_path, "--name", "server")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "server.key").is_file() and (tmp_path / "server.key_secret").is_file()
    assert (tmp_path / "server.key_secret").stat().st_mode & 0o077 == 0  # secret readable by owner only
    assert "secret" not in (tmp_path / "server.key").read_text().replace("public-key", "")
    again = run_cli("keygen", "--out", tmp_path, "--name", "server")
    assert again.returncode == 2 and "already exists" in again.stderr


def test_curve_admits_only_allowed_client_keys(tmp_path):
    from backend.auth import create_key_pair

    keys, allowed = tmp_path / "keys", tmp_path / "allowed"
    allowed.mkdir()
    _, server_secret = create_key_pair(keys, "server")
    client_public, client_secret = create_key_pair(keys, "artist")
    _, stranger_secret = create_key_pair(keys, "stranger")
    (allowed / "artist.key").write_bytes(client_public.read_bytes())

    # A network address is accepted once keys are given; clients still connect over loopback here.
    args = ["--curve-secret", server_secret, "--allowed-clients", allowed]
    process_args = [sys.executable, "-m", "backend", "serve", "--preset", tiny_preset(), "--bind", "tcp://0.0.0.0:0", *args]
    process = subprocess.Popen(list(map(str, process_args)), cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        line = process.stdout.readline()
        assert line.startswith("listening on tcp://0.0.0.0:"), line
        address = "tcp://127.0.0.1:" + line.rsplit(":", 1)[1].strip()
        server_public = keys / "server.key"

        artist = Client(address, server_public_key=server_public, client_keys=client_secret)
        reply = wait_for(artist, artist.hello(), timeout=10)
        assert reply.fields["server"]["authenticated"] is True

        stranger = Client(address, server_public_key=server_public, client_keys=stranger_secret)
        plain = Client(address)
        for rejected in (stranger, plain):
            _send_hello_unless_refused(rejected)
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert stranger.poll(timeout=0.1) == [] and plain.poll(timeout=0.1) == []
        assert not stranger.alive and not plain.alive
        assert wait_for(artist, artist.status(), timeout=10).type == "status"  # still serving
        for client in (artist, stranger, plain):
            client.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
        process.stdout.close()


def test_curve_settings_are_checked_before_starting(tmp_path):
    from backend.auth import create_key_pair

    public, secret = create_key_pair(tmp_path, "server")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("serve", "--preset", tiny_preset(), "--curve-secret", secret, "--allowed-clients", empty)
    assert result.returncode == 2 and "no .key files" in result.stderr
    result = run_cli("serve", "--preset", tiny_preset(), "--curve-secret", public, "--allowed-clients", tmp_path)
    assert result.returncode == 2 and "no secret key" in result.stderr
    result = run_cli("serve", "--preset", tiny_preset(), "--curve-secret", secret)
    assert result.returncode == 2 and "both" in result.stderr


def test_hello_answers_before_the_model_is_ready_then_again_when_it_is():
    with backend_process(tiny_preset()) as backend:
        # backend_process already had its hello answered; a fresh server is still importing torch.
        client = backend.client()
        first = wait_for(client, hello := client.hello(), timeout=10).fields["server"]
        if not first["ready"]:
            assert first["supports"] is None and first["load_error"] is None
            deadline = time.monotonic() + 60
            second = None
            while second is None and time.monotonic() < deadline:
                second = next((e for e in client.poll(timeout=0.2) if e.job == hello and e.type == "hello"), None)
            assert second is not None, "no second hello once the model pipeline was ready"
            first = second.fields["server"]
        assert first["ready"] and first["preset"] == "tiny" and first["device"] == "cpu"
        assert first["supports"] == {task: True for task in protocol.TASKS}
        assert client.server_info == first


def test_model_loaded_is_true_only_while_the_models_are_in_memory():
    import numpy as np

    from addon.wire.client import run_job

    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    with backend_process(tiny_preset(), wait_ready=True) as backend:
        client = backend.client()

        def model_loaded():
            return wait_for(client, client.status(), timeout=10).fields["server"]["model_loaded"]

        assert model_loaded() is False  # ready, but the models load with the first task
        result = run_job(client, "describe", {}, {"vertices": vertices, "faces": faces}, timeout=120)
        assert result.type == "result", result.fields
        assert model_loaded() is True
        assert wait_for(client, client.release(), timeout=30).fields["freed"] is True
        assert model_loaded() is False


def _send_hello_unless_refused(client: Client) -> None:
    """A rejected CURVE handshake can fail before the hello is queued, so the send itself may
    be refused; either way the client gets no answer, which the caller checks."""
    try:
        client.hello()
    except ConnectionError:
        pass
