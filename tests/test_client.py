"""The client on its own: bad requests are refused before anything is sent, a missing backend
never blocks a call, keys load from keygen's files, and run_job's timeout cancels its job."""

import time

import numpy as np
import pytest
import zmq

from addon.wire import protocol
from addon.wire.client import Client, load_key_pair, load_public_key, run_job, wait_for
from addon.wire.protocol import ProtocolError


@pytest.fixture()
def listener():
    """A bare ROUTER standing in for a server that receives but never answers."""
    socket = zmq.Context.instance().socket(zmq.ROUTER)
    socket.linger = 0
    port = socket.bind_to_random_port("tcp://127.0.0.1")
    yield socket, f"tcp://127.0.0.1:{port}"
    socket.close()


def received(socket, timeout=2.0):
    messages = []
    while socket.poll(int(timeout * 1000)):
        frames = socket.recv_multipart()
        message = protocol.decode(frames[1:])
        if message.type != "ping":
            messages.append(message)
        timeout = 0.2
    return messages


def test_bad_requests_raise_and_send_nothing(listener):
    socket, address = listener
    client = Client(address)
    vertices = np.zeros((3, 3), np.float32)
    faces = np.array([[0, 1, 2]], np.int32)
    bad = [
        ("text_to_3d", {"prompt": ""}, None, None, "bad_prompt"),
        ("text_to_3d", {"prompt": "ok", "options": {"top_k": 0}}, None, None, "bad_field"),
        ("edit", {"instruction": "x"}, {"vertices": vertices, "faces": faces + 5}, None, "bad_mesh"),
        ("describe", {}, {"vertices": vertices[:0], "faces": faces[:0]}, None, "empty_mesh"),
        ("image_to_3d", {}, None, {"image": b"not an image"}, "bad_image"),
        ("bake_cake", {}, None, None, "unknown_type"),
    ]
    for task, fields, arrays, blobs, code in bad:
        with pytest.raises(ProtocolError) as info:
            client.submit(task, fields, arrays, blobs)
        assert info.value.code == code
    job = client.submit("describe", {}, {"vertices": vertices, "faces": faces})
    messages = received(socket)
    assert [(m.type, m.job) for m in messages] == [("describe", job)]  # only the valid one left
    np.testing.assert_array_equal(messages[0].arrays["vertices"], vertices)
    client.close()


def test_nothing_blocks_without_a_backend():
    client = Client("tcp://127.0.0.1:9")  # nobody listens there
    started = time.monotonic()
    client.hello()
    job = client.submit("text_to_3d", {"prompt": "a chair"})
    assert client.poll() == [] and not client.alive and client.server_info is None
    client.cancel(job)
    assert time.monotonic() - started < 1.0
    client.close()


def test_run_job_times_out_and_cancels_its_job(listener):
    socket, address = listener
    client = Client(address)
    with pytest.raises(TimeoutError):
        run_job(client, "text_to_3d", {"prompt": "a chair"}, timeout=0.5)
    kinds = [m.type for m in received(socket)]
    assert kinds == ["text_to_3d", "cancel"]
    client.close()


def test_wait_for_keeps_other_jobs_events(listener):
    socket, address = listener
    client = Client(address)
    first, second = client.status(), client.hello()
    for job in (first, second):
        while True:  # wait for the requests, then answer them in reverse order
            identity, *frames = socket.recv_multipart()
            if protocol.decode(frames).type != "ping":
                break
    for job, kind in ((second, "hello"), (first, "status")):
        socket.send_multipart([identity] + protocol.encode(protocol.event(kind, job, {"server": {"protocol": 1}})))
    assert wait_for(client, first, timeout=5).type == "status"
    assert [e.job for e in client.poll(timeout=1)] == [second]
    assert client.alive and client.server_info == {"protocol": 1}
    client.close()


def test_keys_load_from_keygen_files_and_z85(tmp_path):
    from backend.auth import create_key_pair

    public_file, secret_file = create_key_pair(tmp_path, "artist")
    public, secret = load_key_pair(secret_file)
    assert len(public) == 40 and len(secret) == 40
    assert load_public_key(public_file) == public == load_public_key(public.decode())
    with pytest.raises(ValueError):
        load_key_pair(public_file)  # no secret in the public file
    with pytest.raises(ValueError):
        load_public_key(tmp_path / "missing.key")


def test_wait_for_keeps_events_that_arrive_with_the_reply(listener):
    socket, address = listener
    client = Client(address)
    request = client.status()
    while True:
        identity, *frames = socket.recv_multipart()
        if protocol.decode(frames).type != "ping":
            break
    # The reply and a later event in one batch: the later one must not be lost.
    socket.send_multipart([identity] + protocol.encode(protocol.event("status", request)))
    socket.send_multipart([identity] + protocol.encode(protocol.event("cancelled", "other-job")))
    time.sleep(0.2)
    assert wait_for(client, request, timeout=5).type == "status"
    assert [(e.type, e.job) for e in client.poll(timeout=1)] == [("cancelled", "other-job")]
    client.close()
