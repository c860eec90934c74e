"""A seeded, bounded fuzz run against a real backend over loopback (issue 31, "Measured"): over 100
malformed messages of over 40 kinds, with pings timed all along, then a normal request. Every
message gets a coded error (never `internal`), the server never crashes, no ping waits 0.5 s, and
a refused 100 MB request leaves the server's memory within 50 MB of where it was."""

import io
import json
import random
import struct
import zlib

import numpy as np
import pytest

from addon.wire import protocol
from addon.wire.client import run_job
from tests.backend_process import backend_process, tiny_preset
from tests.test_protocol_hardening import jpeg_full_of_markers, png_chunk, png_of_size, png_with_empty_chunks
from tests.test_server_hardening import BIG, PingProbe, encoded, raw_socket, rss_mb

SEED = 31
MESSAGES = 160


def header(rng, **changes):
    base = {"v": 1, "type": "status", "job": f"f{rng.randrange(10**6)}", "fields": {}, "buffers": []}
    base.update(changes)
    return [json.dumps(base).encode()]


def mesh(vertices=None, faces=None):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32) if vertices is None else vertices
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32) if faces is None else faces
    return {"vertices": v, "faces": f}


def with_vertex(value):
    vertices = mesh()["vertices"].copy()
    vertices[1, 0] = value
    return mesh(vertices)


def with_index(value):
    faces = mesh()["faces"].copy()
    faces[3, 1] = value
    return mesh(faces=faces)


def describe(arrays):
    return encoded("describe", arrays=arrays)


def text(prompt=None, **options):
    fields = {"prompt": "a chair" if prompt is None else prompt}
    if options:
        fields["options"] = options
    return encoded("text_to_3d", fields=fields)


def image(data):
    return encoded("image_to_3d", blobs={"image": data})


def buffers(rng, entries, frames):
    return header(rng, type="describe", buffers=entries) + frames


def vertex_entry(**changes):
    entry = {"name": "vertices", "dtype": "float32", "shape": [4, 3], "nbytes": 48}
    entry.update(changes)
    return entry


def huge_jpeg_sof():
    sof = b"\xff\xc0\x00\x11\x08" + struct.pack(">HH", 65535, 65535) + b"\x03" + b"\x01\x11\x00" * 3
    return b"\xff\xd8" + sof + b"\xff\xd9"


def truncated_png(rng):
    """A noisy PNG cut in the middle of its pixel data."""
    from PIL import Image

    out = io.BytesIO()
    Image.frombytes("L", (64, 64), rng.randbytes(64 * 64)).save(out, format="PNG")
    return out.getvalue()[:2000]


# name -> frames(rng). Each kind is one way a message can be wrong.
KINDS = {
    "empty_header": lambda rng: [b""],
    "not_json": lambda rng: [b"hello server"],
    "json_list": lambda rng: [b"[]"],
    "json_number": lambda rng: [b"42"],
    "json_string": lambda rng: [b'"status"'],
    "deep_nesting": lambda rng: [b"[" * 50_000 + b"]" * 50_000],
    "bad_utf8": lambda rng: [b'{"v": 1, "type": "\xff\xfe"}'],
    "nan_constant": lambda rng: [b'{"v": NaN, "type": "status", "job": "x"}'],
    "random_bytes": lambda rng: [rng.randbytes(rng.randrange(1, 2000))],
    "wrong_version": lambda rng: header(rng, v=rng.choice([0, 2, 99, -1])),
    "version_string": lambda rng: header(rng, v="1"),
    "version_bool": lambda rng: header(rng, v=True),
    "no_type": lambda rng: [json.dumps({"v": 1, "job": "x"}).encode()],
    "type_not_string": lambda rng: header(rng, type=7),
    "unknown_type": lambda rng: header(rng, type=rng.choice(["shutdown", "exec", "load", "eval"])),
    "huge_type": lambda rng: header(rng, type="t" * 60_000),
    "job_bad_chars": lambda rng: header(rng, job="a b/c"),
    "job_line_break": lambda rng: header(rng, v=2, job="x\nINFO forged"),
    "job_too_long": lambda rng: header(rng, job="j" * 65),
    "job_not_string": lambda rng: header(rng, job=12),
    "job_missing": lambda rng: header(rng, job=None),
    "fields_not_object": lambda rng: header(rng, fields=[1, 2]),
    "buffers_not_list": lambda rng: header(rng, buffers={"a": 1}),
    "unknown_header_key": lambda rng: header(rng, exec="rm -rf /"),
    "too_many_buffers": lambda rng: buffers(rng, [vertex_entry(name=f"b{i}") for i in range(9)], [b"\0" * 48] * 9),
    "missing_frame": lambda rng: buffers(rng, [vertex_entry()], []),
    "extra_frame": lambda rng: describe(mesh()) + [b"surprise"],
    "entry_not_object": lambda rng: buffers(rng, ["vertices"], [b"\0" * 48]),
    "entry_empty_name": lambda rng: buffers(rng, [vertex_entry(name="")], [b"\0" * 48]),
    "entry_negative_nbytes": lambda rng: buffers(rng, [vertex_entry(nbytes=-48)], [b"\0" * 48]),
    "nbytes_mismatch": lambda rng: buffers(rng, [vertex_entry()], [b"\0" * 47]),
    "unknown_dtype": lambda rng: buffers(rng, [vertex_entry(dtype=rng.choice(["float64", "object", "O", "<U8"]))], [b"\0" * 48]),
    "rank_three": lambda rng: buffers(rng, [vertex_entry(shape=[2, 2, 3])], [b"\0" * 48]),
    "negative_dimension": lambda rng: buffers(rng, [vertex_entry(shape=[-4, -3])], [b"\0" * 48]),
    "huge_dimension": lambda rng: buffers(rng, [vertex_entry(shape=[0, 2**64], nbytes=0)], [b""]),
    "shape_nbytes_disagree": lambda rng: buffers(rng, [vertex_entry(shape=[5, 3])], [b"\0" * 48]),
    "duplicate_buffer": lambda rng: buffers(rng, [vertex_entry(), vertex_entry()], [b"\0" * 48] * 2),
    "blob_with_shape": lambda rng: buffers(rng, [{"name": "image", "dtype": "bytes", "nbytes": 4, "shape": [4]}], [b"abcd"]),
    "too_many_frames": lambda rng: header(rng) + [b"x"] * 20,
    "missing_prompt": lambda rng: encoded("text_to_3d"),
    "prompt_not_string": lambda rng: encoded("text_to_3d", fields={"prompt": ["a", "chair"]}),
    "prompt_blank": lambda rng: text(" \t\n"),
    "prompt_zero_width": lambda rng: text("\u200b" * rng.randrange(1, 50)),
    "prompt_lone_surrogate": lambda rng: text("a \udc80 chair"),
    "prompt_too_long": lambda rng: text("x" * 20_000),
    "unknown_field": lambda rng: encoded("text_to_3d", fields={"prompt": "a chair", "path": "/etc/passwd"}),
    "options_not_object": lambda rng: encoded("text_to_3d", fields={"prompt": "a chair", "options": "fast"}),
    "unknown_option": lambda rng: text(device="cuda:9"),
    "tiny_temperature": lambda rng: text(temperature=rng.choice([1e-300, 1e-30, 5e-324])),
    "negative_temperature": lambda rng: text(temperature=-1.0),
    "huge_seed": lambda rng: text(seed=2**80),
    "bool_top_k": lambda rng: text(top_k=True),
    "bad_mesh_style": lambda rng: text(mesh_style="voxels"),
    "nan_vertex": lambda rng: describe(with_vertex(np.nan)),
    "inf_vertex": lambda rng: describe(with_vertex(-np.inf)),
    "huge_vertex": lambda rng: describe(with_vertex(3e38)),
    "index_out_of_range": lambda rng: describe(with_index(4)),
    "negative_index": lambda rng: describe(with_index(-(2**31))),
    "vertices_2d": lambda rng: describe(mesh(np.zeros((4, 2), np.float32))),
    "vertices_int": lambda rng: describe(mesh(np.zeros((4, 3), np.int32))),
    "empty_mesh": lambda rng: describe(mesh(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int32))),
    "missing_faces": lambda rng: encoded("describe", arrays={"vertices": mesh()["vertices"]}),
    "question_not_string": lambda rng: encoded("describe", fields={"question": 5}, arrays=mesh()),
    "image_not_image": lambda rng: image(b"#!/bin/sh\nrm -rf /\n"),
    "image_empty": lambda rng: image(b""),
    "image_truncated_png": lambda rng: image(truncated_png(rng)),
    "image_garbage_after_header": lambda rng: image(png_of_size(16, 16)[:41] + rng.randbytes(200) + png_chunk(b"IEND")),
    "jpeg_full_of_markers": lambda rng: image(jpeg_full_of_markers(2**20)),
    "png_full_of_chunks": lambda rng: image(png_with_empty_chunks(100_000)),
    "png_bomb": lambda rng: image(png_of_size(8192, 8192)),
    "jpeg_huge_frame": lambda rng: image(huge_jpeg_sof()),
    "image_extra_blob": lambda rng: encoded("image_to_3d", blobs={"image": png_of_size(8, 8), "more": b"x"}),
    "cancel_no_target": lambda rng: encoded("cancel"),
    "cancel_bad_target": lambda rng: encoded("cancel", fields={"target": "../../x"}),
    "cancel_unknown_job": lambda rng: encoded("cancel", fields={"target": f"nobody-{rng.randrange(10**6)}"}),
    "hello_long_client": lambda rng: encoded("hello", fields={"client": "c" * 500}),
    "zlib_bomb_as_png": lambda rng: image(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 4096, 4096, 8, 6, 0, 0, 0))
                                          + png_chunk(b"IDAT", zlib.compress(b"\0" * 2**22, 9))),
}


@pytest.fixture(scope="module")
def backend():
    with backend_process(tiny_preset(), wait_ready=True) as running:
        yield running


def terminal_reply(socket, frames):
    """The reply that ends a request: one error (after `accepted` for a task the worker refuses)."""
    socket.send_multipart(frames, copy=False)
    while True:
        event = protocol.decode(socket.recv_multipart())
        if event.type not in ("accepted", "progress"):
            return event


def test_fuzzing_never_crashes_stalls_or_leaks(backend):
    assert len(KINDS) >= 40
    rng = random.Random(SEED)
    plan = list(KINDS) + [rng.choice(list(KINDS)) for _ in range(MESSAGES - len(KINDS))]
    rng.shuffle(plan)
    messages = [(kind, KINDS[kind](rng)) for kind in plan]
    socket = raw_socket(backend.address)
    codes = {}
    try:
        with PingProbe(backend.address, interval=0.002) as probe:
            for kind, frames in messages:
                reply = terminal_reply(socket, frames)
                assert reply.type == "error", (kind, reply)
                assert reply.fields["code"] != "internal", (kind, reply.fields)
                codes.setdefault(reply.fields["code"], set()).add(kind)
                assert backend.process.poll() is None, f"the server died on {kind}"
        assert probe.count >= 20 and probe.worst < 0.5, f"a ping waited {probe.worst:.2f} s"

        # Memory: a refused 100 MB request is freed at once.
        before = rss_mb(backend.process.pid)
        big = encoded("text_to_3d", job=None, fields={"prompt": "a chair"}, blobs={"image": b"\x01" * BIG})
        assert terminal_reply(socket, big).fields["code"] == "bad_header"
        # The error is sent before the request is dropped; the next pong comes after.
        assert terminal_reply(socket, encoded("ping", "after")).type == "pong"
        grown = rss_mb(backend.process.pid) - before
        assert grown < 50, f"the server kept {grown:.0f} MB after a refused 100 MB request"
    finally:
        socket.close()
    print(f"fuzz: {len(messages)} messages of {len(KINDS)} kinds, {len(codes)} error codes; "
          f"{probe.count} pings, worst {probe.worst * 1000:.0f} ms; RSS after a refused 100 MB request "
          f"{grown:+.0f} MB")
    assert len(codes) >= 8, codes  # the refusals say different things, not one catch-all
    client = backend.client()
    result = run_job(client, "text_to_3d", {"prompt": "a chair", "options": {"seed": 1}}, timeout=120)
    assert result.type == "result", result.fields
    assert "request failed" not in backend.log()  # the catch-all for server bugs never ran
