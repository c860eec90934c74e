"""Checks on user text shared by the pipeline and the LLM runtime; the rules are the wire's own."""

from addon.wire.protocol import prompt_problem
from backend.errors import TaskError


def checked_text(text, what: str) -> str:
    """The text stripped, or TaskError("bad_prompt") when a model cannot read it (empty, only
    invisible characters, a broken character, over the limit)."""
    if not isinstance(text, str):
        raise TaskError("bad_prompt", f"the {what} is empty")
    problem = prompt_problem(text, what)
    if problem:
        raise TaskError("bad_prompt", problem)
    return text.strip()
