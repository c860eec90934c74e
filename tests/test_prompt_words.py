"""Reading a prompt with the WordNet lexicon (backend/prompt_words.py) before the embedded model:
names the training never had, the head of a phrase, things the model does not know, descriptions
by use, attributes, and the rewrite in the training's own wording. Sentences here are ours (the
blind sets in bench/blind stay unread by tests)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from backend.embedded import artist_wording  # noqa: E402
from backend.errors import TaskError  # noqa: E402
from backend.prompt_words import (AFTER_NOUN, BEFORE_NOUN, COUNTED, Lexicon, read_attributes,  # noqa: E402
                                  read_prompt, training_prompt)

ROOT = Path(__file__).resolve().parents[1]
LEXICON = ROOT / "backend/embedded/lexicon.json.gz"


@pytest.fixture(scope="module")
def lexicon():
    return Lexicon.load(LEXICON)


def test_the_shipped_preset_carries_the_built_lexicon():
    assert (ROOT / "backend/weights/embedded/lexicon.json.gz").read_bytes() == LEXICON.read_bytes()


@pytest.mark.parametrize("prompt, category", [
    ("a recliner", "chair"), ("a rocking chair", "chair"), ("a chest of drawers", "cabinet"),
    ("a lantern", "lamp"), ("a decanter", "bottle"), ("a bunk bed", "bed"), ("an ottoman", "stool"),
])
def test_names_the_training_never_had_are_known(lexicon, prompt, category):
    name = prompt.split(" ", 1)[1]
    assert name not in artist_wording.NAMES[category]  # WordNet's word, not the grammar's
    assert read_prompt(prompt, lexicon).category == category


@pytest.mark.parametrize("prompt, category", [
    ("a light wooden chair", "chair"),  # "light" names a lamp, but the head is the last name
    ("a lamp for a bedside table", "lamp"), ("a dog bed", "bed"), ("a vase on a table", "vase"),
    ("a square table with four legs", "table"), ("a tall cabinet", "cabinet"),  # above other objects in WordNet
])
def test_the_head_of_the_phrase_names_the_object(lexicon, prompt, category):
    assert read_prompt(prompt, lexicon).category == category


@pytest.mark.parametrize("prompt, thing", [
    ("a helicopter", "helicopter"), ("3d model of a castle", "castle"), ("a tree", "tree"), ("a dog", "dog"),
])
def test_things_the_model_does_not_know_are_named(lexicon, prompt, thing):
    read = read_prompt(prompt, lexicon)
    assert read.category is None and read.unknown == thing


@pytest.mark.parametrize("prompt, category", [
    ("a piece of furniture for sleeping", "bed"), ("something to serve salad in", "bowl"),
    ("storage furniture with doors", "cabinet"), ("a jar for flowers", "vase"),
])
def test_a_description_by_use_finds_the_object(lexicon, prompt, category):
    read = read_prompt(prompt, lexicon)
    assert (read.category, read.how) == (category, "definition")


def test_kin_of_the_objects_are_not_refused(lexicon):
    """A box or a bucket is a container like a mug or a vase: described, not declined."""
    for prompt in ("a box with doors", "a bucket", "a basket"):
        assert read_prompt(prompt, lexicon).unknown is None, prompt
    assert read_prompt("a box with doors", lexicon).category == "cabinet"


def test_a_prompt_it_cannot_place_goes_to_the_model_as_typed(lexicon):
    read = read_prompt("something to sit on", lexicon)  # a chair, a stool, a bench alike
    assert read.category is None and read.unknown is None and read.prompt == "something to sit on"


@pytest.mark.parametrize("prompt, category, attributes", [
    ("a round coffee table on one leg", "table", {"round": True, "pedestal": True}),
    ("a square dining table with four legs", "table", {"round": False, "pedestal": False}),
    ("a three legged milking stool", "stool", {"legs": 3}), ("a 5 tier bookcase", "shelf", {"shelves": 5}),
    ("an armchair", "chair", {"arms": True}), ("a backless bench", "bench", {"back": False}),
    ("a high-backed chair without arms", "chair", {"back": True, "arms": False}),  # "high" is the back's
    ("a tall narrow vase", "vase", {"height": "tall", "width": "narrow"}),
])
def test_attributes_are_read(prompt, category, attributes):
    assert read_attributes(prompt, category) == attributes


def test_the_rewrite_uses_the_training_wordings():
    """Every word and phrase the rewrite adds is one the artist grammar teaches."""
    source = Path(artist_wording.__file__).read_text()
    words = [w for values in BEFORE_NOUN.values() for w in values.values()]
    phrases = [p for values in AFTER_NOUN.values() for p in values.values()] + list(COUNTED.values())
    assert all(f'"{w}"' in source for w in words)
    assert all(p in source for p in phrases), [p for p in phrases if p not in source]
    assert training_prompt("table", {"round": True, "pedestal": True}) == "a round table on a single pedestal"


def test_a_kept_training_name_stays_in_the_prompt(lexicon):
    assert read_prompt("a tall bar stool with 3 legs", lexicon).prompt == "a tall bar stool with three legs"


def test_the_pipeline_refuses_an_unknown_thing_before_loading_a_model():
    from backend.pipeline import Pipeline

    pipe = Pipeline("embedded", device="cpu")
    with pytest.raises(TaskError) as err:
        pipe.text_to_3d("a helicopter with two rotors")
    assert err.value.code == "no_shape" and '"helicopter"' in err.value.message and "chairs" in err.value.message
    assert not pipe.loaded  # the words alone refused it


@pytest.mark.slow  # the committed embedded model
def test_the_pipeline_asks_the_model_in_its_own_wording(embedded_pipe):
    result = embedded_pipe.text_to_3d("a recliner without arms")
    assert result.read_as == "a chair without armrests"
    assert (result.codes == embedded_pipe.text_to_3d("a chair without armrests").codes).all()
    assert embedded_pipe.text_to_3d("something to sit on").read_as is None  # as typed
