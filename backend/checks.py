"""Checks on user text shared by the pipeline and the LLM runtime; the limit is the wire's own."""

from addon.wire.protocol import MAX_PROMPT_CHARS
from backend.errors import TaskError


def checked_text(text, what: str) -> str:
    """The text stripped, or TaskError("bad_prompt") when it is empty or over the limit."""
    if not isinstance(text, str) or not text.strip():
        raise TaskError("bad_prompt", f"the {what} is empty")
    if len(text) > MAX_PROMPT_CHARS:
        raise TaskError("bad_prompt", f"the {what} has {len(text)} characters; the limit is {MAX_PROMPT_CHARS}")
    return text.strip()
