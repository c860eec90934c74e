"""Fixtures shared by test modules."""

import pytest


@pytest.fixture(scope="module")
def embedded_pipe():
    """The committed embedded preset's Pipeline on the CPU, loaded once per module."""
    from backend.pipeline import Pipeline

    pipe = Pipeline("embedded", device="cpu")
    yield pipe
    pipe.release()
