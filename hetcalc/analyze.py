"""A model spec + a variant → a per-layer report under a convention. No torch, no pandas at import."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from fractions import Fraction

from . import conventions
from .cost import speedup as eq9_speedup
from .errors import InvalidInput, dividing, positive_int
from .zoo import Conv, Linear, ModelSpec, get_model

VARIANTS = ("standard", "hetconv", "gwc_pwc", "dwc_pwc")


def replaced(spec: ModelSpec) -> list[int]:
    """Indices of the layers a variant replaces: every convolution but the first, except 1×1 ones
    (with K = 1 HetConv changes nothing, and a 1×1 conv has no K×K part to split) and those a
    traced model marks ``fixed`` (grouped, dilated, non-square, …)."""
    convs = [i for i, layer in enumerate(spec.layers) if isinstance(layer, Conv)]
    return [i for i in convs[1:] if spec.layers[i].K > 1 and not spec.layers[i].fixed]


def parse_P(P):
    """P as given on the command line or in Python → an int, "C" (P = M per layer) or a list of ints."""
    if isinstance(P, str):
        text = P.strip()
        if text.upper() == "C":
            return "C"
        try:
            return [int(part) for part in text.split(",")] if "," in text else int(text)
        except ValueError:
            raise InvalidInput("--P", f"must be a number, C, or a comma-separated list of numbers, got {text!r}") from None
    return list(P) if isinstance(P, (list, tuple)) else P


def per_layer_P(P, layers: list[Conv]) -> list[int]:
    """P for each replaced layer from an int, "C" (P = M, each layer's input channels) or a list."""
    if P is None:
        raise InvalidInput("--P", "the hetconv variant needs P (a number, C for P = M per layer, or one P per layer)")
    P = parse_P(P)
    if P == "C":
        return [layer.M for layer in layers]
    if isinstance(P, list):
        if len(P) != len(layers):
            where = f" ({layers[0].name} … {layers[-1].name})" if layers else ""
            raise InvalidInput("--P", f"got {len(P)} values for {len(layers)} replaced layers{where}")
        return [positive_int("--P", p) for p in P]
    return [positive_int("--P", P)] * len(layers)


def apply_variant(spec: ModelSpec, variant: str = "hetconv", P=None, G=None, se=None) -> ModelSpec:
    """``spec`` with every replaceable layer (see ``replaced``) built as ``variant``, plus SE blocks.

    A replaced layer keeps its M, N, K, stride, output size and bias, and one BatchNorm on its
    output if it had any; ``se`` adds Squeeze-and-Excitation (reduction ``se``) after each.
    Replacing a layer by its own kind (MobileNet's blocks with dwc_pwc) leaves it as it is.
    """
    if variant not in VARIANTS:
        raise InvalidInput("--variant", f"must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant != "hetconv" and P is not None:
        raise InvalidInput("--P", f"applies to HetConv only, not to the {variant} variant")
    if variant != "gwc_pwc" and G is not None:
        raise InvalidInput("--gwc", f"sets the groups of GWC+PWC, not of the {variant} variant")
    if variant == "gwc_pwc" and G is None:
        raise InvalidInput("--gwc", "the gwc_pwc variant needs G, the number of groups")
    se = None if se is None else positive_int("--se", se)
    indices = replaced(spec)
    Ps = per_layer_P(P, [spec.layers[i] for i in indices]) if variant == "hetconv" else [None] * len(indices)
    layers = list(spec.layers)
    for i, p in zip(indices, Ps):
        layer = layers[i]
        kind = layer.kind if variant == "standard" else variant
        norm = layer.norm if kind == layer.kind else layer.norm[-1:]
        if variant == "gwc_pwc":
            G = dividing("--gwc", G, layer.M, f"the input channels M of {layer.name}")
        layers[i] = new = layer.with_(kind=kind, P=p, G=G if kind == "gwc_pwc" else None, norm=norm, se=se)
        new.conv(), new.se_cost()  # refuse a P, G or SE reduction that does not fit this layer, by name
    return spec.with_layers(layers)


def _number(value):
    """An exact count as int where it is whole, else float (the paper convention scales costs)."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else float(value)


def _percent_saved(value, base) -> float:
    return float(100 * (1 - Fraction(value) / Fraction(base)))


def _layer_row(before, after, convention: str) -> dict:
    """One row of the per-layer table; counts stay exact (int or Fraction) here."""
    (flops_before, params_before), (flops_after, params_after) = (
        conventions.measure(before, convention), conventions.measure(after, convention))
    conv, linear = isinstance(after, Conv), isinstance(after, Linear)
    kind = after.kind if conv else "linear" if linear else "other"
    return {
        "name": after.name,
        "kind": kind,
        "kind_before": before.kind if conv else kind,
        "changed": before != after,
        "M": after.M if conv else after.in_features if linear else None,
        "N": after.N if conv else after.out_features if linear else None,
        "K": after.K if conv else None,
        "stride": after.spec.stride if conv else None,
        "D_out": after.spec.H if conv else after.positions if linear else None,
        "W_out": after.spec.W if conv else 1 if linear else None,
        "note": after.fixed if conv else "",
        "P": after.P if conv else None,
        "G": after.G if conv else None,
        "se": after.se if conv else None,
        "flops_before": flops_before,
        "flops_after": flops_after,
        "params_before": params_before,
        "params_after": params_after,
    }


COUNTS = ("flops_before", "flops_after", "params_before", "params_after")


@dataclass
class ModelReport:
    """A model under a variant and a convention: totals, reductions against the unmodified model, layers.

    ``notes`` and ``macs_outside_layers`` come from a traced model's spec (see ``ModelSpec``);
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
    macs_outside_layers: int | None = None

    def to_dict(self) -> dict:
        """The JSON object of ``hetcalc model --json``."""
        return {**asdict(self), "unit": conventions.UNIT[self.convention]}

    def frame(self):
        """The layers as a pandas DataFrame (pandas imported here); context in ``.attrs``."""
        import pandas as pd

        df = pd.DataFrame(self.layers)
        df.attrs.update({k: v for k, v in self.to_dict().items() if k != "layers"})
        return df


def analyze(model, *, dataset=None, variant: str = "hetconv", P=None, G=None, se=None,
            convention: str = "paper") -> ModelReport:
    """Count ``model`` (a zoo name or a ModelSpec) as ``variant`` under ``convention``.

    Baseline: the same model unmodified (no replacement, no SE), counted the same way.
    """
    conventions.check(convention)
    spec = model if isinstance(model, ModelSpec) else get_model(model, dataset)
    after = apply_variant(spec, variant, P, G, se)
    rows = [_layer_row(b, a, convention) for b, a in zip(spec.layers, after.layers)]
    base_flops, flops, base_params, params = (sum(r[key] for r in rows) for key in COUNTS)
    rows = [{k: _number(v) if k in COUNTS else v for k, v in r.items()} for r in rows]
    return ModelReport(
        model=spec.name, dataset=spec.dataset, input=list(spec.input), variant=variant,
        P=parse_P(P) if variant == "hetconv" else None, convention=convention,
        flops=_number(flops), params=_number(params), baseline_flops=_number(base_flops),
        baseline_params=_number(base_params), flops_reduction_pct=_percent_saved(flops, base_flops),
        params_reduction_pct=_percent_saved(params, base_params), speedup=eq9_speedup(flops / base_flops),
        layers=rows, G=G if variant == "gwc_pwc" else None, se=se,
        notes=list(spec.notes), macs_outside_layers=spec.macs_outside_layers,
    )


def exact_counts(model, dataset=None, variant: str = "standard", **options) -> tuple[int, int]:
    """(multiply-accumulates, parameters) under the exact convention: what fvcore and
    ``sum(p.numel() for p in module.parameters())`` report for ``hetcalc.zoo.torch_build.build_model``."""
    report = analyze(model, dataset=dataset, variant=variant, convention="exact", **options)
    return report.flops, report.params
