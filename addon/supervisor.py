"""Start, watch and stop the backend process that the add-on launched itself.

No bpy here: the job pump calls `check()` each tick to notice a crash and `reap()` to finish a
stop. The Stop button uses `request_stop()`, which asks the backend to exit and returns at once
(the backend's clean shutdown can take a decoding step and more); `reap()` collects it, or kills
it after STOP_GRACE_S. unregister() and Blender's exit use the blocking `stop()`, so that no
backend outlives the add-on. The backend also gets `--parent-pid` of this Blender, so it exits
by itself should Blender crash.
"""

from __future__ import annotations

import atexit
import os
import shlex
import subprocess
import time
from pathlib import Path

STOP_GRACE_S = 5.0  # time to shut down cleanly after being asked, before it is killed


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
        self.exiting: list[tuple[subprocess.Popen, float]] = []  # asked to stop: (process, kill after)

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
        return [self.python, *args, "--parent-pid", str(os.getpid())]

    def start(self) -> None:
        if self.running:
            return
        self.stop()  # a backend still exiting may hold the address the new one binds
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
        atexit.register(self.stop)   # Blender quitting without disabling add-ons still stops it

    def check(self) -> int | None:
        """The exit code when the backend died on its own since the last check, else None."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            return None
        self.exit_code = code
        self.process = None
        return code

    def request_stop(self, grace: float | None = None) -> None:
        """Ask the backend to shut down (SIGTERM; on Windows this already ends it) and return at
        once. `reap()` collects it, or kills it once `grace` (default STOP_GRACE_S) has passed."""
        grace = STOP_GRACE_S if grace is None else grace
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        self.exiting.append((process, time.monotonic() + grace))

    @property
    def stopping(self) -> bool:
        return bool(self.exiting)

    def reap(self) -> bool:
        """Non-blocking: collect stopped backends that have exited, kill those past their grace
        time. True when one has just exited."""
        now, left, reaped = time.monotonic(), [], False
        for process, kill_after in self.exiting:
            if process.poll() is not None:
                self.exit_code, reaped = process.returncode, True
                continue
            if now >= kill_after:
                process.kill()  # reaped on a later tick
            left.append((process, kill_after))
        self.exiting = left
        if reaped and not self.exiting and self.process is None:
            atexit.unregister(self.stop)
        return reaped

    def stop(self, timeout: float | None = None) -> None:
        """Blocking: stop the backend and wait until it (and any still exiting) is gone."""
        timeout = STOP_GRACE_S if timeout is None else timeout
        self.request_stop(timeout)
        for process, kill_after in self.exiting:
            try:
                process.wait(max(0.0, kill_after - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout)
            self.exit_code = process.returncode
        self.exiting = []
        atexit.unregister(self.stop)

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
