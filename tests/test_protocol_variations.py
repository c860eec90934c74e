"""The wire's `variations` option and the result of K shapes (addon/wire/protocol.py)."""

import numpy as np
import pytest

from addon.wire import protocol
from addon.wire.protocol import Message, ProtocolError


def request(task="text_to_3d", **options):
    fields = {"prompt": "a chair", "options": options} if task == "text_to_3d" else {"options": options}
    return Message(type=task, job="j1", fields=fields)


@pytest.mark.parametrize("value", [1, 4, 8])
def test_one_to_eight_variations_are_accepted(value):
    protocol.validate_request(request(variations=value))


@pytest.mark.parametrize("value", [0, 9, -1, 2.0, "3", True, None, [2]])
def test_other_counts_are_refused_with_the_range(value):
    with pytest.raises(ProtocolError) as err:
        protocol.validate_request(request(variations=value))
    assert err.value.code == "bad_field" and err.value.job == "j1"
    assert err.value.message.startswith("option 'variations' must be an integer in [1, 8], got")


def test_only_tasks_that_make_new_shapes_take_variations():
    mesh = {"vertices": np.zeros((3, 3), np.float32), "faces": np.array([[0, 1, 2]], np.int32)}
    for task, fields in (("describe", {}), ("edit", {"instruction": "make it taller"})):
        msg = Message(type=task, job="j2", fields={**fields, "options": {"variations": 2}}, arrays=mesh)
        with pytest.raises(ProtocolError) as err:
            protocol.validate_request(msg)
        assert err.value.code == "bad_field"
        assert err.value.message == f"option 'variations' is for text_to_3d and image_to_3d, not {task}"


def shapes(k):
    rng = np.random.default_rng(k)
    out = []
    for i in range(k):
        n = 4 + i
        v = rng.normal(size=(n, 3)).astype(np.float32)
        f = rng.integers(0, n, size=(2 * n, 3)).astype(np.int32)
        out.append(({"index": i, "seed": 10 + i}, v, f, np.full(1024, i, np.int32)))
    return out


def test_k_shapes_travel_in_three_buffers_and_come_back_apart():
    made = shapes(3)
    infos, arrays = protocol.join_variations(made)
    assert [i["seed"] for i in infos] == [10, 11, 12] and set(arrays) == {"vertices", "faces", "codes"}
    assert arrays["codes"].shape == (3, 1024) and arrays["faces"].max() < len(arrays["vertices"])
    # through the real encoder and decoder, as the server sends it
    sent = protocol.event("result", "j1", {"task": "text_to_3d", "variations": infos}, arrays)
    got = protocol.decode(protocol.encode(sent))
    back = protocol.split_variations(got.fields, got.arrays)
    assert len(back) == 3
    for (info, v, f, c), (info0, v0, f0, c0) in zip(back, made):
        assert info["index"] == info0["index"] and info["seed"] == info0["seed"]
        np.testing.assert_array_equal(v, v0)
        np.testing.assert_array_equal(f, f0)
        np.testing.assert_array_equal(c, c0)


def test_a_result_without_the_list_is_one_shape():
    v, f = np.zeros((3, 3), np.float32), np.array([[0, 1, 2]], np.int32)
    ((info, v1, f1, codes),) = protocol.split_variations({"task": "text_to_3d"}, {"vertices": v, "faces": f})
    assert info == {"index": 0} and v1 is v and f1 is f and codes is None


@pytest.mark.parametrize("break_it", ["counts", "crossing", "extra", "codes", "not a list"])
def test_a_list_that_disagrees_with_the_buffers_is_refused(break_it):
    infos, arrays = protocol.join_variations(shapes(2))
    arrays = dict(arrays)
    if break_it == "counts":
        infos[1]["vertex_count"] += 5
    elif break_it == "crossing":  # a triangle of the second shape pointing into the first's vertices
        arrays["faces"] = arrays["faces"].copy()
        arrays["faces"][-1, 0] = 0
    elif break_it == "extra":
        arrays["vertices"] = np.concatenate([arrays["vertices"], np.zeros((1, 3), np.float32)])
    elif break_it == "codes":
        arrays["codes"] = arrays["codes"][:1]
    else:
        infos = {"0": infos[0]}
    with pytest.raises(ValueError):
        protocol.split_variations({"variations": infos}, arrays)
