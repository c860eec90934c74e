"""The amount an edit instruction asks for (backend/amounts.py), read from its words."""

import pytest

from backend.amounts import A_LOT, DEFAULT_FACTOR, LITTLE, read_amount


@pytest.mark.parametrize("text, grows, factor", [
    ("make it taller", True, DEFAULT_FACTOR), ("make it shorter", False, 1 / DEFAULT_FACTOR),
    ("make it a little taller", True, LITTLE), ("slightly narrower please", False, 1 / LITTLE),
    ("make it a lot wider", True, A_LOT), ("much shorter", False, 1 / A_LOT),
    ("twice as tall", True, 2.0), ("make it half as tall", True, 0.5), ("double the width", True, 2.0),
    ("make it 3 times thinner", False, 1 / 3), ("three times taller", True, 3.0),
    ("taller by 20 %", True, 1.2), ("20 percent shorter", False, 0.8), ("make it 80% as wide", True, 0.8),
    ("x1.5 wider", True, 1.5), ("make it 1,5x taller", True, 1.5), ("thinner by a factor of 2", False, 0.5),
])
def test_ratios(text, grows, factor):
    assert read_amount(text, grows).factor == pytest.approx(factor)


@pytest.mark.parametrize("text, metres", [("make it taller, to 1.2 m", 1.2), ("scale the height to 80 cm", 0.8),
                                          ("to 300 mm", 0.3), ("make it wider to 2 feet", 0.6096)])
def test_lengths_to_reach(text, metres):
    amount = read_amount(text, grows=True)
    assert amount.target == pytest.approx(metres) and amount.factor_for(metres / 2) == pytest.approx(2.0)


def test_the_words_that_asked_are_kept_for_the_report():
    assert read_amount("make it a lot taller", True).said == "a lot"
    assert read_amount("make it taller", True).said == ""


@pytest.mark.parametrize("text, grows, length, ratio", [
    ("make the legs 10 cm longer", True, 0.5, 1.2), ("shorten it by 5cm", False, 0.5, 0.9),
    ("add 2 inches", True, 0.0508, 2.0),  # a length added, the kind's way
    ("make the width 80 cm", True, 0.4, 2.0), ("a height of 2 m", True, 1.0, 2.0),
    ("make it 80 cm wide", False, 1.6, 0.5),  # a length to reach, whichever way the kind goes
])
def test_lengths_added_or_reached(text, grows, length, ratio):
    assert read_amount(text, grows=grows).factor_for(length) == pytest.approx(ratio)


def test_an_amount_in_metres_is_read_in_the_mesh_units():
    amount = read_amount("10 cm longer", grows=True).in_units(2.0)  # 2 m per unit of the mesh
    assert amount.factor_for(0.5) == pytest.approx(1.1)
