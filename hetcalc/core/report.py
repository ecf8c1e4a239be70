"""Layer reports: costs of every kind side by side, as plain rows (dicts) ready to render."""

from __future__ import annotations

from fractions import Fraction

from . import cost, kinds
from .spec import ConvSpec


def layer_rows(
    spec: ConvSpec,
    P,
    G=None,
    mid: int | None = None,
    grouped_sum: bool = False,
    *,
    train: bool = False,
    first: bool = False,
    batch: int = 1,
    D_in: int | None = None,
    dtype: str = "float32",
) -> list[dict]:
    """One row per kind and setting: flops, macs, adds, params, reduction (Eqs. 5, 7, 11), speedup (Eq. 9),
    latency. ``P`` and ``G`` may be lists (a sweep): one HetConv row per P, one GWC+PWC row per G
    (G defaults to P). Counts are for ``batch`` images.

    Every row also holds ``activations`` (output elements of its contractions), ``bytes`` (what the layer reads
    from a ``D_in`` × ``D_in`` input, default D_o, and writes, in ``dtype``) and ``intensity`` (MACs per byte).
    ``train``: ``flops`` is a training step's, ``forward_flops`` + ``backward_flops`` (input and weight
    gradients, bias gradients' additions; no input gradient for the ``first`` layer of a network).
    """
    Ps = list(P) if isinstance(P, (list, tuple)) else [P]
    Gs = Ps if G is None else list(G) if isinstance(G, (list, tuple)) else [G]
    settings = [("standard", None), *(("hetconv", p) for p in Ps), ("dwc_pwc", None)]
    settings += [("gwc_pwc", g) for g in Gs]
    settings += [("hetconv_grouped_sum", p) for p in Ps] if grouped_sum else []
    inputs = spec.M * (D_in or spec.H) * (D_in or spec.W)
    size = cost.DTYPES[dtype]
    base = None
    rows = []
    for name, value in settings:
        kind = kinds.get(name)
        stages = kinds.layer_stages(spec, name, value, mid)
        c = cost.total(stages)
        backward = cost.backward(stages, input_grad=not first) if train else cost.ZERO
        step = batch * (c.flops + backward.flops)
        base = base or (step, c.params)
        moved = cost.traffic(stages, inputs, batch) * size
        reduction = Fraction(step, base[0])
        rows.append(
            {
                "kind": name,
                "label": kind.title(value),
                "P": value if kind.parameter == "P" else None,
                "G": value if kind.parameter == "G" else None,
                "flops": step,
                "macs": batch * c.macs,
                "adds": batch * c.adds,
                "params": c.params,
                "reduction": float(reduction),
                "params_reduction": float(Fraction(c.params, base[1])),
                "speedup": cost.speedup(reduction),
                "latency": kind.latency,
                "equation": kind.equation,
                "activations": batch * cost.activations(stages),
                "bytes": moved,
                "intensity": float(Fraction(batch * c.macs, moved)),
                **(
                    {"forward_flops": batch * c.flops, "backward_flops": batch * backward.flops}
                    if train
                    else {}
                ),
            }
        )
    return rows


def layer_verdicts(spec: ConvSpec, rows: list[dict], **options) -> list[dict]:
    """Eqs. 12 and 8 for this layer, comparing the reductions its table (``layer_rows``, with ``options``) shows.

    Eq. 12: HetConv with P = G beats GWC+PWC with G groups, for each P the table shows with the
    same G (or its one P and one G, saying they differ). Eq. 8: HetConv with P = M beats the
    table's DWC+PWC. Each entry says whether the strict inequality holds here, and in ``note``
    where this layer departs from the equation's assumptions (P ≠ G, M ≠ N).
    """
    het = {r["P"]: r for r in rows if r["kind"] == "hetconv"}
    gwc = {r["G"]: r for r in rows if r["kind"] == "gwc_pwc"}
    pairs = [(p, p) for p in het if p in gwc]
    if not pairs and len(het) == len(gwc) == 1:
        pairs = [(next(iter(het)), next(iter(gwc)))]
    verdicts = []
    for p, g in pairs:
        notes = [f"Eq. 12 takes P = G; here P={p}, G={g}"] if p != g else []
        if spec.M != spec.N:
            notes.append("groupwise M → M, then pointwise M → N; Eq. 11 assumes M = N")
        verdicts.append(_verdict("Eq. 12", f"HetConv P={p} < GWC+PWC G={g}", het[p], gwc[g], notes))
    dwc = next(r for r in rows if r["kind"] == "dwc_pwc")
    notes = [f"Eq. 8 takes N = M; here N={spec.N}"] if spec.N != spec.M else []
    if kinds.ineligible(spec, "hetconv", spec.M):
        left = {"reduction": float(cost.hetconv_reduction(spec.M, spec.K))}
        notes.append(f"Eq. 5's value: {kinds.ineligible(spec, 'hetconv', spec.M)}")
    else:
        left = layer_rows(spec, spec.M, **options)[1]
    verdicts.append(_verdict("Eq. 8", f"HetConv P=M={spec.M} < DWC+PWC", left, dwc, notes))
    return verdicts


def _verdict(equation: str, claim: str, left: dict, right: dict, notes: list[str]) -> dict:
    return {
        "equation": equation,
        "claim": claim,
        "left": left["reduction"],
        "right": right["reduction"],
        "holds": left["reduction"] < right["reduction"],
        "note": "; ".join(notes),
    }


def cheapest(rows: list[dict]) -> dict:
    """The row with the fewest FLOPs, ties broken by lower latency."""
    return min(rows, key=lambda r: (r["flops"], r["latency"]))


def frame(rows: list[dict]):
    """Rows as a pandas DataFrame (pandas is imported here, not at start-up)."""
    import pandas as pd

    return pd.DataFrame(rows)
