"""Words for the procedural dataset: prompts, captions, describe answers and edit instructions.

Wording varies by templates x synonyms x attributes. Sentence frames and edit phrasings come in
two disjoint pools, "train" and "held_out": held-out prompts never share a frame with training
ones. Edit phrasings have three more held-out sets, "held_out_2", "held_out_3" and "held_out_4",
each written before any training run that could have been shaped by it, and "independent",
written by someone who saw neither the project nor the other sets. The "wide" pool adds a
grammar of wordings (wide_wording.py) that never draws a held-out phrase. Category nouns are
shared (a model cannot learn a noun it never saw).
"""

from __future__ import annotations

import functools
import re

import numpy as np

from backend.geometry.resize import EDIT_FACTOR, EDIT_FILL  # noqa: F401  (used by the data stages)

from .shape import Shape

NOUNS = {
    "chair": ["chair", "dining chair", "side chair", "desk chair"],
    "table": ["table", "dining table", "kitchen table", "rectangular table"],
    "stool": ["stool", "bar stool", "round stool"],
    "bench": ["bench", "park bench", "long bench"],
    "shelf": ["shelf", "bookshelf", "shelving unit", "bookcase"],
    "bed": ["bed", "double bed", "single bed"],
    "sofa": ["sofa", "couch", "settee"],
    "cabinet": ["cabinet", "cupboard", "storage cabinet"],
    "ladder": ["ladder", "step ladder", "wooden ladder"],
    "lamp": ["lamp", "table lamp", "desk lamp"],
    "mug": ["mug", "coffee mug", "cup"],
    "vase": ["vase", "flower vase", "ceramic vase"],
    "bowl": ["bowl", "salad bowl", "soup bowl"],
    "bottle": ["bottle", "wine bottle", "glass bottle"],
}

FRAMES = {
    "train": ["{d}", "a {d}", "a 3D model of a {d}", "generate a {d}", "make a {d}", "I need a {d}",
              "a simple {d}", "create a {d}", "a {d} for my scene", "build a {d}", "one {d}",
              "a low-poly {d}", "please make a {d}", "a plain {d}", "give me a {d}"],
    "held_out": ["could you model a {d} for me?", "I would like a {d}", "show me a {d}",
                 "something like a {d}", "design a {d} please", "what about a {d}", "an object: {d}",
                 "sculpt a {d}"],
}

DESCRIBE_QUESTIONS = {
    "train": ["Give a quick overview of the object represented by this 3D mesh.",
              "What kind of structure does this 3D object depict?", "What is this object?",
              "Describe this 3D shape briefly.", "Which object does this mesh show?"],
    "held_out": ["Can you tell me what this 3D model is?", "Name the object in this mesh."],
}

ANSWER_FRAMES = ["A {c}{a}.", "This is a {c}{a}.", "It looks like a {c}{a}.", "A 3D model of a {c}{a}."]

EDIT_PHRASES = {
    "taller": {"train": ["make it taller", "increase the height", "make it higher", "stretch it vertically",
                         "raise its height", "taller please"],
               "held_out": ["could you give it more height?", "I want it to be taller", "extend it upward"],
               "held_out_2": ["please make this one taller", "it needs to stand higher", "bump up the height"],
               "held_out_3": ["make the whole thing taller", "more height please", "heighten it"],
               "held_out_4": ["can you make it a little taller?", "add some height to it", "give it a taller build"],
               "independent": ["Can you increase the height a bit?", "stretch this upward",
                               "Please make the whole thing taller.", "needs more height",
                               "raise the overall height by about 20%",
                               "Could you make this one a little taller?", "bump up the height"]},
    "shorter": {"train": ["make it shorter", "reduce the height", "make it lower", "squash it vertically",
                          "lower its height", "shorter please"],
                "held_out": ["could you cut down its height?", "I want it to be shorter", "compress it downward"],
                "held_out_2": ["please make this one shorter", "it needs to sit lower", "bring the height down"],
                "held_out_3": ["make the whole thing shorter", "less height please", "cut its height"],
                "held_out_4": ["can you make it a little shorter?", "take some height off it", "give it a shorter build"],
                "independent": ["too tall, bring it down a bit", "Can you reduce the overall height?",
                                "squash it down vertically", "Please lower the height of the whole object.",
                                "less height please", "could this be a bit shorter?",
                                "cut the height roughly in half"]},
    "wider": {"train": ["make it wider", "increase the width", "stretch it sideways", "broaden it",
                        "make it broader", "wider please"],
              "held_out": ["could you give it more width?", "I want it to be wider", "widen it"],
              "held_out_2": ["please make this one wider", "it needs to be broader", "bump up the width"],
              "held_out_3": ["make the whole thing wider", "more width please", "stretch it out to the sides"],
              "held_out_4": ["can you make it a little wider?", "add some width to it", "give it a wider build"],
              "independent": ["Can you widen this a bit?", "stretch it out sideways", "needs to be broader",
                              "Please increase the width of the whole thing.",
                              "scale it up horizontally, keep the height", "could it be a little wider?",
                              "give it more width"]},
    "thinner": {"train": ["make it thinner", "make it narrower", "reduce the width", "slim it down",
                          "squeeze it sideways", "thinner please"],
                "held_out": ["could you narrow it?", "I want it to be slimmer", "take some width off"],
                "held_out_2": ["please make this one thinner", "it needs to be narrower", "bring the width down"],
                "held_out_3": ["make the whole thing thinner", "less width please", "make it skinnier"],
                "held_out_4": ["can you make it a little thinner?", "make it less wide", "give it a thinner build"],
                "independent": ["Can you narrow this down a bit?", "too wide, slim it down",
                                "squeeze it in from the sides", "Please reduce the overall width.",
                                "make the whole thing narrower", "could it be a bit slimmer?",
                                "less width please"]},
    "add": {"train": ["add {p}", "give it {p}", "put {p} on it", "it needs {p}"],
            "held_out": ["could you attach {p}?", "I want it to have {p}", "include {p} too"],
            "held_out_2": ["please add {p}", "it should come with {p}", "equip it with {p}"],
            "held_out_3": ["can it have {p}?", "attach {p} to it", "add on {p}"],
            "held_out_4": ["i'd like {p} on it", "fit it with {p}", "now add {p}"],
            "independent": ["Can you give it {p}?", "Please attach {p} to this.", "could you add {p} here?",
                            "I'd like {p} on this one.", "include {p} as well"]},
    "remove": {"train": ["remove the {p}", "take off the {p}", "delete the {p}", "drop the {p}",
                         "make it without the {p}"],
               "held_out": ["could you get rid of the {p}?", "I want it without its {p}", "strip away the {p}"],
               "held_out_2": ["please remove the {p}", "the {p} can go", "leave out the {p}"],
               "held_out_3": ["get rid of the {p}", "lose the {p}", "no {p} please"],
               "held_out_4": ["take away the {p}", "i don't want the {p}", "without the {p} please"],
               "independent": ["Can you take off the {p}?", "get rid of its {p}", "delete the {p} please",
                               "Please remove its {p}.", "lose the {p}", "could you strip off the {p}?",
                               "I don't want the {p} anymore"]},
}

# How much an edit stretches the object: EDIT_FACTOR, the runtime's resize factor too.
# The edit frame (an experiment, research/README.md; the recipe's data use fill 1): the source's
# longest side fills 1 / EDIT_FACTOR of the cube (low corner at -0.5), and the edited shape keeps
# the source's scale, so a stretched or grown result still fits and comes back at the original's
# size; about half as many codes change as with the result re-normalised (measured). Not yet
# better in training (docs/embedded-model.md, "Edit"). EDIT_FILL = 1 / EDIT_FACTOR.
ROUND_CATEGORIES = {"stool", "lamp", "mug", "vase", "bowl", "bottle"}


def edit_stretch(category: str, kind: str) -> tuple[float, float, float]:
    f = EDIT_FACTOR if kind in ("taller", "wider") else 1 / EDIT_FACTOR
    if kind in ("taller", "shorter"):
        return (1.0, 1.0, f)
    return (f, f, 1.0) if category in ROUND_CATEGORIES else (f, 1.0, 1.0)


def attributes(shape: Shape) -> list[str]:
    """Phrases true of this shape, from its parameters and stretch."""
    p, c = shape.params, shape.category
    out = []
    sx, _, sz = shape.stretch
    if sz > 1.15:
        out.append("tall")
    elif sz < 0.87:
        out.append("short")
    if sx > 1.15:
        out.append("wide")
    elif sx < 0.87:
        out.append("narrow")
    return out


def part_phrases(shape: Shape) -> list[str]:
    from .categories import CATEGORIES  # local import keeps this module's top light
    p, c = shape.params, shape.category
    out = []
    part = CATEGORIES[c].part
    if part and "part" in p:
        out.append(f"with {with_article(part)}" if p["part"] else f"without {with_article(part)}")
    if c == "chair" and not p.get("back", True):
        out.append("without a back")
    if c == "table" and p.get("round_top"):
        out.append("with a round top")
    if c == "table" and p.get("pedestal"):
        out.append("on a single pedestal")
    elif c in ("chair", "table") and p.get("round_legs"):
        out.append("with round legs")
    if c == "stool":
        out.append("with three legs" if p["legs"] == 3 else "with four legs")
    if c == "shelf":
        out.append(f"with {p['boards']} boards")
    if c == "cabinet":
        out.append("with one door" if p["doors"] == 1 else "with two doors")
    if c == "ladder":
        out.append(f"with {p['rungs']} rungs")
    return out


def _describe_phrase(shape: Shape, noun: str, rng: np.random.Generator, adjective_first: bool = True) -> str:
    adjs = [a for a in attributes(shape) if rng.random() < 0.8]
    parts = [x for x in part_phrases(shape) if rng.random() < 0.5]
    words = " ".join(adjs + [noun])
    if parts:
        words += " " + " and ".join(parts[:2])
    return words


def text_prompt(shape: Shape, rng: np.random.Generator, pool: str = "train", made_up: float = 0.0) -> str:
    """A prompt for the shape; with probability `made_up`, in a made-up frame (made_up_frame)."""
    noun = NOUNS[shape.category][rng.integers(len(NOUNS[shape.category]))]
    if made_up > 0 and rng.random() < made_up:
        frame = made_up_frame(rng)
    else:
        frame = FRAMES[pool][rng.integers(len(FRAMES[pool]))]
    return frame.format(d=_describe_phrase(shape, noun, rng))


def describe_answer(shape: Shape, rng: np.random.Generator) -> str:
    """Names the category with its canonical noun, so "names the right category" is checkable."""
    parts = part_phrases(shape)[: int(rng.integers(0, 3))]
    attr = (" " + " and ".join(parts)) if parts else ""
    frame = ANSWER_FRAMES[rng.integers(len(ANSWER_FRAMES))]
    adjs = attributes(shape)
    c = " ".join(adjs + [shape.category]) if adjs and rng.random() < 0.7 else shape.category
    return frame.format(c=c, a=attr)


def describe_question(rng: np.random.Generator, pool: str = "train") -> str:
    qs = DESCRIBE_QUESTIONS[pool]
    return qs[rng.integers(len(qs))]


def possible_edits(shape: Shape) -> list[str]:
    from .categories import CATEGORIES
    kinds = ["taller", "shorter", "wider", "thinner"]
    if CATEGORIES[shape.category].part:
        kinds.append("remove" if shape.params.get("part") else "add")
    return kinds


def apply_edit(shape: Shape, kind: str) -> Shape:
    if kind in ("add", "remove"):
        return shape.with_params(part=(kind == "add"))
    return shape.with_stretch(edit_stretch(shape.category, kind))


def edited_occupancy(shape: Shape, kind: str, fill: float = 1.0) -> np.ndarray:
    """The edited shape's occupancy, low corner at -0.5. fill 1: normalised on its own (longest
    side 1; the committed weights' data); fill < 1: the edit frame, at the scale that gives the
    source's longest side `fill`."""
    return apply_edit(shape, kind).occupancy(scale_of=shape if fill < 1.0 else None, fill=fill)


def edit_pair_occupancies(shape: Shape, kind: str, fill: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(source, edited) occupancies as the model reads and should answer them (see edited_occupancy)."""
    return shape.occupancy(fill=fill), edited_occupancy(shape, kind, fill)


WIDE_TRAIN_SHARE = 0.3  # the "wide" pool: how often it draws a fixed training wording


def edit_instruction(shape: Shape, kind: str, rng: np.random.Generator, pool: str = "train") -> str:
    """An instruction from a wording pool: "train", a held-out set, or "wide" (the training
    wordings and the grammar of wide_wording.py, never a held-out phrase)."""
    from .categories import CATEGORIES
    from .wide_wording import wide_instruction
    part = CATEGORIES[shape.category].part or ""
    if pool == "wide" and rng.random() >= WIDE_TRAIN_SHARE:
        noun = NOUNS[shape.category][rng.integers(len(NOUNS[shape.category]))]
        return wide_instruction(kind, noun, with_part("{p}", kind, part), rng, held_out_phrases())
    phrases = EDIT_PHRASES[kind]["train" if pool == "wide" else pool]
    return with_part(phrases[rng.integers(len(phrases))], kind, part)


@functools.cache
def held_out_phrases() -> frozenset[str]:
    """Every held-out edit wording with every category's part, lower-cased."""
    from .categories import CATEGORIES
    parts = {c.part or "" for c in CATEGORIES.values()}
    return frozenset(with_part(p, kind, part).lower() for kind, pools in EDIT_PHRASES.items()
                     for name, phrases in pools.items() if name != "train" for p in phrases for part in parts)


def with_part(phrase: str, kind: str, part: str) -> str:
    """An edit wording with its part named: "the legs" to remove, "legs" / "a handle" to add."""
    return phrase.format(p=part if kind == "remove" else with_article(part))


def with_article(part: str) -> str:
    """"armrests" stays plural; "handle" becomes "a handle"."""
    return part if part.endswith("s") else f"a {part}"


_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))
_MARKS = ["", "", "", "?", "!", ":", ","]


def made_up_word(rng: np.random.Generator) -> str:
    """1-7 random letters, sometimes followed by a punctuation mark."""
    return "".join(rng.choice(_LETTERS, int(rng.integers(1, 8)))) + _MARKS[rng.integers(len(_MARKS))]


def with_filler(text: str, rng: np.random.Generator, chance: float) -> str:
    """With probability `chance`, 1-3 made-up words inserted between the words of `text`.

    Our BPE merges only the training wordings, so an unseen word reaches the model as bytes
    and short pieces that training never fed it; made-up words teach it to look past such
    pieces to the words it knows. They are random, so they say nothing of the held-out pool."""
    if chance <= 0 or rng.random() >= chance:
        return text
    words = text.split(" ")
    for _ in range(int(rng.integers(1, 4))):
        words.insert(int(rng.integers(len(words) + 1)), made_up_word(rng))
    return " ".join(words)


def made_up_frame(rng: np.random.Generator) -> str:
    """A sentence frame of made-up words around "{d}": an unseen frame, as held-out prompts
    have, without drawing on the held-out pool."""
    before = [made_up_word(rng) for _ in range(int(rng.integers(0, 4)))]
    after = [made_up_word(rng) for _ in range(int(rng.integers(0, 3)))]
    noun = "a {d}" if rng.random() < 0.7 else "{d}"
    return " ".join(before + [noun] + after)


def category_in_text(text: str) -> str | None:
    """The category a free-text answer names (its canonical noun or a synonym), if exactly one."""
    low = text.lower()
    found = set()
    # longest phrases first, blanked once matched, so "table lamp" is a lamp and not a table
    for phrase, category in sorted(((n, c) for c, ns in NOUNS.items() for n in ns), key=lambda x: -len(x[0])):
        pattern = r"\b" + re.escape(phrase) + r"s?\b"
        if re.search(pattern, low):
            found.add(category)
            low = re.sub(pattern, " ", low)
    return found.pop() if len(found) == 1 else None
