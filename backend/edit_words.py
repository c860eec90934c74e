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
               "backless", "legless", "armless", "get rid", "removing", "removed", "deleting", "deleted",
               "have to go", "has to go", "must go", "got to go", "gotta go", "fewer"),
    "add": ("add", "attach", "include", "install", "extra", "another", "one more",
            "insert", "mount", "needs a", "needs an", "needs some", "build", "fit a", "fit an", "fit some",
            "equip", "additional", "second", "new", "adding", "added", "attaching", "installing",
            "inserting", "mounting"),
    "longer": ("longer", "taller", "higher", "raise", "raised", "lengthen", "extend", "heighten", "elevate",
               "lift", "stretch", "up", "grow", "bigger", "more height", "tall"),
    "shorter": ("shorter", "lower", "lowered", "shorten", "cut down", "trim", "reduce", "smaller", "down",
                "less tall", "shrink", "stubbier", "stumpier", "short"),
    "thicker": ("thicker", "thicken", "chunkier", "beefier", "fatter", "heavier", "sturdier", "bulkier",
                "more solid", "deeper", "thick", "beef up", "fat", "sturdy", "bulk up", "bulk it up", "bulk them up",
                "bulk", "stout", "hefty", "heftier", "robust"),
    "thinner": ("thinner", "thin", "slimmer", "skinnier", "slender", "more slender", "leaner", "finer",
                "less thick", "slim", "thiner", "thinnner", "slimer", "less fat", "less bulky"),
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
SIDES = tuple(SIDE_WORDS) + ("deeper", "shallower")
_DEEPER = ("deeper", "deep")
_SHALLOWER = ("shallower", "shallow")
# a whole-object dimension named by a noun or an adverb, and its (grow, shrink) sides
_AXIS_WORDS = {
    ("taller", "shorter"): ("height", "tall", "vertically", "vertical", "up and down"),
    ("wider", "thinner"): ("width", "wide", "horizontally", "horizontal", "sideways", "side to side",
                           "left to right", "breadth"),
    ("deeper", "shallower"): ("depth", "deep", "front to back", "back to front"),
}
_FRONT_TO_BACK = re.compile(r"(?<![a-z])(?:from\s+)?(?:front[\s-]to[\s-]back|back[\s-]to[\s-]front)(?![a-z])")
# words that say which way a named dimension (or a part's thickness or length) goes
_UP = ("increase", "more", "up", "bump up", "bump", "boost", "raise", "extend", "grow", "add", "double", "bigger",
       "stretch", "expand", "enlarge", "larger", "greater", "lengthen", "pull", "triple", "longer", "taller",
       "wider", "deeper", "higher", "fatter", "broader", "thicker")
_DOWN = ("decrease", "less", "down", "reduce", "cut", "lower", "bring down", "shrink", "halve", "smaller", "compress",
         "squash", "squish", "squeeze", "flatten", "narrow", "trim", "lessen", "half", "shorter", "thinner",
         "shallower", "tighten", "slimmer", "slim", "narrower", "skinnier", "leaner", "thin")
# "too tall": the opposite of what it says is wanted, for a part and for the whole object
_TOO = re.compile(r"(?<![a-z])(?:way\s+|far\s+|a\s+bit\s+|a\s+little\s+|much\s+)?too\s+([a-z]+)")
_TOO_PART = {"longer": ("short", "low", "small", "stubby", "stumpy"),
             "shorter": ("tall", "high", "long", "big"),
             "thicker": ("thin", "skinny", "flimsy", "slim", "spindly", "delicate", "weak", "frail", "narrow"),
             "thinner": ("thick", "chunky", "bulky", "heavy", "fat", "beefy", "wide", "clunky")}
_TOO_SIDE = {"taller": ("short", "low", "squat", "flat"), "shorter": ("tall", "high", "lanky"),
             "wider": ("narrow", "thin", "skinny", "slim"), "thinner": ("wide", "broad", "fat", "chunky", "bulky"),
             "deeper": ("shallow",), "shallower": ("deep",)}
# a part's size named by a noun ("reduce the thickness of the top"): its (grow, shrink) changes
_PART_SIZE_NOUNS = {("thicker", "thinner"): ("thickness", "girth"), ("longer", "shorter"): ("length", "height")}
# names of whole objects that contain a part word ("extend the depth of the shelf unit")
_OBJECT_NAMES = re.compile(r"(?<![a-z])(?:shel(?:f|ving)\s+unit|bookshel(?:f|ves)|book\s+shel(?:f|ves)|bookcase|"
                           r"shelving|whole\s+shelf|entire\s+shelf)(?![a-z])")
# words of a dimension: without one (nor a side word) an amount alone ("duplicate it three times")
# is no size edit, so the model is not asked
_SIZE_HINTS = ("height", "width", "tall", "wide", "size", "proportion", "proportions", "stretch", "scale", "dimension",
               "dimensions", "depth", "length")
# after an add verb, the words up to one of these name the thing added ("add cup holders to the arms")
_ADD_VERB = re.compile(r"(?<![a-z])(?:add(?:ing)?|attach(?:ing)?|install(?:ing)?|insert(?:ing)?|mount(?:ing)?|"
                       r"include|put|fit|equip|build|extra|another|additional|one more|second|new)(?![a-z])")
_ADD_END = re.compile(r"(?<![a-z])(?:to|on|onto|at|under|underneath|below|above|in|into|for|between|beneath|"
                      r"along|across|so|and|please|pls|plz|too|as|with|that|which)(?![a-z])|[.,;:!?]")
_FILLER = {"a", "an", "the", "some", "its", "it", "one", "two", "three", "four", "five", "more", "extra", "another",
           "new", "second", "additional", "little", "small", "big", "large", "short", "long", "tall", "low", "high",
           "thin", "thick", "wide", "narrow", "nice", "simple", "pair", "of", "couple", "few", "set", "proper", "matching",
           "wooden", "solid", "flat", "sturdy", "also", "me", "them"}
_AMOUNT_WORDS = re.compile(r"\d|%|(?<![a-z])(?:cm|mm|m|in|inch|inches|ft|percent|height|length|width|depth|"
                           r"thickness|size|bit|little|lot|touch|tad)(?![a-z])")


@dataclass(frozen=True)
class Words:
    part: str | None = None  # one of PARTS, or None
    change: str | None = None  # one of CHANGES, or None
    side: str | None = None  # a whole-object edit's side (one of SIDES) when the words say it
    sized: bool = False  # the words speak of size at all (a whole-object edit the model may read)
    unknown_thing: str = ""  # "add a tail": the thing asked for that is no part the tool knows
    offers: bool = False  # "give it a tall back": a shape without that part may get one added

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
_MORE_BOARDS = re.compile(r"(?<![a-z])(more|fewer|less)\s+(?:\S+\s+)?(?:shelves|shelf|boards|tiers|levels)(?![a-z])")
# a verb and its particle apart: "take the backrest off" (not "pull it out", which stretches)
_SPLIT_REMOVE = re.compile(r"(?<![a-z])(?:take|cut|pull|saw|break|rip|chop)\s+(?!it\s)(?:\S+\s+){1,3}?(?:off|away|out)"
                           r"(?![a-z])")


def _without_too(text: str, table: dict) -> tuple[str, str | None]:
    """The text without its "too tall" phrases, and the change they imply (the opposite)."""
    implied = None
    for match in _TOO.finditer(text):
        implied = implied or next((k for k, words in table.items() if match.group(1) in words), None)
    return _TOO.sub(" ", text), implied


def _direction(text: str) -> bool | None:
    """True for grow words, False for shrink ones (the earliest wins), None for neither."""
    grow, at = _first(text, {True: _UP, False: _DOWN})
    return grow


def _added(text: str) -> tuple[str, str]:
    """What follows the first add verb, up to a preposition: ("part", ""), ("amount", "") for
    "add 5 cm to the legs", ("thing", "cup holders") for something else, or ("", "")."""
    verb = _ADD_VERB.search(text)
    if verb is None:
        return "", ""
    rest = text[verb.end():]
    end = _ADD_END.search(rest)
    phrase = rest[: end.start()] if end else rest
    if _first(phrase, PART_WORDS)[0] is not None:
        return "part", ""
    if _AMOUNT_WORDS.search(phrase):
        return "amount", ""
    words = [w for w in phrase.split() if w not in _FILLER]
    return ("thing", " ".join(words)) if words else ("", "")


def _change_of(text: str) -> str | None:
    """The change a part edit asks for: add/remove verbs first (they decide what happens), then
    a size noun with its direction ("reduce the thickness"), then the earliest size word, then
    what "too ..." implies, then the weak add/remove verbs."""
    text, implied = _without_too(text, _TOO_PART)
    for change in ("remove", "add"):
        if any(_has(text, w) for w in CHANGE_WORDS[change]):
            if change == "add" and _added(text)[0] == "amount":  # "add 5 cm to the legs": grows
                return "thicker" if any(_has(text, w) for w in ("thick", "thickness", "thicker")) else "longer"
            return change
    if _MORE_BOARDS.search(text):  # "more shelves", "fewer shelves"
        return "remove" if _MORE_BOARDS.search(text).group(1) in ("fewer", "less") else "add"
    if split := _SPLIT_REMOVE.search(text):  # "chop 5 cm off the legs" shortens, "chop the legs off" removes
        return "shorter" if read_amount(split.group(0), grows=False).said or _has(split.group(0), "few") else "remove"
    for (grow, shrink), nouns in _PART_SIZE_NOUNS.items():
        if any(_has(text, n) for n in nouns) and (way := _direction(text)) is not None:
            return grow if way else shrink
    sized = {k: v for k, v in CHANGE_WORDS.items() if k not in ("add", "remove")}
    change, _ = _first(text, sized)
    if change is None:  # "half as long", "twice as thick": the amount says which way
        amount = read_amount(text, grows=True)
        if amount.said:
            thick = any(_has(text, w) for w in ("thick", "thickness", "deep"))
            grows = amount.factor is None or amount.factor > 1
            change = ("thicker" if grows else "thinner") if thick else ("longer" if grows else "shorter")
    if change is None:
        change = implied
    if change is None:
        change = next((c for c, words in _WEAK.items() if any(_has(text, w) for w in words)), None)
    return change


def _side_of(text: str) -> str | None:
    """A whole-object edit's side: a named dimension and its direction ("compress the width",
    "squish it horizontally"), else the earliest side word ("taller", "deeper"), else what
    "too ..." implies."""
    text, implied = _without_too(text, _TOO_SIDE)
    for (grow, shrink), nouns in _AXIS_WORDS.items():
        if any(_has(text, n) for n in nouns):
            way = _direction(text)
            if way is None and read_amount(text, grows=True).target is not None:
                way = True  # "set the height to 1.2 m": the amount decides, either side reads it
            if way is not None:
                return grow if way else shrink
    side, _ = _first(text, {**SIDE_WORDS, "deeper": _DEEPER, "shallower": _SHALLOWER})
    return side or implied


def read_words(instruction: str) -> Words:
    text = _text(instruction)
    text = _FRONT_TO_BACK.sub(" depth ", text)  # "front to back" names a side, not the backrest
    text = _OBJECT_NAMES.sub(" object ", text)  # "the shelf unit" is the whole object
    part, _ = _first(text, PART_WORDS)
    # "the legs at the back of the chair": "back" as a place when another part is named with it
    if part == "back" and re.search(r"(?<![a-z])back of(?![a-z])", text):
        rest, _ = _first(text.replace("back of", " "), {k: v for k, v in PART_WORDS.items() if k != "back"})
        part = rest or part
    change = _change_of(text)
    added, thing = _added(text) if change == "add" else ("", "")
    if added == "thing":  # "add cup holders to the arms": a thing the tool cannot make
        return Words(change="add", unknown_thing=thing)
    if part is not None:
        offers = any(_has(text, w) for w in _WEAK["add"])
        return Words(part=part, change=change, sized=True, offers=offers)
    if change in ("add", "remove"):
        found = re.search(r"(?:add|remove|delete|attach|put|give it|without|get rid of|take off|another|extra)\s+"
                          r"(?:an?\s+|the\s+|some\s+|its\s+)?([a-z]+)", text)
        return Words(change=change, unknown_thing=found.group(1) if found else "")
    side = _side_of(text)
    sized = side is not None or any(_has(text, h) for h in _SIZE_HINTS)
    return Words(side=side, sized=sized)
