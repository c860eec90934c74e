"""A preset that names the objects its model knows asks the model before making a shape: a
prompt it declines is refused with a message naming what it can make, nothing else is loaded
or changed. A real tiny model, saved and loaded like the published one: random weights almost
never start a shape (<mesh-start> is 1 of ~8.8k tokens), so it declines, and the same model
without the list makes a shape as before."""

import shutil

import numpy as np
import pytest

from backend.errors import TaskError
from backend.models.presets import load_preset
from backend.models.tiny import write_tiny_preset
from backend.pipeline import Pipeline

pytestmark = pytest.mark.slow  # a tiny model makes a whole shape


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    plain = write_tiny_preset(tmp_path_factory.mktemp("plain"), seed=4)
    knowing = tmp_path_factory.mktemp("knowing")
    shutil.copytree(plain, knowing, dirs_exist_ok=True)
    preset = load_preset(knowing)
    preset.known_objects = ("chairs", "tables")
    preset.save(knowing)
    return plain, knowing


def test_the_list_round_trips_through_preset_json(folders):
    _, knowing = folders
    assert load_preset(knowing).known_objects == ("chairs", "tables")
    assert load_preset(folders[0]).known_objects == ()


def test_a_declined_prompt_is_refused_with_what_the_model_can_make(folders):
    plain, knowing = folders
    pipe = Pipeline(str(knowing), device="cpu")
    try:
        answer = pipe._models(lambda *a: None, lambda: False)[0].declines("a helicopter")
        assert isinstance(answer, str)  # its own (random) words, decoded with mesh blocks banned
        with pytest.raises(TaskError) as err:
            pipe.text_to_3d("a helicopter")
        assert err.value.code == "no_shape"
        assert "It can make: chairs, tables" in err.value.message and "does not know" in err.value.message
    finally:
        pipe.release()
    pipe = Pipeline(str(plain), device="cpu")
    try:
        result = pipe.text_to_3d("a helicopter", {"max_new_tokens": 1100})
        assert result.codes.shape == (1024,) and np.isfinite(result.vertices).all()
    finally:
        pipe.release()
