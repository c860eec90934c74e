"""A pure-Python client for the backend: non-blocking for Blender, with a blocking helper for scripts.

    c = Client("tcp://127.0.0.1:5577")
    c.hello()
    job = c.submit("text_to_3d", {"prompt": "a chair"})
    for ev in c.poll():           # never blocks; call it from a timer
        ...                       # ev.type, ev.job, ev.fields, ev.arrays, ev.blobs

Not thread-safe: use one Client from one thread. Imports only the standard library, numpy and zmq.
"""

from __future__ import annotations

import os
import time
import uuid

import zmq

from . import protocol
from .protocol import Message, ProtocolError

Event = Message  # events are decoded messages: .type, .job, .fields, .arrays, .blobs

DEFAULT_ADDRESS = "tcp://127.0.0.1:5577"
PING_INTERVAL_S = protocol.PING_INTERVAL_S  # the server cancels our jobs after protocol.CLIENT_TIMEOUT_S of silence
ALIVE_WINDOW_S = 2.5   # silence this long means a dead backend; with 0.5 s pings a kill shows within 3 s
SEND_QUEUE_LIMIT = 64  # messages zmq may hold for a backend that is not there yet


class Client:
    def __init__(self, address: str = DEFAULT_ADDRESS, server_public_key=None, client_keys=None,
                 context: zmq.Context | None = None):
        self.address = address
        self.server_info: dict | None = None
        self.max_message_bytes = protocol.DEFAULT_MAX_MESSAGE_BYTES
        self.bad_events: list[ProtocolError] = []  # server messages that failed to decode
        self._last_seen = None
        self._last_ping = 0.0
        self._unread: list[Event] = []
        self._active_jobs: set[str] = set()  # submitted, no terminal event seen yet
        self._socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._socket.linger = 0
        self._socket.sndhwm = SEND_QUEUE_LIMIT
        self._socket.rcvhwm = 0  # keep every event until poll() reads it
        try:
            if server_public_key is not None:
                self._use_curve(server_public_key, client_keys)
            self._socket.ipv6 = "[" in address  # e.g. tcp://[::1]:5577
            self._socket.connect(address)
        except zmq.ZMQError as err:  # e.g. "localhost:5577" (no tcp://): a settings mistake, not a crash
            self._socket.close(linger=0)
            raise ValueError(f"{address!r} is not a usable backend address ({err.strerror}); "
                             "expected e.g. tcp://127.0.0.1:5577") from None
        except BaseException:
            self._socket.close(linger=0)  # a bad key file: no socket left behind
            raise

    def _use_curve(self, server_public_key, client_keys) -> None:
        self._socket.curve_serverkey = load_public_key(server_public_key)
        if client_keys is None:
            public, secret = zmq.curve_keypair()  # ephemeral: only a server that allows any key accepts it
        elif isinstance(client_keys, (str, os.PathLike)):
            public, secret = load_key_pair(client_keys)
        else:
            public, secret = (_as_key(k) for k in client_keys)
        self._socket.curve_publickey = public
        self._socket.curve_secretkey = secret

    # -- requests (all non-blocking; each returns the request id its events will carry) --------

    def hello(self) -> str:
        return self._send("hello", {"client": "shapellm-wire"})

    def submit(self, task: str, fields: dict, arrays: dict | None = None, blobs: dict | None = None) -> str:
        """Queue a task on the backend; returns its job id. Raises ProtocolError (nothing is sent)
        when the request is invalid, so bad input is reported before it leaves this process."""
        if task not in protocol.TASKS:
            raise ProtocolError("unknown_type", f"unknown task {task!r}; tasks are {', '.join(protocol.TASKS)}")
        job = self._send(task, fields, arrays, blobs)
        self._active_jobs.add(job)
        return job

    def cancel(self, job_id: str) -> str:
        return self._send("cancel", {"target": job_id})

    def status(self) -> str:
        return self._send("status", {})

    def release(self) -> str:
        return self._send("release", {})

    def _send(self, kind: str, fields: dict, arrays: dict | None = None, blobs: dict | None = None) -> str:
        job = uuid.uuid4().hex
        msg = Message(type=kind, job=job, fields=dict(fields), arrays=dict(arrays or {}), blobs=dict(blobs or {}))
        frames = protocol.encode(msg)
        # Validate what the server will see (the encoded form), with the server's own size limit.
        protocol.validate_request(protocol.decode(frames, self.max_message_bytes))
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            raise ConnectionError(f"the backend at {self.address} is not taking messages") from None
        return job

    # -- events --------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0) -> list[Event]:
        """Events that have arrived, oldest first. Waits up to `timeout` seconds only if none has
        (the default 0 never blocks). Also sends the heartbeat ping when one is due."""
        self._ping_if_due()
        events, self._unread = self._unread, []
        if not events and timeout > 0 and not self._socket.poll(int(timeout * 1000), zmq.POLLIN):
            return events
        while True:
            try:
                frames = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return events
            self._last_seen = time.monotonic()
            try:
                event = protocol.decode(frames, max_message_bytes=2**62)  # the server is trusted on size
            except ProtocolError as err:
                self.bad_events.append(err)
                continue
            if event.type == "pong":
                continue  # heartbeats only refresh `alive`
            if event.is_terminal:
                self._active_jobs.discard(event.job)
            if event.type in ("hello", "status") and event.fields.get("server"):
                self.server_info = event.fields["server"]
                self.max_message_bytes = self.server_info.get("max_message_bytes", self.max_message_bytes)
            events.append(event)

    def _ping_if_due(self) -> None:
        now = time.monotonic()
        if now - self._last_ping < PING_INTERVAL_S:
            return
        self._last_ping = now
        frames = protocol.encode(Message(type="ping", job="ping"))
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # the backend is not there; `alive` already says so

    @property
    def alive(self) -> bool:
        """True when the server sent anything (a heartbeat at least) within the last 2.5 s."""
        self._ping_if_due()
        return self._last_seen is not None and time.monotonic() - self._last_seen < ALIVE_WINDOW_S

    def close(self, cancel_jobs: bool = True) -> None:
        """Close the connection; by default first cancel this client's unfinished jobs, so the
        GPU does not keep working for nobody (waits at most 0.2 s for that to be sent)."""
        if self._socket.closed:
            return
        linger = 0
        if cancel_jobs and self._active_jobs:
            for job in sorted(self._active_jobs):
                try:
                    self.cancel(job)
                    linger = 200
                except (ConnectionError, ProtocolError):
                    break
        self._socket.close(linger=linger)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def run_job(client: Client, task: str, fields: dict, arrays: dict | None = None, blobs: dict | None = None,
            timeout: float = 600.0, on_event=None, alive_window: float = ALIVE_WINDOW_S) -> Event:
    """Submit a task and wait for its terminal event (result, error or cancelled), which it returns.
    `on_event(event)` sees every event of the job. Events of other jobs stay for the next poll().
    On timeout the job is cancelled and TimeoutError is raised."""
    job = client.submit(task, fields, arrays, blobs)
    return wait_for(client, job, timeout, on_event, alive_window)


def wait_for(client: Client, job: str, timeout: float = 600.0, on_event=None,
             alive_window: float = ALIVE_WINDOW_S) -> Event:
    """Block until request `job` gets a terminal or reply event; return that event. Raises
    ConnectionError when a server that has answered this client goes silent for ALIVE_WINDOW_S
    (it answers the pings poll() sends even while a job runs), so a dead one is noticed in
    seconds, not at the timeout."""
    started = time.monotonic()
    deadline = started + timeout
    others: list[Event] = []
    try:
        while True:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                client.cancel(job)
                raise TimeoutError(f"job {job} had no terminal event within {timeout} s")
            # Silence is counted from the wait's start too: a client that heard the server long
            # ago must not give up at once, nor one that never heard it (it may still be starting).
            if client._last_seen is not None and now - max(client._last_seen, started) > alive_window:
                raise ConnectionError(f"the backend at {client.address} stopped answering (nothing for "
                                      f"{alive_window:g} s); is it still running?")
            events = client.poll(timeout=min(left, 0.2))
            for index, event in enumerate(events):
                if event.job != job:
                    others.append(event)
                    continue
                if on_event is not None:
                    on_event(event)
                if event.type not in ("accepted", "progress"):
                    others.extend(events[index + 1:])  # later events stay for the next poll()
                    return event  # a terminal event, or the reply to a control request
    finally:
        client._unread = others + client._unread


def load_public_key(key) -> bytes:
    """A Z85 public key (40 chars, str or bytes) or the path of a key file written by `keygen`."""
    if isinstance(key, (bytes, str)) and len(key) == 40 and not os.path.exists(key):
        return _as_key(key)
    public, _ = load_key_pair(key, need_secret=False)
    return public


def load_key_pair(path, need_secret: bool = True) -> tuple[bytes, bytes | None]:
    """Read a ZeroMQ certificate file (the `.key` or `.key_secret` written by `keygen`)."""
    import zmq.auth  # only needed for remote use

    try:
        public, secret = zmq.auth.load_certificate(os.fspath(path))
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read key file {path}: {err}") from None
    if need_secret and not secret:
        raise ValueError(f"{path} holds no secret key; use the .key_secret file")
    return public, secret


def _as_key(key) -> bytes:
    key = key.encode("ascii") if isinstance(key, str) else bytes(key)
    if len(key) != 40:
        raise ValueError("a CurveZMQ key in Z85 text is 40 characters long")
    return key
