"""The add-on's live state while Blender runs: connection, backend process, jobs, history.

No bpy: the job pump (pump.py) drives `tick()` from the main thread and applies the results
this collects. Nothing here blocks: the client only ever polls.
"""

from __future__ import annotations

import time
from pathlib import Path

from .history import History
from .jobs import Job, JobBook, Placement
from .supervisor import BackendSupervisor
from .wire.client import Client
from .wire.protocol import ProtocolError

CONNECT_TIMEOUT_S = 5.0           # an already running backend answers hello at once
STARTUP_TIMEOUT_S = 120.0         # a backend we just started may need to import torch first
STALL_S = 1.0                     # a gap this long between ticks: Blender itself was busy
STALL_GRACE_S = 3.5               # then wait this long for heartbeats before judging the backend


class Session:
    def __init__(self, user_folder: Path):
        self.user_folder = Path(user_folder)
        self.client: Client | None = None
        self.supervisor: BackendSupervisor | None = None
        self.book = JobBook()
        self.history = History(self.user_folder / "history")
        self.state = "offline"        # offline, connecting, connected, lost, incompatible
        self.message = "Not connected"
        self.server_info: dict = {}
        self.address = ""
        self._hello_key: str | None = None
        self._connect_deadline = 0.0
        self._last_tick = time.monotonic()
        self._grace_until = 0.0
        self._stop_announced = False   # the panel says "Backend stopping" until it is reaped
        self.results: list[tuple[Job, object]] = []   # (job, result event) for the pump to apply
        self.notices: list[tuple[str, str]] = []      # (INFO|WARNING|ERROR, text) to report
        self.results_held = False   # results wait for Object Mode, and the artist was told so

    # -- connection --------------------------------------------------------------------------

    def connect(self, address: str, server_public_key=None, client_keys=None,
                timeout: float | None = None) -> None:
        """Open the client and say hello; `tick()` sees the answer (or its absence)."""
        if self.client is not None and self.address == address and self.state in ("connecting", "connected"):
            return
        self.disconnect()
        self.address = address
        self.client = Client(address, server_public_key=server_public_key, client_keys=client_keys)
        self._hello_key = self.client.hello()
        self._connect_deadline = time.monotonic() + (CONNECT_TIMEOUT_S if timeout is None else timeout)
        self.state, self.message = "connecting", f"Connecting to {address}"
        self._stop_announced = False

    def disconnect(self) -> None:
        if self.client is not None:
            self.client.close()  # cancels our unfinished jobs on the backend
        self.client = None
        # Their events can no longer reach us (a new socket is a new client to the backend).
        self.book.fail_active("disconnected from the backend")
        self.state, self.message, self.server_info = "offline", "Not connected", {}

    @property
    def connected(self) -> bool:
        return self.state == "connected"

    # -- the backend process we supervise ----------------------------------------------------

    def start_backend(self, python: str, args: str, cwd: str | None, address: str, **keys) -> None:
        """Start (or restart) our own backend and connect to it. Raises SupervisorError, or
        ValueError for a malformed address (then nothing is started)."""
        if self.supervisor is not None:
            self.stop_backend()
            self.supervisor.stop()  # waits (rarely): the old backend must let go of the address
        self.supervisor = BackendSupervisor(python, args.replace("{address}", address), cwd,
                                            self.user_folder / "backend.log")
        self.disconnect()
        self.connect(address, timeout=STARTUP_TIMEOUT_S, **keys)
        try:
            self.supervisor.start()
        except Exception:
            self.disconnect()
            raise
        self.message = "Starting the backend"

    def stop_backend(self) -> None:
        """Ask our backend to exit and return at once; tick() reaps it (killing it if it takes
        longer than supervisor.STOP_GRACE_S), so Blender never waits on it."""
        if self.supervisor is not None:
            self.supervisor.request_stop()
            self.book.fail_active("the backend was stopped")
            self.disconnect()
            self._stop_announced = self.supervisor.stopping
            self.message = "Backend stopping" if self._stop_announced else "Backend stopped"

    @property
    def backend_running(self) -> bool:
        return self.supervisor is not None and self.supervisor.running

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, task: str, label: str, fields: dict, arrays=None, blobs=None,
               placement: Placement | None = None) -> Job:
        """Send a task. Raises ConnectionError when not connected, ProtocolError on bad input."""
        if self.client is None or self.state not in ("connecting", "connected"):
            raise ConnectionError(self.message if self.state != "offline" else
                                  "No backend connected: press Start in the ShapeLLM panel")
        key = self.client.submit(task, fields, arrays, blobs)
        return self.book.add(Job(key=key, task=task, label=label,
                                 options=dict(fields.get("options", {})), placement=placement or Placement()))

    def cancel(self, key: str) -> None:
        job = self.book.get(key)
        if job is None or not job.active:
            return
        if self.client is None or not self.connected:
            job.finish("cancelled", "cancelled")
            return
        self.client.cancel(key)
        job.state = "cancelling"

    def release(self) -> None:
        if self.client is None or not self.connected:
            raise ConnectionError("No backend connected")
        self.client.release()

    # -- the pump's side ---------------------------------------------------------------------

    def tick(self) -> bool:
        """Read what has arrived and check the backend's health. True when something changed."""
        now = time.monotonic()
        if now - self._last_tick > STALL_S:
            # No heartbeats were exchanged while Blender was busy (a long operator, a file
            # load): silence from that time says nothing about the backend.
            self._grace_until = now + STALL_GRACE_S
        self._last_tick = now
        changed = self._check_process()
        if self.client is None:
            return changed
        for event in self.client.poll():
            changed = True
            if event.job == self._hello_key:
                self._on_hello(event)
                continue
            if event.type in ("status", "released", "cancel_ack", "pong"):
                if event.type == "released" and event.fields.get("freed", True) is False:
                    reason = str(event.fields.get("reason") or "no reason given")[:200]
                    self.notices.append(("INFO", f"The backend kept its models loaded: {reason}"))
                elif event.type == "released":
                    self.notices.append(("INFO", "The backend released its model memory"))
                continue
            job = self.book.apply(event)
            if job is None:
                continue
            if event.type == "result":
                self.results.append((job, event))
            elif job.state == "failed":
                self.notices.append(("ERROR", f"{job.task} failed: {job.message}"))
        changed |= self._check_protocol()
        changed |= self._check_alive()
        return changed

    def _on_hello(self, event) -> None:
        if event.type == "hello":
            self.server_info = dict(event.fields.get("server") or {})
            self.state = "connected"
            self.message = "Connected"
        elif event.type == "error":
            self._incompatible(f"{event.fields.get('message', 'refused')} ({event.fields.get('code')})")

    def _check_protocol(self) -> bool:
        """Messages the client could not decode: another protocol version ends the session."""
        if self.client is None or not self.client.bad_events:
            return False
        errors, self.client.bad_events = self.client.bad_events, []
        version = [e for e in errors if e.code == "bad_version"]
        if version:
            self._incompatible(version[0].message)
        else:
            self.notices.append(("WARNING", f"Ignored a malformed message from the backend: {errors[0]}"))
        return True

    def _incompatible(self, why: str) -> None:
        self.book.fail_active(f"incompatible backend: {why}")
        if self.client is not None:
            self.client.close()
            self.client = None
        self.state, self.message = "incompatible", f"Incompatible backend at {self.address}: {why}"
        self.notices.append(("ERROR", self.message))

    def _check_process(self) -> bool:
        if self.supervisor is None:
            return False
        if self.supervisor.stopping and self.supervisor.reap():
            if not self.supervisor.stopping and self._stop_announced:
                self._stop_announced = False
                self.message = "Backend stopped"
            return True
        code = self.supervisor.check()
        if code is None:
            return False
        tail = self.supervisor.log_tail(3).replace("\n", " | ")
        why = f"the backend exited with code {code}" + (f": {tail}" if tail else "")
        self.book.fail_active(why)
        self.disconnect()
        self.state, self.message = "lost", why[:300]
        self.notices.append(("ERROR", why[:300]))
        return True

    def _check_alive(self) -> bool:
        now = time.monotonic()
        if self.state == "connecting" and now > self._connect_deadline:
            why = f"No backend answers at {self.address}"
            self.book.fail_active(why)
            self.disconnect()
            self.state, self.message = "offline", why
            self.notices.append(("ERROR", why + ": press Start or check the address"))
            return True
        if self.state == "connected" and now > self._grace_until and not self.client.alive:
            why = f"The backend at {self.address} stopped answering"
            failed = self.book.fail_active(why)
            self.state, self.message = "lost", why
            if failed:
                self.notices.append(("ERROR", why))
            return True
        if self.state == "lost" and self.client is not None and self.client.alive:
            self.state, self.message = "connected", "Connected"
            return True
        return False

    # -- teardown ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Cancel what runs, close the socket, stop our backend: nothing outlives the add-on."""
        if self.client is not None and self.connected:
            for job in self.book.active():
                try:
                    self.client.cancel(job.key)
                except (ConnectionError, ProtocolError):
                    pass
        self.book.fail_active("the add-on was disabled")
        self.disconnect()
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None


_current: Session | None = None


def get() -> Session | None:
    return _current


def set_current(session: Session | None) -> None:
    global _current
    _current = session
