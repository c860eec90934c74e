"""Token codec: round trips through a real tokenizer and the documented parsing policy."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pytest

from backend.errors import TaskError
from backend.models.codec import NUM_CODES, MeshCodec, aligned_positions, codes_to_text, parse_text
from backend.models.tokenizer_build import build_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(["a small chair", "a lamp on a table"])


@pytest.fixture(scope="module")
def codec(tokenizer):
    return MeshCodec(tokenizer)


def random_codes(seed=0):
    return np.random.default_rng(seed).integers(0, 8192, NUM_CODES).astype(np.int32)


def test_codes_text_ids_round_trip_through_the_tokenizer(tokenizer, codec):
    codes = random_codes()
    codes[:2] = [0, 8191]
    text = codes_to_text(codes)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids == codec.codes_to_ids(codes)  # one token per code, plus the two markers
    assert len(ids) == NUM_CODES + 2
    for parsed in (codec.parse_ids(ids), parse_text(tokenizer.decode(ids))):
        assert parsed.exact
        np.testing.assert_array_equal(parsed.codes, codes)
        assert parsed.codes.dtype == np.int32


def test_ids_are_read_from_the_tokenizer(tokenizer, codec):
    assert codec.start_id == tokenizer.convert_tokens_to_ids("<mesh-start>")
    assert codec.end_id == tokenizer.convert_tokens_to_ids("<mesh-end>")
    assert codec.code_ids[17] == tokenizer.convert_tokens_to_ids("<mesh17>")
    assert codec.contiguous
    assert codec.code_of(codec.start_id) is None


def test_short_block_repeats_the_last_code(codec):
    codes = random_codes(1)[:10]
    parsed = codec.parse_ids([codec.start_id, *codec.code_ids[codes].tolist(), codec.end_id])
    assert parsed.found == 10 and parsed.padded == NUM_CODES - 10 and parsed.closed
    np.testing.assert_array_equal(parsed.codes[:10], codes)
    assert (parsed.codes[10:] == codes[-1]).all()


def test_long_block_keeps_the_first_1024(codec):
    codes = np.concatenate([random_codes(2), random_codes(3)[:50]])
    text = "<mesh-start>" + "".join(f"<mesh{k}>" for k in codes) + "<mesh-end>"
    for parsed in (parse_text(text), codec.parse_ids(codec.code_ids[codes].tolist())):
        assert parsed.found == NUM_CODES + 50 and parsed.dropped == 50
        np.testing.assert_array_equal(parsed.codes, codes[:NUM_CODES])


def test_stray_and_garbled_items_are_skipped_and_counted():
    text = "Sure! <mesh-start><mesh5> oops <mesh6><mesh99999><mesh7<mesh8><mesh-end> trailing <mesh9>"
    parsed = parse_text(text)
    assert parsed.codes[:3].tolist() == [5, 6, 8]
    assert parsed.found == 3 and parsed.closed
    assert parsed.skipped == 3  # " oops ", <mesh99999>, "<mesh7"
    assert not parsed.exact


def test_block_without_start_marker_and_later_blocks(codec):
    parsed = parse_text("text <mesh3><mesh4><mesh-end><mesh-start><mesh1><mesh-end>")
    assert parsed.found == 2 and parsed.codes[:2].tolist() == [3, 4] and parsed.closed
    ids = [codec.code_ids[3], 42, codec.code_ids[4]]  # 42 is a plain text token
    parsed = codec.parse_ids(ids)
    assert parsed.found == 2 and parsed.skipped == 1 and not parsed.closed


def test_no_codes_is_none_and_a_clear_error_on_request(codec):
    for parsed in (parse_text("a chair, no mesh here <mesh-end>"), codec.parse_ids([1, 2, codec.end_id])):
        assert parsed.codes is None and parsed.found == 0
        with pytest.raises(TaskError) as err:
            parsed.require_codes()
        assert err.value.code == "no_shape"


def test_writing_bad_codes_is_a_clear_error(codec):
    with pytest.raises(ValueError, match="1024"):
        codes_to_text(np.zeros(10, dtype=np.int32))
    with pytest.raises(ValueError, match="8192"):
        codec.codes_to_ids(np.full(NUM_CODES, 8192))
    with pytest.raises(ValueError, match="integer"):
        codes_to_text(np.zeros(NUM_CODES, dtype=np.float32))


def test_a_tokenizer_without_mesh_tokens_is_rejected():
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    plain = Qwen2Tokenizer(vocab={"a": 0, "b": 1}, merges=[])
    with pytest.raises(TaskError, match="mesh tokens"):
        MeshCodec(plain)


def test_aligned_positions_give_the_answer_the_input_blocks_positions():
    S = 7  # the <mesh-start> id in this made-up conversation
    ids = [1, 2, S, 10, 11, 12, 8, 3, 4, S, 10, 13, 12, 8, 5]  # prompt with a block, answer block
    start = 9
    pos = aligned_positions(ids, start, S)
    assert pos[:start] == list(range(start))
    assert pos[start:] == list(range(2, 2 + len(ids) - start))  # k-th answer code at the k-th input code's
    assert aligned_positions(ids[2:], start - 2, S)[start - 2:] == [0, 1, 2, 3, 4, 5]
    # no block in the prompt (text to 3D) or a text answer (describe): sequential
    assert aligned_positions(ids[start:], 0, S) == list(range(len(ids) - start))
    assert aligned_positions(ids[:-1] + [5], 13, S) == list(range(len(ids)))
