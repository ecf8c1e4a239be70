"""Build what a plan says: ``convert(model, plan)`` → a copy with its convolutions replaced by real layers (torch).

>>> converted = convert(model, P=4, input_size=(3, 32, 32))        # the plan of HetConv P=4, derived
>>> converted, report = convert(model, plan, return_report=True)   # or any plan (hetcalc.core.plan)
>>> report.replaced, report.skipped                                  # names; (name, why it stayed)

The plan decides every layer (``hetcalc.core.plan``): given ``P``, ``G`` or a variant, ``convert``
traces the model (``hetcalc.real.trace``: call order) and derives the plan that ``hetcalc.core.analyze``
counts, so ``analyze(trace(model), plan=plan)`` counts what ``trace(convert(model, plan))`` runs.
Each replaced ``nn.Conv2d`` becomes its kind's real layer (``hetcalc.real.layers.build_layer``)
with its channels, kernel, stride, padding and bias, on its device and dtype, freshly
initialised (train or fine-tune after converting); a module registered under several names, or
called several times, is one layer and is replaced once, everywhere it is used.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..core import kinds
from ..core import plan as plans
from ..core.errors import InvalidInput
from ..core.plan import Plan
from ..core.spec import ConvSpec
from .layers import build_layer
from .trace import fixed_reason, trace


@dataclass
class Conversion:
    """What ``convert`` did: the plan, the replaced convolutions' names, and (name, reason) of those kept."""

    plan: Plan
    replaced: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _padding(conv: nn.Conv2d):
    """The conv's padding as the real layers take it: an int, or "same"/"valid" as nn.Conv2d's."""
    return conv.padding if isinstance(conv.padding, str) else conv.padding[0]


def _input_size(model: nn.Module, input_size):
    from .load import input_size_of

    try:
        return input_size_of(model, input_size)
    except InvalidInput:
        raise InvalidInput(
            "input_size",
            "convert traces the model to decide its layers in call order: give input_size=(C, H, W) or a plan",
        ) from None


def plan_for(
    model: nn.Module,
    P=None,
    G=None,
    *,
    variant: str | None = None,
    impl: str = "exact",
    input_size=None,
    keep_first: bool = True,
) -> Plan:
    """The plan ``convert`` builds for a variant: derived from a trace of ``model`` (``hetcalc.core.plan.derive``)."""
    variant = variant or ("gwc_pwc" if G is not None else "hetconv")
    spec = trace(model, _input_size(model, input_size), type(model).__name__)
    return plans.derive(spec, variant, P, G, impl=impl, keep_first=keep_first)


def convert(
    model: nn.Module,
    plan: Plan | None = None,
    *,
    P=None,
    G=None,
    variant: str | None = None,
    impl: str = "exact",
    input_size=None,
    keep_first: bool = True,
    return_report: bool = False,
):
    """A deep copy of ``model`` with each convolution ``plan`` replaces built as its kind's real layer.

    Without a plan: the plan of ``variant`` ("hetconv" with ``P`` and ``impl``: "exact", "fast" or
    "grouped_sum"; "gwc_pwc" with ``G``; "dwc_pwc"), derived from a trace of the model on a 1×C×H×W
    input (``input_size``, default: the model's own, e.g. timm's). ``return_report=True`` returns
    ``(converted, Conversion)``; ``model`` is not changed.
    """
    if isinstance(plan, (int, str, list)):  # convert(model, 4): P given by position
        plan, P = None, plan
    if plan is None:
        plan = plan_for(model, P, G, variant=variant, impl=impl, input_size=input_size, keep_first=keep_first)
    elif P is not None or G is not None or variant is not None:
        raise InvalidInput("plan", "give a plan or a variant (P, G, variant), not both")
    if any(d.se for d in plan.layers):
        raise InvalidInput(
            "plan", "convert builds no Squeeze-and-Excitation blocks (hetcalc.real.build does)"
        )
    converted = copy.deepcopy(model)
    modules = dict(converted.named_modules())
    report, new = Conversion(plan), {}
    for decision in plan.layers:
        conv = modules.get(decision.name)
        if not isinstance(conv, nn.Module):
            raise InvalidInput("plan", f"{decision.name!r} is not a module of {type(model).__name__}")
        if not decision.replaced:
            report.skipped.append((decision.name, decision.keep))
            continue
        new[id(conv)] = _built(decision, conv)
        report.replaced.append(decision.name)
    for parent in list(converted.modules()):
        for attribute, child in list(parent._modules.items()):  # every name, aliases too
            if id(child) in new:
                setattr(parent, attribute, new[id(child)])
    return (converted, report) if return_report else converted


def _built(decision, conv) -> nn.Module:
    """The real layer ``decision`` makes of ``conv``, or InvalidInput naming the layer where it does not fit."""
    if type(conv) is not nn.Conv2d and not isinstance(conv, nn.Conv2d):
        raise InvalidInput("plan", f"{decision.name}: a {type(conv).__name__}, not an nn.Conv2d")
    (K, _), (stride, _) = conv.kernel_size, conv.stride
    spec = ConvSpec(M=conv.in_channels, N=conv.out_channels, K=K, stride=stride, bias=conv.bias is not None)
    reason = kinds.kept(spec, decision.kind, decision.setting, fixed=fixed_reason(conv))
    if reason:
        raise InvalidInput("plan", f"{decision.name}: {decision.title()} does not fit: {reason}")
    layer = build_layer(
        decision.kind,
        spec.M,
        spec.N,
        spec.K,
        decision.setting,
        stride=spec.stride,
        padding=_padding(conv),
        bias=spec.bias,
        impl=decision.impl or "exact",
    )
    return layer.to(device=conv.weight.device, dtype=conv.weight.dtype)


def convert_gwc(model: nn.Module, G: int, **options):
    """``convert`` with GWC+PWC: groupwise K×K (``G`` groups) M → M, then pointwise M → N."""
    return convert(model, G=G, variant="gwc_pwc", **options)


def convert_dwc(model: nn.Module, **options):
    """``convert`` with DWC+PWC: depthwise K×K, then pointwise M → N."""
    return convert(model, variant="dwc_pwc", **options)
