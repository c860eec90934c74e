"""Bad input sent over a real socket to a real backend process: each gets an error event with a
clear code, and the server keeps serving the next request. A raw DEALER socket is used so that
nothing on the client side can clean the input first."""

import io
import json
import os

import numpy as np
import pytest
import zmq
from PIL import Image

from addon.wire import protocol
from addon.wire.protocol import Message
from tests.backend_process import backend_process, tiny_preset

os.environ.setdefault("OMP_NUM_THREADS", "1")
pytestmark = pytest.mark.slow   # a real backend process
LIMIT_MB = 1  # a small message limit so the oversize cases stay cheap


@pytest.fixture(scope="module")
def backend():
    with backend_process(tiny_preset(), args=["--max-message-mb", LIMIT_MB]) as running:
        yield running


@pytest.fixture()
def raw(backend):
    socket = zmq.Context.instance().socket(zmq.DEALER)
    socket.linger = 0
    socket.rcvtimeo = 10000
    socket.connect(backend.address)
    yield socket
    socket.close()


def send_and_receive(socket, frames) -> Message:
    socket.send_multipart(frames)
    return protocol.decode(socket.recv_multipart())


def assert_still_serving(socket):
    reply = send_and_receive(socket, protocol.encode(Message(type="status", job="after")))
    assert reply.type == "status" and reply.job == "after"


def encoded(type_, job="bad-1", fields=None, arrays=None, blobs=None):
    return [bytes(f) for f in protocol.encode(Message(type_, job, fields or {}, arrays or {}, blobs or {}))]


def tetra():
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32)
    return vertices, faces


def with_vertex(value):
    vertices, faces = tetra()
    vertices[1, 0] = value
    return encoded("describe", arrays={"vertices": vertices, "faces": faces})


def with_index(value):
    vertices, faces = tetra()
    faces[3, 1] = value
    return encoded("describe", arrays={"vertices": vertices, "faces": faces})


def describe_frames():
    vertices, faces = tetra()
    return encoded("describe", arrays={"vertices": vertices, "faces": faces})


def head(**fields):
    base = {"v": 1, "type": "status", "job": "bad-1", "fields": {}, "buffers": []}
    base.update(fields)
    return json.dumps(base).encode()


def png_with_garbage():
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, format="PNG")
    data = out.getvalue()
    return data[:33] + b"\x00" * 64  # a real PNG signature and size, then no image data


CASES = {
    "empty_header_frame": ([b""], "bad_header"),
    "header_not_json": ([b"hello server"], "bad_header"),
    "header_is_a_list": ([b"[]"], "bad_header"),
    "wrong_version": ([head(v=99)], "bad_version"),
    "unknown_request_type": ([head(type="shutdown")], "unknown_type"),
    "missing_prompt": (encoded("text_to_3d"), "bad_field"),
    "mistyped_prompt": (encoded("text_to_3d", fields={"prompt": ["a", "chair"]}), "bad_field"),
    "mistyped_option": (encoded("text_to_3d", fields={"prompt": "a chair", "options": {"temperature": "hot"}}), "bad_field"),
    "missing_buffer_frame": (describe_frames()[:-1], "bad_frames"),
    "extra_buffer_frame": (describe_frames() + [b"surprise"], "bad_frames"),
    "buffer_shorter_than_header": (describe_frames()[:2] + [describe_frames()[2][:-1]], "bad_buffer"),
    "nan_vertex": (with_vertex(np.nan), "bad_mesh"),
    "inf_vertex": (with_vertex(np.inf), "bad_mesh"),
    "index_out_of_range": (with_index(4), "bad_mesh"),
    "negative_index": (with_index(-3), "bad_mesh"),
    "empty_mesh": (encoded("describe", arrays={"vertices": np.zeros((0, 3), np.float32),
                                               "faces": np.zeros((0, 3), np.int32)}), "empty_mesh"),
    "empty_prompt": (encoded("text_to_3d", fields={"prompt": "   "}), "bad_prompt"),
    "absurdly_long_prompt": (encoded("text_to_3d", fields={"prompt": "x" * 20_000}), "bad_prompt"),
    "image_not_an_image": (encoded("image_to_3d", blobs={"image": b"#!/bin/sh\nrm -rf /\n"}), "bad_image"),
    "image_that_does_not_decode": (encoded("image_to_3d", blobs={"image": png_with_garbage()}), "bad_image"),
    "message_over_the_limit": ([head(), b"\x00" * (int(1.5 * LIMIT_MB * 2**20))], "too_large"),
    "header_over_the_limit": ([b" " * (protocol.MAX_HEADER_BYTES + 1)], "too_large"),
    "cancel_without_target": (encoded("cancel"), "bad_field"),
}
# Cases where the request id cannot be read (or is not read, for size), so the error has job None.
UNREADABLE_ID = {"empty_header_frame", "header_not_json", "header_is_a_list", "message_over_the_limit",
                 "header_over_the_limit"}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_a_coded_error_and_the_server_keeps_serving(raw, name):
    frames, code = CASES[name]
    reply = send_and_receive(raw, frames)
    assert reply.type == "error", reply
    assert reply.fields["code"] == code, reply.fields
    assert reply.fields["message"]  # a human-readable explanation
    if name not in UNREADABLE_ID:
        assert reply.job == "bad-1"  # the error names the request whenever its id could be read
    assert_still_serving(raw)


def test_a_frame_over_the_hard_cap_drops_only_that_connection(backend, raw):
    """Above 2x the limit ZeroMQ itself (ZMQ_MAXMSGSIZE) drops the sender's connection before the
    server sees anything; the server stays up and answers the reconnected client and others."""
    raw.send_multipart([head(), b"\x00" * (3 * LIMIT_MB * 2**20)])
    other = backend.client()
    from addon.wire.client import wait_for

    assert wait_for(other, other.status(), timeout=10).type == "status"
    assert backend.process.poll() is None
    assert_still_serving(raw)  # the DEALER reconnects by itself
