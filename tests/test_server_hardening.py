"""Issue 31, server side, against a real backend process over real sockets: no message stalls the
control path, refused requests are freed at once, a forged job id never reaches the log, release
waits for other clients, and the blocking helpers notice a dead server."""

import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
import zmq

from addon.wire import protocol
from addon.wire.client import Client, run_job, wait_for
from addon.wire.protocol import Message
from tests.backend_process import backend_process, session_temp_dir, tiny_preset
from tests.test_protocol_hardening import jpeg_full_of_markers, png_of_size, png_with_empty_chunks

os.environ.setdefault("OMP_NUM_THREADS", "1")
BIG = 100 * 2**20


@pytest.fixture(scope="module")
def backend():
    with backend_process(tiny_preset(), wait_ready=True) as running:
        yield running


def raw_socket(address: str, context: zmq.Context | None = None) -> zmq.Socket:
    socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
    socket.linger = 0
    socket.rcvtimeo = 30000
    socket.connect(address)
    return socket


def encoded(type_, job="h-1", fields=None, arrays=None, blobs=None):
    return protocol.encode(Message(type_, job, fields or {}, arrays or {}, blobs or {}))


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PingProbe:
    """Pings the server from its own client and records the longest wait for a pong."""

    def __init__(self, address: str, interval: float = 0.02):
        self.address = address
        self.interval = interval
        self.worst = 0.0
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        # Its own context: the test's I/O thread may be busy pushing 100 MB to the server.
        context = zmq.Context()
        socket = raw_socket(self.address, context)
        ping = encoded("ping", "probe")
        try:
            while not self._stop.is_set():
                sent = time.perf_counter()
                socket.send_multipart(ping)
                if not socket.poll(10000):
                    self.worst = max(self.worst, 10.0)
                    return
                socket.recv_multipart()
                self.worst = max(self.worst, time.perf_counter() - sent)
                self.count += 1
                time.sleep(self.interval)
        finally:
            socket.close()
            context.term()

    def __enter__(self):
        self._thread.start()
        time.sleep(0.1)
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(15)


def reply_of(socket, frames, job="h-1"):
    """Send a request and return its first event other than `accepted`/`progress`."""
    socket.send_multipart(frames, copy=False)
    while True:
        event = protocol.decode(socket.recv_multipart())
        if event.job == job and event.type not in ("accepted", "progress"):
            return event


@pytest.mark.parametrize("blob", ["jpeg_markers", "png_chunks"])
def test_a_big_image_full_of_segments_does_not_stall_pings(backend, blob):
    data = jpeg_full_of_markers(BIG) if blob == "jpeg_markers" else png_with_empty_chunks(BIG // 12)
    frames = encoded("image_to_3d", blobs={"image": data})
    socket = raw_socket(backend.address)
    try:
        with PingProbe(backend.address) as probe:
            reply = reply_of(socket, frames)
        assert reply.type == "error" and reply.fields["code"] == "bad_image", reply.fields
        assert probe.count > 0 and probe.worst < 0.5, f"a ping waited {probe.worst:.2f} s:\n{backend.log()[-3000:]}"
    finally:
        socket.close()


def test_a_png_bomb_is_refused_without_decoding(backend):
    socket = raw_socket(backend.address)
    before = rss_mb(backend.process.pid)
    try:
        started = time.monotonic()
        reply = reply_of(socket, encoded("image_to_3d", blobs={"image": png_of_size(8192, 8192)}))
        assert reply.type == "error" and reply.fields["code"] == "bad_image"
        assert "pixels" in reply.fields["message"]
        assert time.monotonic() - started < 2
        assert rss_mb(backend.process.pid) - before < 50
    finally:
        socket.close()


def test_refused_big_requests_are_freed_at_once(backend):
    """Four refused 100 MB requests once held 800 MB until a full garbage collection (a
    locals() call on the error path tied the request's frames into a reference cycle)."""
    socket = raw_socket(backend.address)
    try:
        # No job id: the error path that looked for one in locals().
        frames = encoded("text_to_3d", job=None, fields={"prompt": "a chair"}, blobs={"image": b"\x00" * BIG})
        reply_of(socket, frames, job=None)  # the first one may grow the allocator's pools for good
        before = rss_mb(backend.process.pid)
        for _ in range(4):
            reply = reply_of(socket, frames, job=None)
            assert reply.fields["code"] == "bad_header"
        # The error is sent just before the request is dropped. (No ping here: decoding it can
        # trigger the garbage collection that hid the cycle.)
        time.sleep(0.5)
        grown = rss_mb(backend.process.pid) - before
        assert grown < 50, f"the server kept {grown:.0f} MB after four refused requests"
    finally:
        socket.close()


def test_an_invalid_job_id_is_not_echoed_nor_logged_raw(backend):
    forged = "x\n2026-01-01 INFO backend.server: forged line"
    socket = raw_socket(backend.address)
    try:
        for header in ({"v": 99, "type": "status", "job": forged},
                       {"v": 1, "type": "status", "job": forged},
                       {"v": 1, "type": "text_to_3d", "job": "ok\n", "fields": {}}):
            socket.send_multipart([json.dumps(header).encode()])
            reply = protocol.decode(socket.recv_multipart())
            assert reply.type == "error" and reply.job is None, reply
        reply = reply_of(socket, encoded("status", "after"), job="after")
        assert reply.type == "status"
    finally:
        socket.close()
    assert "\n2026-01-01 INFO backend.server: forged line" not in backend.log()


def test_non_finite_or_unreadable_client_input_is_never_internal(backend):
    """Inputs that pass the client's own checks, or that a raw sender can forge."""
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    faces = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int32)
    huge = vertices * np.float32(3e38) - np.float32(1.5e38)
    cases = [
        encoded("text_to_3d", fields={"prompt": "a chair", "options": {"temperature": 1e-300}}),
        encoded("text_to_3d", fields={"prompt": "a \ud800 chair"}),
        encoded("text_to_3d", fields={"prompt": "\u200b\u200b"}),
        encoded("edit", fields={"instruction": "make it taller"}, arrays={"vertices": huge, "faces": faces}),
        [json.dumps({"v": 1, "type": "describe", "job": "h-1", "buffers": [
            {"name": "vertices", "dtype": "float32", "shape": [0, 2**64], "nbytes": 0}]}).encode(), b""],
    ]
    socket = raw_socket(backend.address)
    try:
        for frames in cases:
            reply = reply_of(socket, frames)
            assert reply.type == "error" and reply.fields["code"] != "internal", reply.fields
    finally:
        socket.close()


def test_release_is_refused_while_another_clients_job_waits(backend):
    box_v = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], np.float32)
    box_f = np.array([[0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
                      [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3]], np.int32)
    owner, other = backend.client(), backend.client()
    mesh = {"vertices": box_v, "faces": box_f}
    first = owner.submit("describe", {}, mesh)
    second = owner.submit("describe", {}, mesh)
    released = wait_for(other, other.release(), timeout=60)
    assert released.type == "released" and released.fields["freed"] is False
    assert "another client" in released.fields["reason"]
    for job in (first, second):
        assert wait_for(owner, job, timeout=120).type == "result"
    # With no one else's job left, the same client may free the models.
    assert wait_for(other, other.release(), timeout=60).fields["freed"] is True


def test_unsupported_is_refused_before_any_check_of_the_input():
    folder = session_temp_dir("text-only-preset-") / "text-only"
    shutil.copytree(tiny_preset(), folder)
    preset = json.loads((folder / "preset.json").read_text())
    preset["tasks"] = ["text_to_3d"]
    (folder / "preset.json").write_text(json.dumps(preset))
    nan_mesh = {"vertices": np.full((4, 3), np.nan, np.float32), "faces": np.zeros((1, 3), np.int32)}
    image = encoded("image_to_3d", blobs={"image": jpeg_full_of_markers(BIG)})
    with backend_process(folder, wait_ready=True) as backend:
        socket = raw_socket(backend.address)
        try:
            with PingProbe(backend.address) as probe:
                reply = reply_of(socket, image)
                assert reply.fields["code"] == "unsupported", reply.fields
                reply = reply_of(socket, encoded("describe", arrays=nan_mesh))
                assert reply.fields["code"] == "unsupported", reply.fields
            assert probe.worst < 0.5
        finally:
            socket.close()


def test_wait_for_notices_a_dead_server_within_the_heartbeat_window():
    with backend_process(tiny_preset()) as backend:
        client = backend.client()
        assert wait_for(client, client.hello(), timeout=30).type == "hello"
        backend.process.kill()
        backend.process.wait()
        died = time.monotonic()
        with pytest.raises(ConnectionError):
            wait_for(client, client.status(), timeout=60)
        assert time.monotonic() - died < 4.0


def test_run_job_notices_a_server_killed_mid_job():
    with backend_process(tiny_preset(), wait_ready=True) as backend:
        client = backend.client()
        killer = threading.Timer(0.5, backend.process.kill)
        killer.start()
        started = time.monotonic()
        with pytest.raises(ConnectionError):
            # 8192 tokens of a tiny model: far longer than the kill's delay.
            run_job(client, "text_to_3d", {"prompt": "a chair", "options": {"max_new_tokens": 8192}}, timeout=120)
        assert time.monotonic() - started < 5.0
        killer.join()


def test_non_finite_results_are_never_returned():
    """A pipeline whose answer overflows float32 (an edit of a huge mesh) gets no_shape."""
    from backend.server import Server, ServerConfig

    class Overflowing:
        def __init__(self, preset, device):
            pass

        def info(self):
            return {"preset": "overflow", "device": "cpu", "supports": {t: True for t in protocol.TASKS}}

        def text_to_3d(self, prompt, options, progress, cancelled):
            from backend.pipeline import MeshResult

            vertices = np.array([[0, 0, 0], [1e39, 0, 0], [0, 1, 0]], np.float64)
            return MeshResult(vertices, np.array([[0, 1, 2]], np.int32), np.zeros(1024, np.int32))

        def release(self):
            pass

    ready = []
    server = Server(ServerConfig(preset="overflow", bind="tcp://127.0.0.1:*"), pipeline_factory=Overflowing)
    thread = threading.Thread(target=server.serve, kwargs={"ready": ready.append}, daemon=True)
    thread.start()
    try:
        while not ready:
            time.sleep(0.01)
        client = Client(ready[0])
        reply = run_job(client, "text_to_3d", {"prompt": "a chair"}, timeout=30)
        client.close()
        assert reply.type == "error" and reply.fields["code"] == "no_shape", reply.fields
    finally:
        server.stop()
        thread.join(10)


def test_a_refused_request_leaves_no_reference_cycle():
    """Deterministic form of the memory test: with the collector off, a refused request's frames
    must die when the server lets go of them (a locals() call on the error path kept them)."""
    import gc
    import weakref

    from backend.server import Server, ServerConfig

    class Router:
        def send_multipart(self, frames, copy=True):
            self.sent = frames

    server = Server(ServerConfig(preset="none", bind="tcp://127.0.0.1:0"))
    server._router = Router()
    gc.collect()
    gc.disable()
    try:
        for job in (None, "bad id"):  # no id, and an id that is not echoed
            frames = [zmq.Frame(b"client")] + [zmq.Frame(bytes(f)) for f in encoded(
                "text_to_3d", job=None, fields={"prompt": "a chair"}, blobs={"image": b"\x00" * 1000})]
            if job:
                frames[1] = zmq.Frame(json.dumps({"v": 1, "type": "status", "job": job}).encode())
            alive = [weakref.ref(frame) for frame in frames]
            server._handle(frames)
            del frames
            assert all(ref() is None for ref in alive), "a refused request is still referenced"
    finally:
        gc.enable()


def test_a_client_that_never_reads_cannot_grow_the_servers_memory(backend):
    """The send queue per client is bounded: 300,000 pings from a client that reads nothing
    leave at most its high-water mark of pongs queued in the server, not all of them."""
    context = zmq.Context()
    flooder = context.socket(zmq.DEALER)
    flooder.linger = 0
    flooder.rcvhwm = 1
    flooder.setsockopt(zmq.RCVBUF, 4096)
    flooder.connect(backend.address)
    before = rss_mb(backend.process.pid)
    try:
        ping = [bytes(frame) for frame in encoded("ping", "flood")]
        for _ in range(300_000):
            flooder.send_multipart(ping)
        # Then one request of our own: when it is answered, the server has read every ping.
        checker = raw_socket(backend.address)
        assert reply_of(checker, encoded("status", "after"), job="after").type == "status"
        checker.close()
        grown = rss_mb(backend.process.pid) - before
        assert grown < 25, f"the server holds {grown:.0f} MB of events for a client that reads nothing"
    finally:
        flooder.close()
        context.term()
