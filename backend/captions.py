"""Captions that do not contradict themselves.

A small model may join clauses it learnt apart into one caption that says both "with X" and
"without X" ("a table without legs and with round legs"). The later clause of such a pair is
dropped; everything else of the model's text is kept as written.
"""

from __future__ import annotations

import re

_PART = re.compile(r"\b(with|without)\s+((?:[\w-]+\s+){0,2}?)([\w-]+?)s?\b(?=\s*(?:$|,|\.|and\b|on\b|with))")


def _claims(clause: str) -> dict[str, bool]:
    """{part word (singular): present?} of the "with ..." / "without ..." phrases of a clause."""
    return {m.group(3).lower(): m.group(1).lower() == "with" for m in _PART.finditer(clause)}


def consistent_caption(text: str) -> str:
    body = text.rstrip()
    end = body[-1] if body and body[-1] in ".!?" else ""
    body = body[: len(body) - len(end)]
    kept, said = [], {}
    for clause in re.split(r"\s+and\s+", body):
        claims = _claims(clause)
        if any(part in said and said[part] != present for part, present in claims.items()):
            continue
        said.update(claims)
        kept.append(clause)
    return " and ".join(kept) + end
