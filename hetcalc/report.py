"""Layer reports: costs of every kind side by side, as plain rows (dicts) ready to render."""

from __future__ import annotations

from fractions import Fraction

from . import cost, kinds
from .spec import ConvSpec


def layer_costs(
    spec: ConvSpec, P: int, G: int | None = None, mid: int | None = None, grouped_sum: bool = False
) -> dict[str, tuple[int | None, cost.Cost]]:
    """(setting, cost) of ``spec`` as each kind: standard, HetConv(P), DWC+PWC, GWC+PWC(G, defaults to P)."""
    settings = {"standard": None, "hetconv": P, "dwc_pwc": None, "gwc_pwc": P if G is None else G}
    if grouped_sum:
        settings["hetconv_grouped_sum"] = P
    return {kind: (value, kinds.layer_cost(spec, kind, value, mid)) for kind, value in settings.items()}


def layer_rows(
    spec: ConvSpec, P: int, G: int | None = None, mid: int | None = None, grouped_sum: bool = False
) -> list[dict]:
    """One row per kind: flops, macs, adds, params, reduction (Eqs. 5, 7, 11), speedup (Eq. 9), latency."""
    costs = layer_costs(spec, P, G, mid, grouped_sum)
    base = costs["standard"][1]
    rows = []
    for name, (value, c) in costs.items():
        kind = kinds.get(name)
        reduction = Fraction(c.flops, base.flops)
        rows.append(
            {
                "kind": name,
                "label": kind.title(value),
                "flops": c.flops,
                "macs": c.macs,
                "adds": c.adds,
                "params": c.params,
                "reduction": float(reduction),
                "params_reduction": float(Fraction(c.params, base.params)),
                "speedup": cost.speedup(reduction),
                "latency": kind.latency,
                "equation": kind.equation,
            }
        )
    return rows


def layer_verdicts(spec: ConvSpec, P: int, G: int | None = None) -> list[dict]:
    """Eqs. 8 and 12 made concrete for this layer's K (ratios of MACs to the standard conv).

    Eq. 12: HetConv with P = G beats GWC+PWC with G groups. Eq. 8: HetConv with P = M beats
    DWC+PWC (N = M). Each entry says whether the strict inequality holds here.
    """
    G = P if G is None else G
    het_g, gwc = cost.hetconv_reduction(G, spec.K), cost.gwc_pwc_reduction(G, spec.K)
    het_m, dwc = cost.hetconv_reduction(spec.M, spec.K), cost.dwc_pwc_reduction(spec.M, spec.K)
    return [
        {
            "equation": "Eq. 12",
            "claim": f"HetConv P={G} < GWC+PWC G={G}",
            "left": float(het_g),
            "right": float(gwc),
            "holds": het_g < gwc,
        },
        {
            "equation": "Eq. 8",
            "claim": f"HetConv P=M={spec.M} < DWC+PWC (N=M)",
            "left": float(het_m),
            "right": float(dwc),
            "holds": het_m < dwc,
        },
    ]


def cheapest(rows: list[dict]) -> dict:
    """The row with the fewest FLOPs, ties broken by lower latency."""
    return min(rows, key=lambda r: (r["flops"], r["latency"]))


def frame(rows: list[dict]):
    """Rows as a pandas DataFrame (pandas is imported here, not at start-up)."""
    import pandas as pd

    return pd.DataFrame(rows)
