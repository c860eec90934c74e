"""The add-on's record of its jobs: what was asked, where its result goes, how far it got, how it
ended. No bpy."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

ACTIVE_STATES = ("queued", "running", "cancelling")
TOKENS_TOTAL = 1024  # mesh tokens per shape; the 'tokens' stage counts up to this
IDENTITY = tuple(tuple(float(i == j) for j in range(4)) for i in range(4))


def _matrix(rows) -> tuple:
    """A 4x4 matrix as a tuple of float rows (numpy arrays, Blender matrices, JSON lists)."""
    matrix = tuple(tuple(float(x) for x in row) for row in rows)
    if len(matrix) != 4 or any(len(row) != 4 for row in matrix):
        raise ValueError(f"not a 4x4 matrix: {rows!r}")
    return matrix


@dataclass(frozen=True)
class Placement:
    """Where a job's result goes in the scene.

    A new shape (no `matrix`) stands on `location`, its largest side `size`; `variation` is
    which shape of its job it is (the others of one job stand beside the first). An edit's
    answer comes back in world space and is put in the frame `matrix` (rows of the world matrix
    of `source`, the object edited), hiding `source` when `hide_source`; with `local` the answer
    is in `source`'s own coordinates (edits send the object's own mesh and frame: the add-on's
    rule since issue 29). Describe only names its `source`.
    """

    location: tuple = (0.0, 0.0, 0.0)
    size: float = 2.0
    variation: int = 0
    source: str = ""
    matrix: tuple | None = None
    hide_source: bool = False
    local: bool = False

    @classmethod
    def at_cursor(cls, location, size: float, variation: int = 0) -> "Placement":
        """Generate (text or image) and re-import of a new shape."""
        return cls(location=tuple(float(x) for x in location), size=float(size), variation=int(variation))

    @classmethod
    def of(cls, source: str) -> "Placement":
        """Describe: the caption goes onto `source`."""
        return cls(source=source)

    @classmethod
    def over(cls, source: str, matrix, hide_source: bool, local: bool = False) -> "Placement":
        """Edit (and re-import of an edit): the answer in `source`'s frame."""
        return cls(source=source, matrix=_matrix(matrix), hide_source=bool(hide_source), local=bool(local))

    def to_dict(self) -> dict:
        """The JSON form kept in the history file."""
        return {"location": list(self.location), "size": self.size, "variation": self.variation,
                "source": self.source, "matrix": None if self.matrix is None else [list(r) for r in self.matrix],
                "hide_source": self.hide_source, "local": self.local}

    @classmethod
    def from_dict(cls, data: dict) -> "Placement":
        """Back from to_dict, or from an older history file's dict that names only some keys."""
        matrix = data.get("matrix")
        return cls(location=tuple(float(x) for x in data.get("location", (0.0, 0.0, 0.0))),
                   size=float(data.get("size", 2.0)), variation=int(data.get("variation", 0)),
                   source=str(data.get("source", "")), matrix=None if matrix is None else _matrix(matrix),
                   hide_source=bool(data.get("hide_source", False)), local=bool(data.get("local", False)))


@dataclass
class Job:
    key: str                  # the request id the client gave it; events carry it as .job
    task: str                 # text_to_3d, image_to_3d, describe, edit
    label: str                # prompt, instruction or object name: what the artist sees
    options: dict
    placement: Placement = field(default_factory=Placement)   # where the result goes in the scene
    state: str = "queued"
    stage: str = ""
    done: int = 0
    total: int = 0
    message: str = ""
    submitted: float = field(default_factory=time.time)
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    result_name: str = ""     # the object created (or described) by this job; the first of several
    result_names: list = field(default_factory=list)   # every object it created (variations)

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
