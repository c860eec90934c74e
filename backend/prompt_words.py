"""Reading a text-to-3D prompt by its words, for a small model that knows few of them.

    read = read_prompt("a davenport with no arms, kinda low", lexicon)
    read.category      # "sofa": the object the prompt names or describes (None: cannot tell)
    read.unknown       # "helicopter": a thing the model does not know (then no category)
    read.attributes    # {"arms": False, "height": "low"}
    read.prompt        # "a low sofa without armrests": the wording the model was trained on

The embedded model learnt from nothing but its training prompts, so "davenport" or "something
to keep books on" mean nothing to it. The lexicon (tools/build_lexicon.py, from WordNet) knows
which words name each of its objects, the words their definitions use, and the nouns of other
things. Rules, the first that applies:
- a name of one of the objects (the longest match, the first in the prompt): that object;
- else a noun of another thing at the head of the prompt (before "for", "to", "with" ...):
  unknown, so the caller can say what it can make;
- else the definition words the prompt shares with each object's definitions, weighted by how
  few objects use them ("to sleep on": bed): the best object when it leads clearly;
- else nothing: the prompt goes to the model as it is.
The attributes are read by the rules below (backs, arms, round or square tops, a pedestal, a
count of legs or shelves, tall or low, wide or narrow), and the prompt is rewritten in the
training's own wording, so the model is asked what it can obey.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

# words that carry no meaning for the object (also left out of the lexicon's definitions)
STOP = frozenset("""a an the of for to and or with without in on at by from into onto over under is are be
been being it its this that these those which who whom what where when how some any ones my me i we you your our their his her him them they can could would
should will shall may might must do does did have has had make made making want need like please just
really very kinda sort kind type something thing things stuff usually often typically such as than
then there here other another more most less least much many few not no nor also only same so up down
out off about around used use using having""".split())
# words that name no object of their own: the head of a description ("a piece of furniture for ...")
GENERIC = ("thing", "something", "object", "item", "piece", "model", "mesh", "asset", "prop", "version",
           "design", "sculpture", "render", "shape", "one", "kind", "sort", "type", "furniture", "stuff",
           "3d", "lowpoly", "low poly", "game", "scene")
_CLAUSE = frozenset("for to that which where with so you i we on in at from by into onto like as when "
                    "while because but".split())
_NUMBERS = {"one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
            "eight": 8, "nine": 9, "ten": 10}
_N = r"(\d+|one|two|three|four|five|six|seven|eight|nine|ten|single)"
_SAME = {"people": "person", "persons": "person", "drinking": "drink", "sleeping": "sleep", "sitting": "sit",
         "eating": "eat", "climbing": "climb", "storing": "store", "holding": "hold"}
MIN_SCORE = 1.0  # definition evidence needed to name an object
LEAD = 1.3  # ... and how far ahead of the next object it must be


def stem(word: str) -> str:
    """A crude common stem: plural and verb endings off ("shelves" -> "shelv", "storing" -> "stor")."""
    for suffix in ("ies", "ing", "ves", "es", "ed", "s", "e", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _singulars(word: str) -> list[str]:
    out = [word]
    if word.endswith("ies"):
        out.append(word[:-3] + "y")
    if word.endswith("ves"):
        out += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("es"):
        out.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        out.append(word[:-1])
    return out


@dataclass(frozen=True, eq=False)
class Lexicon:
    names: dict  # name ("rocking chair") -> object
    definitions: dict  # object -> {stem: count}
    generic: frozenset
    things: frozenset
    training: dict  # object -> the names the model was trained on (longest first)
    fronted: frozenset  # things whose length runs front to back (vehicles, animals)
    longest: int = 4  # words in the longest name

    @classmethod
    def load(cls, path: str | Path) -> "Lexicon":
        return _load(str(path))

    def weights(self) -> dict:
        """object -> {stem: weight}: a stem used by fewer objects weighs more."""
        return _weights(self)


@lru_cache(maxsize=4)
def _load(path: str) -> Lexicon:
    raw = Path(path).read_bytes()
    data = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
    names = data["names"]
    training = {c: tuple(sorted(ns, key=len, reverse=True)) for c, ns in data["training"].items()}
    return Lexicon(names, data["definitions"], frozenset(data["generic"]), frozenset(data["things"]), training,
                   frozenset(data["fronted"]), max(len(n.split()) for n in names))


@lru_cache(maxsize=4)
def _weights(lexicon: "Lexicon") -> dict:
    users: dict[str, int] = {}
    for counts in lexicon.definitions.values():
        for s in counts:
            users[s] = users.get(s, 0) + 1
    total = len(lexicon.definitions)
    return {c: {s: math.log(total / users[s]) * min(n, 3) / 3 for s, n in counts.items()}
            for c, counts in lexicon.definitions.items()}


@dataclass(frozen=True)
class PromptRead:
    category: str | None = None
    unknown: str | None = None
    attributes: dict = field(default_factory=dict)
    prompt: str = ""  # the rewritten prompt (the original where no object was found)
    how: str = ""  # "name", "definition" or "" (for the log and the benches)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("-", " "))


def _match(words: list[str], at: int, table, longest: int) -> tuple[str | None, int]:
    """The longest entry of `table` starting at words[at] (singular or plural), and its length."""
    for size in range(min(longest, len(words) - at), 0, -1):
        phrase = words[at: at + size]
        for last in _singulars(phrase[-1]):
            name = " ".join(phrase[:-1] + [last])
            if name in table:
                return name, size
    return None, 0


def find_object(text: str, lexicon: Lexicon) -> tuple[str | None, str | None, str]:
    """(object, unknown thing, how) for a prompt; see the module's rules."""
    words = _words(text)
    head_ends = next((i for i, w in enumerate(words) if w in _CLAUSE and i > 0), len(words))
    head_name, later_name, unknown = None, None, None
    at = 0
    while at < len(words):
        name, size = _match(words, at, lexicon.names, lexicon.longest)
        thing, thing_size = _match(words, at, lexicon.things, lexicon.longest)
        if name is not None and at < head_ends:
            head_name = name  # the last name before the first clause: the head ("a light wooden chair")
        elif name is not None and later_name is None:
            later_name = name
        elif thing is not None and at < head_ends and unknown is None and thing not in lexicon.generic \
                and thing not in _ATTRIBUTE_WORDS:
            unknown = thing
        at += max(size, thing_size, 1)
    if head_name or later_name:
        return lexicon.names[head_name or later_name], None, "name"
    if unknown is not None:
        return None, unknown, ""
    said = {stem(_SAME.get(x, x)) for x in words if x not in STOP}
    scores = {c: sum(w.get(s, 0.0) for s in said)
              for c, w in lexicon.weights().items()}
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    (best, top), (_, second) = ranked[0], ranked[1]
    if top >= MIN_SCORE and top >= LEAD * second:
        return best, None, "definition"
    return None, None, ""


# -- attributes ------------------------------------------------------------------------------
_ATTRIBUTE_WORDS = frozenset("round circular oval square rectangular tall high low short wide broad narrow slim "
                             "thin long small big large tiny huge".split())
_NO_BACK = re.compile(r"\b(?:backless|back less|no back(?:rest)?|without (?:a |any )?back(?:rest)?|open back)\b")
_BACK = re.compile(r"\b(?:with (?:a |an )?(?:tall |high |low )?back(?:rest)?|high backed|high back|backed|"
                   r"has (?:a )?back(?:rest)?|backrest)\b")
_NO_ARMS = re.compile(r"\b(?:armless|arm less|no arm(?:rest)?s?|without (?:any )?arm(?:rest)?s?)\b")
_ARMS = re.compile(r"\b(?:with (?:\w+ )?arm(?:rest)?s?|armrests?|arm rests?|armchair|arm chair|has arms)\b")
_ROUND = re.compile(r"\b(?:round|circular|oval|disc|disk)\b")
_SQUARE = re.compile(r"\b(?:square|rectangular|oblong|rectangle)\b")
_PEDESTAL = re.compile(rf"\b(?:pedestal|tulip|(?:single|one|1) (?:central |center |centre |middle )?(?:leg|column|"
                       rf"post|stem|support|foot)|central (?:leg|column|post|stem)|one legged|single legged)\b")
_LEGS = re.compile(rf"\b{_N} ?(?:legs|legged|leg)\b|\btripod\b")
_SHELVES = re.compile(rf"\b{_N} ?(?:shelves|shelf|shelved|tiers?|tiered|levels?|boards?)\b")
_TALL = re.compile(r"\b(?:tall|taller|high|towering|lanky|lofty|elongated)\b")
_LOW = re.compile(r"\b(?:low|lower|short|squat|stubby|stumpy|low slung)\b")
_WIDE = re.compile(r"\b(?:wide|wider|broad|extra wide|long)\b")
_NARROW = re.compile(r"\b(?:narrow|slim|thin|slender|skinny|compact)\b")


def _count(match: re.Match) -> int:
    if match.group(0) == "tripod":
        return 3
    word = match.group(1)
    return int(word) if word.isdigit() else _NUMBERS[word]


def read_attributes(text: str, category: str) -> dict:
    """The attributes a prompt asks of an object (only those the object has)."""
    t = " ".join(_words(text))
    found = {}
    if category in ("chair", "bench"):
        t_back = re.sub(r"\bhigh back(?:ed)?\b", " with a back ", t)
        if _NO_BACK.search(t_back):
            found["back"] = False
        elif _BACK.search(t_back):
            found["back"] = True
        t = re.sub(r"\bhigh back(?:ed)?\b", " ", t)  # "high-backed" is no height
    if category in ("chair", "sofa"):
        if _NO_ARMS.search(t):
            found["arms"] = False
        elif _ARMS.search(t):
            found["arms"] = True
    if category == "table":
        if _PEDESTAL.search(t):
            found["pedestal"] = True
        elif (legs := _LEGS.search(t)) and _count(legs) >= 3:
            found["pedestal"] = False
        if _ROUND.search(t):
            found["round"] = True
        elif _SQUARE.search(t):
            found["round"] = False
    if category == "stool" and (legs := _LEGS.search(t)) and 3 <= _count(legs) <= 4:
        found["legs"] = _count(legs)
    if category == "shelf" and (shelves := _SHELVES.search(t)) and 2 <= _count(shelves) <= 8:
        found["shelves"] = _count(shelves)
    t = re.sub(r"\b(?:high|low|long|short|wide) (?:back|backrest|arms?|armrests?|legs?)\b", " ", t)  # a part's
    if _TALL.search(t) and not _LOW.search(t):
        found["height"] = "tall"
    elif _LOW.search(t) and not _TALL.search(t):
        found["height"] = "low"
    if _WIDE.search(t) and not _NARROW.search(t):
        found["width"] = "wide"
    elif _NARROW.search(t) and not _WIDE.search(t):
        found["width"] = "narrow"
    return found


# attribute -> value -> the training's wording of it (backend/embedded/artist_wording.py)
BEFORE_NOUN = {"height": {"tall": "tall", "low": "low"}, "width": {"wide": "wide", "narrow": "narrow"},
               "round": {True: "round", False: "square"}}
AFTER_NOUN = {"back": {True: "with a back", False: "without a back"},
              "arms": {True: "with armrests", False: "without armrests"},
              "pedestal": {True: "on a single pedestal", False: "with four legs"}}
COUNTED = {"legs": "with {n} legs", "shelves": "with {n} shelves"}


def training_prompt(category: str, attributes: dict, name: str | None = None) -> str:
    """The prompt in the training's own wording."""
    before = [BEFORE_NOUN[a][attributes[a]] for a in BEFORE_NOUN if a in attributes]
    after = [AFTER_NOUN[a][attributes[a]] for a in AFTER_NOUN if a in attributes]
    after += [COUNTED[a].format(n=_word(attributes[a])) for a in COUNTED if a in attributes]
    phrase = " ".join(before + [name or category] + after)
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _word(n: int) -> str:
    return {v: k for k, v in _NUMBERS.items() if k != "single"}.get(n, str(n))


def names_fronted(name: str, lexicon: Lexicon) -> bool:
    """An object's name ("Truck.001", "SM_HorseBody") says it is a thing whose length runs front
    to back (a vehicle, an animal)."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)  # CamelCase apart
    words = _words(spaced.replace("_", " ").replace(".", " "))
    return any(_match(words, at, lexicon.fronted, lexicon.longest)[0] for at in range(len(words)))


def read_prompt(text: str, lexicon: Lexicon) -> PromptRead:
    """The object, attributes and training-worded prompt of `text` (see the module's rules); a
    name the model was trained on ("bar stool") is kept in the prompt."""
    category, unknown, how = find_object(text, lexicon)
    if category is None:
        return PromptRead(unknown=unknown, prompt=text)
    attributes = read_attributes(text, category)
    words = " ".join(_words(text))
    kept = next((n for n in lexicon.training.get(category, ()) if re.search(rf"\b{re.escape(n)}\b", words)), None)
    return PromptRead(category, None, attributes, training_prompt(category, attributes, kept), how)
