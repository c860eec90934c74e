from backend.captions import consistent_caption


def test_a_clause_that_contradicts_an_earlier_one_is_dropped():
    assert consistent_caption("A table without legs and with round legs.") == "A table without legs."
    assert consistent_caption("A sofa without armrests and with armrests and with a back.") == \
        "A sofa without armrests and with a back."
    assert consistent_caption("It looks like a bed with a footboard and without a footboard") == \
        "It looks like a bed with a footboard"


def test_consistent_captions_are_kept_as_written():
    for text in ["A 3D model of a chair with armrests.", "A stool with three legs and without a footrest.",
                 "An unfamiliar shape: none of the objects I know.", "A round table on a single pedestal.", ""]:
        assert consistent_caption(text) == text
