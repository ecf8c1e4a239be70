"""A replacement plan: for each convolution of a model, by name, what it becomes or why it stays.

A plan is data. ``derive`` makes one from a model's records (a zoo model, or a traced one in
call order) and a variant; ``apply`` turns a model's records into the records of the model the
plan builds. ``hetcalc.core.analyze`` counts a plan, ``hetcalc.convert`` builds it, ``bench``,
``latency`` and ``search`` time and choose plans: no path decides on its own which layers change.

>>> plan = derive(get_model("vgg16"), "hetconv", P=4)
>>> plan["features.3"]                       # Decision(name='features.3', kind='hetconv', P=4, impl='exact')
>>> Plan.from_json(plan.to_json()) == plan   # the JSON form that `--plan FILE` reads

A decision is per module: a module called more than once (shared weights) is decided once, from
its first call, and every call runs what it became. The first convolution called stays (the
paper's rule), so do 1×1 ones and those whose structure no hetcalc layer carries, and each kind's
own eligibility decides the rest (``hetcalc.core.kinds.kept``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from . import kinds
from .errors import InvalidInput, positive_int, whole_numbers
from .records import Conv, ModelSpec, module_name

FORMAT = "hetcalc-plan"
P1 = "P=1: HetConv with P = 1 is the standard convolution"


@dataclass(frozen=True)
class Decision:
    """One convolution's fate: built as ``kind`` (with P or G, HetConv2d's ``impl``, SE reduction ``se``),
    or kept as it is (``kind`` None) because of ``keep``."""

    name: str
    kind: str | None = None
    P: int | None = None
    G: int | None = None
    impl: str | None = None
    se: int | None = None
    keep: str = ""

    @property
    def replaced(self) -> bool:
        return self.kind is not None

    @property
    def setting(self) -> int | None:
        return self.P if self.kind == "hetconv" else self.G

    def title(self) -> str:
        """'HetConv P=4 (fast)', 'GWC+PWC G=2', 'kept'."""
        if not self.replaced:
            return "kept"
        impl = f" ({self.impl})" if self.impl and self.impl != "exact" else ""
        return kinds.get(self.kind).title(self.setting) + impl + (f" + SE R={self.se}" if self.se else "")


@dataclass(frozen=True)
class Plan:
    """Decisions for a model's convolutions, in call order; ``model`` and ``input`` say what it was made for."""

    model: str
    input: tuple[int, ...]
    layers: tuple[Decision, ...]
    variant: str = "plan"  # the variant it was derived from ("hetconv", …), or "plan" (searched, edited)
    _by_name: dict = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        by_name = {}
        for decision in self.layers:
            if decision.name in by_name:
                raise InvalidInput("plan", f"layer {decision.name!r} is decided twice")
            by_name[decision.name] = decision
        object.__setattr__(self, "_by_name", by_name)

    def __getitem__(self, name: str) -> Decision:
        return self._by_name[name]

    def get(self, name: str) -> Decision | None:
        return self._by_name.get(name)

    def replaced(self) -> list[Decision]:
        return [d for d in self.layers if d.replaced]

    def to_dict(self) -> dict:
        """The JSON form: ``{"format", "model", "input", "variant", "layers": [{"name", "kind", "P", …}]}``."""
        layers = [{k: v for k, v in asdict(d).items() if v not in (None, "")} for d in self.layers]
        return {
            "format": FORMAT,
            "model": self.model,
            "input": list(self.input),
            "variant": self.variant,
            "layers": layers,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data) -> Plan:
        """A plan from its JSON form, every field checked (InvalidInput naming ``plan``)."""
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or not isinstance(data.get("layers"), list)
        ):
            raise InvalidInput(
                "plan", f'not a hetcalc plan: expected a JSON object with "format": "{FORMAT}"'
            )
        return cls(
            str(data.get("model", "")),
            tuple(int(v) for v in data.get("input", ())),
            tuple(_decision(entry) for entry in data["layers"]),
            str(data.get("variant", "plan")),
        )

    @classmethod
    def from_json(cls, text: str) -> Plan:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as error:
            raise InvalidInput("plan", f"is not valid JSON ({error.msg}, line {error.lineno})") from None

    @classmethod
    def read(cls, path) -> Plan:
        """The plan in file ``path`` (InvalidInput where it cannot be read or is not a plan)."""
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as error:
            raise InvalidInput("plan", f"cannot read {path}: {error.strerror}") from None
        return cls.from_json(text)


def _decision(entry) -> Decision:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidInput("plan", f'each layer needs a "name": got {entry!r}')
    unknown = set(entry) - {"name", "kind", "P", "G", "impl", "se", "keep"}
    if unknown:
        raise InvalidInput("plan", f"{entry['name']}: unknown field {', '.join(sorted(unknown))}")
    kind = entry.get("kind")
    if kind is None:
        return Decision(entry["name"], keep=str(entry.get("keep") or "kept by the plan"))
    kinds.variant(kind)
    parameter = kinds.get(kind).parameter
    values = {p: entry.get(p) for p in ("P", "G")}
    for p, value in values.items():
        if value is not None and p != parameter:
            raise InvalidInput("plan", f"{entry['name']}: {p} does not apply to {kind}")
    if parameter and values[parameter] is None:
        raise InvalidInput("plan", f"{entry['name']}: {kind} needs {parameter}")
    impl = entry.get("impl", "exact" if kind == "hetconv" else None)
    if kind == "hetconv" and impl not in kinds.IMPLS:
        raise InvalidInput(
            "plan", f"{entry['name']}: impl must be one of {', '.join(kinds.IMPLS)}, got {impl!r}"
        )
    if kind != "hetconv" and impl is not None:
        raise InvalidInput("plan", f"{entry['name']}: impl applies to hetconv only")
    checked = {p: positive_int(p, v) for p, v in values.items() if v is not None}
    se = None if entry.get("se") is None else positive_int("se", entry["se"])
    return Decision(entry["name"], kind, checked.get("P"), checked.get("G"), impl, se)


# Deriving a plan from a variant.


def P_setting(P):
    """P as given on the command line or in Python → an int, "C" (P = M per layer) or a list of ints."""
    if isinstance(P, str):
        text = P.strip()
        if text.upper() == "C":
            return "C"
        values = whole_numbers("P", text, "4, C or 2,4,8 (one per replaced layer)")
        return values if "," in text else values[0]
    return [positive_int("P", p) for p in P] if isinstance(P, (list, tuple)) else positive_int("P", P)


def convolutions(spec: ModelSpec) -> list[Conv]:
    """The first call of every convolution module, in call order: the layers a plan decides."""
    return [layer for layer in spec.layers if isinstance(layer, Conv) and layer.call == 1]


def candidates(spec: ModelSpec) -> list[Conv]:
    """The convolutions a variant may replace: all but the first, except 1×1 ones and those a trace marked
    ``fixed`` (the model-level part of ``hetcalc.core.kinds.kept``)."""
    return [layer for layer in convolutions(spec)[1:] if layer.K > 1 and not layer.fixed]


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


def derive(
    spec: ModelSpec,
    variant: str = "hetconv",
    P=None,
    G=None,
    *,
    impl: str = "exact",
    se: int | None = None,
    keep_first: bool = True,
) -> Plan:
    """The plan that builds ``variant`` wherever it fits ``spec`` (``hetcalc.core.kinds.kept``), in call order.

    ``P``: a number, "C" (P = M per layer) or one P per replaceable layer; ``G`` for gwc_pwc;
    ``impl``: HetConv2d's implementation; ``se``: a Squeeze-and-Excitation reduction after each
    replaced layer (with ``variant="standard"``: after each layer a variant could replace, each
    built as it is, the paper's P1_SE). ``keep_first=False`` lets the first convolution change too.
    """
    kind = kinds.variant(variant)
    for parameter, value in (("P", P), ("G", G)):
        if value is not None and kind.parameter != parameter:
            raise InvalidInput(parameter, f"does not apply to the {variant} variant")
    if kind.parameter == "G":
        if G is None:
            raise InvalidInput("G", "the gwc_pwc variant needs G, the number of groups")
        G = positive_int("G", G)
    if variant == "hetconv" and impl not in kinds.IMPLS:
        raise InvalidInput("impl", f"must be one of {', '.join(kinds.IMPLS)}, got {impl!r}")
    se = None if se is None else positive_int("se", se)
    convs = convolutions(spec)
    open_ = candidates(spec) if keep_first else [c for c in convs if c.K > 1 and not c.fixed]
    values = per_layer_P(P, open_) if variant == "hetconv" else [G] * len(open_)
    setting = {layer.name: value for layer, value in zip(open_, values)}
    decisions = []
    for i, layer in enumerate(convs):
        value = setting.get(layer.name)
        target = "standard" if variant == "hetconv" and value == 1 else variant  # P = 1: the standard conv
        as_is = variant == "standard" or (target == "standard" and layer.kind == "standard")  # SE at most
        reason = kinds.kept(
            layer.spec,
            target,
            None if target == "standard" else value,
            first=keep_first and i == 0,
            fixed=layer.fixed,
        )
        if not reason and as_is and se:
            decision = Decision(layer.name, layer.kind, layer.P, layer.G, layer.impl, se)
        elif not reason and as_is:
            decision = Decision(layer.name, keep=P1 if variant == "hetconv" else "")
        elif reason:
            decision = Decision(layer.name, keep=reason if variant != "standard" else "")
        else:
            decision = Decision(
                layer.name,
                target,
                P=value if target == "hetconv" else None,
                G=value if target == "gwc_pwc" else None,
                impl=impl if target == "hetconv" else None,
                se=se,
            )
        decisions.append(decision)
    return Plan(spec.name, tuple(spec.input), tuple(decisions), variant)


def apply(spec: ModelSpec, plan: Plan) -> ModelSpec:
    """The records of the model ``plan`` builds from ``spec``: each call of a replaced module rebuilt as its kind.

    A replaced layer keeps its M, N, K, stride, output size and bias, and one BatchNorm on its output
    if it had any; its parameters are its new kind's (a repeated call holds none). A kept layer carries
    the plan's reason. Raises InvalidInput naming the layer where the plan names a layer the model does
    not have, or asks for a kind that does not fit (``hetcalc.core.kinds.kept``).
    """
    names = {layer.name for layer in convolutions(spec)}
    unknown = [d.name for d in plan.layers if d.name not in names]
    if unknown:
        known = ", ".join(sorted(names)[:8]) + (", …" if len(names) > 8 else "")
        raise InvalidInput(
            "plan",
            f"layer {unknown[0]!r} is not a convolution of {spec.name} (a plan for another model?); "
            f"its convolutions: {known}",
        )
    layers = [
        rebuilt(layer, plan.get(module_name(layer)) or Decision(layer.name, keep="not in the plan"))
        if isinstance(layer, Conv)
        else layer
        for layer in spec.layers
    ]
    return spec.with_layers(layers)


def rebuilt(layer: Conv, decision: Decision) -> Conv:
    """The record of ``layer`` as ``decision`` builds it (InvalidInput where the decision does not fit it)."""
    if not decision.replaced:
        return layer.with_(fixed=layer.fixed or decision.keep)
    target = kinds.IMPLS[decision.impl or "exact"] if decision.kind == "hetconv" else decision.kind
    same = decision.kind == layer.kind and decision.setting == layer.setting
    if not same:
        reason = kinds.kept(layer.spec, decision.kind, decision.setting, fixed=layer.fixed)
        if reason:
            raise InvalidInput("plan", f"{decision.name}: {decision.title()} does not fit: {reason}")
    return layer.with_(
        kind=target if not same else layer.kind,
        P=decision.P if decision.kind == "hetconv" else None,
        G=decision.G if decision.kind in ("gwc_pwc", "grouped") else layer.G if same else None,
        impl=decision.impl,
        norm=layer.norm if same else layer.norm[-1:],
        se=decision.se,
        fixed="",
        taps=layer.taps if same else None,
        params=layer.params if same else None if layer.call == 1 else 0,
    )
