"""Exceptions that cross layer boundaries. Their `code` values are the wire's error codes."""


class TaskError(Exception):
    """A task failed for a reason the user can act on; `code` is stable and machine-readable."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class Cancelled(Exception):
    """The job was cancelled; raised from inside a task when its cancel flag is seen."""
