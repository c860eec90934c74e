"""Prompts in artists' own words: a grammar for the artist stage's text-to-3D examples.

A model trained from nothing knows only the words its data used. The recipe's prompts name
each category with three or four nouns, so a prompt that describes an object ("somewhere to
sleep") or names it another way ("a loveseat") reached the model as words it never saw. This
grammar draws a category's many names, definitions and uses, the asked attributes in several
wordings (before or after the noun), and the noise artists add (materials, styles, scene
words, "3D model of"), in many sentence frames. It also draws requests for objects that are
none of the categories, answered with UNKNOWN_ANSWER.

The sentences of bench/blind/ were written by someone who saw none of this and are never read
here; the recipe's held-out frames (language.FRAMES["held_out"]) are never drawn.
"""

from __future__ import annotations

import numpy as np

from .shape import Shape

# What the model answers for an object it cannot make; the runtime turns it into a message.
UNKNOWN_ANSWER = "I cannot make that: it is none of the objects I know."
# What describe answers for a shape that is none of the categories.
UNFAMILIAR_ANSWER = "An unfamiliar shape: none of the objects I know."

# Names: the noun alone fits "a {name}". Uses and definitions: whole noun phrases.
NAMES = {
    "chair": ["chair", "dining chair", "side chair", "desk chair", "kitchen chair", "cafe chair",
              "wooden chair", "accent chair", "classroom chair", "seat", "chair seat", "folding chair"],
    "table": ["table", "dining table", "kitchen table", "desk", "writing desk", "coffee table", "side table",
              "end table", "work table", "dinner table", "console table", "bistro table", "workbench top"],
    "stool": ["stool", "bar stool", "round stool", "counter stool", "kitchen stool", "footstool", "milking stool",
              "perch", "backless seat", "tabouret", "pub stool", "drafting stool"],
    "bench": ["bench", "park bench", "long bench", "garden bench", "pew", "church pew", "picnic bench",
              "waiting room bench", "settle", "banquette", "gym bench", "hall bench"],
    "shelf": ["shelf", "bookshelf", "shelving unit", "bookcase", "book rack", "etagere", "display shelf",
              "storage rack", "shelves", "wall unit", "open shelving", "library shelf"],
    "bed": ["bed", "double bed", "single bed", "queen bed", "king size bed", "twin bed", "bedstead", "cot",
            "daybed", "bed frame", "guest bed", "platform bed"],
    "sofa": ["sofa", "couch", "settee", "loveseat", "chesterfield", "divan", "lounge", "sectional",
             "three-seater", "two-seater", "davenport", "futon"],
    "cabinet": ["cabinet", "cupboard", "storage cabinet", "wardrobe", "closet", "armoire", "sideboard", "locker",
                "kitchen cabinet", "filing cabinet", "pantry", "credenza", "hutch"],
    "ladder": ["ladder", "step ladder", "wooden ladder", "rung ladder", "extension ladder", "rope-free ladder",
               "loft ladder", "library ladder", "straight ladder", "stepladder"],
    "lamp": ["lamp", "table lamp", "desk lamp", "floor lamp", "bedside lamp", "reading lamp", "lampshade",
             "standard lamp", "night light", "light", "light fixture", "accent lamp"],
    "mug": ["mug", "coffee mug", "cup", "tea cup", "teacup", "beer mug", "stein", "espresso cup", "travel mug",
            "cocoa mug", "cup with a handle", "latte mug"],
    "vase": ["vase", "flower vase", "ceramic vase", "urn", "amphora", "bud vase", "flower pot", "jug vase",
             "pottery vase", "porcelain vase", "floor vase", "ornamental jar"],
    "bowl": ["bowl", "salad bowl", "soup bowl", "cereal bowl", "rice bowl", "fruit bowl", "mixing bowl", "dish",
             "basin", "serving bowl", "noodle bowl", "porridge bowl"],
    "bottle": ["bottle", "wine bottle", "glass bottle", "water bottle", "beer bottle", "flask", "soda bottle",
               "milk bottle", "olive oil bottle", "potion bottle", "carafe", "sauce bottle"],
}

USES = {
    "chair": ["something to sit on", "a seat for one person",
              "a piece of furniture for one person to sit on", "something to sit on at the dinner table",
              "a seat you pull up to a desk", "a place for one person to sit while eating",
              "the seat that goes around a dining table"],
    "table": ["something to eat at", "a flat surface on legs", "a piece of furniture with a flat top",
              "a surface to put things on", "somewhere to eat dinner", "a top to work at",
              "the piece of furniture the family eats at", "a raised flat surface for plates and books"],
    "stool": ["a seat without a back", "a small seat with no back", "something to perch on at a bar",
              "a seat for the kitchen counter", "a little seat on legs", "a backless seat for one person",
              "a high seat for a counter", "a small round seat to sit on"],
    "bench": ["a long seat for several people", "a seat for a few people in a park", "somewhere for three people to sit outside", "a long wooden seat", "a plank seat on legs",
              "a seat in a church or a garden", "a bench-like seat for a row of people"],
    "shelf": ["something to keep books on", "a stand for storing books", "boards to display things on",
              "furniture for storing books", "a frame with levels to put things on", "a place to store books",
              "an open unit for storage", "a stack of boards for displaying objects"],
    "bed": ["something to sleep on", "a place to sleep", "furniture for sleeping", "where you sleep at night",
            "a frame with a mattress", "a piece of furniture to lie down and sleep on",
            "somewhere to rest at night", "a mattress on a frame with a headboard"],
    "sofa": ["a padded seat for several people", "a seat for two or three people", "something to lounge on",
             "a soft seat for the living room", "a long upholstered seat with a back",
             "somewhere to relax in front of the tv", "a cushioned seat for the lounge",
             "the big seat in a living room"],
    "cabinet": ["a box with doors to store things", "storage with doors", "somewhere to keep dishes",
                "a tall box for clothes", "furniture to hide things in", "a closed unit for storage",
                "a cupboard-like box with a door", "somewhere to put clothes away"],
    "ladder": ["something to climb", "something to reach high places", "two rails with rungs",
               "a tool for climbing up", "steps to climb to a loft", "a frame with rungs to climb",
               "something to get onto a roof", "a climbing frame of rails and steps"],
    "lamp": ["something to light a room", "a light for reading", "a light with a shade",
             "something that gives light on a desk", "a source of light for the bedside",
             "a light on a stand", "a shade on a pole", "something to see by at night"],
    "mug": ["something to drink coffee from", "a cup with a handle", "something to drink tea from",
            "a cup for hot drinks", "a vessel to drink from with a handle", "a container for hot chocolate",
            "what you drink your morning coffee from", "a drinking cup"],
    "vase": ["something to put flowers in", "a container for flowers", "a decorative container for a bouquet",
             "a tall vessel for flowers", "a pot for cut flowers", "a jar for a bunch of flowers",
             "a decorative vessel with a narrow neck", "something to hold a bouquet"],
    "bowl": ["something to eat soup from", "a round dish for salad", "a deep dish", "something to eat cereal from",
             "a round container for fruit", "a dish for noodles", "a hollow dish to eat from",
             "a round open container for food"],
    "bottle": ["something to hold wine", "a container for water with a narrow neck", "a vessel for liquid",
               "something to pour drinks from", "a container for soda", "a narrow necked container",
               "something to keep oil in", "a glass container for drinks"],
}

MATERIALS = ["wooden", "wood", "oak", "walnut", "pine", "metal", "steel", "iron", "glass", "ceramic", "plastic",
             "marble", "leather", "velvet", "rattan", "bamboo", "concrete", "brass", "chrome", "porcelain",
             "clay", "stone", "fabric", "painted", "white", "black", "red", "blue", "green", "grey"]
STYLES = ["modern", "rustic", "vintage", "mid-century", "scandinavian", "industrial", "minimalist", "antique",
          "victorian", "art deco", "cozy", "elegant", "simple", "cartoon", "stylized", "realistic", "low poly",
          "game-ready", "sleek", "classic", "retro", "futuristic", "nordic", "farmhouse", "cute", "chunky",
          "old", "new", "fancy", "basic"]
OPENERS = ["a nice", "a cool", "a beautiful", "a good", "one", "a", "some kind of", "a sort of", "a little",
           "a big", "a small", "a typical", "a standard", "a really nice", "a proper"]
AFTER = ["for my game", "for my scene", "for a kitchen scene", "for the living room", "for a bedroom",
         "for an interior render", "for a cafe", "for a garden", "in the corner", "for a diorama",
         "for a game level", "for archviz", "please", "thanks", "asap", "for a short film", "for vr",
         "for a cozy room", "for an office", "for a dungeon"]
# Frames around a noun phrase {n} (article included). None equals a held-out frame of
# language.FRAMES; a check in tests keeps it so.
FRAMES = ["{n}", "{n}", "{n}", "make {n}", "make me {n}", "i want {n}", "i need {n}", "can you make {n}",
          "generate {n}", "create {n}", "model {n}", "build {n}", "give me {n}", "please make {n}",
          "3d model of {n}", "a 3d model of {n}", "mesh of {n}", "{n}, please", "how about {n}",
          "i'm looking for {n}", "let's get {n}", "could i get {n}", "i'd love {n}", "quick {n}",
          "need {n} asap", "can i have {n}", "put {n} in the scene", "add {n} to the scene", "we need {n}",
          "make one: {n}", "object: {n}", "asset: {n}", "prop: {n}", "low poly {n}", "i'm after {n}",
          "would you make {n}", "generate me {n}", "a model of {n}", "create me {n}", "{n} model",
          "hey, {n}", "just {n}", "make {n} for me", "can you generate {n}?", "is it possible to get {n}?"]


def _pick(rng: np.random.Generator, items: list):
    return items[int(rng.integers(len(items)))]


def _number(n: int, rng: np.random.Generator) -> str:
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    return str(n) if rng.random() < 0.35 else words[n]


# What each attribute is called: (words before the noun, phrases after it); {n} is a count.
WORDINGS = {
    "back": (["high-backed", "backed"], ["with a back", "with a backrest", "with a back rest", "that has a back"]),
    "no back": (["backless", "back-less"],
                ["without a back", "with no back", "with no backrest", "without a backrest", "that has no back"]),
    "arms": (["armed"], ["with armrests", "with arms", "with arm rests", "that has armrests"]),
    "no arms": (["armless"], ["without armrests", "with no arms", "without arms", "with no armrests"]),
    "round top": (["round", "circular"], ["with a round top", "with a circular top", "that is round"]),
    "square top": (["square", "rectangular"], ["with a square top", "with a rectangular top"]),
    "pedestal": (["pedestal", "single-leg", "one-legged"], ["on a single pedestal", "on a pedestal",
                 "with one central leg", "with a single central column", "on one leg"]),
    "four legs": (["four-legged", "four legged"], ["with four legs", "on four legs", "with 4 legs"]),
    "legs": (["{n}-legged", "{n} legged"], ["with {n} legs", "on {n} legs", "that has {n} legs"]),
    "boards": (["{n}-shelf", "{n}-tier", "{n} tier"],
               ["with {n} shelves", "with {n} levels", "with {n} boards", "that has {n} shelves", "with {n} tiers"]),
    "tall": (["tall", "high", "towering", "lanky", "very tall", "elongated", "lofty"], ["that is tall", "that stands tall"]),
    "low": (["low", "short", "squat", "stubby", "low-slung", "flat", "stumpy"], ["that is low", "that sits low"]),
    "wide": (["wide", "broad", "extra wide", "long", "wide and long"], ["that is wide", "that is extra wide"]),
    "narrow": (["narrow", "slim", "thin", "slender", "skinny", "compact"], ["that is narrow", "that is slim"]),
}
WORDINGS["tripod"] = (WORDINGS["legs"][0] + ["tripod"], WORDINGS["legs"][1])  # a three-legged stool


def _attributes(shape: Shape) -> list[tuple[str, int | None]]:
    """The shape's attributes in the order they are said: (WORDINGS key, count or None)."""
    p, c = shape.params, shape.category
    said = []
    if c in ("chair", "bench"):
        said.append(("back" if (p.get("back", True) if c == "chair" else p["part"]) else "no back", None))
    if c in ("chair", "sofa"):
        said.append(("arms" if p["part"] else "no arms", None))
    if c == "table":
        said += [("round top" if p.get("round_top") else "square top", None),
                 ("pedestal" if p.get("pedestal") else "four legs", None)]
    if c == "stool":
        said.append(("tripod" if p["legs"] == 3 else "legs", p["legs"]))
    if c == "shelf":
        said.append(("boards", p["boards"]))
    sx, _, sz = shape.stretch
    said += [(word, None) for word, on in (("tall", sz > 1.15), ("low", sz < 0.87), ("wide", sx > 1.15),
                                           ("narrow", sx < 0.87)) if on]
    return said


def attribute_phrases(shape: Shape, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(words before the noun, phrases after it) stating the shape's attributes, each in one
    of several wordings: the attributes the artist stage teaches the model to obey."""
    before, after = [], []
    for attribute, count in _attributes(shape):
        adjectives, phrases = WORDINGS[attribute]
        if count is not None:
            word = _number(count, rng)
            adjectives, phrases = [a.format(n=word) for a in adjectives], [f.format(n=word) for f in phrases]
        if rng.random() < 0.5:
            before.append(_pick(rng, adjectives))
        else:
            after.append(_pick(rng, phrases))
    return before, after


def _article(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def artist_prompt(shape: Shape, rng: np.random.Generator) -> str:
    """A prompt for the shape as an artist might type it (lower case, as the preset reads text)."""
    before, after = attribute_phrases(shape, rng)
    noise = []
    if rng.random() < 0.45:
        noise.append(_pick(rng, STYLES))
    if rng.random() < 0.45:
        noise.append(_pick(rng, MATERIALS))
    if rng.random() < 0.3:  # described by its use: attributes follow as phrases, noise after
        stated = [b if b.startswith(("with", "on", "that")) else f"that is {b}" for b in before] + after
        noun_phrase = " and ".join([_pick(rng, USES[shape.category])] + stated)
        if noise:
            noun_phrase += f", {' '.join(noise)}"
    else:
        words = noise + before
        rng.shuffle(words)
        core = " ".join(words + [_pick(rng, NAMES[shape.category])])
        opener = _pick(rng, OPENERS) if rng.random() < 0.25 else None
        noun_phrase = f"{opener} {core}" if opener else _article(core)
        if after:
            noun_phrase += " " + " and ".join(after)
    text = _pick(rng, FRAMES).format(n=noun_phrase)
    if rng.random() < 0.2:
        text += " " + _pick(rng, AFTER)
    return " ".join(text.split()).lower()


# Objects none of the categories are; names a studio might ask for. Some common ones are left
# out on purpose so the unknown-object measure is not of nouns trained here (see docs).
UNKNOWN_NAMES = ["truck", "bus", "motorcycle", "scooter", "airplane", "jet", "helicopter", "ship", "sailboat",
                 "submarine", "rocket", "spaceship", "tank", "tractor", "van", "cat", "horse", "cow", "pig",
                 "sheep", "bird", "owl", "fish", "shark", "whale", "dragon", "dinosaur", "lion", "tiger", "bear",
                 "rabbit", "frog", "snake", "spider", "butterfly", "flower", "rose", "bush", "cactus", "palm",
                 "mushroom", "castle", "tower", "bridge", "church", "skyscraper", "barn", "windmill", "lighthouse",
                 "gun", "rifle", "axe", "spear", "shield", "bow and arrow", "wrench", "screwdriver", "saw",
                 "shovel", "laptop", "computer", "keyboard", "television", "camera", "robot", "guitar", "violin",
                 "drum", "trumpet", "shoe", "boot", "hat", "helmet", "shirt", "glasses", "watch", "ring", "crown",
                 "person", "man", "woman", "child", "face", "skull", "hand", "spoon", "fork", "knife", "frying pan",
                 "kettle", "teapot", "clock", "umbrella", "key", "ball", "wheel", "tire", "toilet", "bathtub", "sink",
                 "fridge", "oven", "microwave", "fan", "candle", "book", "pencil", "backpack", "suitcase", "tent",
                 "fence", "mailbox", "traffic cone", "statue", "planet", "donut", "cake", "apple", "banana", "pizza",
                 "burger", "rock", "mountain", "island", "cloud", "snowman", "toy car", "teddy bear", "anchor",
                 "treasure chest", "gear", "spring", "chain", "pipe", "sword hilt", "lantern post", "fire hydrant"]
UNKNOWN_USES = ["something that flies", "a vehicle with wheels", "an animal with four legs", "something that swims",
                "a machine that drives on roads", "a tool for cutting wood", "a weapon for a knight",
                "something you wear on your head", "a musical instrument with strings", "a building with a roof",
                "a plant with leaves", "something to carry luggage in", "a device to take photos",
                "a creature with wings", "something you drive", "a gadget with a screen", "an insect",
                "a tool for digging", "something you eat", "a toy for children", "a monster", "a character",
                "a house pet", "a kind of fruit", "an appliance for the kitchen", "a piece of jewellery"]


def unknown_prompt(rng: np.random.Generator) -> str:
    """A request for an object that is none of the categories, in the same frames and noise."""
    if rng.random() < 0.25:
        phrase = _pick(rng, UNKNOWN_USES)
    else:
        noise = [_pick(rng, STYLES)] if rng.random() < 0.4 else []
        noise += [_pick(rng, MATERIALS)] if rng.random() < 0.3 else []
        phrase = _article(" ".join(noise + [_pick(rng, UNKNOWN_NAMES)]))
    text = _pick(rng, FRAMES).format(n=phrase)
    if rng.random() < 0.2:
        text += " " + _pick(rng, AFTER)
    return " ".join(text.split()).lower()
