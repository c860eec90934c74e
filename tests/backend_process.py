"""Start a real backend process for a test and talk to it over real sockets.

    from tests.backend_process import backend_process

    with backend_process(tiny_preset()) as backend:     # waits until the server answers hello
        client = backend.client()                       # a Client connected to it (closed for you)
        event = run_job(client, "text_to_3d", {"prompt": "a cube"}, timeout=60)

`backend.address` is the bound endpoint (a free port picked by the server), `backend.process`
the Popen object, `backend.stop()` sends SIGTERM and returns the exit code. Extra `serve`
arguments go in `args` (e.g. ["--queue-size", "4"]). Server logs go to `backend.log_path`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from addon.wire.client import Client, wait_for

REPO_ROOT = Path(__file__).resolve().parents[1]


_tiny_preset_folder: Path | None = None


def session_temp_dir(prefix: str) -> Path:
    """A temporary folder removed when the test process exits (no litter in /tmp)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def tiny_preset() -> Path:
    """A tiny random model preset (backend.models.tiny), written once per test session."""
    global _tiny_preset_folder
    if _tiny_preset_folder is None:
        from backend.models.tiny import write_tiny_preset

        folder = session_temp_dir("tiny-preset-")
        _tiny_preset_folder = Path(write_tiny_preset(folder / "tiny"))
    return _tiny_preset_folder


class BackendProcess:
    def __init__(self, process: subprocess.Popen, address: str, log_path: Path):
        self.process = process
        self.address = address
        self.log_path = log_path
        self._clients: list[Client] = []

    def client(self, **kwargs) -> Client:
        client = Client(self.address, **kwargs)
        self._clients.append(client)
        return client

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig=signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for client in self._clients:
            client.close()
        return self.process.returncode


def start_backend(preset, args=(), log_dir=None, env=None) -> subprocess.Popen:
    """Spawn `python -m backend serve` on a free loopback port; stdout's first line names it."""
    log_dir = Path(log_dir or session_temp_dir("backend-log-"))
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **(env or {})}
    command = [sys.executable, "-m", "backend", "serve", "--preset", str(preset),
               "--bind", "tcp://127.0.0.1:0", *map(str, args)]
    with open(log_dir / "backend.log", "w") as log:  # the child keeps its own handle
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environment, stdout=subprocess.PIPE,
                                   stderr=log, text=True)
    process.log_path = log_dir / "backend.log"
    return process


@contextlib.contextmanager
def backend_process(preset, args=(), timeout: float = 60, wait_ready: bool = False):
    """A running backend for the duration of the block. `wait_ready=True` also waits until the
    model pipeline is built (hello reports ready), so the first job does not pay for it."""
    process = start_backend(preset, args)
    backend = None
    try:
        line = process.stdout.readline()  # "listening on tcp://127.0.0.1:PORT", or "" if it died
        if not line.startswith("listening on "):
            process.wait(timeout)
            raise RuntimeError(f"backend did not start (exit {process.returncode}):\n"
                               f"{line}{Path(process.log_path).read_text()}")
        backend = BackendProcess(process, line.split()[-1], Path(process.log_path))
        # Keep reading stdout so a chatty library can never fill the pipe and stall the server.
        threading.Thread(target=_copy_lines, args=(process.stdout, backend.log_path), daemon=True).start()
        _wait_for_hello(backend, timeout, wait_ready)
        yield backend
    finally:
        if backend is not None:
            backend.stop()
        elif process.poll() is None:
            process.kill()
            process.wait()


def _copy_lines(stream, log_path: Path) -> None:
    with open(log_path, "a") as log:
        for line in stream:
            log.write(line)


def _wait_for_hello(backend: BackendProcess, timeout: float, wait_ready: bool) -> None:
    client = backend.client()
    deadline = time.monotonic() + timeout
    reply = wait_for(client, client.hello(), timeout)
    info = reply.fields["server"]
    while wait_ready and not info["ready"] and info["load_error"] is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"backend pipeline not ready after {timeout} s:\n{backend.log()}")
        time.sleep(0.2)
        info = wait_for(client, client.status(), timeout).fields["server"]
    if wait_ready and info["load_error"]:
        raise RuntimeError(f"backend could not load its preset: {info['load_error']}")
