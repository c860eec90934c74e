"""Exceptions that cross layer boundaries (their `code` values are the wire's error codes), and
the callbacks by which a running task reports progress and learns it was cancelled."""

from typing import Callable

Progress = Callable[[str, int, int], None]  # progress(stage, done, total)
CancelCheck = Callable[[], bool]  # True once the job is cancelled: the task raises Cancelled


class TaskError(Exception):
    """A task failed for a reason the user can act on; `code` is stable and machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(Exception):
    """The job was cancelled; raised from inside a task when its cancel flag is seen."""
