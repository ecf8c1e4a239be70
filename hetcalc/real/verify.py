"""Symbolic counts (``hetcalc.core.cost``) against fvcore's trace of real layers, row by row.

Like with like: fvcore counts multiply-accumulates and no bias additions, so a row compares
``Cost.macs`` (not ``Cost.flops``) with fvcore's total, and ``Cost.params`` with fvcore's
parameter count. Row sources are iterables of :class:`Case`; ``layer_grid`` is one, and more
(models) can be added by yielding more cases.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch

from ..core import kinds
from ..core.cost import Cost
from ..core.spec import ConvSpec, output_size
from . import fvcount
from .layers import build_layer


@dataclass(frozen=True)
class Case:
    """One row to check: how to build the module, its input shape and its symbolic cost."""

    kind: str
    config: dict
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]
    symbolic: Cost
    uncounted: tuple[str, ...] = ()  # fvcore handles zeroed (fvcount.NOT_MACS)


def verify_module(
    kind: str, config, module, input_shape, symbolic: Cost, uncounted: tuple[str, ...] = ()
) -> dict:
    """Trace ``module`` (eval mode, no grad) on zeros of ``input_shape`` with fvcore; one row."""
    module.eval()
    macs, by_operator, ignored = fvcount.count(module, (torch.zeros(input_shape),), uncounted)
    params = fvcount.param_count(module)
    return {
        "kind": kind,
        "config": config,
        "symbolic_flops": int(symbolic.macs),
        "fvcore_flops": macs,
        "symbolic_params": int(symbolic.params),
        "fvcore_params": params,
        "match": macs == symbolic.macs and params == symbolic.params,
        "ignored_ops": ignored,
        "unexplained_ops": fvcount.unexplained(ignored),
        "fvcore_by_operator": by_operator,
        "uncounted_handles": list(uncounted),
    }


def run(cases: Iterable[Case], progress: Callable[[Iterable], Iterable] | None = None) -> list[dict]:
    """One row per case, in order; ``progress`` wraps the iteration (e.g. rich.progress.track)."""
    cases = progress(cases) if progress else cases
    return [verify_module(c.kind, c.config, c.build(), c.input_shape, c.symbolic, c.uncounted) for c in cases]


def failures(rows: list[dict]) -> list[dict]:
    """Rows whose counts differ, or where fvcore skipped an operator that may multiply."""
    return [r for r in rows if not r["match"] or r["unexplained_ops"]]


def realisations() -> list[tuple[str, str, str]]:
    """(row kind, kind, HetConv impl) for every real layer: each kind of ``hetcalc.core.kinds`` built as it
    is, plus each HetConv implementation that is not a kind of its own (``fast``)."""
    rows = [(name, name, "exact") for name in kinds.KINDS]
    return rows + [
        (f"hetconv_{impl}", "hetconv", impl)
        for impl in kinds.IMPLS
        if impl != "exact" and f"hetconv_{impl}" not in kinds.KINDS
    ]


def layer_cases(
    M: int, N: int, K: int, stride: int, D_in: int, bias: bool, P: int, G: int, mid: int | None = None
) -> Iterator[Case]:
    """Every real layer (``realisations``) for one layer shape, against the formula of what it runs."""
    D = output_size(D_in, K, stride)
    spec = ConvSpec(M=M, N=N, K=K, H=D, stride=stride, bias=bias)
    shape = (1, M, D_in, D_in)
    base = {"M": M, "N": N, "K": K, "stride": stride, "D_in": D_in, "D_out": D, "bias": bias}
    for row, name, impl in realisations():
        kind = kinds.get(name)
        value = {"P": P, "G": G}.get(kind.parameter)
        width = mid if name == "gwc_pwc" else None
        config = {
            **base,
            **({kind.parameter: value} if kind.parameter else {}),
            **({"mid": mid or M} if name == "gwc_pwc" else {}),
        }
        runs = kinds.IMPLS[impl] if name == "hetconv" else name
        if kinds.ineligible(spec, name, value, width):
            continue
        yield Case(
            row,
            config,
            lambda name=name, value=value, impl=impl, width=width: build_layer(
                name, M, N, K, value, stride=stride, bias=bias, impl=impl, mid=width
            ),
            shape,
            kinds.layer_cost(spec, runs, value, width),
        )


def layer_grid(quick: bool = False) -> Iterator[Case]:
    """Every kind over M, N ∈ {8, 16}, K ∈ {1, 3, 5, 7}, stride 1/2, D_in 8/15, bias off/on.

    P (HetConv) runs over 2, 4, 8 and G (GWC+PWC) over 2, 4 with mid = M or 2M, in turn.
    ``quick``: M = 8, N = 16 only, and D_in, bias in turn rather than in every combination.
    """
    shapes = [(8, 16)] if quick else [(8, 16), (16, 8)]
    if quick:
        grid = [
            (M, N, K, s, (8, 15)[i % 2], bool(i // 2 % 2))
            for i, ((M, N), K, s) in enumerate(itertools.product(shapes, (1, 3, 5, 7), (1, 2)))
        ]
    else:
        grid = list(itertools.product(shapes, (1, 3, 5, 7), (1, 2), (8, 15), (False, True)))
        grid = [(M, N, K, s, D, b) for (M, N), K, s, D, b in grid]
    for i, (M, N, K, s, D_in, bias) in enumerate(grid):
        yield from layer_cases(
            M, N, K, s, D_in, bias, P=(2, 4, 8)[i % 3], G=(2, 4)[i // 2 % 2], mid=(None, 2 * M)[i // 3 % 2]
        )


# Zoo models as real torch modules: (name, variant, options). CIFAR-sized, so tracing stays quick.
MODEL_GRID = [
    ("resnet56", "standard", {}),
    ("resnet56", "hetconv", {"P": 4}),
    ("vgg16", "standard", {}),
    ("vgg16", "hetconv", {"P": 8}),
    ("vgg16", "gwc_pwc", {"G": 4}),
    ("vgg16", "dwc_pwc", {}),
    ("vgg16", "hetconv", {"P": "C"}),
    ("mobilenet", "standard", {}),
    ("mobilenet", "hetconv", {"P": 4}),
]


def model_cases(quick: bool = False) -> Iterator[Case]:
    """Zoo models, built from the same records, against the ``exact`` convention.

    The exact convention counts convolution and linear MACs only, so BatchNorm and pooling
    handles are zeroed in fvcore (``fvcount.NOT_MACS``); ReLU, max-pooling, residual additions
    and option-A shortcuts (slicing, padding) are operators fvcore skips, each listed as free.
    """
    from ..core.analyze import exact_counts
    from ..core.zoo import get_model
    from .build import build_model

    for name, variant, options in MODEL_GRID[:3] if quick else MODEL_GRID:
        spec = get_model(name)
        macs, params = exact_counts(name, variant=variant, **options)
        yield Case(
            variant,
            {"model": name, "dataset": spec.dataset, **options},
            lambda name=name, variant=variant, options=options: build_model(name, variant=variant, **options),
            (1, *spec.input),
            Cost(macs, 0, params),
            tuple(fvcount.NOT_MACS),
        )
