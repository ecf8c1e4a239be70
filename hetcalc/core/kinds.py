"""The kinds of convolution hetcalc counts: one table, read by every command, layer and check.

Each :class:`Kind` names its formula in ``hetcalc.core.cost``, its closed-form reduction, its
latency, the setting it takes (``P`` or ``G``), its eligibility rule and the real layer that
realises it (named as "module:Class", resolved by ``hetcalc.real.layers.build_layer``: this
module imports no torch). Adding a kind is one entry here,
its formula in ``cost.py`` and its layer in ``layers.py``; ``tests/test_kinds.py`` walks this
table end to end.

>>> from hetcalc.core import kinds
>>> kinds.ineligible(ConvSpec(M=8, N=12, K=3), "hetconv", 8)
'P=8 does not divide the output channels N (12); valid values: 1, 2, 3, 4, 6, 12'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from . import cost
from .cost import Cost
from .errors import InvalidInput, divisors, listing, positive_int
from .spec import ConvSpec


@dataclass(frozen=True)
class Kind:
    """One kind of convolution: how it is counted, labelled and built.

    ``stages(spec, value, mid)`` is its formula (``value``: P or G; ``mid``: GWC+PWC's groupwise
    width, None = M): the contractions its real layer runs (``hetcalc.core.cost.Stage``), whose sum is its
    cost (``cost``) and from which a training step's gradients come; ``reduction(value, K, N)`` its closed-form ratio to the standard
    convolution; ``layer`` the real layer, "module:Class"; ``variant``: a model may be converted
    to it (``hetcalc model``, ``hetcalc.convert``).
    """

    name: str
    label: str
    equation: str
    latency: int
    parameter: str | None
    stages: Callable[[ConvSpec, int | None, int | None], tuple[cost.Stage, ...]]
    reduction: Callable[[int | None, int, int], Fraction]
    layer: str
    make: Callable  # (layer class, M, N, K, value, stride, padding, bias, impl, mid) → the real layer
    divides: tuple[str, ...] = ()  # the widths its parameter must divide: "M", "N", "mid"
    odd_kernel: bool = False  # needs an odd K (HetConv: its 1×1 kernels are the K×K kernels' centre taps)
    variant: bool = True

    def cost(self, spec: ConvSpec, value=None, mid: int | None = None) -> Cost:
        """Its forward cost: the sum of its stages."""
        return cost.total(self.stages(spec, value, mid))

    def setting(self, value) -> str:
        """'P=4', 'G=2' or '' for a kind without a setting."""
        return f"{self.parameter}={value}" if self.parameter and value is not None else ""

    def title(self, value=None) -> str:
        """'HetConv P=4': the label with its setting."""
        return f"{self.label} {self.setting(value)}".strip()


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "standard",
            "Standard conv",
            "Eq. 1",
            0,
            None,
            lambda spec, value, mid: cost.standard_stages(spec),
            lambda value, K, N: Fraction(1),
            "torch.nn:Conv2d",
            lambda cls, M, N, K, value, s, p, bias, impl, mid: cls(M, N, K, s, p, bias=bias),
        ),
        Kind(
            "hetconv",
            "HetConv",
            "Eqs. 2–4",
            0,
            "P",
            lambda spec, P, mid: cost.hetconv_stages(spec, P),
            lambda P, K, N: cost.hetconv_reduction(P, K),
            "hetcalc.real.layers:HetConv2d",
            lambda cls, M, N, K, P, s, p, bias, impl, mid: cls(M, N, K, P, s, p, bias, impl),
            divides=("M", "N"),
            odd_kernel=True,
        ),
        Kind(
            "hetconv_grouped_sum",
            "HetConv (grouped + 1×1)",
            "grouped K×K + 1×1",
            0,
            "P",
            lambda spec, P, mid: cost.hetconv_grouped_sum_stages(spec, P),
            lambda P, K, N: cost.hetconv_grouped_sum_reduction(P, K),
            "hetcalc.real.layers:HetConv2d",
            lambda cls, M, N, K, P, s, p, bias, impl, mid: cls(M, N, K, P, s, p, bias, "grouped_sum"),
            divides=("M", "N"),
            odd_kernel=True,
            variant=False,
        ),
        Kind(
            "dwc_pwc",
            "DWC+PWC",
            "Eq. 6",
            1,
            None,
            lambda spec, value, mid: cost.dwc_pwc_stages(spec),
            lambda value, K, N: cost.dwc_pwc_reduction(N, K),
            "hetcalc.real.layers:DwPwConv2d",
            lambda cls, M, N, K, value, s, p, bias, impl, mid: cls(M, N, K, s, p, bias),
        ),
        Kind(
            "gwc_pwc",
            "GWC+PWC",
            "Eq. 10",
            1,
            "G",
            lambda spec, G, mid: cost.gwc_pwc_stages(spec, G, mid),
            lambda G, K, N: cost.gwc_pwc_reduction(G, K),
            "hetcalc.real.layers:GwPwConv2d",
            lambda cls, M, N, K, G, s, p, bias, impl, mid: cls(M, N, K, G, s, p, bias, mid),
            divides=("M", "mid"),
        ),
        Kind(
            "grouped",
            "Grouped conv",
            "Eq. 1 over G groups",
            0,
            "G",
            lambda spec, G, mid: cost.grouped_stages(spec, G),
            lambda G, K, N: Fraction(1, G),
            "torch.nn:Conv2d",
            lambda cls, M, N, K, G, s, p, bias, impl, mid: cls(M, N, K, s, p, groups=G, bias=bias),
            divides=("M", "N"),
            variant=False,
        ),
    )
}

VARIANTS = tuple(name for name, kind in KINDS.items() if kind.variant)
"""The kinds a model can be converted to (``standard``: left as it is)."""

IMPLS = {"exact": "hetconv", "grouped_sum": "hetconv_grouped_sum", "fast": "hetconv_grouped_sum"}
"""HetConv2d's implementations → the kind whose formula counts the MACs each runs.

``fast`` computes the paper's HetConv (the shifted pattern, Eq. 4's function class) with
grouped_sum's multiply-accumulates (a dense 1×1 kernel over every channel)."""


ONE_BY_ONE = {"exact": "matmul", "fast": "matmul", "grouped_sum": "convolution"}
"""The operator family that runs HetConv2d's 1×1 taps, by implementation (its K×K taps run as one grouped
convolution): a batched matmul (``exact``; ``fast`` on a contiguous input), a 1×1 convolution (``grouped_sum``)."""


def families(layer) -> dict[str, int]:
    """The MACs of a convolution record (``hetcalc.core.records.Conv``) by the operator family that runs them.

    HetConv2d runs its K×K taps as one grouped convolution (Eq. 2: the grouped conv with P groups) and
    its 1×1 taps as ``ONE_BY_ONE[impl]``; every other kind runs convolutions only.
    """
    if layer.taps is not None or layer.kind not in ("hetconv", "hetconv_grouped_sum"):
        return {"convolution": 1}
    total = get(layer.kind).cost(layer.spec, layer.P, None).macs
    family = ONE_BY_ONE[layer.impl or ("exact" if layer.kind == "hetconv" else "grouped_sum")]
    kxk = cost.grouped(layer.spec, layer.P).macs
    return {"convolution": kxk, family: total - kxk} if family != "convolution" else {"convolution": total}


def get(name: str) -> Kind:
    """The kind called ``name``, or InvalidInput listing the known ones."""
    if name not in KINDS:
        raise InvalidInput("kind", f"unknown kind {name!r}; known: {', '.join(KINDS)}")
    return KINDS[name]


def variant(name: str) -> Kind:
    """The kind ``name`` if a model can be converted to it, else InvalidInput."""
    if name not in VARIANTS:
        raise InvalidInput("variant", f"must be one of {', '.join(VARIANTS)}, got {name!r}")
    return KINDS[name]


def ineligible(spec: ConvSpec, kind: str, value=None, mid: int | None = None) -> str | None:
    """Why ``kind`` (with its P or G = ``value``) cannot be built for the convolution ``spec``; None if it can.

    The one eligibility rule: HetConv needs an odd K (its 1×1 kernels are the K×K kernels'
    centre taps) and P dividing M and N (filters take their K×K kernels on the channels of
    their residue n mod P, so the residue classes of filters and channels must be equal in
    size: the count of Eq. 4 is then exactly what ``HetConv2d`` runs); GWC+PWC needs G dividing
    M and its groupwise width, a grouped conv G dividing M and N; standard and DWC+PWC fit
    every convolution. Each kind's ``divides`` and ``odd_kernel`` hold its part of the rule.
    """
    problem = _problem(spec, get(kind), value, mid)
    return problem[1] if problem else None


def _problem(spec: ConvSpec, kind: Kind, value, mid) -> tuple[str, str] | None:
    """(the parameter at fault, why) or None: the body of ``ineligible``."""
    if kind.parameter is None:
        return None
    value = positive_int(kind.parameter, value)
    if kind.odd_kernel and spec.K % 2 == 0:
        return (
            "K",
            f"even kernel {spec.K}×{spec.K}: HetConv's 1×1 kernels are the centre taps of its K×K kernels",
        )
    widths = {
        "M": ("the input channels M", spec.M),
        "N": ("the output channels N", spec.N),
        "mid": ("the groupwise output channels", spec.M if mid is None else mid),
    }
    for what, channels in (widths[width] for width in kind.divides):
        if channels % value:
            return kind.parameter, (
                f"{kind.parameter}={value} does not divide {what} ({channels}); "
                f"valid values: {listing(divisors(channels))}"
            )
    return None


def check(spec: ConvSpec, kind: str, value=None, mid: int | None = None) -> None:
    """InvalidInput naming the parameter at fault (P, G or K) where ``ineligible`` gives a reason."""
    problem = _problem(spec, get(kind), value, mid)
    if problem:
        parameter, reason = problem
        raise InvalidInput(parameter, reason + (f" ({spec.name})" if spec.name else ""))


def kept(
    spec: ConvSpec, kind: str, value=None, *, first: bool = False, fixed: str = "", mid: int | None = None
) -> str | None:
    """Why a model's convolution ``spec`` stays as it is when the model is converted to ``kind``; None: replaced.

    The model-level rule, shared by ``hetcalc.core.analyze`` and ``hetcalc.convert``: the first
    convolution stays (the paper's rule), so do 1×1 convolutions (no K×K part: HetConv changes
    nothing) and layers whose structure no hetcalc layer carries (``fixed``: grouped, dilated,
    …); HetConv with P = 1 is the standard convolution; then the kind's own ``ineligible``.
    """
    if first:
        return "first convolution (kept, as in the paper)"
    if fixed:
        return fixed
    if spec.K == 1:
        return "1×1 kernel: nothing to replace"
    if kind == "hetconv" and value == 1:
        return "P=1: HetConv with P = 1 is the standard convolution"
    return ineligible(spec, kind, value, mid)


def layer_cost(spec: ConvSpec, kind: str, value=None, mid: int | None = None) -> Cost:
    """The formula of ``kind`` for ``spec``, after the eligibility check."""
    return cost.total(layer_stages(spec, kind, value, mid))


def layer_stages(spec: ConvSpec, kind: str, value=None, mid: int | None = None) -> tuple[cost.Stage, ...]:
    """The stages of ``kind`` for ``spec`` (``hetcalc.core.cost.Stage``), after the eligibility check."""
    check(spec, kind, value, mid)
    return get(kind).stages(spec, value, mid)


def of_layer(module) -> str:
    """The kind a real layer of hetcalc runs: the kind whose ``layer`` is its class (HetConv2d: by ``impl``)."""
    path = f"{type(module).__module__}:{type(module).__qualname__}"
    names = [name for name, kind in KINDS.items() if kind.layer == path]
    if len(names) > 1:
        return IMPLS[module.impl]
    if not names:
        raise InvalidInput("module", f"{path} is not the layer of any kind; known: {', '.join(KINDS)}")
    return names[0]
