"""Variations through a real backend process and real ZeroMQ sockets, on the tiny random model
preset (it samples by default): K shapes in one job's one terminal event; the CLI's --variations."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from addon.wire import protocol
from addon.wire.client import run_job, wait_for
from tests.backend_process import REPO_ROOT, backend_process, tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")

pytestmark = pytest.mark.slow   # a real backend process, whole generations


@pytest.fixture(scope="module")
def backend():
    with backend_process(tiny_preset(), wait_ready=True) as running:
        yield running


def events_after(client, job, seconds=1.0):
    """Events of `job` that arrive within `seconds` (there must be none after its terminal one)."""
    late, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        late += [e for e in client.poll(timeout=0.1) if e.job == job]
    return late


def test_k_shapes_come_in_one_terminal_event(backend):
    client = backend.client()
    hello = wait_for(client, client.hello(), timeout=10).fields["server"]
    assert hello["greedy"] is False  # the model samples by itself: variations need no temperature
    single = run_job(client, "text_to_3d", {"prompt": "a small table", "options": {"seed": 3}}, timeout=120)
    assert "variations" not in single.fields and single.arrays["codes"].shape == (1024,)  # as before

    events = []
    request = {"prompt": "a small table", "options": {"seed": 3, "variations": 3}}
    result = run_job(client, "text_to_3d", request, timeout=180, on_event=events.append)
    assert result.type == "result", result.fields
    assert sum(e.is_terminal for e in events) == 1 and events[-1] is result
    assert events_after(client, result.job) == []
    tokens = [e.fields for e in events if e.type == "progress" and e.fields["stage"] == "tokens"]
    assert tokens[-1] == {"stage": "tokens", "done": 1024, "total": 1024}  # steps of all three at once
    assert [e.fields["done"] for e in events if e.type == "progress" and e.fields["stage"] == "surface"][-1] == 3

    shapes = protocol.split_variations(result.fields, result.arrays)
    assert [(info["index"], info["seed"]) for info, *_ in shapes] == [(0, 3), (1, 4), (2, 5)]
    assert result.arrays["codes"].shape == (3, 1024)
    for info, vertices, faces, codes in shapes:
        protocol.validate_mesh(np.ascontiguousarray(vertices), faces)
        assert codes.min() >= 0 and codes.max() < 8192
    assert len({codes.tobytes() for *_, codes in shapes}) == 3
    # variation 0 is the single request with that seed (the batch of three is one decoding loop)
    np.testing.assert_array_equal(shapes[0][3], single.arrays["codes"])


def test_greedy_variations_end_in_one_clear_error(backend):
    client = backend.client()
    events = []
    result = run_job(client, "text_to_3d", {"prompt": "a cup", "options": {"temperature": 0, "variations": 2}},
                     timeout=60, on_event=events.append)
    assert result.type == "error" and result.fields["code"] == "bad_field"
    assert "set a temperature" in result.fields["message"]
    assert sum(e.is_terminal for e in events) == 1 and events_after(client, result.job, 0.5) == []


def test_a_bad_count_is_refused_before_it_is_queued(backend):
    import zmq

    client = backend.client()
    raw = zmq.Context.instance().socket(zmq.DEALER)
    raw.linger, raw.rcvtimeo = 0, 10000
    raw.connect(backend.address)
    try:
        for value in (0, 9, 1.5, "2"):
            with pytest.raises(protocol.ProtocolError):  # the client checks with the server's rules
                client.submit("text_to_3d", {"prompt": "a cup", "options": {"variations": value}})
            # and the server refuses the raw request on its own, with the rule in the message
            raw.send_multipart(protocol.encode(protocol.Message(
                "text_to_3d", "raw-1", {"prompt": "a cup", "options": {"variations": value}})))
            answer = protocol.decode(raw.recv_multipart())
            assert (answer.type, answer.job, answer.fields["code"]) == ("error", "raw-1", "bad_field")
            assert "'variations' must be an integer in [1, 8]" in answer.fields["message"]
    finally:
        raw.close()


def test_cancel_mid_batch_ends_the_job_once(backend):
    client = backend.client()
    job = client.submit("text_to_3d", {"prompt": "a chair", "options": {"variations": 4}})
    events, cancelled_at = [], None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for event in client.poll(timeout=0.1):
            if event.job == job:
                events.append(event)
                if event.type == "progress" and event.fields["stage"] == "tokens" and cancelled_at is None:
                    cancelled_at = event.fields["done"]
                    client.cancel(job)
        if events and events[-1].is_terminal:
            break
    assert events[-1].type == "cancelled" and events[-1].fields["stage"] == "tokens"
    assert events[-1].fields["done"] < 1024 and sum(e.is_terminal for e in events) == 1


def test_cli_generate_writes_one_file_per_variation(tmp_path):
    out = tmp_path / "table.obj"
    done = subprocess.run([sys.executable, "-m", "backend", "generate", "--preset", str(tiny_preset()),
                           "--prompt", "a table", "--variations", "2", "--seed", "7", "-o", str(out),
                           "--codes", str(tmp_path / "codes.npy")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert done.returncode == 0, done.stderr
    assert "(seed 7)" in done.stdout and "(seed 8)" in done.stdout
    for k in (1, 2):
        assert (tmp_path / f"table-{k}.obj").stat().st_size > 0
        assert np.load(tmp_path / f"codes-{k}.npy").shape == (1024,)
    assert not out.exists()
