"""How much an instruction asks for: "a little", "a lot", "twice as tall", "by 20 %", "to 1.2 m".

The edit kind (taller, shorter, wider, thinner) comes from the model; the amount comes from the
words here, so "make it a lot taller" and "make it taller" differ even for a model that never
saw "a lot". Rules, in order:
- a size to reach, "to 1.2 m", "a height of 2 m", "80 cm wide" (mm, cm, m, in, ft): a target
  length, in metres;
- a length to add or take away, "by 15 cm", "10 cm longer": a change in metres, the kind's way;
- a ratio, "twice", "half", "three times", "x1.5", "by a factor of 2", "to 80 %", "80 % as tall";
- a change, "by 20 %", "20 % taller", "20 percent";
- a degree: "a little", "slightly", "a bit" ... (LITTLE), "a lot", "much", "far" ... (A_LOT);
- nothing said: DEFAULT_FACTOR.
"Twice", "half", "to 80 %" are ratios as said; "3 times thinner", "by a factor of 2" and the
degrees go the kind's way (above 1 for taller or wider, below for shorter or thinner).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_FACTOR = 1.35  # no amount said (the buttons, "make it taller")
LITTLE = 1.15
A_LOT = 1.8
LIMITS = (0.1, 10.0)  # the ratios an edit may make; anything outside is refused

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_UNITS = {"mm": 0.001, "millimeter": 0.001, "millimetre": 0.001, "cm": 0.01, "centimeter": 0.01,
          "centimetre": 0.01, "m": 1.0, "meter": 1.0, "metre": 1.0, "in": 0.0254, "inch": 0.0254,
          "ft": 0.3048, "foot": 0.3048, "feet": 0.3048}
_UNIT = r"(mm|cm|m|in|ft|feet|foot|inch(?:es)?|(?:milli|centi)?met(?:er|re)s?)"
_TARGET = re.compile(rf"\bto\s+(?:be\s+)?(?:about\s+)?{_NUMBER}\s*{_UNIT}\b"
                     # "the width 80 cm", "a height of 2 m", "80 cm wide": a length to reach, not to add
                     rf"|\b(?:height|width|depth|length)\s+(?:of\s+|at\s+|is\s+|=\s*)?(?:about\s+)?{_NUMBER}\s*{_UNIT}\b"
                     rf"|\b{_NUMBER}\s*{_UNIT}\s+(?:tall|wide|high|deep|long)\b")
_DELTA = re.compile(rf"\b{_NUMBER}\s*{_UNIT}\b")
_PERCENT = rf"{_NUMBER}\s*(?:%|percent\b|per\s*cent\b)"
_PERCENT_OF = re.compile(rf"\bto\s+{_PERCENT}|{_PERCENT}\s+(?:of|as)\b")
_PERCENT_CHANGE = re.compile(_PERCENT)
_TIMES = re.compile(rf"\b(?:x\s*{_NUMBER}|{_NUMBER}\s*(?:x|times)\b|(?:by\s+)?a\s+factor\s+(?:of\s+)?{_NUMBER})")
_WORD_RATIOS = {"twice": 2.0, "double": 2.0, "doubled": 2.0, "triple": 3.0, "tripled": 3.0, "half": 0.5,
                "halve": 0.5, "halved": 0.5, "a third": 1 / 3, "a quarter": 0.25}
_WORD_TIMES = {"two": 2.0, "three": 3.0, "four": 4.0, "five": 5.0, "ten": 10.0}
_LITTLE = ("a little", "slightly", "a bit", "a tad", "a touch", "somewhat", "marginally", "a smidge", "subtly")
_A_LOT = ("a lot", "much", "way", "far", "significantly", "considerably", "dramatically", "hugely", "massively",
          "loads", "heaps", "a great deal")


@dataclass(frozen=True)
class Amount:
    factor: float | None = None  # the ratio of the new length to the old one
    target: float | None = None  # or the new length itself, in metres
    delta: float | None = None  # or the length added (negative: taken away), in metres
    said: str = ""  # the words that gave it ("" when nothing was said)

    def in_units(self, metres_per_unit: float) -> "Amount":
        """The same amount for a mesh measured in units of `metres_per_unit` metres (an object
        scaled 2x in Blender has 2 m per unit of its own mesh)."""
        if metres_per_unit == 1.0 or (self.target is None and self.delta is None):
            return self
        scaled = lambda x: None if x is None else x / metres_per_unit  # noqa: E731
        return Amount(self.factor, scaled(self.target), scaled(self.delta), self.said)

    def factor_for(self, length: float) -> float:
        """The ratio, given the current length (metres) where a target or a change was asked."""
        if self.target is not None:
            return self.target / length
        if self.delta is not None:
            return (length + self.delta) / length
        return self.factor


def read_amount(instruction: str, grows: bool) -> Amount:
    """The amount an instruction asks for; `grows`: the kind makes the side longer."""
    text = " ".join(instruction.lower().replace(",", ".").split())
    if match := _TARGET.search(text):
        number, unit = [g for g in match.groups() if g is not None]
        unit = unit.rstrip("s") if unit not in ("inches",) else "inch"
        return Amount(target=float(number) * _UNITS[unit], said=match.group(0))
    if match := _DELTA.search(text):
        unit = match.group(2).rstrip("s") if match.group(2) not in ("inches",) else "inch"
        value = float(match.group(1)) * _UNITS[unit]
        return Amount(delta=value if grows else -value, said=match.group(0))
    if match := _PERCENT_OF.search(text):
        return Amount(factor=float(match.group(1) or match.group(2)) / 100, said=match.group(0))
    if match := _TIMES.search(text):
        value = float(next(g for g in match.groups() if g))
        return Amount(factor=_directed(value, grows), said=match.group(0))
    for words, value in _WORD_RATIOS.items():  # "twice as tall", "half the height": as said
        if re.search(rf"\b{words}\b", text):
            return Amount(factor=value, said=words)
    for words, value in _WORD_TIMES.items():  # "three times thinner": towards the kind
        if re.search(rf"\b{words} times\b", text):
            return Amount(factor=_directed(value, grows), said=f"{words} times")
    if match := _PERCENT_CHANGE.search(text):
        change = float(match.group(1)) / 100
        return Amount(factor=1 + change if grows else 1 - change, said=match.group(0))
    for words, value in ((w, LITTLE) for w in _LITTLE):
        if re.search(rf"\b{words}\b", text):
            return Amount(factor=_directed(value, grows), said=words)
    for words, value in ((w, A_LOT) for w in _A_LOT):
        if re.search(rf"\b{words}\b", text):
            return Amount(factor=_directed(value, grows), said=words)
    return Amount(factor=_directed(DEFAULT_FACTOR, grows))


def _directed(ratio: float, grows: bool) -> float:
    """A ratio said without its direction ("3 times thinner", "a lot shorter") for the kind's."""
    if ratio <= 0:
        return ratio
    return ratio if (ratio >= 1) == grows else 1 / ratio
