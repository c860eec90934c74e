"""A wide pool of edit instructions, drawn from a small grammar instead of a fixed list.

A model trained from nothing reads only the words it was trained on, so the six to eight
training wordings per edit kind leave most of what artists type unknown. This grammar combines
size and part words with sentence frames, degree words and the object's own noun, thousands of
wordings per kind. The words start from the lemmas and "similar to" adjectives of the WordNet
3.0 senses named below (rare or off-sense ones left out), with common words those senses lack
added by hand (chunkier, skinnier, ditch, lose, ...). A drawn wording equal to any held-out
phrase is drawn again, so held-out phrases never appear in training as a whole.
"""

from __future__ import annotations

import numpy as np

# The comparative adjectives, the "less ..." of the opposite's, the verbs and the nouns of
# each proportion edit. WordNet senses: tall.a.01, high.a.02, heighten.v.04, lengthen.v.01,
# elongate.v.01, height.n.01 (taller); short.a.03, low.a.02, shorten.v.03, flatten.v.01,
# compress.v.02, squash.v.01 (shorter); wide.a.01, widen.v.03, broaden.v.01, width.n.01
# (wider); narrow.a.01, thin.a.03, slim.a.01, narrow.v.01, slim.v.01 (thinner).
SIZE_WORDS = {
    "taller": dict(
        adjectives=["taller", "higher", "loftier", "lankier", "more towering", "more elevated"],
        less=["short", "low", "squat", "flat", "stubby"],
        verbs=["heighten {o}", "lengthen {o}", "elongate {o}", "stretch {o} up", "stretch {o} upward",
               "raise {o} up", "extend {o} upward", "extend {o} vertically", "pull {o} up"],
        nouns=["height", "stature", "vertical size"],
        more=True),
    "shorter": dict(
        adjectives=["shorter", "lower", "squatter", "stubbier", "stumpier", "flatter", "less lofty"],
        less=["tall", "high", "lofty", "towering"],
        verbs=["shorten {o}", "flatten {o}", "compress {o}", "squash {o}", "squash {o} down", "press {o} down",
               "push {o} down", "compress {o} vertically", "lower {o}"],
        nouns=["height", "stature", "vertical size"],
        more=False),
    "wider": dict(
        adjectives=["wider", "broader", "fatter", "chunkier", "bulkier", "more spread out"],
        less=["narrow", "thin", "slim", "slender", "skinny"],
        verbs=["widen {o}", "broaden {o}", "stretch {o} out", "stretch {o} horizontally", "spread {o} out",
               "expand {o} sideways", "extend {o} sideways", "fatten {o}"],
        nouns=["width", "breadth", "girth"],
        more=True),
    "thinner": dict(
        adjectives=["thinner", "narrower", "slimmer", "skinnier", "leaner", "more slender", "sleeker"],
        less=["wide", "broad", "fat", "chunky", "bulky"],
        verbs=["narrow {o}", "slim {o}", "thin {o} out", "thin {o} down", "squeeze {o}", "squeeze {o} in",
               "compress {o} sideways", "pinch {o} in", "taper {o}"],
        nouns=["width", "breadth", "girth"],
        more=False),
}

# Part edits: (frame, is it an order). WordNet senses: add.v.01, attach.v.01, equip.v.01,
# fit.v.04, include.v.01 (add); remove.v.01, detach.v.01, delete.v.01, get_rid_of.v.01,
# eliminate.v.01 (remove).
PART_FRAMES = {
    "add": [("add {p}", 1), ("add {p} to {o}", 1), ("attach {p}", 1), ("attach {p} to {o}", 1),
            ("fit {o} with {p}", 1), ("equip {o} with {p}", 1), ("give {o} {p}", 1), ("put {p} on {o}", 1),
            ("include {p}", 1), ("mount {p} on {o}", 1), ("install {p}", 1), ("stick {p} on {o}", 1),
            ("outfit {o} with {p}", 1), ("fix {p} to {o}", 1), ("build {p} onto {o}", 1),
            ("{o} needs {p}", 0), ("{o} should have {p}", 0), ("{o} with {p}", 0), ("I want {p} on {o}", 0),
            ("{o} is missing {p}", 0), ("with {p}", 0)],
    "remove": [("remove the {p}", 1), ("remove its {p}", 1), ("take off the {p}", 1), ("take the {p} off", 1),
               ("take away the {p}", 1), ("detach the {p}", 1), ("delete the {p}", 1), ("get rid of the {p}", 1),
               ("eliminate the {p}", 1), ("strip the {p}", 1), ("strip off the {p}", 1), ("drop the {p}", 1),
               ("cut off the {p}", 1), ("do away with the {p}", 1), ("lose the {p}", 1), ("ditch the {p}", 1),
               ("leave off the {p}", 1), ("{o} without the {p}", 0), ("{o} without {p}", 0), ("no {p}", 0),
               ("no more {p}", 0), ("{o} doesn't need the {p}", 0), ("the {p} should go", 0)],
}

DEGREES = ["", "", "", "a bit ", "a little ", "slightly ", "much ", "a lot ", "somewhat ", "way ", "even ",
           "a little bit ", "noticeably "]
AFTER_VERB = ["", "", "", " a bit", " a little", " slightly", " a lot", " more", " some"]
MORE_VERBS = ["increase", "raise", "boost", "add to", "extend", "grow", "expand"]
LESS_VERBS = ["reduce", "decrease", "lower", "cut", "trim", "shrink", "cut down"]
# Before an order ("could you heighten it") or before any wording ("ok, more height").
ORDER_PREFIXES = ["can you ", "could you ", "I want you to ", "try to ", "let's ", "go ahead and ",
                  "i'd like you to ", "would you "]
PREFIXES = ["", "", "", "", "", "", "please ", "now ", "ok, ", "next, ", "hmm, ", "and "]
SUFFIXES = ["", "", "", "", " please", ", please", " thanks", "!", ".", " for me"]


def _objects(noun: str) -> list[str]:
    return ["it", "it", "this", "the object", "the model", "the shape", "the mesh", f"the {noun}", f"this {noun}"]


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _proportion(kind: str, noun: str, obj: str, rng: np.random.Generator) -> tuple[str, bool]:
    """A proportion wording and whether it is an order (so "could you" may go before it)."""
    words = SIZE_WORDS[kind]
    form = int(rng.integers(4))
    if form == 0:  # an adjective: "make the chair a bit taller"
        adjective = _pick(rng, words["adjectives"]) if rng.random() < 0.8 else "less " + _pick(rng, words["less"])
        degree = _pick(rng, DEGREES)
        return _pick(rng, [(f"make {obj} {degree}{adjective}", True), (f"{degree}{adjective}", False),
                           (f"{obj} should be {degree}{adjective}", False), (f"I want {obj} {degree}{adjective}", False),
                           (f"{obj} needs to be {degree}{adjective}", False), (f"a {degree}{adjective} version", False),
                           (f"turn {obj} into a {adjective} one", True), (f"it could be {degree}{adjective}", False),
                           (f"{degree}{adjective} {noun}", False)])
    if form == 1:  # a verb: "heighten the chair a bit"
        return _pick(rng, words["verbs"]).format(o=obj) + _pick(rng, AFTER_VERB), True
    size = _pick(rng, words["nouns"])
    if form == 2:  # a verb on the size: "increase the height"
        verb = _pick(rng, MORE_VERBS if words["more"] else LESS_VERBS)
        whose = _pick(rng, ["the", "its", f"the {noun}'s"])
        return f"{verb} {whose} {size}{_pick(rng, AFTER_VERB)}", True
    amount = "more" if words["more"] else "less"  # "more height", "give it less width"
    return _pick(rng, [(f"{amount} {size}", False), (f"give {obj} {amount} {size}", True),
                       (f"{obj} needs {amount} {size}", False), (f"with {amount} {size}", False),
                       (f"{amount} {size} for {obj}", False)])


def wide_instruction(kind: str, noun: str, part_phrase: str, rng: np.random.Generator,
                     held_out: frozenset[str] = frozenset()) -> str:
    """One instruction of `kind` for an object called `noun`; `part_phrase` fills "{p}" (the
    part as with_part words it for this kind). Never one of `held_out` (compared lower-cased)."""
    for _ in range(100):
        obj = _pick(rng, _objects(noun))
        if kind in PART_FRAMES:
            frame, order = _pick(rng, PART_FRAMES[kind])
            core = frame.format(p=part_phrase, o=obj)
        else:
            core, order = _proportion(kind, noun, obj, rng)
        asked = order and rng.random() < 0.3
        text = (_pick(rng, ORDER_PREFIXES) if asked else _pick(rng, PREFIXES)) + core + _pick(rng, SUFFIXES)
        if asked and text[-1] not in "?!." and rng.random() < 0.7:
            text += "?"
        if text.lower() not in held_out:
            return text
    raise RuntimeError(f"no {kind} wording outside the held-out phrases in 100 draws")
