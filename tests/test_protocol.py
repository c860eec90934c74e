"""The wire format itself: encode/decode round trips and every validation rule, no sockets."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from addon.wire import protocol
from addon.wire.protocol import Message, ProtocolError


def mesh(n=4):
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)[:n]
    faces = np.array([[0, 1, 2], [0, 1, 3], [0, 2, 3], [1, 2, 3]], np.int32)
    return vertices, faces


def png_bytes(size=(8, 6), fmt="PNG"):
    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, format=fmt)
    return out.getvalue()


def request(type_, job="j1", fields=None, arrays=None, blobs=None):
    return Message(type=type_, job=job, fields=fields or {}, arrays=arrays or {}, blobs=blobs or {})


def roundtrip(msg):
    return protocol.decode([bytes(f) for f in protocol.encode(msg)])


def expect(code, frames_or_msg, **kwargs):
    with pytest.raises(ProtocolError) as info:
        if isinstance(frames_or_msg, Message):
            protocol.validate_request(frames_or_msg)
        else:
            protocol.validate_request(protocol.decode(frames_or_msg, **kwargs))
    assert info.value.code == code, info.value.message
    return info.value


def test_mesh_round_trip_is_exact_and_frames_are_raw_buffers():
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(1000, 3)).astype(np.float32)
    faces = rng.integers(0, 1000, size=(2000, 3)).astype(np.int32)
    codes = rng.integers(0, 8192, size=1024).astype(np.int32)
    msg = protocol.event("result", "job-1", {"task": "edit"}, {"vertices": vertices, "faces": faces, "codes": codes})
    frames = protocol.encode(msg)
    assert len(frames) == 4
    assert len(frames[1]) == vertices.nbytes and len(frames[2]) == faces.nbytes  # no base64, no padding
    header = json.loads(frames[0])
    assert header["buffers"][0] == {"name": "vertices", "dtype": "float32", "shape": [1000, 3], "nbytes": 12000}
    back = protocol.decode([bytes(f) for f in frames])
    assert back.type == "result" and back.job == "job-1" and back.fields == {"task": "edit"}
    for name, array in msg.arrays.items():
        assert back.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(back.arrays[name], array)


def test_big_endian_and_int64_arrays_are_converted_to_the_wire_dtypes():
    vertices = np.arange(12, dtype=">f4").reshape(4, 3)
    back = roundtrip(protocol.event("result", "a", arrays={"vertices": vertices}))
    assert back.arrays["vertices"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(back.arrays["vertices"], vertices.astype("<f4"))
    faces = np.array([[0, 1, 2]], np.int64)
    back = roundtrip(protocol.event("result", "a", arrays={"faces": faces, "v": vertices.astype(np.float64)}))
    assert back.arrays["faces"].dtype == np.dtype("<i4") and back.arrays["v"].dtype == np.dtype("<f4")
    np.testing.assert_array_equal(back.arrays["faces"], faces)
    for bad in (np.zeros(3, np.complex64), np.array([2**40], np.int64), np.array(["a"])):
        with pytest.raises(ProtocolError) as info:
            protocol.encode(protocol.event("result", "a", arrays={"x": bad}))
        assert info.value.code == "bad_buffer"


def test_blobs_and_valid_requests_pass():
    vertices, faces = mesh()
    image = png_bytes()
    for msg in [request("hello", fields={"client": "test"}), request("status"), request("ping"),
                request("release"), request("cancel", fields={"target": "abc"}),
                request("text_to_3d", fields={"prompt": "a chair", "options": {"seed": 3, "top_p": 0.5}}),
                request("image_to_3d", blobs={"image": image}),
                request("image_to_3d", blobs={"image": png_bytes(fmt="JPEG")}),
                request("describe", arrays={"vertices": vertices, "faces": faces}),
                request("edit", fields={"instruction": "taller"}, arrays={"vertices": vertices, "faces": faces})]:
        protocol.validate_request(roundtrip(msg))
    assert roundtrip(request("image_to_3d", blobs={"image": image})).blobs["image"] == image


def test_image_sizes_are_read_from_png_and_jpeg_headers():
    assert protocol.image_size(png_bytes((17, 9))) == ("png", 17, 9)
    assert protocol.image_size(png_bytes((33, 20), "JPEG")) == ("jpeg", 33, 20)


# -- bad input: one test per rule --------------------------------------------------------------


def frames_of(header: dict, *buffers):
    return [json.dumps(header).encode()] + list(buffers)


def header(**overrides):
    base = {"v": 1, "type": "status", "job": "j1", "fields": {}, "buffers": []}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


def test_missing_header_frame():
    expect("bad_frames", [])


def test_header_not_json_or_not_an_object():
    expect("bad_header", [b"{not json"])
    expect("bad_header", [b"\xff\xfe\x00"])
    expect("bad_header", [b"[1, 2]"])
    expect("bad_header", [b"[" * 50000])  # nesting deep enough to exhaust the parser's recursion
    expect("bad_header", [b'{"v": 1, "type": "status", "job": "j", "fields": {"x": NaN}}'])


def test_wrong_or_missing_protocol_version():
    err = expect("bad_version", frames_of(header(v=2)))
    assert "1" in err.message and err.job == "j1"
    expect("bad_header", frames_of(header(v=...)))
    expect("bad_header", frames_of(header(v="1")))


def test_unknown_request_type():
    expect("unknown_type", frames_of(header(type="format_disk")))
    expect("bad_header", frames_of(header(type=5)))


def test_bad_job_ids_and_unknown_header_keys():
    expect("bad_header", frames_of(header(job="has spaces")))
    expect("bad_header", frames_of(header(job="x" * 65)))
    expect("bad_header", frames_of(header(job=...)))  # a request without an id cannot be answered
    expect("bad_header", frames_of(header(extra=1)))


def test_missing_unknown_and_mistyped_fields():
    expect("bad_field", request("text_to_3d"))
    expect("bad_field", request("text_to_3d", fields={"prompt": 42}))
    expect("bad_field", request("text_to_3d", fields={"prompt": "ok", "color": "red"}))
    expect("bad_field", request("text_to_3d", fields={"prompt": "ok", "options": {"seed": "7"}}))
    expect("bad_field", request("text_to_3d", fields={"prompt": "ok", "options": {"seed": True}}))
    expect("bad_field", request("text_to_3d", fields={"prompt": "ok", "options": {"top_p": 1.5}}))
    expect("bad_field", request("text_to_3d", fields={"prompt": "ok", "options": {"bogus": 1}}))
    expect("bad_field", request("cancel"))
    expect("bad_field", request("cancel", fields={"target": ["a"]}))
    expect("bad_field", request("edit", fields={"instruction": "x"}, arrays={"vertices": mesh()[0]}))
    expect("bad_header", frames_of(header(fields=[1])))


def test_oversized_message_and_header_and_too_many_buffers():
    expect("too_large", [b"{}", b"x" * 2000], max_message_bytes=1000)
    expect("too_large", [b" " * (protocol.MAX_HEADER_BYTES + 1)])
    many = [{"name": f"b{i}", "dtype": "bytes", "nbytes": 0} for i in range(protocol.MAX_BUFFERS + 1)]
    expect("too_large", frames_of(header(buffers=many), *[b""] * len(many)))


def test_buffer_count_or_length_disagreeing_with_the_header():
    vertices, faces = mesh()
    frames = [bytes(f) for f in protocol.encode(request("describe", arrays={"vertices": vertices, "faces": faces}))]
    expect("bad_frames", frames[:-1])                    # a buffer missing
    expect("bad_frames", frames + [b"extra"])            # one too many
    expect("bad_buffer", [frames[0], frames[1][:-4], frames[2]])  # shorter than the header says
    head = json.loads(frames[0])
    head["buffers"][0]["shape"] = [5, 3]                # shape disagrees with nbytes
    expect("bad_buffer", [json.dumps(head).encode()] + frames[1:])
    head["buffers"][0].update(shape=[4, 3], dtype="float64")  # dtype not on the allow-list
    expect("bad_buffer", [json.dumps(head).encode()] + frames[1:])
    head["buffers"][0].update(dtype="float32", shape=[4, 3, 1, 1])
    expect("bad_header", [json.dumps(head).encode()] + frames[1:])


def test_mesh_with_wrong_dtype_or_shape():
    vertices, faces = mesh()
    expect("bad_buffer", request("describe", arrays={"vertices": vertices.astype(np.float64), "faces": faces}))
    expect("bad_buffer", request("describe", arrays={"vertices": vertices[:, :2].copy(), "faces": faces}))
    expect("bad_buffer", request("describe", arrays={"vertices": vertices, "faces": faces.astype(np.float32)}))


def test_nan_and_inf_vertices():
    vertices, faces = mesh()
    for bad in (np.nan, np.inf, -np.inf):
        broken = vertices.copy()
        broken[2, 1] = bad
        err = expect("bad_mesh", roundtrip(request("describe", arrays={"vertices": broken, "faces": faces})))
        assert "1 vertices" in err.message


def test_triangle_indices_out_of_range():
    vertices, faces = mesh()
    for bad in (4, -1, 2**31 - 1):
        broken = faces.copy()
        broken[1, 2] = bad
        expect("bad_mesh", roundtrip(request("describe", arrays={"vertices": vertices, "faces": broken})))


def test_empty_mesh():
    vertices, faces = mesh()
    expect("empty_mesh", roundtrip(request("describe", arrays={"vertices": vertices[:0], "faces": faces[:0]})))
    expect("empty_mesh", roundtrip(request("describe", arrays={"vertices": vertices, "faces": faces[:0]})))


def test_empty_or_absurdly_long_prompt():
    expect("bad_prompt", request("text_to_3d", fields={"prompt": ""}))
    expect("bad_prompt", request("text_to_3d", fields={"prompt": " \n\t "}))
    expect("bad_prompt", request("text_to_3d", fields={"prompt": "chair " * 1000}))
    expect("bad_prompt", request("edit", fields={"instruction": ""}, arrays=dict(zip(("vertices", "faces"), mesh()))))


def test_an_image_that_is_not_an_image():
    expect("bad_image", request("image_to_3d", blobs={"image": b""}))
    expect("bad_image", request("image_to_3d", blobs={"image": b"GIF89a not supported"}))
    expect("bad_image", request("image_to_3d", blobs={"image": b"\x89PNG\r\n\x1a\n truncated"}))
    expect("bad_image", request("image_to_3d", blobs={"image": b"\xff\xd8\xff\xe0" + b"\x00" * 8}))
    huge = bytearray(png_bytes())
    huge[16:24] = (100000).to_bytes(4, "big") * 2  # a header claiming 100000 x 100000 pixels
    expect("bad_image", request("image_to_3d", blobs={"image": bytes(huge)}))


def test_decoding_never_unpickles():
    import pickle

    payload = pickle.dumps({"type": "status"})
    expect("bad_header", [payload])
    head = header(type="describe", buffers=[{"name": "vertices", "dtype": "object", "shape": [1], "nbytes": len(payload)}])
    expect("bad_buffer", frames_of(head, payload))


def test_every_task_error_code_raised_in_the_backend_is_a_wire_error_code():
    """TaskError codes travel to clients as they are, so each must be in ERROR_CODES."""
    import re
    from pathlib import Path

    backend = Path(__file__).resolve().parents[1] / "backend"
    pattern = re.compile(r'TaskError\(\s*"([A-Za-z_]+)"')
    used = {code for path in backend.rglob("*.py") for code in pattern.findall(path.read_text())}
    assert used, "no TaskError found: the pattern is stale"
    assert used <= set(protocol.ERROR_CODES), used - set(protocol.ERROR_CODES)
    from backend.models import checkpoints

    assert {checkpoints.MODEL_UNAVAILABLE, checkpoints.MODEL_ERROR} <= set(protocol.ERROR_CODES)
