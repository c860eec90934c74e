"""The add-on's record of its jobs: what was asked, how far it got, how it ended. No bpy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

ACTIVE_STATES = ("queued", "running", "cancelling")
TOKENS_TOTAL = 1024  # mesh tokens per shape; the 'tokens' stage counts up to this


@dataclass
class Job:
    key: str                  # the request id the client gave it; events carry it as .job
    task: str                 # text_to_3d, image_to_3d, describe, edit
    label: str                # prompt, instruction or object name: what the artist sees
    options: dict
    place: dict = field(default_factory=dict)   # where and how the result goes into the scene
    state: str = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    submitted: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result_name: str = ""     # the object created (or described) by this job

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    @property
    def fraction(self) -> float:
        """0..1 for the progress bar: the token stage dominates, the others are short."""
        if self.state == "done":
            return 1.0
        order = {"load": 0.0, "encode": 0.05, "tokens": 0.1, "decode": 0.9, "surface": 0.95}
        base = order.get(self.stage, 0.0)
        if self.stage == "tokens" and self.total:
            return base + 0.8 * min(self.done, self.total) / self.total
        return base

    @property
    def progress_text(self) -> str:
        if self.state == "queued":
            return "queued"
        if self.state != "running":
            return self.state
        if self.stage == "tokens":
            return f"tokens {self.done}/{self.total or TOKENS_TOTAL}"
        return self.stage or "running"

    def finish(self, state: str, message: str = "") -> None:
        self.state = state
        self.message = message
        self.finished = time.monotonic()


class JobBook:
    """Jobs by key, oldest first, and the events that move them along."""

    def __init__(self):
        self.jobs: dict[str, Job] = {}

    def add(self, job: Job) -> Job:
        self.jobs[job.key] = job
        return job

    def get(self, key: str) -> Job | None:
        return self.jobs.get(key)

    def active(self) -> list[Job]:
        return [j for j in self.jobs.values() if j.active]

    def apply(self, event) -> Job | None:
        """Update a job from one event. Returns the job when the event ends it."""
        job = self.jobs.get(event.job)
        if job is None or not job.active:
            return None  # a late event of a job we already closed (cancelled, failed)
        kind = event.type
        if kind == "accepted":
            job.state = "running" if job.state == "queued" else job.state
        elif kind == "progress":
            if job.state == "queued":
                job.state = "running"
            job.stage = str(event.fields.get("stage", ""))
            job.done = int(event.fields.get("done", 0))
            job.total = int(event.fields.get("total", 0))
        elif kind == "result":
            job.finish("done")
            return job
        elif kind == "error":
            code = event.fields.get("code", "error")
            job.finish("failed", f"{event.fields.get('message', 'failed')} ({code})")
            return job
        elif kind == "cancelled":
            job.finish("cancelled", "cancelled")
            return job
        return None

    def fail_active(self, message: str) -> list[Job]:
        failed = self.active()
        for job in failed:
            job.finish("failed", message)
        return failed

    def forget_finished(self) -> None:
        self.jobs = {k: j for k, j in self.jobs.items() if j.active}
