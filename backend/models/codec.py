"""Mesh token codec: VQVAE codes <-> `<meshK>` text <-> token ids.

A shape is `<mesh-start>` + 1024 x `<meshK>` + `<mesh-end>` (K = codebook index, plain
decimal, no separators). Token ids are always read from the tokenizer, never hard-coded.

Parsing policy (the same for text and for ids; it never raises on model output):
- The FIRST mesh block is read. It starts after the first `<mesh-start>`; when there is no
  `<mesh-start>` but there are `<meshK>` tokens, it starts at the first of them. It ends at the
  next `<mesh-end>` or at the end of the input. Later blocks are ignored.
- Inside the block, anything that is not a valid `<meshK>` (stray text, other tokens, a
  malformed tag such as `<mesh12` or `<mesh99999>`) is skipped and counted in `skipped`.
- Short block (1..1023 codes): padded to 1024 by repeating the last code, as the reference
  does; `padded` says how many were added.
- Long block (> 1024 codes): the first 1024 are kept, the rest dropped (`dropped`); the
  reference crashes here.
- No code at all: `codes` is None. `require_codes()` turns that into a clear TaskError
  (`no_shape`), the only error of this module, raised at the caller's choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from addon.wire.protocol import EDIT_KINDS
from backend.errors import TaskError

NUM_CODES = 1024  # tokens per shape: 16^3 latent cells grouped by 4 along Z
CODEBOOK_SIZE = 8192
MESH_START = "<mesh-start>"
MESH_END = "<mesh-end>"

# One regex pass over text: a block marker or something that looks like a mesh code tag.
_TEXT_TOKENS = re.compile(r"<mesh-start>|<mesh-end>|<mesh(\d+)>|<mesh[^<>]{0,12}>?")


def mesh_token(k: int) -> str:
    return f"<mesh{k}>"


# The edit kind tokens (protocol.EDIT_KINDS): the answer of a model that reads edit kinds to its
# 'edit_kind' prompt (the embedded model's own format; the published model has no such tokens).
def edit_kind_token(kind: str) -> str:
    return f"<edit-{kind}>"


def edit_kind_ids(tokenizer) -> list[int]:
    """Ids of the edit kind tokens in EDIT_KINDS order, [] when the tokenizer lacks any."""
    ids = tokenizer.convert_tokens_to_ids([edit_kind_token(k) for k in EDIT_KINDS])
    return [] if any(i is None or i == tokenizer.unk_token_id for i in ids) else [int(i) for i in ids]


@dataclass
class ParsedMesh:
    """The result of parsing one mesh block; see the module docstring for the policy."""

    codes: np.ndarray | None  # int32 [1024], or None when no code was found
    found: int  # valid codes read in the block (before padding or dropping)
    padded: int = 0
    dropped: int = 0
    skipped: int = 0  # stray or malformed items inside the block
    closed: bool = False  # the block ended with <mesh-end>

    @property
    def exact(self) -> bool:
        """A clean block: exactly 1024 codes, nothing skipped, properly closed."""
        return self.found == NUM_CODES and not self.skipped and self.closed

    def require_codes(self) -> np.ndarray:
        if self.codes is None:
            raise TaskError("no_shape", "the model's answer holds no mesh tokens")
        return self.codes


def _finish(codes: list[int] | np.ndarray, skipped: int, closed: bool) -> ParsedMesh:
    codes = np.asarray(codes, dtype=np.int64)
    found = int(codes.size)
    if found == 0:
        return ParsedMesh(None, 0, skipped=skipped, closed=closed)
    dropped = max(found - NUM_CODES, 0)
    padded = max(NUM_CODES - found, 0)
    codes = codes[:NUM_CODES]
    if padded:
        codes = np.concatenate([codes, np.full(padded, codes[-1], dtype=np.int64)])
    return ParsedMesh(codes.astype(np.int32), found, padded, dropped, skipped, closed)


def _check_codes(codes) -> np.ndarray:
    """Codes to write must be exactly 1024 integers in [0, 8192): a caller bug otherwise."""
    arr = np.asarray(codes)
    if arr.shape != (NUM_CODES,) or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"a shape is {NUM_CODES} integer codes, got {arr.dtype} {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= CODEBOOK_SIZE):
        raise ValueError(f"codes must lie in [0, {CODEBOOK_SIZE}), got [{arr.min()}, {arr.max()}]")
    return arr.astype(np.int64)


def codes_to_text(codes) -> str:
    """`<mesh-start><meshK>...<mesh-end>` for 1024 codes."""
    body = "".join(mesh_token(int(k)) for k in _check_codes(codes))
    return MESH_START + body + MESH_END


def with_mesh_block(template: str, codes) -> str:
    """A user turn holding a mesh block: at the template's `{mesh}`, or (no `{mesh}`) the block,
    a newline, then the template, as in the reference demo for describe."""
    mesh = codes_to_text(codes)
    return template.replace("{mesh}", mesh) if "{mesh}" in template else mesh + "\n" + template


def edit_user_text(template: str, codes, instruction: str) -> str:
    """The edit user turn. The mesh goes in first, so that an instruction holding "{mesh}"
    stays plain text."""
    return with_mesh_block(template, codes).replace("{instruction}", instruction)


def aligned_positions(ids: list[int], answer_start: int, start_id: int) -> list[int]:
    """Text positions of a conversation whose answer (from `answer_start`) is a mesh block and
    whose prompt holds one (edit): sequential, except that the answer restarts at the input
    block's position, so that the answer's k-th code has the input's k-th code's position and
    copying an unchanged code is attention at one fixed relative position. Other
    conversations keep plain sequential positions."""
    positions = list(range(len(ids)))
    if answer_start >= len(ids) or ids[answer_start] != start_id or start_id not in ids[:answer_start]:
        return positions
    first = ids.index(start_id)
    return positions[:answer_start] + list(range(first, first + len(ids) - answer_start))


def parse_text(text: str) -> ParsedMesh:
    """Codes of the first mesh block in decoded text (policy in the module docstring)."""
    codes: list[int] = []
    skipped = 0
    in_block = False
    start = 0
    for match in _TEXT_TOKENS.finditer(text):
        token, number = match.group(0), match.group(1)
        if token == MESH_START:
            if in_block:  # a second start inside a block: treat it as stray
                skipped += 1
                continue
            in_block, start = True, match.end()
            continue
        if token == MESH_END:
            if in_block:
                skipped += _stray_chars(text[start : match.start()])
                return _finish(codes, skipped, closed=True)
            continue  # an end before any block: ignore
        valid = number is not None and int(number) < CODEBOOK_SIZE and str(int(number)) == number
        if valid:
            if not in_block:
                in_block = True  # a block without <mesh-start>: it begins at the first code
            else:
                skipped += _stray_chars(text[start : match.start()])
            codes.append(int(number))
        elif in_block:
            skipped += 1
        start = match.end()
    if in_block:
        skipped += _stray_chars(text[start:])
    return _finish(codes, skipped, closed=False)


def _stray_chars(gap: str) -> int:
    """Counts a non-blank gap between tags as one stray item."""
    return 1 if gap.strip() else 0


class MeshCodec:
    """Codes <-> token ids for one tokenizer; every id is looked up in it."""

    def __init__(self, tokenizer):
        names = [mesh_token(k) for k in range(CODEBOOK_SIZE)] + [MESH_START, MESH_END]
        ids = tokenizer.convert_tokens_to_ids(names)
        unk = getattr(tokenizer, "unk_token_id", None)
        missing = [n for n, i in zip(names, ids) if i is None or (unk is not None and i == unk)]
        if missing:
            raise TaskError(
                "model_error",
                f"the tokenizer lacks {len(missing)} mesh tokens (first: {missing[0]}); "
                "it is not a ShapeLLM-Omni tokenizer",
            )
        self.code_ids = np.asarray(ids[:CODEBOOK_SIZE], dtype=np.int64)  # code K -> token id
        self.start_id = int(ids[CODEBOOK_SIZE])
        self.end_id = int(ids[CODEBOOK_SIZE + 1])
        self.first_code_id = int(self.code_ids[0])
        # The published layout is contiguous, which lets id -> code be a subtraction.
        self.contiguous = bool(np.all(self.code_ids == self.first_code_id + np.arange(CODEBOOK_SIZE)))
        self._id_to_code = {int(i): k for k, i in enumerate(self.code_ids)}

    def codes_to_ids(self, codes, with_markers: bool = True) -> list[int]:
        body = self.code_ids[_check_codes(codes)].tolist()
        return [self.start_id, *body, self.end_id] if with_markers else body

    def code_of(self, token_id: int) -> int | None:
        """The code K of a `<meshK>` id, else None."""
        if self.contiguous:
            k = int(token_id) - self.first_code_id
            return k if 0 <= k < CODEBOOK_SIZE else None
        return self._id_to_code.get(int(token_id))

    def parse_ids(self, ids) -> ParsedMesh:
        """Codes of the first mesh block in a token id sequence (same policy as parse_text)."""
        ids = [int(i) for i in np.asarray(ids).reshape(-1)]
        codes: list[int] = []
        skipped = 0
        in_block = False
        for token_id in ids:
            code = self.code_of(token_id)
            if token_id == self.start_id:
                if in_block:
                    skipped += 1
                in_block = True
            elif token_id == self.end_id:
                if in_block:
                    return _finish(codes, skipped, closed=True)
            elif code is not None:
                in_block = True
                codes.append(code)
            elif in_block:
                skipped += 1
        return _finish(codes, skipped, closed=False)
