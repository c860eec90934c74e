"""Parametric object categories built from primitives (Z up, X width, Y depth; metres-ish).

Each category has a sampler (random continuous parameters) and a builder (parameters -> parts).
Some categories also have one optional part that the "add/remove a part" edits toggle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .primitives import Primitive, box, cylinder, lathe


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _four_legs(w, d, h, t, inset, round_legs) -> list[Primitive]:
    """Four vertical legs of thickness t under a w x d footprint, tops at height h."""
    parts = []
    for sx in (-1, 1):
        for sy in (-1, 1):
            c = (sx * (w / 2 - inset - t / 2), sy * (d / 2 - inset - t / 2), h / 2)
            parts.append(cylinder(c, t / 2, h) if round_legs else box(c, (t, t, h)))
    return parts


# ---------------------------------------------------------------------------- furniture
def sample_chair(rng):
    return dict(seat_h=_u(rng, .40, .55), w=_u(rng, .40, .60), d=_u(rng, .40, .55), seat_t=_u(rng, .04, .08),
                back_h=_u(rng, .30, .60), leg_t=_u(rng, .035, .06), round_legs=bool(rng.random() < .4),
                part=bool(rng.random() < .4))


def build_chair(p):
    w, d, h, t = p["w"], p["d"], p["seat_h"], p["seat_t"]
    parts = _four_legs(w, d, h - t, p["leg_t"], 0.0, p["round_legs"])
    parts.append(box((0, 0, h - t / 2), (w, d, t)))
    if p.get("back", True):  # absent from sampled params: only the artist stage's shapes lack a back
        parts.append(box((0, d / 2 - 0.025, h + p["back_h"] / 2), (w, 0.05, p["back_h"])))
    if p["part"]:  # armrests
        for sx in (-1, 1):
            parts.append(box((sx * (w / 2 - 0.025), 0, h + 0.2), (0.05, d, 0.04)))
            parts.append(box((sx * (w / 2 - 0.025), -d / 2 + 0.03, h + 0.1), (0.04, 0.04, 0.2)))
    return parts


def sample_table(rng):
    return dict(h=_u(rng, .65, .80), w=_u(rng, .90, 1.60), d=_u(rng, .55, .95), top_t=_u(rng, .03, .06),
                leg_t=_u(rng, .04, .08), round_legs=bool(rng.random() < .4), part=bool(rng.random() < .3))


def build_table(p):
    """round_top and pedestal are absent from sampled params (square top on four legs); the
    artist stage's shapes set them."""
    w, d, h, t = p["w"], p["d"], p["h"], p["top_t"]
    round_top = p.get("round_top", False)
    if round_top:  # a disc as wide as the mean side; its legs stand inside it
        w = d = (w + d) / 2
    if p.get("pedestal", False):
        foot = 0.3 * min(w, d)
        parts = [cylinder((0, 0, (h - t) / 2), 1.2 * p["leg_t"], h - t), cylinder((0, 0, 0.02), foot, 0.04)]
    else:
        side = w / np.sqrt(2) if round_top else None
        parts = (_four_legs(side, side, h - t, p["leg_t"], 0.0, p["round_legs"]) if round_top
                 else _four_legs(w, d, h - t, p["leg_t"], 0.03, p["round_legs"]))
    parts.append(cylinder((0, 0, h - t / 2), w / 2, t) if round_top else box((0, 0, h - t / 2), (w, d, t)))
    if p["part"]:  # a lower shelf between the legs
        parts.append(box((0, 0, 0.15 * h), (w - 0.1, d - 0.1, 0.03)))
    return parts


def sample_stool(rng):
    return dict(h=_u(rng, .45, .80), r=_u(rng, .15, .22), seat_t=_u(rng, .04, .07), leg_t=_u(rng, .03, .05),
                legs=int(rng.integers(3, 5)), part=bool(rng.random() < .5))


def build_stool(p):
    h, r, t = p["h"], p["r"], p["seat_t"]
    parts = [cylinder((0, 0, h - t / 2), r, t)]
    for k in range(p["legs"]):
        a = 2 * np.pi * k / p["legs"]
        parts.append(cylinder((0.75 * r * np.cos(a), 0.75 * r * np.sin(a), (h - t) / 2), p["leg_t"] / 2, h - t))
    if p["part"]:  # a footrest ring approximated by a thin disc ring of bars
        parts.append(box((0, 0, 0.3 * h), (1.5 * r, 0.03, 0.03)))
        parts.append(box((0, 0, 0.3 * h), (0.03, 1.5 * r, 0.03)))
    return parts


def sample_bench(rng):
    return dict(h=_u(rng, .40, .50), w=_u(rng, 1.1, 1.8), d=_u(rng, .30, .45), seat_t=_u(rng, .04, .08),
                slab_legs=bool(rng.random() < .5), leg_t=_u(rng, .04, .07), part=bool(rng.random() < .4))


def build_bench(p):
    w, d, h, t = p["w"], p["d"], p["h"], p["seat_t"]
    if p["slab_legs"]:
        parts = [box((sx * (w / 2 - 0.1), 0, (h - t) / 2), (p["leg_t"], d, h - t)) for sx in (-1, 1)]
    else:
        parts = _four_legs(w, d, h - t, p["leg_t"], 0.05, False)
    parts.append(box((0, 0, h - t / 2), (w, d, t)))
    if p["part"]:  # backrest
        parts.append(box((0, d / 2 - 0.025, h + 0.2), (w, 0.05, 0.25)))
        parts.append(box((0, d / 2 - 0.025, h + 0.04), (w, 0.05, 0.08)))
    return parts


def sample_shelf(rng):
    return dict(h=_u(rng, 1.0, 2.0), w=_u(rng, .60, 1.20), d=_u(rng, .25, .40), board_t=_u(rng, .03, .05),
                boards=int(rng.integers(3, 7)), part=bool(rng.random() < .5))


def build_shelf(p):
    w, d, h, t = p["w"], p["d"], p["h"], p["board_t"]
    parts = [box((sx * (w / 2 - t / 2), 0, h / 2), (t, d, h)) for sx in (-1, 1)]
    for z in np.linspace(t / 2, h - t / 2, p["boards"]):
        parts.append(box((0, 0, z), (w, d, t)))
    if p["part"]:  # back panel
        parts.append(box((0, d / 2 - 0.01, h / 2), (w, 0.02, h)))
    return parts


def sample_bed(rng):
    return dict(w=_u(rng, 1.0, 1.7), l=_u(rng, 1.9, 2.2), frame_h=_u(rng, .25, .40), mat_t=_u(rng, .15, .25),
                head_h=_u(rng, .50, 1.0), part=bool(rng.random() < .5))


def build_bed(p):
    w, l, fh, mt = p["w"], p["l"], p["frame_h"], p["mat_t"]
    parts = _four_legs(w, l, fh - 0.08, 0.08, 0.0, False)
    parts.append(box((0, 0, fh - 0.04), (w, l, 0.08)))
    parts.append(box((0, 0, fh + mt / 2), (w - 0.04, l - 0.04, mt)))
    parts.append(box((0, l / 2 - 0.03, p["head_h"] / 2), (w, 0.06, p["head_h"])))
    if p["part"]:  # footboard
        parts.append(box((0, -l / 2 + 0.03, (fh + mt) / 2 + 0.05), (w, 0.06, fh + mt + 0.1)))
    return parts


def sample_sofa(rng):
    return dict(w=_u(rng, 1.5, 2.3), d=_u(rng, .80, 1.0), seat_h=_u(rng, .40, .50), back_h=_u(rng, .35, .50),
                arm_w=_u(rng, .12, .25), part=bool(rng.random() < .7))


def build_sofa(p):
    w, d, sh, bh, aw = p["w"], p["d"], p["seat_h"], p["back_h"], p["arm_w"]
    base_z = 0.1
    parts = _four_legs(w, d, base_z, 0.06, 0.05, False)
    parts.append(box((0, 0, (base_z + sh) / 2), (w, d, sh - base_z)))
    parts.append(box((0, d / 2 - 0.1, sh + bh / 2), (w, 0.2, bh)))
    if p["part"]:  # armrests
        for sx in (-1, 1):
            parts.append(box((sx * (w / 2 - aw / 2), 0, sh + 0.1), (aw, d, 0.2)))
    return parts


def sample_cabinet(rng):
    return dict(w=_u(rng, .50, 1.2), d=_u(rng, .40, .60), h=_u(rng, .70, 1.8), doors=int(rng.integers(1, 3)),
                part=bool(rng.random() < .5))


def build_cabinet(p):
    w, d, h = p["w"], p["d"], p["h"]
    leg = 0.1 if p["part"] else 0.0  # the optional part: short legs
    parts = [box((0, 0, leg + (h - leg) / 2), (w, d, h - leg))]
    if leg:
        parts += _four_legs(w, d, leg, 0.05, 0.02, False)
    n = p["doors"]
    for k in range(n):
        x = -w / 2 + (k + 0.5) * w / n
        parts.append(box((x, -d / 2 - 0.01, leg + (h - leg) / 2), (w / n - 0.03, 0.02, h - leg - 0.04)))
        hx = x + (0.3 * w / n if n == 1 else (0.35 * w / n) * (1 if k == 0 else -1))
        parts.append(box((hx, -d / 2 - 0.035, leg + (h - leg) / 2), (0.03, 0.03, 0.15)))
    return parts


def sample_ladder(rng):
    return dict(h=_u(rng, 1.5, 2.5), w=_u(rng, .35, .55), rail_t=_u(rng, .04, .06), rungs=int(rng.integers(5, 10)),
                rung_r=_u(rng, .015, .025))


def build_ladder(p):
    h, w, t = p["h"], p["w"], p["rail_t"]
    parts = [box((sx * (w / 2 - t / 2), 0, h / 2), (t, 0.06, h)) for sx in (-1, 1)]
    for z in np.linspace(0.25, h - 0.2, p["rungs"]):
        parts.append(cylinder((0, 0, z), p["rung_r"], w - 2 * t, axis="x"))
    return parts


# ---------------------------------------------------------------------------- vessels
def sample_lamp(rng):
    return dict(h=_u(rng, .40, .80), base_r=_u(rng, .10, .16), pole_r=_u(rng, .012, .02), shade_r=_u(rng, .15, .25),
                shade_h=_u(rng, .15, .25), taper=_u(rng, .5, .8), part=bool(rng.random() < .5))


def build_lamp(p):
    h, sr, sh = p["h"], p["shade_r"], p["shade_h"]
    parts = [cylinder((0, 0, 0.02), p["base_r"], 0.04), cylinder((0, 0, h / 2), p["pole_r"], h)]
    parts.append(lathe((0, 0, h + sh * 0.3), sr, sh, (1.0, p["taper"]), wall=0.06, floor=0.0))
    if p["part"]:  # finial on top of the shade
        parts.append(cylinder((0, 0, h + sh * 0.8 + 0.03), 0.025, 0.06))
    return parts


def sample_mug(rng):
    return dict(r=_u(rng, .04, .06), h=_u(rng, .08, .13), wall=_u(rng, .10, .15), part=bool(rng.random() < .7))


def build_mug(p):
    r, h = p["r"], p["h"]
    parts = [lathe((0, 0, h / 2), r, h, (1.0, 1.0), wall=p["wall"], floor=0.1)]
    if p["part"]:  # handle made of three bars on the +X side
        hw = 0.012
        parts.append(box((r + 0.025, 0, h / 2), (hw, hw * 1.5, 0.6 * h)))
        for z in (0.8 * h, 0.2 * h):
            parts.append(box((r + 0.01, 0, z), (0.035, hw * 1.5, hw)))
    return parts


def sample_vase(rng):
    return dict(r=_u(rng, .08, .15), h=_u(rng, .25, .50), belly=_u(rng, .3, .6), neck=_u(rng, .35, .6),
                lip=_u(rng, .5, .9))


def build_vase(p):
    radii = (0.6, 1.0, 0.9, p["neck"], p["neck"], p["lip"])
    radii = tuple(r if i != 1 else 1.0 for i, r in enumerate(radii))
    return [lathe((0, 0, p["h"] / 2), p["r"], p["h"], radii, wall=0.12, floor=0.05)]


def sample_bowl(rng):
    return dict(r=_u(rng, .08, .18), h=_u(rng, .05, .10), foot=_u(rng, .35, .6))


def build_bowl(p):
    radii = (p["foot"], 0.5 + p["foot"] / 2, 0.85, 0.97, 1.0)
    return [lathe((0, 0, p["h"] / 2), p["r"], p["h"], radii, wall=0.10, floor=0.2)]


def sample_bottle(rng):
    return dict(r=_u(rng, .03, .05), h=_u(rng, .20, .35), shoulder=_u(rng, .55, .75), neck=_u(rng, .25, .4))


def build_bottle(p):
    n = 12
    t = np.linspace(0, 1, n)
    s = p["shoulder"]
    radii = np.where(t <= s, 1.0, np.where(t <= s + 0.15, 1.0 - (1.0 - p["neck"]) * (t - s) / 0.15, p["neck"]))
    return [lathe((0, 0, p["h"] / 2), p["r"], p["h"], tuple(radii), wall=1.0, floor=1.0)]


@dataclass(frozen=True)
class Category:
    name: str
    sample: Callable[[np.random.Generator], dict]
    build: Callable[[dict], list[Primitive]]
    part: str | None = None  # the optional part the add/remove edits toggle (param "part")


CATEGORIES: dict[str, Category] = {c.name: c for c in [
    Category("chair", sample_chair, build_chair, "armrests"),
    Category("table", sample_table, build_table, "lower shelf"),
    Category("stool", sample_stool, build_stool, "footrest"),
    Category("bench", sample_bench, build_bench, "backrest"),
    Category("shelf", sample_shelf, build_shelf, "back panel"),
    Category("bed", sample_bed, build_bed, "footboard"),
    Category("sofa", sample_sofa, build_sofa, "armrests"),
    Category("cabinet", sample_cabinet, build_cabinet, "legs"),
    Category("ladder", sample_ladder, build_ladder),
    Category("lamp", sample_lamp, build_lamp, "finial"),
    Category("mug", sample_mug, build_mug, "handle"),
    Category("vase", sample_vase, build_vase),
    Category("bowl", sample_bowl, build_bowl),
    Category("bottle", sample_bottle, build_bottle),
]}
