"""An exact per-layer design search: one option per replaceable layer, the best plan under constraints.

Each replaceable layer offers options (standard, HetConv P=4, GWC+PWC G=2, …), each with exact
integer ``flops`` and ``params`` and a predicted time ``ms`` with its ``spread``. A plan picks one
option per layer; its totals are ``base`` (what is never replaced) plus its options' sums, so
every total is additive. ``front`` is the exact Pareto front of all plans, ``search`` the exact
best plan under constraints such as ``flops>=P4`` or ``latency<=12.5ms``.

Latency is added exactly: every float is a dyadic rational, so sums are kept as integers over
one power of two and compared without rounding or epsilon; the order of summation cannot
matter. A plan's ``ms`` is the float nearest that exact sum, which is what ``math.fsum`` of its
parts gives (``plan_totals`` builds reference totals the same way).

>>> layers = [[Option("standard", 100, 10, 2.0), Option("P4", 40, 4, 1.5)],
...           [Option("standard", 200, 20, 3.0), Option("P4", 80, 8, 1.0)]]
>>> base = Totals(flops=5, params=1, ms=0.5)
>>> refs = {"P4": plan_totals(layers, base, (1, 1))}
>>> search(layers, base, "flops", ["latency<=3.5", "params>=P4"], refs).chosen
Point(flops=185, params=19, ms=3.5, picks=(0, 1))
"""

from __future__ import annotations

import math
import operator
import re
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from fractions import Fraction

from .errors import InvalidInput

QUANTITIES = ("latency", "flops", "params")
OBJECTIVES = {"latency": "min", "flops": "max", "params": "max"}
_OPS = {"<=": operator.le, ">=": operator.ge, "<": operator.lt, ">": operator.gt}
_SI = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}
_TIME = {"": 1, "ms": 1, "s": 1000}  # to milliseconds
# What each objective ranks by, best first: the objective, then the tie-breaks (latency lower,
# FLOPs higher, params lower); sign -1 turns "higher is better" into "lower is better".
_RANKING = {
    "latency": (("latency", 1), ("flops", -1), ("params", 1)),
    "flops": (("flops", -1), ("latency", 1), ("params", 1)),
    "params": (("params", -1), ("latency", 1), ("flops", -1)),
}


@dataclass(frozen=True)
class Option:
    """One way to build a layer: the caller's ``choice`` with its exact cost and predicted time (ms ± spread).

    ``spread`` travels with the option for the caller to show; the search ranks by ``ms`` alone.
    """

    choice: object
    flops: int
    params: int
    ms: float
    spread: float = 0.0


@dataclass(frozen=True)
class Totals:
    """A plan's (or the fixed part's) FLOPs, parameters and time in ms."""

    flops: int
    params: int
    ms: float


@dataclass(frozen=True)
class Point:
    """A plan's totals and ``picks``: the index of the chosen option in each layer's list."""

    flops: int
    params: int
    ms: float
    picks: tuple[int, ...]


@dataclass(frozen=True)
class Constraint:
    """``quantity op bound``: latency in ms, flops and params as counts; ``bound`` is exact."""

    quantity: str
    op: str
    bound: Fraction
    text: str

    def met(self, value) -> bool:
        return _OPS[self.op](value, self.bound)

    def violation(self, value) -> Fraction:
        """How far ``value`` misses the bound, relative to it (absolute where the bound is 0); 0 if it meets it."""
        miss = Fraction(value) - self.bound if self.op in ("<=", "<") else self.bound - Fraction(value)
        return max(miss, Fraction(0)) / (abs(self.bound) or 1)


@dataclass(frozen=True)
class Search:
    """The best plan under the query, and the latency (min) against FLOPs (max) front, by latency."""

    chosen: Point
    front: list[Point]


# Input


def _check(layers, base) -> None:
    if not isinstance(base, Totals) or not _exact(base.flops, base.params, base.ms):
        raise InvalidInput(
            "base", f"must be Totals with whole flops and params and a finite ms, got {base!r}"
        )
    for i, layer in enumerate(layers):
        if not layer:
            raise InvalidInput("layers", f"each layer needs at least one option; layer {i} has none")
        for option in layer:
            if not isinstance(option, Option) or not _exact(option.flops, option.params, option.ms):
                raise InvalidInput(
                    "layers",
                    f"each option must be an Option with whole flops and params and a finite ms; layer {i} has {option!r}",
                )


def _exact(flops, params, ms) -> bool:
    whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (flops, params))
    return whole and isinstance(ms, (int, float)) and math.isfinite(ms)


def _table(layers, base):
    """(scale, start, options): every quantity as whole numbers, ms in ticks of 1/scale ms.

    ``scale`` is the largest denominator of any ms (a power of two), so every tick count is
    exact; ``start`` maps each quantity to the base's value, ``options`` gives each layer's values.
    """
    scale = max(ms.as_integer_ratio()[1] for ms in [base.ms, *(o.ms for layer in layers for o in layer)])
    ticks = lambda ms: ms.as_integer_ratio()[0] * (scale // ms.as_integer_ratio()[1])
    start = {"latency": ticks(base.ms), "flops": base.flops, "params": base.params}
    options = [
        {
            "latency": [ticks(o.ms) for o in layer],
            "flops": [o.flops for o in layer],
            "params": [o.params for o in layer],
        }
        for layer in layers
    ]
    return scale, start, options


def plan_totals(layers, base: Totals, picks) -> Totals:
    """The totals of the plan that takes option ``picks[i]`` in layer ``i`` (ms: the float nearest the exact sum)."""
    chosen = [layer[j] for layer, j in zip(layers, picks, strict=True)]
    return Totals(
        base.flops + sum(o.flops for o in chosen),
        base.params + sum(o.params for o in chosen),
        math.fsum([base.ms, *(o.ms for o in chosen)]),
    )


# The dynamic programme


def _survivors(idx, lead, rest) -> list[int]:
    """The candidates in ``idx`` (given in order of picks) that no other candidate beats.

    Every column is minimised. ``lead`` columns order candidates lexicographically (one column
    or a ranking); ``rest`` holds more columns. q beats p if q is no worse on the lead key and on
    every other column and, where equal on all of them, comes first in ``idx``. After sorting by
    (lead, rest, order of picks), p is beaten exactly when an earlier kept candidate is no worse
    on ``rest``: a running minimum for one column, a staircase for two, a scan for more.
    """
    order = list(idx)
    for column in reversed(lead + rest):
        order.sort(key=column.__getitem__)  # stable: equal keys keep the order of picks
    if not rest:
        return order[:1]
    if len(rest) == 1:
        (ys,), kept, best = rest, [], None
        for i in order:
            if best is None or ys[i] < best:
                kept.append(i)
                best = ys[i]
        return kept
    if len(rest) > 2:
        kept = []
        for i in order:
            if not any(all(column[k] <= column[i] for column in rest) for k in kept):
                kept.append(i)
        return kept
    (ys, zs), kept = rest, []
    stair_y, stair_z = [], []  # the kept points no other kept point beats in (y, z): y rising, z falling
    for i in order:
        y, z = ys[i], zs[i]
        below = bisect_right(stair_y, y)
        if below and stair_z[below - 1] <= z:
            continue
        kept.append(i)
        start = end = bisect_left(stair_y, y)
        while end < len(stair_z) and stair_z[end] >= z:
            end += 1
        stair_y[start:end] = [y]
        stair_z[start:end] = [z]
    return kept


def _programme(start, options, lead, rest, floor=None, reachable=None) -> list[tuple]:
    """The plans no other plan beats, merging one layer at a time: [(flops, params, ticks, picks)].

    ``lead``, ``rest``: (quantity, sign) pairs, minimised after multiplying by the sign (see
    ``_survivors``). After layer i is merged, a rest column is clamped from below at
    ``floor(i, quantity, sign)`` (None: not clamped) and only the candidates in
    ``reachable(i, values)`` are kept (default: all); ``values`` maps each quantity to the
    candidates' totals so far. First each layer loses the options another of its options beats:
    their plans are beaten by the same plans with the better option.
    """
    useful = []
    for layer in options:
        columns = lambda pairs: [_signed(layer[q], sign) for q, sign in pairs]
        useful.append(sorted(_survivors(range(len(layer["flops"])), columns(lead), columns(rest))))
    values, history = {q: [v] for q, v in start.items()}, []
    for i, (layer, kept_options) in enumerate(zip(options, useful)):
        values = {q: [a + layer[q][j] for a in values[q] for j in kept_options] for q in QUANTITIES}
        idx = range(len(values["flops"])) if reachable is None else reachable(i, values)
        lead_columns = [_signed(values[q], sign) for q, sign in lead]
        rest_columns = []
        for q, sign in rest:
            column, least = _signed(values[q], sign), floor and floor(i, q, sign)
            rest_columns.append(column if least is None else [max(v, least) for v in column])
        # candidate c extends survivor c // m with option kept_options[c % m]
        kept = sorted(_survivors(idx, lead_columns, rest_columns))
        history.append((kept_options, kept))
        values = {q: [column[c] for c in kept] for q, column in values.items()}
    plans = []
    for n in range(len(values["flops"])):
        picks, c = [], n
        for kept_options, kept in reversed(history):
            c, j = divmod(kept[c], len(kept_options))
            picks.append(kept_options[j])
        plans.append((values["flops"][n], values["params"][n], values["latency"][n], tuple(reversed(picks))))
    return plans


def _signed(column: list[int], sign: int) -> list[int]:
    return column if sign == 1 else [-v for v in column]


def _value(plan, quantity):
    return {"flops": plan[0], "params": plan[1], "latency": plan[2]}[quantity]


def front(layers, base: Totals, directions) -> list[Point]:
    """The exact Pareto front of all plans (one option per layer) under ``directions``.

    ``directions`` maps ``"latency"``, ``"flops"``, ``"params"`` to ``"min"`` or ``"max"``;
    quantities not named are not compared. A plan is dropped when another is no worse on every
    named quantity and better on one; of plans equal on all of them the one with the
    lexicographically smallest picks is kept. The points come sorted by the named quantities in
    the order latency, flops, params, each best first.

    Layers are merged one at a time, keeping only the prefixes no other prefix dominates. This is
    exact because totals are additive: if prefix q dominates prefix p, then q + s dominates p + s
    for every completion s, so no plan built on p can be on the front. Each merge sorts the
    candidates and sweeps them (two quantities) or keeps a staircase of the other two (three).
    """
    directions = dict(directions)
    for quantity, direction in directions.items():
        if quantity not in QUANTITIES or direction not in ("min", "max"):
            raise InvalidInput(
                "directions",
                f"map latency, flops or params to 'min' or 'max', got {quantity!r}: {direction!r}",
            )
    _check(layers, base)
    scale, start, options = _table(layers, base)
    named = [(q, 1 if directions[q] == "min" else -1) for q in QUANTITIES if q in directions]
    plans = _programme(start, options, named[:1], named[1:])
    plans.sort(key=lambda plan: [sign * _value(plan, q) for q, sign in named])  # stable: then by picks
    return [_point(plan, scale) for plan in plans]


def _point(plan, scale: int) -> Point:
    flops, params, ticks, picks = plan
    return Point(flops, params, ticks / scale, picks)  # int / int: the float nearest the exact sum


# Constraints

_FORM = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|<|>)\s*(\S.*?)\s*")
_NUMBER = re.compile(r"((?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)")
_NAME = re.compile(r"[A-Za-z_][\w.+-]*")


def parse_constraint(text: str, references) -> Constraint:
    """``"flops>=P4"``, ``"latency<=12.5ms"``, ``"params<3.2e6"`` → a :class:`Constraint`.

    The quantity is flops, latency or params; the operator <=, >=, < or >; the value either a
    name in ``references`` (a dict of :class:`Totals`, names compared case-insensitively) whose
    same quantity is the bound, or a number: counts with an optional K, M, G or T suffix, times
    in ms (the default) or s.
    """
    form = _FORM.fullmatch(str(text))
    if form is None:
        raise InvalidInput(
            "constraint",
            f"expected quantity, operator and value, e.g. 'flops>=P4' or 'latency<=12.5ms' "
            f"(operators <=, >=, <, >), got {text!r}",
        )
    quantity, op, value = form[1].lower(), form[2], form[3]
    if quantity not in QUANTITIES:
        raise InvalidInput(
            "constraint", f"unknown quantity {form[1]!r} in {text!r}; use flops, latency or params"
        )
    names = {name.lower(): name for name in references or {}}
    if value.lower() in names:
        name = names[value.lower()]
        totals = references[name]
        if not isinstance(totals, Totals) or not _exact(totals.flops, totals.params, totals.ms):
            raise InvalidInput(
                "references", f"{name} must be Totals with whole flops and params and a finite ms"
            )
        bound = Fraction(totals.ms if quantity == "latency" else getattr(totals, quantity))
        return Constraint(quantity, op, bound, f"{quantity}{op}{name}")
    number = _NUMBER.fullmatch(value)
    if number is None:
        known = f"one of {', '.join(references)}" if references else "(no references were given)"
        what = "reference" if _NAME.fullmatch(value) else "value"
        raise InvalidInput("constraint", f"unknown {what} {value!r} in {text!r}; use a number or {known}")
    units = _TIME if quantity == "latency" else _SI
    unit = number[2].lower()
    if unit not in units:
        valid = "a time in ms (the default) or s" if quantity == "latency" else "a count with K, M, G or T"
        raise InvalidInput("constraint", f"{quantity} takes {valid}, not {number[2]!r}, in {text!r}")
    bound = Fraction(number[1]) * units[unit]
    if quantity == "latency" and bound > 1e300:
        raise InvalidInput("constraint", f"latency takes a time below 1e300 ms, not {value!r}, in {text!r}")
    return Constraint(quantity, op, bound, f"{quantity}{op}{value}")


# The search


def _last(bound: Fraction, strict: bool, scale: int | None = None) -> int:
    """The largest whole v with v <= bound (v < bound if ``strict``); with ``scale``, the largest
    v whose float nearest v / scale is."""
    if scale is None:
        return math.ceil(bound) - 1 if strict else math.floor(bound)
    f = float(bound)
    if f > bound or (strict and f == bound):
        f = math.nextafter(f, -math.inf)  # now the largest float allowed
    # v / scale rounds to f or below exactly up to the midpoint with the next float (ties to even)
    v = math.floor((Fraction(f) + Fraction(math.nextafter(f, math.inf))) / 2 * scale)
    return v if v / scale <= f else v - 1


def _limits(bounds, scale: int) -> dict[str, list]:
    """Each constrained quantity's [lowest, highest] whole total (ms: in ticks) that meets ``bounds``; None: no limit."""
    limits = {}
    for c in bounds:
        limit = limits.setdefault(c.quantity, [None, None])
        strict, ticks = c.op in ("<", ">"), scale if c.quantity == "latency" else None
        if c.op in ("<=", "<"):
            highest = _last(c.bound, strict, ticks)
            limit[1] = highest if limit[1] is None else min(limit[1], highest)
        else:
            lowest = -_last(-c.bound, strict, ticks)  # rounding to nearest is symmetric about 0
            limit[0] = lowest if limit[0] is None else max(limit[0], lowest)
    return limits


def search(layers, base: Totals, objective: str, constraints=(), references=None) -> Search:
    """The exact best plan for ``objective`` among those meeting every constraint.

    ``objective``: ``"latency"`` is minimised; ``"flops"`` and ``"params"`` are maximised (the
    capacity a plan keeps under a budget, e.g. the most FLOPs with ``latency<=P8``). Ties go to
    lower latency, then higher FLOPs, then fewer params, then the lexicographically smallest
    picks. ``constraints``: texts for ``parse_constraint`` (against ``references``) or
    :class:`Constraint`. Latency constraints compare a plan's ``ms`` (the float nearest its exact
    sum) with the bound.

    The programme ranks prefixes by the objective and its tie-breaks and compares them on each
    bound in the direction it rewards (<=, < → lower; >=, > → higher), clamped where the bound
    is already safe: with the remaining layers adding between r_lo and r_hi, a prefix at or
    below hi − r_hi meets ``<= hi`` whatever follows, so all such prefixes count as equal on it
    (likewise lo − r_lo for ``>= lo``). A quantity bounded both ways gets both columns: between
    the two safe points it is compared for equality, outside them in one direction. A prefix
    p that another prefix q is no worse than on all of these is dropped: for every completion s,
    q + s meets each bound p + s meets (sums keep ≤, and so does rounding to the nearest float)
    and ranks no worse, so p's plans can never be the unique best. Prefixes that cannot meet a
    bound whatever follows are dropped too.

    No plan meets the constraints → InvalidInput naming the closest plan: the one whose largest
    violation, relative to its bound, is smallest (ties: the objective's order). The same
    clamped comparison keeps it: a prefix no worse on each clamped column misses no bound by more.
    """
    if objective not in OBJECTIVES:
        raise InvalidInput(
            "objective",
            f"unknown objective {objective!r}; use latency (minimised), flops or params (maximised)",
        )
    bounds = [c if isinstance(c, Constraint) else parse_constraint(c, references) for c in constraints]
    _check(layers, base)
    scale, start, options = _table(layers, base)
    limits, ranking = _limits(bounds, scale), _RANKING[objective]
    low = {q: [0] for q in QUANTITIES}  # low[q][k]: the least that layers k, k + 1, … can add to q
    high = {q: [0] for q in QUANTITIES}
    for layer in reversed(options):
        for q in QUANTITIES:
            low[q].insert(0, low[q][0] + min(layer[q]))
            high[q].insert(0, high[q][0] + max(layer[q]))

    rest = [(q, 1) for q, (_, highest) in limits.items() if highest is not None and ranking[0] != (q, 1)]
    rest += [(q, -1) for q, (lowest, _) in limits.items() if lowest is not None and ranking[0] != (q, -1)]

    def floor(i, q, sign):  # at or below it (signed), the bound holds whatever layers i + 1, … add
        return limits[q][1] - high[q][i + 1] if sign == 1 else low[q][i + 1] - limits[q][0]

    def reachable(i, values):
        idx = range(len(values["flops"]))
        for q, (lowest, highest) in limits.items():
            column = values[q]
            if highest is not None:
                idx = [c for c in idx if column[c] + low[q][i + 1] <= highest]
            if lowest is not None:
                idx = [c for c in idx if column[c] + high[q][i + 1] >= lowest]
        return idx

    rank = lambda plan: [sign * _value(plan, q) for q, sign in ranking]
    plans = _programme(start, options, ranking, rest, floor, reachable)
    if not plans:
        shown = lambda point, q: {"latency": point.ms, "flops": point.flops, "params": point.params}[q]
        misses = lambda point: [c.violation(shown(point, c.quantity)) for c in bounds]
        points = [
            (_point(plan, scale), rank(plan)) for plan in _programme(start, options, ranking, rest, floor)
        ]
        closest = min(points, key=lambda pair: (max(misses(pair[0])), pair[1]))[0]
        missed = [(c, v) for c, v in zip(bounds, misses(closest)) if not c.met(shown(closest, c.quantity))]
        raise InvalidInput(
            "constraint",
            f"no plan meets {_joined([c.text for c in bounds])}; the closest keeps {_si(closest.flops)} FLOPs "
            f"and {_si(closest.params)} params at {_ms(closest.ms)} ms "
            f"({', '.join(_miss(c, v) for c, v in missed)})",
        )
    chosen = min(plans, key=rank)  # the one plan left: the clamped columns are equal on feasible plans
    return Search(_point(chosen, scale), front(layers, base, {"latency": "min", "flops": "max"}))


def _joined(texts: list[str]) -> str:
    return texts[0] if len(texts) == 1 else ", ".join(texts[:-1]) + " and " + texts[-1]


def _miss(c: Constraint, violation: Fraction) -> str:
    if not violation:
        return f"{c.quantity} at its bound"
    if c.bound:
        amount = f"{float(100 * violation):.1f} %"
    else:
        amount = f"{_ms(float(violation))} ms" if c.quantity == "latency" else _si(violation)
    return f"{c.quantity} {amount} {'over' if c.op in ('<=', '<') else 'under'}"


def _si(value) -> str:
    """101234567 → '101.2M' (one decimal, decimal prefixes)."""
    for scale, prefix in ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "K")):
        if abs(value) >= scale:
            return f"{float(value / scale):.1f}{prefix}"
    return f"{float(value):g}"


def _ms(ms: float) -> str:
    """52.34 → '52.3', 4.123 → '4.12', 0.0523 → '0.05': three digits where the whole part allows."""
    return f"{ms:.{max(1, 3 - len(str(int(abs(ms)))))}f}"
