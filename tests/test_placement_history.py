"""The add-on's Placement and its JSON form in the history file, without Blender."""

from __future__ import annotations

import json

import numpy as np
import pytest

from addon.history import History
from addon.jobs import IDENTITY, Job, Placement


def test_each_kind_of_job_gets_its_placement_from_one_constructor():
    new = Placement.at_cursor(np.float32([1, 2, 3]), 4, 1)
    assert (new.location, new.size, new.variation, new.matrix) == ((1.0, 2.0, 3.0), 4.0, 1, None)
    assert Placement.of("Cube") == Placement(source="Cube")
    matrix = np.eye(4, dtype=np.float32) * 2
    edit = Placement.over("Cube", matrix, hide_source=True)
    assert edit.source == "Cube" and edit.hide_source and np.array_equal(np.array(edit.matrix), matrix)
    assert Job(key="k", task="describe", label="Cube", options={}).placement == Placement()
    with pytest.raises(ValueError, match="4x4"):
        Placement.over("Cube", np.eye(3), hide_source=False)


def test_history_keeps_a_placement_through_its_json_file(tmp_path):
    rows = np.arange(16, dtype=np.float32).reshape(4, 4) / 7   # float32 values survive exactly
    edit = Placement.over("Chair", rows, hide_source=True)
    history = History(tmp_path)
    history.add("edit", "make it taller", "Chair edited", np.zeros((3, 3), np.float32),
                np.array([[0, 1, 2]], np.int32), edit)
    history.add("describe", "Chair", "a chair")
    again = History(tmp_path)
    assert again.placement(1) == edit
    assert again.placement(0) == Placement()   # describe keeps no place


def test_older_history_entries_and_damaged_ones(tmp_path):
    entries = [{"task": "text_to_3d", "label": "a lamp", "place": {"location": [1, 2, 3], "size": 3.0,
                                                                  "variation": 2}},
               {"task": "edit", "label": "taller", "place": {"source": "Lamp", "matrix": [list(r) for r in IDENTITY],
                                                            "hide_source": True}},
               {"task": "edit", "label": "wider", "place": {"matrix": [[1, 2], [3, 4]]}}]
    (tmp_path / "history.json").write_text(json.dumps(entries))
    history = History(tmp_path)
    assert history.placement(0) == Placement.at_cursor((1, 2, 3), 3.0, 2)
    assert history.placement(1) == Placement.over("Lamp", IDENTITY, hide_source=True)
    with pytest.raises(ValueError, match='saved place of "wider"'):
        history.placement(2)
