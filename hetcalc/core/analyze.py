"""A model spec + a variant → a per-layer report under a convention. No torch, no pandas at import."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from . import conventions, kinds
from . import plan as plan_module
from .cost import saved_pct
from .cost import speedup as eq9_speedup
from .errors import InvalidInput
from .plan import P_setting, Plan
from .records import Conv, Linear, ModelSpec, Ops
from .zoo import get_model


def apply_variant(
    spec: ModelSpec, variant: str = "hetconv", P=None, G=None, se=None, impl="exact"
) -> ModelSpec:
    """``spec`` with every convolution the variant fits built as ``variant``, plus SE blocks: the records of
    ``plan.apply(spec, plan.derive(spec, variant, P, G, impl=impl, se=se))``."""
    return plan_module.apply(spec, plan_module.derive(spec, variant, P, G, impl=impl, se=se))


def _number(value):
    """An exact count as int where it is whole, else float (the paper convention scales costs)."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def _layer_row(before, after, convention: str) -> dict:
    """One row of the per-layer table; counts stay exact (int or Fraction) here."""
    (flops_before, params_before), (flops_after, params_after) = (
        conventions.measure(before, convention),
        conventions.measure(after, convention),
    )
    conv, linear = isinstance(after, Conv), isinstance(after, Linear)
    kind = after.kind if conv else "linear" if linear else "ops" if isinstance(after, Ops) else "other"
    return {
        "name": after.name,
        "kind": kind,
        "kind_before": before.kind if conv else kind,
        "changed": conv
        and (before.kind, before.setting, before.impl, before.se)
        != (after.kind, after.setting, after.impl, after.se),
        "M": after.M if conv else after.in_features if linear else None,
        "N": after.N if conv else after.out_features if linear else None,
        "K": after.K if conv else None,
        "stride": after.spec.stride if conv else None,
        "D_out": after.spec.H if conv else after.positions if linear else None,
        "W_out": after.spec.W if conv else 1 if linear else None,
        "note": after.fixed if conv else _ops_text(after) if isinstance(after, Ops) else "",
        "P": after.P if conv else None,
        "G": after.G if conv else None,
        "impl": after.impl if conv else None,
        "se": after.se if conv else None,
        "flops_before": flops_before,
        "flops_after": flops_after,
        "params_before": params_before,
        "params_after": params_after,
    }


COUNTS = ("flops_before", "flops_after", "params_before", "params_after")


def _ops_text(layer: Ops) -> str:
    """'matmul 1,024, attention 8,192': the operator families of an Ops record with their MACs."""
    return ", ".join(f"{op} {macs:,}" for op, macs in layer.macs)


def flops_by_op(layers, convention: str) -> dict[str, int | float]:
    """FLOPs per operator family: each record's FLOPs split over the operators that run it.

    A convolution's kind runs its MACs as ``hetcalc.core.kinds.families`` says (HetConv2d exact: its
    K×K taps as a convolution, its 1×1 taps as a matmul); under the paper convention its FLOPs are
    split in the same proportion. Linear layers are ``linear``; an Ops record holds its families.
    """
    totals: dict[str, Fraction] = {}
    for layer in layers:
        if isinstance(layer, Ops):
            parts = list(layer.macs)
        elif isinstance(layer, (Conv, Linear)):
            flops = Fraction(conventions.measure(layer, convention)[0])
            shares = {"linear": 1} if isinstance(layer, Linear) else kinds.families(layer)
            whole = sum(shares.values())
            parts = [(family, flops * share / whole) for family, share in shares.items()] if whole else []
        else:
            continue
        for op, flops in parts:
            totals[op] = totals.get(op, 0) + flops
    return {op: _number(flops) for op, flops in totals.items() if flops}


@dataclass
class ModelReport:
    """A model under a plan (or a variant) and a convention: totals, reductions against the unmodified model.

    ``plan`` is the plan counted, in its JSON form (``hetcalc.core.plan.Plan.to_dict``): give it to
    ``hetcalc.convert`` to build what was counted. From a traced model's spec (see ``ModelSpec``):
    ``uncounted`` and ``data_dependent`` (operator → calls; ``partial`` is True when operators with
    no formula ran, so the totals may miss MACs), ``counted_on``, ``fallback`` and ``params_unused``;
    ``notes`` are sentences rendered from these fields and the layers' reasons. ``flops_by_op``
    splits ``flops`` by operator family; a layer row's ``note`` says why it stays as it is.
    """

    model: str
    dataset: str | None
    input: list[int]
    variant: str
    P: object
    convention: str
    flops: int | float
    params: int | float
    baseline_flops: int | float
    baseline_params: int | float
    flops_reduction_pct: float
    params_reduction_pct: float
    speedup: float
    layers: list[dict] = field(repr=False)
    G: int | None = None
    se: int | None = None
    impl: str | None = None
    notes: list[str] = field(default_factory=list)
    params_unused: int = 0
    flops_by_op: dict = field(default_factory=dict)
    uncounted: dict = field(default_factory=dict)
    data_dependent: dict = field(default_factory=dict)
    partial: bool = False
    counted_on: str = ""
    fallback: str = ""
    plan: dict = field(default_factory=dict, repr=False)

    def variant_title(self) -> str:
        """'HetConv P=4', 'HetConv P = M per layer (PC)', 'GWC+PWC G=4', 'DWC+PWC + SE R=8', 'plan', …"""
        if self.variant == "standard":
            label = "standard (no replacement)"
        elif self.variant == "plan":
            replaced = sum(1 for d in self.plan.get("layers", ()) if d.get("kind"))
            label = f"plan ({replaced} layers replaced)"
        elif self.variant == "hetconv" and (self.P == "C" or isinstance(self.P, list)):
            label = "HetConv " + ("P = M per layer (PC)" if self.P == "C" else "P per layer")
        else:
            label = kinds.get(self.variant).title(self.P if self.variant == "hetconv" else self.G)
        impl = f" ({self.impl})" if self.impl not in (None, "exact") else ""
        return label + impl + (f" + SE R={self.se}" if self.se else "")

    def to_dict(self) -> dict:
        """The JSON object of ``hetcalc model --json``."""
        return {**asdict(self), "unit": conventions.UNIT[self.convention]}

    def frame(self):
        """The layers as a pandas DataFrame (pandas imported here); context in ``.attrs``."""
        import pandas as pd

        df = pd.DataFrame(self.layers)
        df.attrs.update({k: v for k, v in self.to_dict().items() if k != "layers"})
        return df


def analyze(
    model,
    *,
    dataset=None,
    variant: str | None = None,
    P=None,
    G=None,
    se=None,
    impl: str = "exact",
    plan: Plan | None = None,
    convention: str = "paper",
) -> ModelReport:
    """Count ``model`` (a zoo name or a ModelSpec) as ``plan`` builds it, or as ``variant`` (default
    hetconv: the plan ``hetcalc.core.plan.derive`` makes), under ``convention``.

    Baseline: the same model unmodified (no replacement, no SE), counted the same way.
    """
    conventions.check(convention)
    spec = model if isinstance(model, ModelSpec) else get_model(model, dataset)
    if plan is not None:
        given = [name for name, value in (("variant", variant), ("P", P), ("G", G), ("se", se)) if value]
        if given:
            raise InvalidInput(given[0], "give a plan or a variant, not both")
        variant = "plan"
    else:
        variant = variant or "hetconv"
        plan = plan_module.derive(spec, variant, P, G, impl=impl, se=se)
    after = plan_module.apply(spec, plan)
    P = P_setting(P) if variant == "hetconv" else None
    rows = [_layer_row(b, a, convention) for b, a in zip(spec.layers, after.layers)]
    rows = [r for r in rows if r["kind"] != "other" or any(r[key] for key in COUNTS)]
    base_flops, flops, base_params, params = (sum(r[key] for r in rows) for key in COUNTS)
    rows = [{k: _number(v) if k in COUNTS else v for k, v in r.items()} for r in rows]
    return ModelReport(
        model=spec.name,
        dataset=spec.dataset,
        input=list(spec.input),
        variant=variant,
        P=P,
        convention=convention,
        flops=_number(flops),
        params=_number(params),
        baseline_flops=_number(base_flops),
        baseline_params=_number(base_params),
        flops_reduction_pct=saved_pct(flops, base_flops),
        params_reduction_pct=saved_pct(params, base_params),
        speedup=eq9_speedup(Fraction(flops) / base_flops if flops and base_flops else 1),
        layers=rows,
        G=G if variant == "gwc_pwc" else None,
        se=se,
        impl=impl if variant == "hetconv" else None,
        notes=notes(spec) + _nothing_replaced(variant, rows, P),
        params_unused=spec.params_unused,
        flops_by_op=flops_by_op(after.layers, convention),
        uncounted=dict(spec.uncounted),
        data_dependent=dict(spec.data_dependent),
        partial=bool(spec.uncounted),
        counted_on=spec.counted_on,
        fallback=spec.fallback,
        plan=plan.to_dict(),
    )


def notes(spec: ModelSpec) -> list[str]:
    """Sentences for the reader, rendered from what a traced spec's count rests on (its fields)."""
    said = []
    if spec.fallback:
        said.append(f"counted on the CPU: the meta device cannot run it ({spec.fallback})")
    said += list(spec.notes)
    if spec.params_unused:
        said.append(
            f"{spec.params_unused:,} parameters are never read by this forward pass (in the totals, as params_unused)"
        )
    if spec.uncounted:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(spec.uncounted.items()))
        said.append(
            f"Warning: operators with no MAC formula, which may carry multiply-accumulates, are not in the totals: {ops}"
        )
    if spec.data_dependent:
        C, H, W = spec.input
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(spec.data_dependent.items()))
        said.append(
            f"counted on this input (1×{C}×{H}×{W} of zeros): data-dependent operators ({ops}) decide what runs, "
            "so another input may run other operations"
        )
    return said


def _nothing_replaced(variant: str, rows: list[dict], P=None) -> list[str]:
    """A note where a variant changes nothing: P = 1, no convolution at all, or none it fits."""
    if variant in ("standard", "plan") or any(r["changed"] for r in rows):
        return []
    if P == 1:
        return ["nothing changes: HetConv with P = 1 is the standard convolution"]
    if not any(r["kind"] not in ("linear", "ops", "other") for r in rows):
        return [f"nothing to replace: the model has no nn.Conv2d for the {variant} variant"]
    return [f"nothing replaced: the {variant} variant fits none of the convolutions (see each layer's note)"]


def exact_counts(model, dataset=None, variant: str = "standard", **options) -> tuple[int, int]:
    """(multiply-accumulates, parameters) under the exact convention: what fvcore and
    ``sum(p.numel() for p in module.parameters())`` report for ``hetcalc.real.build.build_model``."""
    report = analyze(model, dataset=dataset, variant=variant, convention="exact", **options)
    return report.flops, report.params
