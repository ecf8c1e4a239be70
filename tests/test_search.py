"""The design search: the programme's front and choice equal brute force; constraints parse or fail in one sentence.

Every expected value is computed here, by enumerating all plans with exact (Fraction) latency
sums, or by hand; never by the code under test.
"""

from __future__ import annotations

import doctest
import subprocess
import sys
from fractions import Fraction
from itertools import product

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetcalc.core import search as search_module
from hetcalc.core.errors import InvalidInput
from hetcalc.core.search import (
    Constraint,
    Option,
    Point,
    Totals,
    front,
    parse_constraint,
    plan_totals,
    search,
)

# Brute force


def all_plans(layers, base):
    """Every plan as (flops, params, exact ms, picks), picks in lexicographic order."""
    for picks in product(*(range(len(layer)) for layer in layers)):
        chosen = [layer[j] for layer, j in zip(layers, picks)]
        yield (
            base.flops + sum(o.flops for o in chosen),
            base.params + sum(o.params for o in chosen),
            Fraction(base.ms) + sum(Fraction(o.ms) for o in chosen),
            picks,
        )


def value(plan, quantity):
    return {"flops": plan[0], "params": plan[1], "latency": plan[2]}[quantity]


def as_point(plan):
    return Point(plan[0], plan[1], float(plan[2]), plan[3])


def brute_front(layers, base, directions):
    named = [
        (q, 1 if directions[q] == "min" else -1) for q in ("latency", "flops", "params") if q in directions
    ]
    key = lambda plan: tuple(sign * value(plan, q) for q, sign in named)
    plans = list(all_plans(layers, base))
    dominated = lambda p: any(all(a <= b for a, b in zip(key(q), key(p))) and key(q) != key(p) for q in plans)
    first = {}
    for plan in plans:  # lexicographic picks: the first of equals is the one kept
        if not dominated(plan):
            first.setdefault(key(plan), plan)
    return [as_point(plan) for plan in sorted(first.values(), key=lambda plan: (key(plan), plan[3]))]


RANK = {  # objective, then latency lower, FLOPs higher, params lower, then picks
    "latency": lambda p: (p[2], -p[0], p[1], p[3]),
    "flops": lambda p: (-p[0], p[2], p[1], p[3]),
    "params": lambda p: (-p[1], p[2], -p[0], p[3]),
}
OPS = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b}


def meets(plan, quantity, op, bound):
    shown = float(plan[2]) if quantity == "latency" else value(plan, quantity)  # a plan's ms is a float
    return OPS[op](Fraction(shown), bound)


def worst_miss(plan, bounds):
    """The largest miss of any bound, relative to it (absolute where it is 0)."""
    misses = [0]
    for quantity, op, bound in bounds:
        shown = Fraction(float(plan[2])) if quantity == "latency" else value(plan, quantity)
        miss = shown - bound if op in ("<=", "<") else bound - shown
        misses.append(miss / (abs(bound) or 1))
    return max(misses)


# Random instances: small values, so that ties are common; 0.1 + 0.2 != 0.3 in floats

TIMES = st.one_of(
    st.integers(0, 6).map(float),
    st.sampled_from([0.1, 0.2, 0.3, 0.7, 1 / 3, 2 / 3, 1e-17, 2.5]),
    st.floats(0, 10, allow_nan=False, allow_infinity=False),
)
OPTIONS = st.builds(Option, st.none(), st.integers(0, 12), st.integers(0, 12), TIMES)
LAYERS = st.lists(st.lists(OPTIONS, min_size=1, max_size=5), min_size=1, max_size=5)
BASES = st.builds(Totals, st.integers(0, 5), st.integers(0, 5), TIMES)
QUANTITY = st.sampled_from(["latency", "flops", "params"])
DIRECTIONS = st.dictionaries(QUANTITY, st.sampled_from(["min", "max"]), min_size=2, max_size=3)


@settings(max_examples=150, deadline=None)
@given(LAYERS, BASES, DIRECTIONS)
def test_front_equals_brute_force(layers, base, directions):
    assert front(layers, base, directions) == brute_front(layers, base, directions)


@settings(max_examples=100, deadline=None)
@given(LAYERS, BASES, st.dictionaries(QUANTITY, st.sampled_from(["min", "max"]), max_size=1))
def test_front_of_one_or_no_quantity(layers, base, directions):
    assert front(layers, base, directions) == brute_front(layers, base, directions)


@st.composite
def queries(draw):
    """Layers, base, objective and constraints whose bounds are other plans' totals or decimal numbers."""
    layers, base = draw(LAYERS), draw(BASES)
    plans = list(all_plans(layers, base))
    references, texts, bounds = {}, [], []
    for n in range(draw(st.integers(0, 3))):
        quantity, op = draw(QUANTITY), draw(st.sampled_from(list(OPS)))
        if draw(st.booleans()):
            plan = draw(st.sampled_from(plans))
            references[f"R{n}"] = Totals(plan[0], plan[1], float(plan[2]))
            texts.append(f"{quantity}{op}R{n}")
            bound = Fraction(float(plan[2])) if quantity == "latency" else Fraction(value(plan, quantity))
        else:
            number = draw(st.sampled_from(["0", "3", "7.5", "12", "0.3", "2.5e1"]))
            texts.append(f"{quantity}{op}{number}")
            bound = Fraction(number)
        bounds.append((quantity, op, bound))
    return layers, base, draw(st.sampled_from(list(RANK))), texts, references, bounds


@settings(max_examples=120, deadline=None)
@given(queries())
def test_search_equals_brute_force(query):
    layers, base, objective, texts, references, bounds = query
    feasible = [p for p in all_plans(layers, base) if all(meets(p, *bound) for bound in bounds)]
    if not feasible:
        with pytest.raises(InvalidInput, match="^constraint: no plan meets ") as error:
            search(layers, base, objective, texts, references)
        closest = min(all_plans(layers, base), key=lambda p: (worst_miss(p, bounds), RANK[objective](p)))
        assert f"; the closest keeps {closest[0]} FLOPs and {closest[1]} params at " in error.value.reason
        return
    result = search(layers, base, objective, texts, references)
    assert result.chosen == as_point(min(feasible, key=RANK[objective]))
    assert result.front == brute_front(layers, base, {"latency": "min", "flops": "max"})


def test_a_quantity_bounded_both_ways():
    # Plans (flops, ms): AA (3, 3.0), AB (2, 2.5), BA (2, 2.0), BB (1, 1.5). Only AB and BA have
    # exactly 2 FLOPs; of the two, BA is faster. AA (more FLOPs) and BB (faster) are out.
    layers = [
        [Option("A", 2, 0, 2.0), Option("B", 1, 0, 1.0)],
        [Option("A", 1, 0, 1.0), Option("B", 0, 0, 0.5)],
    ]
    base = Totals(0, 0, 0.0)
    assert search(layers, base, "flops", ["flops>=2", "flops<=2"]).chosen == Point(2, 0, 2.0, (1, 0))
    assert search(layers, base, "latency", ["flops<=2", "flops>1"]).chosen == Point(2, 0, 2.0, (1, 0))


def test_latency_is_summed_exactly():
    # 0.1 + 0.2 + 0.3 is 0.6000000000000001 left to right and 0.6 right to left; the exact sum
    # is nearer 0.6, so the plan's ms is 0.6 and it meets latency<=0.6.
    layers = [[Option("a", 1, 0, 0.1)], [Option("b", 1, 0, 0.2)], [Option("c", 1, 0, 0.3)]]
    assert search(layers, Totals(0, 0, 0.0), "latency", ["latency<=0.6"]).chosen.ms == 0.6
    assert plan_totals(layers, Totals(0, 0, 0.0), (0, 0, 0)) == Totals(3, 0, 0.6)


# Constraints

REFERENCES = {"P4": Totals(120_000_000, 3_000_000, 40.25), "P8": Totals(90_000_000, 2_000_000, 31.5)}


@pytest.mark.parametrize(
    "text, quantity, op, bound, shown",
    [
        ("flops>=P4", "flops", ">=", Fraction(120_000_000), "flops>=P4"),
        ("latency<=P8", "latency", "<=", Fraction(63, 2), "latency<=P8"),
        ("params<=3M", "params", "<=", Fraction(3_000_000), "params<=3M"),
        ("latency<=12.5ms", "latency", "<=", Fraction(25, 2), "latency<=12.5ms"),
        ("flops>=0.5G", "flops", ">=", Fraction(500_000_000), "flops>=0.5G"),
        ("params<3.2e6", "params", "<", Fraction(3_200_000), "params<3.2e6"),
        ("latency>1.5s", "latency", ">", Fraction(1500), "latency>1.5s"),
        ("latency<0.1", "latency", "<", Fraction(1, 10), "latency<0.1"),
        ("flops<2T", "flops", "<", Fraction(2 * 10**12), "flops<2T"),
        ("params>1.5k", "params", ">", Fraction(1500), "params>1.5k"),
        (" FLOPS >= p4 ", "flops", ">=", Fraction(120_000_000), "flops>=P4"),
        ("Latency <= 12.5 MS", "latency", "<=", Fraction(25, 2), "latency<=12.5 MS"),
    ],
)
def test_parse_constraint(text, quantity, op, bound, shown):
    assert parse_constraint(text, REFERENCES) == Constraint(quantity, op, bound, shown)


@pytest.mark.parametrize(
    "text, references, reason",
    [
        (
            "flops=>P4",
            REFERENCES,
            "expected quantity, operator and value, e.g. 'flops>=P4' or 'latency<=12.5ms' "
            "(operators <=, >=, <, >), got 'flops=>P4'",
        ),
        (
            "",
            REFERENCES,
            "expected quantity, operator and value, e.g. 'flops>=P4' or 'latency<=12.5ms' "
            "(operators <=, >=, <, >), got ''",
        ),
        ("energy<=3", REFERENCES, "unknown quantity 'energy' in 'energy<=3'; use flops, latency or params"),
        ("flops>=P16", REFERENCES, "unknown reference 'P16' in 'flops>=P16'; use a number or one of P4, P8"),
        (
            "flops>=P4",
            {},
            "unknown reference 'P4' in 'flops>=P4'; use a number or (no references were given)",
        ),
        ("latency<=-3", REFERENCES, "unknown value '-3' in 'latency<=-3'; use a number or one of P4, P8"),
        ("flops>=3ms", REFERENCES, "flops takes a count with K, M, G or T, not 'ms', in 'flops>=3ms'"),
        ("params<=2s", REFERENCES, "params takes a count with K, M, G or T, not 's', in 'params<=2s'"),
        (
            "latency<=1e400",
            REFERENCES,
            "latency takes a time below 1e300 ms, not '1e400', in 'latency<=1e400'",
        ),
        (
            "latency<=3M",
            REFERENCES,
            "latency takes a time in ms (the default) or s, not 'M', in 'latency<=3M'",
        ),
    ],
)
def test_bad_constraint(text, references, reason):
    with pytest.raises(InvalidInput) as error:
        parse_constraint(text, references)
    assert (error.value.parameter, error.value.reason) == ("constraint", reason)


# The closest plan, by hand. Plans (FLOPs, params, ms):
# AA (300M, 30K, 5.0), AB (180M, 18K, 3.5), BA (240M, 24K, 4.0), BB (120M, 12K, 2.5).
HAND = [
    [Option("A", 100_000_000, 10_000, 2.0), Option("B", 40_000_000, 4_000, 1.0)],
    [Option("A", 200_000_000, 20_000, 3.0), Option("B", 80_000_000, 8_000, 1.5)],
]


@pytest.mark.parametrize(
    "constraints, reason",
    [
        (  # largest violations: AA latency 25 %, AB flops 28 %, BA flops 4 %, BB flops 52 %
            ["flops>=250M", "latency<=4"],
            "no plan meets flops>=250M and latency<=4; the closest keeps 240.0M FLOPs and 24.0K params "
            "at 4.00 ms (flops 4.0 % under)",
        ),
        (  # AA latency 66.7 %; AB latency 16.7 %, flops 10 %; BA latency 33.3 %; BB flops 40 %
            ["latency<=3", "flops>=200M", "params<=1M"],
            "no plan meets latency<=3, flops>=200M and params<=1M; the closest keeps 180.0M FLOPs and "
            "18.0K params at 3.50 ms (latency 16.7 % over, flops 10.0 % under)",
        ),
        (  # a strict bound met with equality misses by 0 %
            ["latency<2.5"],
            "no plan meets latency<2.5; the closest keeps 120.0M FLOPs and 12.0K params at 2.50 ms "
            "(latency at its bound)",
        ),
    ],
)
def test_closest_plan(constraints, reason):
    with pytest.raises(InvalidInput) as error:
        search(HAND, Totals(0, 0, 0.0), "flops", constraints)
    assert (error.value.parameter, error.value.reason) == ("constraint", reason)


def test_hand_search():
    base = Totals(0, 0, 0.0)
    # Most FLOPs within 4 ms: BA (240M); least latency with at least 200M FLOPs: BA (4.0) beats AA (5.0).
    assert search(HAND, base, "flops", ["latency<=4"]).chosen == Point(240_000_000, 24_000, 4.0, (1, 0))
    assert search(HAND, base, "latency", ["flops>=200M"]).chosen == Point(240_000_000, 24_000, 4.0, (1, 0))
    assert search(HAND, base, "params", ["params<20K"]).chosen == Point(180_000_000, 18_000, 3.5, (0, 1))
    assert search(HAND, base, "latency").front == [  # every plan: each is faster only with fewer FLOPs
        Point(120_000_000, 12_000, 2.5, (1, 1)),
        Point(180_000_000, 18_000, 3.5, (0, 1)),
        Point(240_000_000, 24_000, 4.0, (1, 0)),
        Point(300_000_000, 30_000, 5.0, (0, 0)),
    ]


@pytest.mark.parametrize(
    "call, parameter, reason",
    [
        (
            lambda: search(HAND, Totals(0, 0, 0.0), "speed"),
            "objective",
            "unknown objective 'speed'; use latency (minimised), flops or params (maximised)",
        ),
        (
            lambda: front(HAND, Totals(0, 0, 0.0), {"latency": "lowest"}),
            "directions",
            "map latency, flops or params to 'min' or 'max', got 'latency': 'lowest'",
        ),
        (
            lambda: front([HAND[0], []], Totals(0, 0, 0.0), {}),
            "layers",
            "each layer needs at least one option; layer 1 has none",
        ),
        (
            lambda: front([[Option("A", 1.5, 0, 1.0)]], Totals(0, 0, 0.0), {}),
            "layers",
            "each option must be an Option with whole flops and params and a finite ms; "
            "layer 0 has Option(choice='A', flops=1.5, params=0, ms=1.0, spread=0.0)",
        ),
        (
            lambda: parse_constraint("flops>=X", {"X": (1, 2, 3.0)}),
            "references",
            "X must be Totals with whole flops and params and a finite ms",
        ),
        (
            lambda: front(HAND, Totals(0, 0, float("nan")), {}),
            "base",
            "must be Totals with whole flops and params and a finite ms, got Totals(flops=0, params=0, ms=nan)",
        ),
    ],
)
def test_bad_input(call, parameter, reason):
    with pytest.raises(InvalidInput) as error:
        call()
    assert (error.value.parameter, error.value.reason) == (parameter, reason)


def test_docstring_example():
    assert doctest.testmod(search_module).failed == 0


def test_imports_no_torch():
    code = (
        "import sys, hetcalc.core.search\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'numpy', 'matplotlib')])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
