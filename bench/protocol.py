"""Round trip of a 100k-triangle mesh: our ZeroMQ protocol vs base64 JSON over HTTP.

    .venv/bin/python bench/protocol.py [--triangles 100000] [--repeats 20] [--quick]

Both sides run in a separate server process and do the same work per request: decode the mesh,
check it (finite vertices, indices in range), send it back, and the client decodes the reply
into numpy arrays. Model time is excluded: ours goes through the real backend Server (ROUTER,
job queue, worker thread) with a pipeline whose `edit` returns its input unchanged. The HTTP
side is the way peer add-ons talk to their backends: stdlib http.server, one JSON body with the
arrays base64-encoded, a new connection per request (urllib). Runs alternate between the two
so both see the same machine load; the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from addon.wire import protocol  # noqa: E402
from addon.wire.client import Client, run_job  # noqa: E402


def torus(triangles: int):
    """A closed torus with about `triangles` triangles (vertices float32, faces int32)."""
    nu = max(3, int(round((triangles / 2 / 0.8) ** 0.5)))
    nv = max(3, int(round(triangles / 2 / nu)))
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, nu, endpoint=False), np.linspace(0, 2 * np.pi, nv, endpoint=False), indexing="ij")
    x = (1 + 0.3 * np.cos(v)) * np.cos(u)
    y = (1 + 0.3 * np.cos(v)) * np.sin(u)
    z = 0.3 * np.sin(v)
    vertices = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    a, b = i * nv + j, ((i + 1) % nu) * nv + j
    c, d = ((i + 1) % nu) * nv + (j + 1) % nv, i * nv + (j + 1) % nv
    faces = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3).astype(np.int32)
    return vertices, faces


# -- our side: the real Server with an echo pipeline -------------------------------------------


class EchoPipeline:
    """Stands in for the model so only the protocol and the server are timed."""

    def __init__(self, preset, device="cpu"):
        pass

    def info(self):
        return {"preset": "echo", "device": "cpu", "supports": {t: t == "edit" for t in protocol.TASKS}}

    def edit(self, vertices, faces, instruction, options, progress, cancelled):
        # The pipeline's own result type, so a field the server starts reading cannot break this.
        from backend.pipeline import MeshResult

        return MeshResult(vertices, faces, np.zeros(1024, np.int32))

    def release(self):
        pass


def _serve_ours(ready):
    from backend.server import Server, ServerConfig

    server = Server(ServerConfig(preset="echo", bind="tcp://127.0.0.1:*"), pipeline_factory=EchoPipeline)
    server.serve(ready=ready.put)


def ours_round_trip(client: Client, vertices, faces):
    event = run_job(client, "edit", {"instruction": "echo"}, {"vertices": vertices, "faces": faces}, timeout=60)
    assert event.type == "result", event.fields
    return event.arrays["vertices"], event.arrays["faces"]


# -- peer add-on side: base64 JSON over HTTP --------------------------------------------------


def _b64(array: np.ndarray) -> str:
    return base64.b64encode(array.tobytes()).decode("ascii")


def _unb64(text: str, dtype, shape) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=dtype).reshape(shape)


class _EchoHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        vertices = _unb64(body["vertices"], np.float32, (-1, 3))
        faces = _unb64(body["faces"], np.int32, (-1, 3))
        protocol.validate_mesh(vertices, faces)  # the same checks as ours, to be fair
        reply = json.dumps({"vertices": _b64(vertices), "faces": _b64(faces), "codes": _b64(np.zeros(1024, np.int32))}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def _serve_http(ready):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    ready.put(f"http://127.0.0.1:{server.server_address[1]}/edit")
    server.serve_forever()


def http_round_trip(url: str, vertices, faces):
    body = json.dumps({"instruction": "echo", "vertices": _b64(vertices), "faces": _b64(faces)}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        reply = json.loads(response.read())
    return _unb64(reply["vertices"], np.float32, (-1, 3)), _unb64(reply["faces"], np.int32, (-1, 3))


# -- run -----------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triangles", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="a 2,000-triangle mesh, 2 round trips: a smoke test for CI")
    args = parser.parse_args(argv)
    if args.quick:
        args.triangles, args.repeats = 2000, 2
    vertices, faces = torus(args.triangles)
    context = multiprocessing.get_context("spawn")
    ready = context.Queue()
    servers = [context.Process(target=_serve_ours, args=(ready,), daemon=True)]
    servers[0].start()
    address = ready.get(timeout=60)
    servers.append(context.Process(target=_serve_http, args=(ready,), daemon=True))
    servers[1].start()
    url = ready.get(timeout=60)
    client = Client(address)
    try:
        for name, trip in (("ours", lambda: ours_round_trip(client, vertices, faces)),
                           ("http", lambda: http_round_trip(url, vertices, faces))):
            v, f = trip()  # warm-up, and check both sides return the mesh unchanged
            assert np.array_equal(v, vertices) and np.array_equal(f, faces), name
        times = {"ours": [], "http": []}
        for _ in range(args.repeats):
            for name, trip in (("ours", lambda: ours_round_trip(client, vertices, faces)),
                               ("http", lambda: http_round_trip(url, vertices, faces))):
                started = time.perf_counter()
                trip()
                times[name].append(time.perf_counter() - started)
    finally:
        client.close()
        for server in servers:
            server.terminate()
            server.join(10)
    raw_mb = (vertices.nbytes + faces.nbytes) / 2**20
    ours, http = statistics.median(times["ours"]), statistics.median(times["http"])
    print(f"mesh: {len(vertices)} vertices, {len(faces)} triangles, {raw_mb:.2f} MiB raw each way; "
          f"{args.repeats} round trips each, alternating; CPU cores: {os.cpu_count()}")
    print(f"zeromq protocol (real Server, echo pipeline): median {ours * 1000:8.1f} ms  (min {min(times['ours']) * 1000:.1f})")
    print(f"base64 JSON over HTTP (peer add-ons):        median {http * 1000:8.1f} ms  (min {min(times['http']) * 1000:.1f})")
    print(f"ratio (http / ours): ours is {http / ours:.1f}x faster (target: at least 5x)"
          + (" [quick mode: too small to mean anything]" if args.quick else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
