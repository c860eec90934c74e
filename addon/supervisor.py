"""Start, watch and stop the backend process that the add-on launched itself.

No bpy here: the job pump calls `check()` each tick to notice a crash, and unregister()
calls `stop()` so that no backend outlives the add-on.
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import time
from pathlib import Path


class SupervisorError(RuntimeError):
    """The backend could not be started; the message is meant for the artist."""


class BackendSupervisor:
    def __init__(self, python: str, args: str, cwd: str | None, log_path: Path):
        self.python = python
        self.args = args
        self.cwd = cwd or None
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None
        self.exit_code: int | None = None  # set once a started backend has exited
        self._stopping = False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def command(self) -> list[str]:
        if not self.python:
            raise SupervisorError("Set the backend's Python in the add-on preferences")
        try:
            args = shlex.split(self.args)
        except ValueError as exc:
            raise SupervisorError(f"Backend arguments do not parse: {exc}") from None
        return [self.python, *args]

    def start(self) -> None:
        if self.running:
            return
        cmd = self.command()
        if self.cwd and not os.path.isdir(self.cwd):
            raise SupervisorError(f"Backend folder does not exist: {self.cwd}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                cmd, cwd=self.cwd, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=(os.name != "nt"))
        except OSError as exc:
            raise SupervisorError(f"Could not start the backend ({cmd[0]}): {exc}") from None
        finally:
            log.close()  # the child holds its own handle
        self.exit_code = None
        self._stopping = False
        atexit.register(self.stop)   # Blender quitting without disabling add-ons still stops it

    def check(self) -> int | None:
        """The exit code when the backend died on its own since the last check, else None."""
        if self.process is None or self._stopping:
            return None
        code = self.process.poll()
        if code is None:
            return None
        self.exit_code = code
        self.process = None
        return code

    def stop(self, timeout: float = 5.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        self._stopping = True
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
        self.exit_code = process.returncode
        self._stopping = False

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_exit(self, timeout: float) -> bool:
        """Test helper as much as anything: True when the process is gone within timeout."""
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running
