"""The attributes a made shape has (backend/geometry/attributes.py), read from its parts, on
held-out procedural shapes whose parameters say the truth; and text to 3D's retry of an answer
that does not fit its prompt."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from backend.embedded.shape import sample_shape  # noqa: E402
from backend.embedded.splits import shape_seed  # noqa: E402
from backend.geometry.attributes import missing, shape_attributes  # noqa: E402


def held_out(category: str, k: int, **params):
    shape = sample_shape(category, shape_seed(category, 500 + k, held_out=True))
    return shape.with_params(**params) if params else shape


@pytest.mark.parametrize("k", range(4))
def test_backs_arms_legs_and_shelves_are_read_as_built(k):
    chair = held_out("chair", k, back=bool(k % 2), part=bool(k % 2) and k > 1)  # armrests go with a back
    have = shape_attributes(*chair.mesh())
    assert (have["back"], have["arms"]) == (bool(k % 2), bool(chair.params["part"]))
    stool = held_out("stool", k)
    assert shape_attributes(*stool.mesh())["legs"] == stool.params["legs"]
    shelf = held_out("shelf", k)
    assert shape_attributes(*shelf.mesh())["shelves"] == shelf.params["boards"]
    sofa = held_out("sofa", k)
    assert shape_attributes(*sofa.mesh())["arms"] == bool(sofa.params["part"])


@pytest.mark.parametrize("round_top", [False, True])
@pytest.mark.parametrize("pedestal", [False, True])
def test_round_tops_and_pedestals_are_read_as_built(round_top, pedestal):
    for k in range(3):
        have = shape_attributes(*held_out("table", k, round_top=round_top, pedestal=pedestal).mesh())
        assert (have["round"], have["pedestal"]) == (round_top, pedestal)
        assert have["legs"] == (1 if pedestal else 4)


def test_missing_names_what_the_shape_lacks():
    have = {"back": True, "arms": False, "round": True, "pedestal": False}
    assert missing(have, {"arms": True, "round": True, "pedestal": True}) == ["arms", "pedestal"]
    assert missing(have, {"height": "tall"}) == []  # not read here


@pytest.mark.slow  # the committed embedded model
def test_an_answer_that_does_not_fit_the_prompt_is_retried(embedded_pipe):
    """The answer fits the prompt (the model's caption names the asked object, the asked
    attributes are there), or it is the greedy answer and none of the sampled retries (the same
    batch, asked again here) fit either."""
    from backend.pipeline import RETRY_SAMPLES, RETRY_TEMPERATURE

    llm = embedded_pipe._models(lambda *a: None, lambda: False)[0]
    fits = lambda shape, read: embedded_pipe._fits(llm, shape, read, lambda: False)  # noqa: E731
    for prompt in ("a sofa without arms", "a round table", "a bench with a back", "a wardrobe"):
        read = embedded_pipe._read_prompt(prompt)
        result = embedded_pipe.text_to_3d(prompt)
        if fits(result, read):
            continue
        tries = embedded_pipe.text_to_3d_variations(prompt, {"temperature": RETRY_TEMPERATURE,
                                                             "variations": RETRY_SAMPLES})
        assert not any(fits(t, read) for t in tries), prompt
        assert np.array_equal(result.codes, embedded_pipe.text_to_3d(prompt, {"temperature": 0}).codes)
