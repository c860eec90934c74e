"""The wire format between the Blender add-on and the backend, defined once for both sides.

A message is a ZeroMQ multipart message: frame 0 is a UTF-8 JSON header, frames 1..n are raw
little-endian buffers that the header's "buffers" list describes in order. Nothing is ever
unpickled or evaluated: JSON is parsed with `json.loads`, buffers become numpy arrays of a fixed
allow-listed dtype or stay plain bytes. See docs/protocol.md for the full description.

Imports only the standard library and numpy (the add-on bundles this file).
"""

from __future__ import annotations

import json
import math
import re
import struct
import unicodedata
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1

# ---------------------------------------------------------------------------------------------
# Message types

# Requests that become queued jobs on the model worker.
TASKS = ("text_to_3d", "image_to_3d", "describe", "edit")
# Requests answered at once by the server's control path.
CONTROLS = ("hello", "status", "cancel", "release", "ping")
REQUEST_TYPES = TASKS + CONTROLS

# Events the server sends. Every event names the request it answers in "job".
EVENT_TYPES = (
    "hello", "status", "released", "pong", "cancel_ack",  # replies to control requests
    "accepted", "progress",                               # a job on its way
    "result", "error", "cancelled",                        # terminal: exactly one per request
)
TERMINAL_EVENTS = ("result", "error", "cancelled")
PROGRESS_STAGES = ("load", "encode", "tokens", "decode", "surface")

# What an edit result's "edit_kind" may say; the first four change a proportion.
EDIT_KINDS = ("taller", "shorter", "wider", "thinner", "add", "remove")
PROPORTION_KINDS = EDIT_KINDS[:4]
# A proportion edit's result may carry "deform": the sender's own mesh moved, as a list of maps
# {"axis": 0|1|2, "source": [knots], "target": [knots]} of the sender's coordinates (see
# move_along); a client may move its own copy of the object the same way and keep its topology.
MAX_DEFORM_KNOTS = 200


def move_along(t, source, target):
    """One coordinate through a deform map: piecewise linear between the knots (source increasing,
    target non-decreasing); outside them it moves as the nearest knot does."""
    t = np.asarray(t, np.float64)
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    inside = np.interp(t, source, target)
    below, above = t + (target[0] - source[0]), t + (target[-1] - source[-1])
    return np.where(t <= source[0], below, np.where(t >= source[-1], above, inside))


def checked_deform(value) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """A result's "deform" field as (axis, source, target) maps, or ValueError."""
    if not isinstance(value, list) or not 1 <= len(value) <= 3:
        raise ValueError("deform must be a list of 1-3 maps")
    maps = []
    for item in value:
        if not isinstance(item, dict) or item.get("axis") not in (0, 1, 2):
            raise ValueError("a deform map needs an axis 0, 1 or 2")
        source = np.asarray(item.get("source"), np.float64)
        target = np.asarray(item.get("target"), np.float64)
        if (source.ndim != 1 or source.shape != target.shape or not 2 <= len(source) <= MAX_DEFORM_KNOTS
                or not np.isfinite(source).all() or not np.isfinite(target).all()
                or (np.diff(source) <= 0).any() or (np.diff(target) < 0).any()):
            raise ValueError("a deform map needs 2-200 finite knots, source increasing, target not decreasing")
        maps.append((int(item["axis"]), source, target))
    return maps


# Option values: how a result is meshed, and the up axis of a mesh sent for describe/edit
# ("z": Blender; "y": glTF-style files).
MESH_STYLES = ("smooth", "blocky")
UP_AXES = ("z", "y")

# ---------------------------------------------------------------------------------------------
# Error codes: stable, machine-readable. backend.errors.TaskError uses the same codes.

ERROR_CODES = {
    "bad_frames": "the multipart message is malformed (no header frame, or buffers missing or extra)",
    "bad_header": "the header frame is not a UTF-8 JSON object of the expected shape",
    "bad_version": "the protocol version is not supported by this side",
    "unknown_type": "the request type is not one of the known requests",
    "bad_field": "a field is missing, unknown or of the wrong type or range",
    "too_large": "the message, the header or a buffer is over the size limit",
    "bad_buffer": "a buffer's length, dtype or shape disagrees with the header",
    "bad_mesh": "the mesh has NaN/inf vertices or triangle indices out of range",
    "empty_mesh": "the mesh has no vertices or no triangles",
    "bad_prompt": "the prompt or instruction is empty or too long",
    "bad_image": "the image is not a PNG or JPEG image, or is too large",
    "queue_full": "the job queue is full; try again when a job has finished",
    "unknown_job": "no job of yours has that id (finished, never submitted, or another client's)",
    "duplicate_job": "a job of yours with that id is still in the queue or running",
    "unsupported": "the loaded model preset does not support this task",
    "model_unavailable": "the model preset or its weights are not installed or cannot be found",
    "model_error": "the model could not be loaded or failed while running",
    "no_shape": "the model produced no usable shape",
    "shutting_down": "the server is shutting down",
    "client_timeout": "the server heard nothing from the job's client for CLIENT_TIMEOUT_S and cancelled it",
    "internal": "an unexpected error in the server; the message says more",
}

# ---------------------------------------------------------------------------------------------
# Limits. The server announces its own in `hello`; these are the defaults.

DEFAULT_MAX_MESSAGE_BYTES = 128 * 1024 * 1024  # a 4M-triangle mesh fits; ZMQ_MAXMSGSIZE is 2x this
MAX_HEADER_BYTES = 64 * 1024
MAX_BUFFERS = 8
MAX_PROMPT_CHARS = 2000
MAX_IMAGE_SIDE = 8192
# A decoded image costs width * height * 4 bytes and more: 8192x8192 would take gigabytes from a
# 200 KB PNG. The model looks at a few hundred pixels a side, so 16.7 Mpx (4096^2) is plenty.
MAX_IMAGE_PIXELS = 4096 * 4096
# Real files reach their size header within a few dozen chunks or segments; walking more would
# let one blob of millions of empty ones hold the server's main thread.
MAX_IMAGE_SEGMENTS = 1000
# Coordinates beyond this are refused: the geometry squares lengths, and float32 ends at 3.4e38.
MAX_COORDINATE = 1e15
MAX_DIMENSION = 2**31 - 1  # of any buffer axis: numpy cannot reshape to more
MAX_ID_CHARS = 64
MAX_RANK = 2
MAX_VARIATIONS = 8  # shapes of one prompt in one job

# Heartbeats. The client pings at most this often from poll(); the server cancels the jobs of a
# client it has heard nothing from (no ping, no request) for CLIENT_TIMEOUT_S, so a client that
# crashed does not hold the model. The window is long on purpose: Blender's main thread (which
# sends the pings) can be busy for seconds loading a file or building a big result mesh.
PING_INTERVAL_S = 0.5
CLIENT_TIMEOUT_S = 10.0

_ID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,%d}" % MAX_ID_CHARS)  # used with fullmatch: "$" admits a final newline

# Buffer dtypes allowed on the wire; always little-endian. "bytes" is an opaque blob.
DTYPES = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "uint8": np.dtype("u1"),
}
BLOB = "bytes"


class ProtocolError(Exception):
    """A message broke the protocol. `code` is one of ERROR_CODES; `job` is the request id when known."""

    def __init__(self, code: str, message: str, job: str | None = None):
        assert code in ERROR_CODES, code
        super().__init__(message)
        self.code = code
        self.message = message
        self.job = job


@dataclass
class Message:
    """One decoded message (request or event). `job` is the request id it carries or answers."""

    type: str
    job: str | None
    fields: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)  # name -> numpy array (read-only view of the frame)
    blobs: dict = field(default_factory=dict)   # name -> bytes
    version: int = PROTOCOL_VERSION

    @property
    def is_terminal(self) -> bool:
        return self.type in TERMINAL_EVENTS


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(msg: Message) -> list:
    """Message -> list of frames (bytes header, then buffers). Arrays are sent without copying
    when they are already C-contiguous little-endian of an allowed dtype."""
    buffers_meta = []
    frames: list = [b""]
    for name, array in msg.arrays.items():
        array = np.asarray(array)
        dtype_name = _dtype_name(array.dtype) or _nearest_wire_dtype(name, array)
        array = np.ascontiguousarray(array, dtype=DTYPES[dtype_name])
        buffers_meta.append({"name": name, "dtype": dtype_name, "shape": list(array.shape), "nbytes": array.nbytes})
        frames.append(memoryview(array).cast("B") if array.nbytes else b"")
    for name, blob in msg.blobs.items():
        blob = bytes(blob) if not isinstance(blob, (bytes, memoryview)) else blob
        buffers_meta.append({"name": name, "dtype": BLOB, "nbytes": len(blob)})
        frames.append(blob)
    header = {"v": msg.version, "type": msg.type, "job": msg.job, "fields": msg.fields, "buffers": buffers_meta}
    frames[0] = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return frames


def _nearest_wire_dtype(name: str, array: np.ndarray) -> str:
    """float64 -> float32 and int64 -> int32 (when the values fit), the common numpy defaults."""
    if array.dtype.kind == "f":
        return "float32"
    if array.dtype.kind in "iu":
        if array.size == 0 or (int(array.min()) >= -2**31 and int(array.max()) < 2**31):
            return "int32"
        raise ProtocolError("bad_buffer", f"array {name!r}: values do not fit in int32")
    raise ProtocolError("bad_buffer", f"array {name!r}: dtype {array.dtype} is not allowed on the wire")


def _dtype_name(dtype: np.dtype) -> str | None:
    for name, allowed in DTYPES.items():
        if dtype.kind == allowed.kind and dtype.itemsize == allowed.itemsize:
            return name
    return None


# ---------------------------------------------------------------------------------------------
# Decoding (both directions). Strict: anything unexpected raises ProtocolError.


def decode(frames: list, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Message:
    """Frames (bytes, memoryview or zmq.Frame) -> Message, checking every size against the header."""
    if not frames:
        raise ProtocolError("bad_frames", "empty message: no header frame")
    views = [_as_view(f) for f in frames]
    total = sum(v.nbytes for v in views)
    if total > max_message_bytes:
        raise ProtocolError("too_large", f"message of {total} bytes is over the limit of {max_message_bytes}")
    header = _parse_header(views[0])
    job = header.get("job")
    try:
        return _decode_checked(header, views[1:])
    except ProtocolError as err:
        # Only a well-formed id is echoed: a forged one could break log lines or the client.
        err.job = err.job or (job if is_job_id(job) else None)
        raise


def is_job_id(value) -> bool:
    return isinstance(value, str) and _ID_PATTERN.fullmatch(value) is not None


def _as_view(frame) -> memoryview:
    buf = getattr(frame, "buffer", frame)  # zmq.Frame exposes .buffer; bytes/memoryview pass through
    view = memoryview(buf)
    return view.cast("B") if view.format != "B" or view.ndim != 1 else view


def _parse_header(view: memoryview) -> dict:
    if view.nbytes > MAX_HEADER_BYTES:
        raise ProtocolError("too_large", f"header of {view.nbytes} bytes is over the limit of {MAX_HEADER_BYTES}")
    try:
        header = json.loads(bytes(view).decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as err:
        raise ProtocolError("bad_header", f"header is not UTF-8 JSON: {err}") from None
    except RecursionError:
        raise ProtocolError("bad_header", "header JSON is nested too deeply") from None
    if not isinstance(header, dict):
        raise ProtocolError("bad_header", "header must be a JSON object")
    return header


def _reject_constant(name: str):
    raise ValueError(f"{name} is not allowed in a header")


def _decode_checked(header: dict, buffers: list) -> Message:
    version = header.get("v")
    if not _is_int(version):
        raise ProtocolError("bad_header", "header field 'v' (protocol version) must be an integer")
    if version != PROTOCOL_VERSION:
        raise ProtocolError("bad_version", f"protocol version {version} is not supported; this side speaks {PROTOCOL_VERSION}")
    kind = header.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_header", "header field 'type' must be a string")
    job = header.get("job")
    if job is not None and not is_job_id(job):
        raise ProtocolError("bad_header", f"header field 'job' must be 1-{MAX_ID_CHARS} characters of A-Z a-z 0-9 _ . : -")
    fields = header.get("fields", {})
    if not isinstance(fields, dict):
        raise ProtocolError("bad_header", "header field 'fields' must be an object")
    meta = header.get("buffers", [])
    if not isinstance(meta, list):
        raise ProtocolError("bad_header", "header field 'buffers' must be a list")
    unknown = set(header) - {"v", "type", "job", "fields", "buffers"}
    if unknown:
        raise ProtocolError("bad_header", f"unknown header keys: {_shown(sorted(unknown))}")
    if len(meta) > MAX_BUFFERS:
        raise ProtocolError("too_large", f"{len(meta)} buffers is over the limit of {MAX_BUFFERS}")
    if len(meta) != len(buffers):
        raise ProtocolError("bad_frames", f"header describes {len(meta)} buffers but {len(buffers)} frames follow it")
    arrays, blobs = {}, {}
    for entry, view in zip(meta, buffers):
        name, value = _decode_buffer(entry, view)
        if name in arrays or name in blobs:
            raise ProtocolError("bad_header", f"buffer {name!r} appears twice")
        (blobs if isinstance(value, bytes) else arrays)[name] = value
    return Message(type=kind, job=job, fields=fields, arrays=arrays, blobs=blobs, version=version)


def _decode_buffer(entry, view: memoryview):
    if not isinstance(entry, dict):
        raise ProtocolError("bad_header", "each buffer description must be an object")
    name, dtype_name, nbytes = entry.get("name"), entry.get("dtype"), entry.get("nbytes")
    if not (isinstance(name, str) and 0 < len(name) <= 32):
        raise ProtocolError("bad_header", "buffer 'name' must be a string of 1-32 characters")
    if not _is_int(nbytes) or nbytes < 0:
        raise ProtocolError("bad_header", f"buffer {name!r}: 'nbytes' must be a non-negative integer")
    if view.nbytes != nbytes:
        raise ProtocolError("bad_buffer", f"buffer {name!r}: header says {nbytes} bytes, frame has {view.nbytes}")
    if dtype_name == BLOB:
        if set(entry) - {"name", "dtype", "nbytes"}:
            raise ProtocolError("bad_header", f"buffer {name!r}: a bytes buffer has only name, dtype, nbytes")
        return name, bytes(view)
    if dtype_name not in DTYPES:
        raise ProtocolError("bad_buffer", f"buffer {name!r}: dtype {_shown(dtype_name)} is not one of {sorted(DTYPES) + [BLOB]}")
    shape = entry.get("shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_RANK
            and all(_is_int(s) and 0 <= s <= MAX_DIMENSION for s in shape)):
        raise ProtocolError("bad_header", f"buffer {name!r}: 'shape' must be a list of 1-{MAX_RANK} integers "
                                          f"in [0, {MAX_DIMENSION}]")
    dtype = DTYPES[dtype_name]
    expected = math.prod(shape) * dtype.itemsize
    if expected != nbytes:
        raise ProtocolError("bad_buffer", f"buffer {name!r}: shape {shape} of {dtype_name} needs {expected} bytes, header says {nbytes}")
    # A read-only view straight onto the frame: no copy, and nothing but numbers can come out.
    array = np.frombuffer(view, dtype=dtype).reshape(shape)
    return name, array


def _shown(value, limit: int = 60) -> str:
    """A client-made value in an error message: repr'd (no raw line breaks) and bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------------------------------------
# Request validation: what each request must carry. Used by the server on every inbound request
# and by the client before sending, so bad input is caught on the side that made it.

OPTION_RULES = {
    # name: (type check, range check, description)
    "seed": (lambda v: _is_int(v), lambda v: 0 <= v < 2**63, "an integer >= 0"),
    # Below 0.01 the logits divided by it overflow to inf and sampling has no probabilities.
    # 0 is greedy; a tiny non-zero temperature would overflow the logits
    "temperature": (lambda v: _is_number(v), lambda v: v == 0 or 0.01 <= v <= 5, "0 (greedy) or a number in [0.01, 5]"),
    "top_p": (lambda v: _is_number(v), lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "top_k": (lambda v: _is_int(v), lambda v: 1 <= v <= 1_000_000, "an integer >= 1"),
    "max_new_tokens": (lambda v: _is_int(v), lambda v: 1 <= v <= 8192, "an integer in [1, 8192]"),
    "mesh_style": (lambda v: isinstance(v, str), lambda v: v in MESH_STYLES, "'smooth' or 'blocky'"),
    "up": (lambda v: isinstance(v, str), lambda v: v in UP_AXES, "'z' or 'y'"),
    # an edit's mesh: metres per unit along each of its own axes (the object's scale in the
    # scene), so "10 cm longer" means 10 cm in the scene
    "metres_per_unit": (lambda v: isinstance(v, list) and len(v) == 3 and all(_is_number(x) for x in v),
                        lambda v: all(1e-6 <= x <= 1e6 for x in v), "three numbers in [1e-6, 1e6]"),
    # an edit's object name ("Truck.001"): a vehicle's or an animal's width is across its length
    "object_name": (lambda v: isinstance(v, str), lambda v: 0 < len(v) <= 256, "a name of 1 to 256 characters"),
    # K shapes of one prompt in one job (seeds seed, seed+1, ...); they need sampling
    "variations": (lambda v: _is_int(v), lambda v: 1 <= v <= MAX_VARIATIONS, f"an integer in [1, {MAX_VARIATIONS}]"),
}
# Tasks that make new shapes and so may ask for several (option "variations").
VARIATION_TASKS = ("text_to_3d", "image_to_3d")

# request type -> (required fields, optional fields, required arrays, required blobs)
REQUEST_SCHEMA = {
    "hello": ((), ("client",), (), ()),
    "status": ((), (), (), ()),
    "release": ((), (), (), ()),
    "ping": ((), (), (), ()),
    "cancel": (("target",), (), (), ()),
    "text_to_3d": (("prompt",), ("options",), (), ()),
    "image_to_3d": ((), ("options",), (), ("image",)),
    "describe": ((), ("options", "question"), ("vertices", "faces"), ()),
    "edit": (("instruction",), ("options",), ("vertices", "faces"), ()),
}


def validate_request(msg: Message) -> None:
    """Raise ProtocolError unless `msg` is a well-formed request of a known type."""
    if msg.type not in REQUEST_SCHEMA:
        raise ProtocolError("unknown_type", f"unknown request type {_shown(msg.type)}; known: {', '.join(REQUEST_TYPES)}", msg.job)
    if msg.job is None:
        raise ProtocolError("bad_header", f"a {msg.type} request needs a 'job' id", None)
    required, optional, arrays, blobs = REQUEST_SCHEMA[msg.type]
    try:
        _check_keys("field", msg.fields, required, optional)
        _check_keys("array", msg.arrays, arrays, ())
        _check_keys("blob", msg.blobs, blobs, ())
        for name in ("prompt", "instruction", "question"):
            if name in msg.fields:
                validate_prompt(msg.fields[name], name)
        if "client" in msg.fields and not (isinstance(msg.fields["client"], str) and len(msg.fields["client"]) <= 200):
            raise ProtocolError("bad_field", "field 'client' must be a string of at most 200 characters")
        if "target" in msg.fields and not is_job_id(msg.fields["target"]):
            raise ProtocolError("bad_field", "field 'target' must be a job id")
        if "options" in msg.fields:
            validate_options(msg.fields["options"], msg.type)
        if arrays:
            validate_mesh(msg.arrays["vertices"], msg.arrays["faces"])
        if "image" in blobs:
            validate_image(msg.blobs["image"])
    except ProtocolError as err:
        err.job = msg.job
        raise


def _check_keys(kind: str, given: dict, required: tuple, optional: tuple) -> None:
    missing = [k for k in required if k not in given]
    if missing:
        raise ProtocolError("bad_field", f"missing {kind}(s): {', '.join(missing)}")
    extra = sorted(set(given) - set(required) - set(optional))
    if extra:
        raise ProtocolError("bad_field", f"unknown {kind}(s): {_shown(extra)}")


def _is_number(value) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def validate_prompt(text, name: str = "prompt") -> str:
    if not isinstance(text, str):
        raise ProtocolError("bad_field", f"field {name!r} must be a string")
    problem = prompt_problem(text, name)
    if problem:
        raise ProtocolError("bad_prompt", problem)
    return text


def prompt_problem(text: str, name: str) -> str | None:
    """Why a model cannot read `text`, or None. Shared with the backend's own check."""
    if len(text) > MAX_PROMPT_CHARS:
        return f"the {name} has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # JSON can carry a lone surrogate; no tokenizer can
        return f"the {name} holds a broken character (a lone UTF-16 surrogate); retype it"
    # Zero-width and other format characters (category Cf) show nothing, like white space.
    if not any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text):
        return f"the {name} is empty (nothing but spaces or invisible characters); type some words"
    return None


def validate_options(options, task: str | None = None) -> dict:
    """The options' names and values; with `task`, also that the task takes them."""
    if not isinstance(options, dict):
        raise ProtocolError("bad_field", "field 'options' must be an object")
    for key, value in options.items():
        if key not in OPTION_RULES:
            raise ProtocolError("bad_field", f"unknown option {_shown(key)}; known: {', '.join(OPTION_RULES)}")
        type_ok, range_ok, description = OPTION_RULES[key]
        if not (type_ok(value) and range_ok(value)):
            raise ProtocolError("bad_field", f"option {key!r} must be {description}, got {_shown(value)}")
    if task is not None and "variations" in options and task not in VARIATION_TASKS:
        raise ProtocolError("bad_field", f"option 'variations' is for {' and '.join(VARIATION_TASKS)}, not {task}")
    return options


# ---------------------------------------------------------------------------------------------
# A result of several variations (a request whose options hold "variations"): the K meshes in
# the usual three buffers, one after another. `vertices` [sum N, 3], `faces` [sum M, 3] with
# indices into the whole `vertices` (so the message is one valid mesh under every check),
# `codes` [K, 1024]; the field "variations" lists each one's {"index", "seed", "vertex_count",
# "face_count"} in buffer order.


def join_variations(meshes: list[tuple[dict, np.ndarray, np.ndarray, np.ndarray]]) -> tuple[list, dict]:
    """[(info {"index", "seed"}, vertices, faces, codes), ...] -> (the "variations" field, arrays)."""
    infos, vertices, faces, offset = [], [], [], 0
    for info, v, f, _ in meshes:
        infos.append({"index": int(info["index"]), "seed": int(info["seed"]), "vertex_count": len(v),
                      "face_count": len(f)})
        vertices.append(np.asarray(v, np.float32))
        faces.append(np.asarray(f, np.int64) + offset)
        offset += len(v)
    arrays = {"vertices": np.concatenate(vertices).astype(np.float32), "faces": np.concatenate(faces).astype(np.int32),
              "codes": np.stack([np.asarray(c, np.int32) for *_, c in meshes])}
    return infos, arrays


def split_variations(fields: dict, arrays: dict) -> list[tuple[dict, np.ndarray, np.ndarray, np.ndarray | None]]:
    """A mesh result -> [(info, vertices, faces with their own indices, codes or None), ...]: the
    K variations of a result that lists them, else the one mesh (info {"index": 0}). ValueError
    when the list and the buffers disagree."""
    vertices, faces = arrays["vertices"], arrays["faces"]
    codes = arrays.get("codes")
    listed = fields.get("variations")
    if listed is None:
        return [({"index": 0}, vertices, faces, codes)]
    if not isinstance(listed, list) or not 1 <= len(listed) <= MAX_VARIATIONS:
        raise ValueError(f"'variations' must list 1-{MAX_VARIATIONS} shapes")
    if codes is not None and (codes.ndim != 2 or len(codes) != len(listed)):
        raise ValueError(f"'codes' must hold one row per variation, got shape {list(codes.shape)}")
    out, v_at, f_at = [], 0, 0
    for k, info in enumerate(listed):
        counts = (info.get("vertex_count"), info.get("face_count")) if isinstance(info, dict) else (None, None)
        if not all(_is_int(c) and c >= 0 for c in counts):
            raise ValueError("each variation needs a vertex_count and a face_count")
        n, m = counts
        v, f = vertices[v_at:v_at + n], faces[f_at:f_at + m]
        if len(v) != n or len(f) != m:
            raise ValueError("the variations' counts run past the buffers")
        own = f.astype(np.int64) - v_at
        if m and (own.min() < 0 or own.max() >= n):
            raise ValueError(f"variation {k}: triangle indices outside its own vertices")
        out.append((info, v, own.astype(np.int32), None if codes is None else codes[k]))
        v_at, f_at = v_at + n, f_at + m
    if v_at != len(vertices) or f_at != len(faces):
        raise ValueError("the buffers hold more than the variations list")
    return out


def validate_mesh(vertices, faces) -> None:
    """Shared mesh checks: dtypes and shapes, non-empty, finite coordinates, indices in range."""
    if not isinstance(vertices, np.ndarray) or vertices.dtype != DTYPES["float32"] or vertices.ndim != 2 or vertices.shape[1] != 3:
        raise ProtocolError("bad_buffer", "'vertices' must be float32 with shape [N, 3]")
    if not isinstance(faces, np.ndarray) or faces.dtype != DTYPES["int32"] or faces.ndim != 2 or faces.shape[1] != 3:
        raise ProtocolError("bad_buffer", "'faces' must be int32 with shape [M, 3]")
    if len(vertices) == 0 or len(faces) == 0:
        raise ProtocolError("empty_mesh", f"the mesh has {len(vertices)} vertices and {len(faces)} triangles; both must be > 0")
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        raise ProtocolError("bad_mesh", f"{bad} vertices have NaN or infinite coordinates")
    largest = max(-float(vertices.min()), float(vertices.max()))  # no temporary copy, unlike abs()
    if largest > MAX_COORDINATE:
        raise ProtocolError("bad_mesh", f"a coordinate reaches {largest:.3g}; the limit is {MAX_COORDINATE:g}, "
                                        "apply a smaller scale to the object first")
    low, high = int(faces.min()), int(faces.max())
    if low < 0 or high >= len(vertices):
        raise ProtocolError("bad_mesh", f"triangle indices span [{low}, {high}] but there are {len(vertices)} vertices")


def image_size(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) of a PNG or JPEG from its header bytes; ProtocolError otherwise.
    A header check only, bounded by MAX_IMAGE_SEGMENTS steps: the backend decodes the image
    (backend.pipeline.decode_image) in its worker, never on the thread that answers pings."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        _check_png_chunks(data)
        return "png", width, height
    if data[:3] == b"\xff\xd8\xff":
        return ("jpeg",) + _jpeg_size(data)
    for signature, name in _OTHER_IMAGES:
        if data[:len(signature)] == signature and (name != "WebP" or data[8:12] == b"WEBP"):
            raise ProtocolError("bad_image", f"the image is {name}, not PNG or JPEG; save it as PNG")
    raise ProtocolError("bad_image", "the image is not a PNG or JPEG file")


# Formats people often have at hand, named in the refusal so it says what to do.
_OTHER_IMAGES = ((b"GIF8", "GIF"), (b"RIFF", "WebP"), (b"BM", "BMP"), (b"II*\x00", "TIFF"),
                 (b"MM\x00*", "TIFF"), (b"\x00\x00\x00\x0cjP", "JPEG 2000"))


def _check_png_chunks(data: bytes) -> None:
    """The first image data chunk (IDAT) must come within MAX_IMAGE_SEGMENTS chunks."""
    pos = 8
    for _ in range(MAX_IMAGE_SEGMENTS):
        if pos + 8 > len(data):
            raise ProtocolError("bad_image", "the PNG ends before its image data; save it again")
        if data[pos + 4:pos + 8] == b"IDAT":
            return
        pos += 12 + struct.unpack(">I", data[pos:pos + 4])[0]
    raise ProtocolError("bad_image", f"the PNG has over {MAX_IMAGE_SEGMENTS} chunks before its image data; "
                                     "save it again with an image editor")


def _jpeg_size(data: bytes) -> tuple[int, int]:
    pos = 2
    for _ in range(MAX_IMAGE_SEGMENTS):
        if pos + 4 > len(data) or data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            pos += 1 if marker == 0xFF else 2  # fill bytes and markers without a length
            continue
        length = struct.unpack(">H", data[pos + 2:pos + 4])[0]
        # SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and pos + 9 <= len(data):
            height, width = struct.unpack(">HH", data[pos + 5:pos + 9])
            return width, height
        pos += 2 + length
    else:
        raise ProtocolError("bad_image", f"the JPEG has over {MAX_IMAGE_SEGMENTS} segments before its frame header; "
                                         "save it again with an image editor")
    raise ProtocolError("bad_image", "the JPEG has no readable frame header; save it again with an image editor")


def check_image_size(width: int, height: int) -> None:
    """The limits on an image's declared size, before any pixel is decoded."""
    if not (0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE):
        raise ProtocolError("bad_image", f"image of {width}x{height} pixels; each side must be 1-{MAX_IMAGE_SIDE}")
    if width * height > MAX_IMAGE_PIXELS:
        raise ProtocolError("bad_image", f"image of {width}x{height} = {width * height} pixels; the limit is "
                                         f"{MAX_IMAGE_PIXELS} ({int(MAX_IMAGE_PIXELS ** 0.5)}^2): scale it down")


def validate_image(data) -> None:
    """Cheap header checks (signature, declared size): constant time whatever the blob holds."""
    if not isinstance(data, (bytes, bytearray)) or not data:
        raise ProtocolError("bad_image", "the image is empty")
    _, width, height = image_size(data)
    check_image_size(width, height)


# ---------------------------------------------------------------------------------------------
# Helpers to build events (server side) so every event has the same shape.


def event(type_: str, job: str | None, fields: dict | None = None, arrays: dict | None = None) -> Message:
    assert type_ in EVENT_TYPES, type_
    return Message(type=type_, job=job, fields=fields or {}, arrays=arrays or {})


def error_event(job: str | None, code: str, message: str) -> Message:
    assert code in ERROR_CODES, code
    return event("error", job, {"code": code, "message": message})
