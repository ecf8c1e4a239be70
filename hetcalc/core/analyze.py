"""A model spec + a variant → a per-layer report under a convention. No torch, no pandas at import."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from . import conventions, kinds
from .cost import saved_pct
from .cost import speedup as eq9_speedup
from .errors import InvalidInput, positive_int, whole_numbers
from .records import Conv, Linear, ModelSpec, Ops
from .zoo import get_model


def P_setting(P):
    """P as given on the command line or in Python → an int, "C" (P = M per layer) or a list of ints."""
    if isinstance(P, str):
        text = P.strip()
        if text.upper() == "C":
            return "C"
        values = whole_numbers("P", text, "4, C or 2,4,8 (one per replaced layer)")
        return values if "," in text else values[0]
    return [positive_int("P", p) for p in P] if isinstance(P, (list, tuple)) else positive_int("P", P)


def candidates(spec: ModelSpec) -> list[int]:
    """Indices of the convolutions a variant may replace: all but the first, except 1×1 ones and those a
    trace marked ``fixed`` (the model-level part of ``hetcalc.core.kinds.kept``)."""
    convs = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Conv)]
    return [i for i in convs[1:] if spec.layers[i].K > 1 and not spec.layers[i].fixed]


def per_layer_P(P, layers: list[Conv]) -> list[int]:
    """P for each candidate layer from an int, "C" (P = M, each layer's input channels) or a list."""
    if P is None:
        raise InvalidInput(
            "P", "the hetconv variant needs P (a number, C for P = M per layer, or one P per layer)"
        )
    P = P_setting(P)
    if P == "C":
        return [layer.M for layer in layers]
    if isinstance(P, list):
        if len(P) != len(layers):
            where = f" ({layers[0].name} … {layers[-1].name})" if layers else ""
            raise InvalidInput("P", f"got {len(P)} values for {len(layers)} replaceable layers{where}")
        return P
    return [P] * len(layers)


def apply_variant(spec: ModelSpec, variant: str = "hetconv", P=None, G=None, se=None) -> ModelSpec:
    """``spec`` with every convolution the variant fits built as ``variant``, plus SE blocks.

    Which layers change is ``hetcalc.core.kinds.kept``: not the first convolution, not 1×1 ones, not
    those a trace marked fixed, and only where the kind fits (P dividing M and N, odd K, …);
    every other layer stays as it is, with the reason in its ``fixed``. A replaced layer keeps
    its M, N, K, stride, output size and bias, and one BatchNorm on its output if it had any;
    ``se`` adds Squeeze-and-Excitation (reduction ``se``) after each. Replacing a layer by its
    own kind (MobileNet's blocks with dwc_pwc) leaves it as it is.
    """
    kind = kinds.variant(variant)
    for parameter, value in (("P", P), ("G", G)):
        if value is not None and kind.parameter != parameter:
            raise InvalidInput(parameter, f"does not apply to the {variant} variant")
    if kind.parameter == "G":
        G = positive_int("G", G) if G is not None else None
        if G is None:
            raise InvalidInput("G", "the gwc_pwc variant needs G, the number of groups")
    se = None if se is None else positive_int("se", se)
    if variant == "standard" and se is None:
        return spec
    convs = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Conv)]
    indices = candidates(spec)
    values = per_layer_P(P, [spec.layers[i] for i in indices]) if variant == "hetconv" else [G] * len(indices)
    setting = dict(zip(indices, values))
    layers = list(spec.layers)
    for i in convs:
        layer, value, target, note = layers[i], setting.get(i), variant, ""
        if variant == "standard":  # SE on every candidate, each layer built as it is
            target, value = layer.kind, layer.setting
        elif variant == "hetconv" and value == 1:  # HetConv with P = 1 is the standard convolution
            target, note = "standard", "P=1: HetConv with P = 1 is the standard convolution"
        reason = kinds.kept(layer.spec, target, value, first=i == convs[0], fixed=layer.fixed)
        if reason:
            layers[i] = layer.with_(fixed=reason)
            continue
        norm = layer.norm if target == layer.kind else layer.norm[-1:]
        layers[i] = layer.with_(
            kind=target,
            P=value if target == "hetconv" else None,
            G=value if target in ("gwc_pwc", "grouped") else None,
            norm=norm,
            se=se,
            fixed=note,
        )
        conventions.costs(layers[i])  # refuse an SE reduction that does not fit this layer, by name
    return spec.with_layers(layers)


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
        "changed": conv and (before.kind, before.setting, before.se) != (after.kind, after.setting, after.se),
        "M": after.M if conv else after.in_features if linear else None,
        "N": after.N if conv else after.out_features if linear else None,
        "K": after.K if conv else None,
        "stride": after.spec.stride if conv else None,
        "D_out": after.spec.H if conv else after.positions if linear else None,
        "W_out": after.spec.W if conv else 1 if linear else None,
        "note": after.fixed if conv else _ops_text(after) if isinstance(after, Ops) else "",
        "P": after.P if conv else None,
        "G": after.G if conv else None,
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
    """FLOPs per operator: recorded convolutions and linear layers, and each operator of the Ops records."""
    totals: dict[str, Fraction] = {}
    for layer in layers:
        if isinstance(layer, Ops):
            parts = list(layer.macs)
        elif isinstance(layer, (Conv, Linear)):
            parts = [
                (
                    "convolution" if isinstance(layer, Conv) else "linear",
                    conventions.measure(layer, convention)[0],
                )
            ]
        else:
            continue
        for op, flops in parts:
            totals[op] = totals.get(op, 0) + flops
    return {op: _number(flops) for op, flops in totals.items() if flops}


@dataclass
class ModelReport:
    """A model under a variant and a convention: totals, reductions against the unmodified model, layers.

    ``notes`` and ``params_unused`` come from a traced model's spec (see ``ModelSpec``);
    ``flops_by_op`` splits ``flops`` by operator;
    a layer row's ``note`` says why a traced layer is never replaced.
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
    notes: list[str] = field(default_factory=list)
    params_unused: int = 0
    flops_by_op: dict = field(default_factory=dict)

    def variant_title(self) -> str:
        """'HetConv P=4', 'HetConv P = M per layer (PC)', 'GWC+PWC G=4', 'DWC+PWC + SE R=8', …"""
        if self.variant == "standard":
            label = "standard (no replacement)"
        elif self.variant == "hetconv" and (self.P == "C" or isinstance(self.P, list)):
            label = "HetConv " + ("P = M per layer (PC)" if self.P == "C" else "P per layer")
        else:
            label = kinds.get(self.variant).title(self.P if self.variant == "hetconv" else self.G)
        return label + (f" + SE R={self.se}" if self.se else "")

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
    model, *, dataset=None, variant: str = "hetconv", P=None, G=None, se=None, convention: str = "paper"
) -> ModelReport:
    """Count ``model`` (a zoo name or a ModelSpec) as ``variant`` under ``convention``.

    Baseline: the same model unmodified (no replacement, no SE), counted the same way.
    """
    conventions.check(convention)
    spec = model if isinstance(model, ModelSpec) else get_model(model, dataset)
    after = apply_variant(spec, variant, P, G, se)
    P = P_setting(P) if variant == "hetconv" else None
    rows = [_layer_row(b, a, convention) for b, a in zip(spec.layers, after.layers)]
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
        notes=list(spec.notes) + _nothing_replaced(variant, rows, P),
        params_unused=spec.params_unused,
        flops_by_op=flops_by_op(after.layers, convention),
    )


def _nothing_replaced(variant: str, rows: list[dict], P=None) -> list[str]:
    """A note where a variant changes nothing: P = 1, no convolution at all, or none it fits."""
    if variant == "standard" or any(r["changed"] for r in rows):
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
