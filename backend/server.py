"""The backend service: a ZeroMQ ROUTER in front of a bounded job queue and its model workers.

Threads:
- main thread: owns the ROUTER socket. Decodes and validates every request, answers control
  requests (hello, status, cancel, ping, release bookkeeping) at once, queues tasks, and forwards
  the workers' events to clients. It never runs a model, so it stays responsive during a
  1024-token generation.
- worker threads: the first builds the Pipeline (lazily, so `hello` answers before torch is even
  imported), then asks it how many jobs may run at once (`info()["max_jobs"]`: 1 with our own
  loop, the batch size with a vLLM engine) and starts that many workers in all. Each runs one job
  at a time and sends progress/result/error/cancelled through its own inproc socket.

Every request gets exactly one terminal event: Job.finish() is the single gate for that.
"""

from __future__ import annotations

import collections
import logging
import platform
import signal
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

import backend
from addon.wire import protocol
from addon.wire.protocol import Message, ProtocolError
from backend import auth
from backend.errors import Cancelled, TaskError
from backend.parent_watch import ParentWatch

log = logging.getLogger("backend.server")

DEFAULT_BIND = "tcp://127.0.0.1:5577"
PROGRESS_INTERVAL_S = 0.05  # at most ~20 progress events a second per job, plus every stage change
SILENCE_CHECK_INTERVAL_S = 0.25  # how often the main thread looks for clients gone silent
SLOW_REQUEST_S = 0.1  # a request that holds the main thread longer is logged
SEND_QUEUE_PER_CLIENT = 10_000  # events held for one client that does not read
PARENT_CHECK_INTERVAL_S = 1.0    # how often it asks whether the --parent-pid process still lives


@dataclass
class ServerConfig:
    preset: str = "embedded"
    bind: str = DEFAULT_BIND
    device: str = "auto"
    queue_size: int = 8
    max_message_bytes: int = protocol.DEFAULT_MAX_MESSAGE_BYTES
    curve_secret: str | None = None      # server NAME.key_secret
    allowed_clients: str | None = None   # folder of allowed client NAME.key files
    client_timeout_s: float = protocol.CLIENT_TIMEOUT_S  # cancel the jobs of a client silent this long
    parent_pid: int | None = None        # exit when this process is gone (the Blender that started us)
    dtype: str | None = None             # the LLM's dtype / quantization; None: the preset's
    quantization: str | None = None
    engine: str | None = None            # own | vllm; None: the preset's
    engine_url: str | None = None        # vllm: a running vLLM server; None: start one
    max_jobs: int | None = None          # vllm: jobs at once (the engine's batch); None: the default


@dataclass
class Job:
    owner: tuple          # (curve user id or "", zmq routing id): only the owner may cancel
    identity: bytes       # routing id to send events to
    id: str
    msg: Message
    cancel_event: threading.Event = field(default_factory=threading.Event)
    cancel_reason: str = "client"
    progress: tuple = ("queued", 0, 0)
    _finished: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def task(self) -> str:
        return self.msg.type

    def finish(self) -> bool:
        """True for the one caller allowed to send this job's terminal event."""
        with self._lock:
            if self._finished:
                return False
            self._finished = True
            return True


class JobQueue:
    """Bounded FIFO of waiting jobs in front of `slots` workers; the control path may remove a
    queued job (cancel)."""

    def __init__(self, size: int, slots: int = 1):
        self.size = size
        self.slots = slots  # jobs that may run at once (set once the pipeline says)
        self._jobs: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._running: list[Job] = []

    @property
    def running(self) -> list[Job]:
        """The jobs running now, oldest first (a copy)."""
        with self._cond:
            return list(self._running)

    def put(self, job: Job) -> int:
        """Queue a job; returns how many jobs must end before it starts (0: it starts now)."""
        with self._cond:
            if len(self._jobs) >= self.size:
                raise TaskError("queue_full", f"the queue holds {self.size} jobs already; try again later")
            ahead = max(0, len(self._jobs) + len(self._running) - self.slots + 1)
            self._jobs.append(job)
            self._cond.notify()
            return ahead

    def take(self, timeout: float) -> Job | None:
        """Worker side: the next job (now marked running), or None after `timeout`."""
        with self._cond:
            if not self._jobs:
                self._cond.wait(timeout)
            if not self._jobs:
                return None
            job = self._jobs.popleft()
            self._running.append(job)
            return job

    def done(self, job: Job) -> None:
        with self._cond:
            if job in self._running:
                self._running.remove(job)

    def remove(self, job: Job) -> bool:
        """Remove a job that has not started; False when it is running or gone."""
        with self._cond:
            try:
                self._jobs.remove(job)
                return True
            except ValueError:
                return False

    def queued(self) -> list[Job]:
        with self._cond:
            return list(self._jobs)

    def drain(self) -> list[Job]:
        with self._cond:
            jobs, self._jobs = list(self._jobs), collections.deque()
            return jobs

    def __len__(self) -> int:
        return len(self._jobs)

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


def make_pipeline(preset: str, device: str, dtype: str | None = None, quantization: str | None = None,
                  engine: str | None = None, engine_url: str | None = None, max_jobs: int | None = None):
    """The real model pipeline; imported here so the server starts without torch."""
    from backend.pipeline import Pipeline

    return Pipeline(preset, device=device, dtype=dtype, quantization=quantization, engine=engine,
                    engine_url=engine_url, max_jobs=max_jobs)


class BindError(RuntimeError):
    """The server cannot listen on its address (in use, or not an address); the message says which."""


class Server:
    def __init__(self, config: ServerConfig, pipeline_factory=make_pipeline):
        self.config = config
        self._pipeline_factory = pipeline_factory
        self._curve = None
        if config.curve_secret or config.allowed_clients:
            if not (config.curve_secret and config.allowed_clients):
                raise auth.AuthError("CurveZMQ needs both --curve-secret and --allowed-clients")
            self._curve = auth.load_curve_settings(config.curve_secret, config.allowed_clients)
        auth.check_bind_security(config.bind, self._curve)
        self.queue = JobQueue(config.queue_size)
        self.jobs: dict[tuple, Job] = {}        # (owner, job id) -> active job
        self.endpoint: str | None = None
        self._pipeline = None
        self._pipeline_info: dict | None = None
        self._pipeline_error: str | None = None
        self._pipeline_error_code = "model_error"
        self._release_requests: list[tuple[bytes, str]] = []
        self._release_lock = threading.Lock()
        self._waiting_hello: list[tuple[bytes, str]] = []  # hellos answered before the model was ready
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._last_heard: dict[bytes, float] = {}  # routing id -> when its last message arrived
        self._next_silence_check = 0.0
        self._parent = ParentWatch(config.parent_pid) if config.parent_pid else None
        self._next_parent_check = 0.0
        self._events_address = f"inproc://worker-events-{id(self)}"
        self._workers: list[threading.Thread] = []  # the first builds the pipeline and starts the rest

    # -- lifecycle ------------------------------------------------------------------------------

    def serve(self, ready=None) -> None:
        """Bind, run until stop() or SIGINT/SIGTERM, then shut down cleanly. `ready(endpoint)` is
        called once the socket is bound."""
        context = zmq.Context()
        authenticator = auth.start_authenticator(context, self._curve) if self._curve else None
        router = context.socket(zmq.ROUTER)
        router.linger = 1000
        router.router_mandatory = False  # events for a client that went away are dropped
        # Bounded per client, so one that sends without reading cannot grow our memory without
        # end; far above what a client that reads ever has in flight (progress is ~20 a second).
        router.sndhwm = SEND_QUEUE_PER_CLIENT
        # ZeroMQ drops the connection of a peer that sends a frame over this; below it, we answer
        # "too_large" with an error event (see decode()).
        router.maxmsgsize = 2 * self.config.max_message_bytes
        if self._curve:
            auth.make_curve_server(router, self._curve)
        router.ipv6 = "[" in self.config.bind  # e.g. tcp://[::1]:5577
        try:
            router.bind(self.config.bind)
        except zmq.ZMQError as err:  # most often another backend (or a stopping one) holds the port
            router.close(linger=0)
            if authenticator:
                authenticator.stop()
            context.term()
            raise BindError(f"cannot listen on {self.config.bind}: {err.strerror}") from None
        self.endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        events = context.socket(zmq.PULL)
        events.bind(self._events_address)
        self._router = router
        worker = threading.Thread(target=self._worker, args=(context, True), name="model-worker-0", daemon=True)
        self._workers.append(worker)
        worker.start()
        self._install_signal_handlers()
        log.info("listening on %s (preset %s, queue %d)", self.endpoint, self.config.preset, self.config.queue_size)
        if ready:
            ready(self.endpoint)
        worker_done = False
        try:
            self._loop(router, events)
        finally:
            worker_done = self._shutdown(router, events)
            if worker_done and self._pipeline is not None:
                try:
                    self._pipeline.release()  # stops a vLLM engine this backend started
                except Exception:
                    log.exception("releasing the models at shutdown failed")
            if authenticator:
                authenticator.stop()
            if worker_done:
                context.term()  # would block on the worker's socket otherwise; the process exits anyway

    def stop(self) -> None:
        self._stop.set()
        self.queue.wake()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop())

    def _loop(self, router: zmq.Socket, events: zmq.Socket) -> None:
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(events, zmq.POLLIN)
        while not self._stop.is_set():
            ready = dict(poller.poll(100))
            # Worker events first, so a job's progress is never held behind a flood of requests.
            for _ in range(1000):
                if events not in ready:
                    break
                try:
                    router.send_multipart(events.recv_multipart(flags=zmq.NOBLOCK, copy=False), copy=False)
                except zmq.Again:
                    break
            if router in ready:
                for _ in range(100):
                    try:
                        frames = router.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    started = time.monotonic()
                    self._handle(frames)
                    del frames  # a refused request's buffers go now, not when the next one comes
                    took = time.monotonic() - started
                    if took > SLOW_REQUEST_S:  # pings wait this long: worth a line in the log
                        log.warning("a request held the control path for %.2f s", took)
            now = time.monotonic()
            if now >= self._next_silence_check:
                self._next_silence_check = now + SILENCE_CHECK_INTERVAL_S
                self._cancel_jobs_of_silent_clients(now)
            if self._parent is not None and now >= self._next_parent_check:
                self._next_parent_check = now + PARENT_CHECK_INTERVAL_S
                if not self._parent.alive():
                    log.warning("parent process %d is gone", self._parent.pid)
                    self.stop()

    def _cancel_jobs_of_silent_clients(self, now: float) -> None:
        """A client that crashed sends no cancel: end its jobs once it has been silent (no ping,
        no request) for client_timeout_s, so the model is free for the others."""
        window = self.config.client_timeout_s
        silent = {identity for identity, heard in self._last_heard.items() if now - heard > window}
        if not silent:
            return
        for identity in silent:
            del self._last_heard[identity]  # also forgets idle clients; a new message brings them back
        for job in [job for job in list(self.jobs.values()) if job.identity in silent]:
            log.warning("job %s %s: no message from its client for %g s; cancelling it", job.id, job.task, window)
            if self.queue.remove(job):
                self._finish(job, self._client_timeout_error(job))
            else:
                job.cancel_reason = "client_timeout"
                job.cancel_event.set()

    def _client_timeout_error(self, job: Job) -> Message:
        return protocol.error_event(job.id, "client_timeout", f"no message from this client for "
                                    f"{self.config.client_timeout_s:g} s, so the server cancelled the job")

    def _shutdown(self, router, events) -> bool:
        """Stop taking work, end every job with one terminal event; True once the workers are gone."""
        log.info("shutting down")
        self.stop()
        for job in self.queue.drain():
            self._finish(job, protocol.error_event(job.id, "shutting_down", "the server is shutting down"))
        running = self.queue.running
        for job in running:
            job.cancel_reason = "shutdown"
            job.cancel_event.set()
        # A running job stops within one decoding step; wait for its terminal event. A worker
        # that is only building the pipeline (importing torch) is not worth waiting for.
        deadline = time.monotonic() + (10 if running else 0.5)
        alive = lambda: any(worker.is_alive() for worker in list(self._workers))
        while alive() and time.monotonic() < deadline:
            if events.poll(50):
                router.send_multipart(events.recv_multipart(copy=False), copy=False)
        while events.poll(0):
            router.send_multipart(events.recv_multipart(copy=False), copy=False)
        events.close(linger=0)
        router.close(linger=1000)
        return not alive()

    # -- control path (main thread) ----------------------------------------------------------------

    def _send(self, identity: bytes, msg: Message) -> None:
        self._router.send_multipart([identity] + protocol.encode(msg), copy=False)

    def _finish(self, job: Job, msg: Message) -> None:
        """Send a terminal event from the main thread, if no one has yet."""
        if job.finish():
            self.jobs.pop((job.owner, job.id), None)
            self._send(job.identity, msg)

    def _handle(self, frames: list) -> None:
        identity = frames[0].bytes
        body = frames[1:]
        self._last_heard[identity] = time.monotonic()  # any message, even a bad one, says it lives
        user = ""
        if self._curve and body:
            user = body[0].get("User-Id") or ""
        owner = (user, identity)
        msg = None  # set before the try, so no error path needs locals() (a cycle that kept frames)
        try:
            if not body:
                raise ProtocolError("bad_frames", "empty message: no header frame")
            msg = protocol.decode(body, self.config.max_message_bytes)
            # Before any check of the input: a task this preset cannot run costs nothing.
            self._refuse_unsupported(msg)
            protocol.validate_request(msg)
            if msg.type in protocol.TASKS:
                self._submit(owner, identity, msg)
            else:
                getattr(self, f"_on_{msg.type}")(owner, identity, msg)
        except (ProtocolError, TaskError) as err:
            job = getattr(err, "job", None) or (msg.job if msg is not None else None)
            log.info("rejected request %s: %s %s", job, err.code, _for_log(err.message))
            self._send(identity, protocol.error_event(job, err.code, err.message))
        except Exception as err:  # a bug here must not take the service down
            log.exception("request failed")
            job = msg.job if msg is not None else None
            self._send(identity, protocol.error_event(job, "internal", f"{type(err).__name__}: {err}"))

    def _refuse_unsupported(self, msg: Message) -> None:
        supports = (self._pipeline_info or {}).get("supports") or {}
        if msg.type in protocol.TASKS and supports and not supports.get(msg.type, False):
            raise TaskError("unsupported", f"preset {self._pipeline_info.get('preset')} does not support "
                                           f"{msg.type}; see hello's server.supports")

    def _on_hello(self, owner, identity, msg: Message) -> None:
        if self._pipeline_info is None and self._pipeline_error is None:
            self._waiting_hello.append((identity, msg.job))
        self._send(identity, protocol.event("hello", msg.job, {"server": self.info()}))

    def _on_ping(self, owner, identity, msg: Message) -> None:
        busy = bool(self.queue.running)
        self._send(identity, protocol.event("pong", msg.job, {"busy": busy, "queued": len(self.queue)}))

    def _on_status(self, owner, identity, msg: Message) -> None:
        running_jobs = self.queue.running
        # `running`: your running job if you have one, else the oldest running (or null)
        running = next((job for job in running_jobs if job.owner == owner), running_jobs[0] if running_jobs else None)
        running_info = None
        if running is not None:
            stage, done, total = running.progress
            running_info = {"task": running.task, "stage": stage, "done": done, "total": total,
                            "mine": running.owner == owner, "job": running.id if running.owner == owner else None}
        mine = [job.id for (job_owner, _), job in list(self.jobs.items()) if job_owner == owner]
        self._send(identity, protocol.event("status", msg.job, {
            "server": self.info(), "running": running_info, "running_count": len(running_jobs),
            "queued": len(self.queue), "your_jobs": mine, "uptime_s": round(time.monotonic() - self._started, 1)}))

    def _on_cancel(self, owner, identity, msg: Message) -> None:
        target = msg.fields["target"]
        job = self.jobs.get((owner, target))
        if job is None:
            raise TaskError("unknown_job", f"no job {target!r} of yours is queued or running")
        if self.queue.remove(job):
            self._send(identity, protocol.event("cancel_ack", msg.job, {"target": target, "state": "queued"}))
            self._finish(job, protocol.event("cancelled", target, {"stage": "queued", "done": 0}))
            return
        job.cancel_event.set()
        stage, done, total = job.progress
        self._send(identity, protocol.event("cancel_ack", msg.job, {
            "target": target, "state": "running", "stage": stage, "done": done, "total": total}))

    def _on_release(self, owner, identity, msg: Message) -> None:
        with self._release_lock:
            self._release_requests.append((owner, identity, msg.job))
        self.queue.wake()

    def _submit(self, owner, identity, msg: Message) -> None:
        if (owner, msg.job) in self.jobs:
            raise TaskError("duplicate_job", f"job {msg.job!r} is already queued or running")
        # The image is decoded in the worker (backend.pipeline.decode_image), never here.
        job = Job(owner=owner, identity=identity, id=msg.job, msg=msg)
        self.jobs[(owner, msg.job)] = job  # before put(): the worker may finish it at once
        try:
            ahead = self.queue.put(job)
        except TaskError:
            del self.jobs[(owner, msg.job)]
            raise
        self._send(identity, protocol.event("accepted", msg.job, {"task": msg.type, "position": ahead}))

    def info(self) -> dict:
        pipeline = self._pipeline_info or {}
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "version": backend.__version__,
            "preset": pipeline.get("preset", self.config.preset),
            "device": pipeline.get("device", self.config.device),
            "supports": pipeline.get("supports"),
            "greedy": pipeline.get("greedy"),  # decodes greedily by default: variations need a temperature
            "ready": self._pipeline_info is not None,
            "load_error": self._pipeline_error,
            "model_loaded": self._pipeline is not None and self._pipeline.loaded,  # loads lazily
            "tasks": list(protocol.TASKS),
            "queue_size": self.config.queue_size,
            "engine": pipeline.get("engine", self.config.engine),
            "max_jobs": self.queue.slots,  # jobs that run at once (1 until the pipeline says more)
            "max_message_bytes": self.config.max_message_bytes,
            "max_prompt_chars": protocol.MAX_PROMPT_CHARS,
            "max_image_side": protocol.MAX_IMAGE_SIDE,
            "max_image_pixels": protocol.MAX_IMAGE_PIXELS,
            "authenticated": self._curve is not None,
            "client_timeout_s": self.config.client_timeout_s,
            "versions": {"python": platform.python_version(), "zmq": zmq.zmq_version(),
                         "pyzmq": zmq.pyzmq_version(), "numpy": np.__version__},
        }

    # -- worker thread --------------------------------------------------------------------------

    def _worker(self, context: zmq.Context, first: bool) -> None:
        """The first worker builds the pipeline, starts the others and serves release requests."""
        out = context.socket(zmq.PUSH)  # one per thread: ZeroMQ sockets are not thread-safe
        out.connect(self._events_address)
        send = lambda identity, msg: out.send_multipart([identity] + protocol.encode(msg), copy=False)
        try:
            if first:
                self._load_pipeline(send)
                self._start_more_workers(context)
            while not self._stop.is_set():
                if first:
                    self._serve_release_requests(send)
                job = self.queue.take(timeout=0.2)
                if job is None:
                    continue
                try:
                    terminal = self._run(job, send)
                finally:
                    # Idle again before the client hears the end, so what it asks next sees that.
                    self.queue.done(job)
                    self.jobs.pop((job.owner, job.id), None)
                self._send_terminal(job, terminal, send)
        finally:
            out.close(linger=1000)

    def _start_more_workers(self, context: zmq.Context) -> None:
        """As many workers as the pipeline runs jobs at once (1 for our own loop)."""
        slots = max(1, int((self._pipeline_info or {}).get("max_jobs") or 1))
        self.queue.slots = slots
        for number in range(1, slots):
            worker = threading.Thread(target=self._worker, args=(context, False), name=f"model-worker-{number}",
                                      daemon=True)
            self._workers.append(worker)
            worker.start()
        if slots > 1:
            log.info("%d jobs run at once (engine %s)", slots, self._pipeline_info.get("engine"))

    def _load_pipeline(self, send) -> None:
        try:
            chosen = {k: getattr(self.config, k) for k in ("dtype", "quantization", "engine", "engine_url", "max_jobs")
                      if getattr(self.config, k) is not None}  # only what was asked: factories may not take them
            self._pipeline = self._pipeline_factory(self.config.preset, self.config.device, **chosen)
            self._pipeline_info = dict(self._pipeline.info())
            log.info("pipeline ready: %s", self._pipeline_info)
        except TaskError as err:  # the server keeps answering; every job then reports this error
            log.error("could not create the pipeline: %s: %s", err.code, err.message)
            self._pipeline_error, self._pipeline_error_code = err.message, err.code
        except Exception as err:
            log.exception("could not create the pipeline")
            self._pipeline_error = f"{type(err).__name__}: {err}"
        waiting, self._waiting_hello = self._waiting_hello, []
        for identity, request in waiting:  # a second hello, now with the model's facts
            send(identity, protocol.event("hello", request, {"server": self.info()}))

    def _serve_release_requests(self, send) -> None:
        with self._release_lock:
            requests, self._release_requests = self._release_requests, []
        if not requests:
            return
        # Served between this worker's jobs (the pipeline waits for other workers' jobs to end); a
        # queued or running job of another client would have to load the models again, so one
        # client may not free them under another's feet.
        waiting = {job.owner for job in self.queue.queued() + self.queue.running}
        allowed = [request for request in requests if not waiting - {request[0]}]
        freed = False
        if allowed and self._pipeline is not None:
            try:
                self._pipeline.release()
                freed = True
            except Exception:
                log.exception("release failed")
        for request in requests:
            owner, identity, job = request
            fields = {"freed": freed and request in allowed}
            if request not in allowed:
                fields["reason"] = "another client's job is queued; the models stay loaded for it"
            elif not freed:
                fields["reason"] = ("the model pipeline is not loaded" if self._pipeline is None
                                    else "releasing failed; see the server log")
            send(identity, protocol.event("released", job, fields))

    def _run(self, job: Job, send) -> Message:
        """Run one job; returns its terminal event (result, error or cancelled)."""
        started = time.monotonic()
        last_sent = [0.0, None]

        def progress(stage: str, done: int, total: int) -> None:
            job.progress = (stage, int(done), int(total))
            now = time.monotonic()
            if stage != last_sent[1] or done >= total or now - last_sent[0] >= PROGRESS_INTERVAL_S:
                last_sent[0], last_sent[1] = now, stage
                send(job.identity, protocol.event("progress", job.id, {"stage": stage, "done": int(done), "total": int(total)}))

        def cancelled() -> bool:
            return job.cancel_event.is_set()

        try:
            if self._pipeline is None:
                raise TaskError(self._pipeline_error_code, f"the model preset could not be loaded: {self._pipeline_error}")
            if cancelled():
                raise Cancelled()
            terminal = self._run_task(job, progress, cancelled)
            terminal.fields["seconds"] = round(time.monotonic() - started, 3)
        except Cancelled:
            stage, done, total = job.progress
            if job.cancel_reason == "shutdown":
                terminal = protocol.error_event(job.id, "shutting_down", "the server is shutting down")
            elif job.cancel_reason == "client_timeout":
                terminal = self._client_timeout_error(job)
            else:
                terminal = protocol.event("cancelled", job.id, {"stage": stage, "done": done, "total": total})
        except TaskError as err:
            code = err.code if err.code in protocol.ERROR_CODES else "model_error"
            terminal = protocol.error_event(job.id, code, err.message)
        except ProtocolError as err:
            terminal = protocol.error_event(job.id, err.code, err.message)
        except MemoryError:
            terminal = protocol.error_event(job.id, "model_error", "out of memory while running the model")
        except Exception as err:
            log.exception("job %s failed", job.id)
            code = getattr(err, "code", None)
            code = code if code in protocol.ERROR_CODES else "internal"
            terminal = protocol.error_event(job.id, code, f"{type(err).__name__}: {err}")
        log.info("job %s %s -> %s in %.2fs", job.id, job.task, terminal.type, time.monotonic() - started)
        return terminal

    def _send_terminal(self, job: Job, terminal: Message, send) -> None:
        if job.finish():
            try:
                send(job.identity, terminal)
            except Exception as err:  # e.g. a result the wire cannot carry: still one terminal event
                log.exception("job %s: cannot send its result", job.id)
                send(job.identity, protocol.error_event(job.id, "internal", f"cannot send the result: {err}"))

    def _run_task(self, job: Job, progress, cancelled) -> Message:
        pipe, msg = self._pipeline, job.msg
        options = dict(msg.fields.get("options", {}))
        if msg.type == "describe":
            vertices, faces = np.array(msg.arrays["vertices"]), np.array(msg.arrays["faces"])
            if "question" in msg.fields:
                options["question"] = msg.fields["question"]
            caption = pipe.describe(vertices, faces, options, progress, cancelled)
            return protocol.event("result", job.id, {"task": "describe", "caption": str(caption)})
        source = msg.fields.get("prompt") if msg.type == "text_to_3d" else msg.blobs.get("image")
        if msg.type in protocol.VARIATION_TASKS and "variations" in options:  # all K in one result
            many = pipe.text_to_3d_variations if msg.type == "text_to_3d" else pipe.image_to_3d_variations
            return self._variations_result(job, many(source, options, progress, cancelled))
        if msg.type == "text_to_3d":
            result = pipe.text_to_3d(source, options, progress, cancelled)
        elif msg.type == "image_to_3d":
            result = pipe.image_to_3d(source, options, progress, cancelled)
        else:
            vertices, faces = np.array(msg.arrays["vertices"]), np.array(msg.arrays["faces"])
            result = pipe.edit(vertices, faces, msg.fields["instruction"], options, progress, cancelled)
        arrays = {
            "vertices": _finite_vertices(result.vertices),
            "faces": np.asarray(result.faces, dtype=np.int32),
            "codes": np.asarray(result.codes, dtype=np.int32),
        }
        fields = {"task": msg.type, "vertex_count": len(arrays["vertices"]), "face_count": len(arrays["faces"])}
        if result.read_as:  # how the prompt was read (a preset's lexicon), for the artist
            fields["read_as"] = result.read_as
        if result.edit_kind:  # how the instruction was read (and how sure the model was), for the artist
            fields["edit_kind"] = result.edit_kind
            if result.edit_kind_confidence is not None:
                fields["edit_kind_confidence"] = round(float(result.edit_kind_confidence), 3)
        if result.deform:  # the sender's own mesh moved: a client may move its own copy the same way
            fields["deform"] = [{"axis": m.axis, "source": [float(x) for x in m.source],
                                 "target": [float(x) for x in m.target]} for m in result.deform]
        if result.edit_summary:
            fields["edit_summary"] = result.edit_summary
        if result.kept_mesh:  # vertices: the sender's, in order; faces: the sender's less removed_faces
            fields["kept_mesh"] = True
            if result.removed_faces is not None and len(result.removed_faces):
                arrays["removed_faces"] = np.asarray(result.removed_faces, dtype=np.int32)
            if result.added is not None:  # a new part, for the client to join as a separate part
                arrays["added_vertices"] = np.asarray(result.added[0], dtype=np.float32)
                arrays["added_faces"] = np.asarray(result.added[1], dtype=np.int32)
        return protocol.event("result", job.id, fields, arrays)

    @staticmethod
    def _variations_result(job: Job, results: list) -> Message:
        infos, arrays = protocol.join_variations(
            [({"index": r.index, "seed": r.seed}, _finite_vertices(r.vertices), r.faces, r.codes) for r in results])
        fields = {"task": job.task, "vertex_count": len(arrays["vertices"]), "face_count": len(arrays["faces"]),
                  "variations": infos}
        if results and results[0].read_as:
            fields["read_as"] = results[0].read_as
        return protocol.event("result", job.id, fields, arrays)


def _finite_vertices(vertices) -> np.ndarray:
    """float32 vertices, or no_shape: float32 ends at 3.4e38, and a shape mapped back to a huge
    input's frame may overflow."""
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused just below
        vertices = np.asarray(vertices, dtype=np.float32)
    if not np.isfinite(vertices).all():
        raise TaskError("no_shape", "the shape's coordinates overflow 32-bit floats; "
                                    "scale the object down and try again")
    return vertices


def _for_log(text: str, limit: int = 300) -> str:
    """Client-made text as one bounded log line: a line break in it cannot forge another line."""
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[:limit] + "..."
