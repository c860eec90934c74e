"""Reading an edit instruction by its words: which part, what change, or which whole-object side.

    words = read_words("make the legs a lot longer")
    words.part, words.change      # "legs", "longer"   (a part edit)
    words.side                    # "taller" ... "thinner" for a whole-object edit, or None
    words.sized                   # the instruction talks about size at all

A small rule-based reader, next to the model's kind question (backend/edit.py): the model knows
six kinds in the wordings it was trained on, the words here know parts and say when an
instruction is about no shape at all ("make it red"), which the model cannot. The amount comes
from backend/amounts.py.

Rules (the first that applies):
- a part word (legs, seat, top, back, arms, shelf) and a change word: a part edit; a part word
  with "add"/"remove" words likewise; an add or remove of anything else is a part the tool
  cannot make ("add a tail");
- else a size word ("taller", "height", "squash" ...): a whole-object proportion edit, its side
  from the words when they say it, else left to the model;
- else nothing this tool does (`sized` False).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from backend.amounts import read_amount

# part -> the words that name it (longest first where one contains another)
PART_WORDS = {
    "back": ("backrest", "back rest", "back-rest", "backboard", "headboard", "backless", "back"),
    "arms": ("armrests", "armrest", "arm rests", "arm rest", "arm-rests", "armless", "arms", "arm"),
    "legs": ("legs", "leg", "feet", "foot", "supports", "posts", "legless"),
    "seat": ("seat", "cushion"),
    "top": ("tabletop", "table top", "table-top", "worktop", "countertop", "top", "surface", "slab", "desk top"),
    "shelf": ("shelves", "shelf", "boards", "board", "tier", "tiers", "level", "levels", "rack"),
}
PARTS = tuple(PART_WORDS)

# change -> the words that ask for it; a part edit's change is one of CHANGES
CHANGE_WORDS = {
    "remove": ("remove", "delete", "take off", "take away", "take out", "get rid of", "without", "lose",
               "strip", "cut off", "detach", "eliminate", "no more", "ditch", "scrap", "rip off", "saw off",
               "no longer have", "leave out", "omit", "chop off", "no", "don t want", "dont want", "do not want",
               "backless", "legless", "armless", "get rid"),
    "add": ("add", "attach", "include", "install", "extra", "another", "one more",
            "insert", "mount", "needs a", "needs an", "needs some", "build", "fit a", "fit an", "fit some",
            "equip", "additional", "second", "new"),
    "longer": ("longer", "taller", "higher", "raise", "raised", "lengthen", "extend", "heighten", "elevate",
               "lift", "stretch", "up", "grow", "bigger", "more height", "tall"),
    "shorter": ("shorter", "lower", "lowered", "shorten", "cut down", "trim", "reduce", "smaller", "down",
                "less tall", "shrink", "stubbier", "stumpier", "short"),
    "thicker": ("thicker", "thicken", "chunkier", "beefier", "fatter", "heavier", "sturdier", "bulkier",
                "more solid", "deeper", "thick", "beef up"),
    "thinner": ("thinner", "thin", "slimmer", "skinnier", "slender", "more slender", "leaner", "finer",
                "less thick", "slim"),
}
CHANGES = tuple(CHANGE_WORDS)

# whole-object sides, by their words; "height"/"width" words with up/down modifiers are below
SIDE_WORDS = {
    "taller": ("taller", "higher", "heighten", "tall", "stretch it up", "stretch upward", "stretch upwards",
               "elongate", "lengthen", "vertically stretch", "stretch vertically", "more height", "loftier",
               "lankier", "raise"),
    "shorter": ("shorter", "lower", "squash", "squish", "flatten", "flatter", "compress", "less tall", "squat",
                "stubbier", "stumpier", "short", "shrink vertically", "less height", "lower profile"),
    "wider": ("wider", "widen", "broader", "broaden", "wide", "fatter", "chunkier", "stretch it sideways",
              "stretch sideways", "more width", "beefier", "stretch it out sideways", "stretch horizontally"),
    "thinner": ("thinner", "narrower", "narrow", "slimmer", "skinnier", "slim", "thin", "slender", "less wide",
                "less width", "squeeze", "leaner"),
}
# the object's depth (front to back): "deeper" and "shallower" are the depth's wider and thinner
_DEPTH = re.compile(r"(?<![a-z])(?:front[\s-]to[\s-]back|back[\s-]to[\s-]front|depth|deep|deeper|shallower|shallow)(?![a-z])")
_FRONT_TO_BACK = re.compile(r"(?<![a-z])(?:from\s+)?(?:front[\s-]to[\s-]back|back[\s-]to[\s-]front)(?![a-z])")
SIDES = tuple(SIDE_WORDS) + ("deeper", "shallower")
# words that say the instruction is about size, but not which way
_SIZE_NOUNS = {"height": ("taller", "shorter"), "tall": ("taller", "shorter"), "width": ("wider", "thinner"),
               "wide": ("wider", "thinner")}
_UP = ("increase", "more", "up", "bump up", "bump", "boost", "raise", "extend", "grow", "add to", "double", "bigger")
_DOWN = ("decrease", "less", "down", "reduce", "cut", "lower", "bring down", "shrink", "halve", "smaller")
_SIZE_HINTS = ("height", "width", "tall", "wide", "size", "proportion", "stretch", "scale", "%", "percent",
               "twice", "half", "times", " m ", "cm", "mm")


@dataclass(frozen=True)
class Words:
    part: str | None = None  # one of PARTS, or None
    change: str | None = None  # one of CHANGES, or None
    side: str | None = None  # a whole-object edit's side (one of SIDES) when the words say it
    sized: bool = False  # the words speak of size at all (a whole-object edit the model may read)
    unknown_thing: str = ""  # "add a tail": the thing asked for that is no part the tool knows

    @property
    def is_part_edit(self) -> bool:
        return self.part is not None and self.change is not None


def _text(instruction: str) -> str:
    text = re.sub(r"[^a-z0-9%.\- ]+", " ", instruction.lower())
    return f" {' '.join(text.split())} "


def _has(text: str, word: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text) is not None


def _first(text: str, table: dict) -> tuple[str | None, int]:
    """The key whose word appears earliest in the text (and where), or (None, -1)."""
    best, where = None, len(text) + 1
    for key, words in table.items():
        for word in words:
            match = re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text)
            if match and match.start() < where:
                best, where = key, match.start()
    return best, (where if best else -1)


# verbs that add or remove only when no size word says otherwise ("drop the seat lower")
_WEAK = {"remove": ("drop", "lose"),
         "add": ("put", "with a", "with an", "with some", "give", "needs", "should have", "want", "wants")}
# a verb and its particle apart: "take the backrest off"
_SPLIT_REMOVE = re.compile(r"(?<![a-z])(?:take|cut|pull|saw|break|rip|chop)\s+(?:\S+\s+){1,3}?(?:off|away|out)(?![a-z])")


def _change_of(text: str) -> str | None:
    """The change a part edit asks for: add/remove verbs first (they decide what happens), then
    the earliest size word, then the weak add/remove verbs."""
    for change in ("remove", "add"):
        if any(_has(text, w) for w in CHANGE_WORDS[change]):
            return change
    if _SPLIT_REMOVE.search(text):
        return "remove"
    sized = {k: v for k, v in CHANGE_WORDS.items() if k not in ("add", "remove")}
    change, _ = _first(text, sized)
    if change is None:  # "half as long", "twice as thick": the amount says which way
        amount = read_amount(text, grows=True)
        if amount.said:
            thick = any(_has(text, w) for w in ("thick", "thickness", "deep"))
            grows = amount.factor is None or amount.factor > 1
            change = ("thicker" if grows else "thinner") if thick else ("longer" if grows else "shorter")
    if change is None:
        change = next((c for c, words in _WEAK.items() if any(_has(text, w) for w in words)), None)
    return change


def read_words(instruction: str) -> Words:
    text = _text(instruction)
    depth = _DEPTH.search(text) is not None
    text = _FRONT_TO_BACK.sub(" depth ", text)  # "front to back" names a side, not the backrest
    part, _ = _first(text, PART_WORDS)
    # "the back of the chair taller": "back" as a place, not the backrest, only with "of"
    if part == "back" and re.search(r"(?<![a-z])back of(?![a-z])", text):
        rest, _ = _first(text.replace("back of", " "), {k: v for k, v in PART_WORDS.items() if k != "back"})
        part = rest
    change = _change_of(text)
    if part is not None:
        return Words(part=part, change=change, sized=True)
    if change in ("add", "remove"):
        thing = re.search(r"(?:add|remove|delete|attach|put|give it|without|get rid of|take off|another|extra)\s+"
                          r"(?:an?\s+|the\s+|some\s+|its\s+)?([a-z]+)", text)
        return Words(change=change, unknown_thing=thing.group(1) if thing else "")
    side, _ = _first(text, SIDE_WORDS)
    if depth:  # the depth's side: deeper or shallower, by the side words or the size ones
        grows = side in ("taller", "wider") or _has(text, "deeper") or (_has(text, "deep") and not _has(text, "less"))
        shrinks = side in ("shorter", "thinner") or _has(text, "shallower") or _has(text, "shallow") \
            or any(_has(text, w) for w in ("compact", "less", "reduce", "decrease"))
        if grows != shrinks:
            return Words(side="deeper" if grows else "shallower", sized=True)
    if side is None:
        for noun, (grow, shrink) in _SIZE_NOUNS.items():
            if _has(text, noun):
                if any(_has(text, w) for w in _DOWN):
                    side = shrink
                elif any(_has(text, w) for w in _UP):
                    side = grow
                break
    sized = side is not None or any(_has(text, h) for h in _SIZE_HINTS)
    return Words(side=side, sized=sized)
