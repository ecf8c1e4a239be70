"""Replace a model's convolutions by hetcalc's real layers: ``convert(model, p)`` → a converted copy (torch).

>>> converted, report = convert(model, 4, return_report=True)
>>> report.skipped          # [(layer name, why it stayed as it is), …]

Every ``nn.Conv2d`` the variant fits becomes its kind's real layer (``hetcalc.core.kinds.build``)
with its channels, kernel, stride, padding and bias, on its device and dtype; the new layers
are freshly initialised (train or fine-tune after converting). Which convolutions change is
``hetcalc.core.kinds.kept``, the rule ``hetcalc.core.analyze`` counts by: not the first convolution
(``skip_first``), not 1×1 ones, nothing ``hetcalc.real.trace.fixed_reason`` objects to (groups = 1,
square kernel, no dilation, …), and the kind's own eligibility (P dividing M and N, odd K; G
dividing M). So ``analyze(trace(model), variant, P)`` counts what ``trace(convert(model, P))``
runs. "First" is module registration order (the order of ``model.modules()``), which is the
call order in usual networks. hetcalc's own layers are not entered.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from ..core import kinds
from ..core.errors import positive_int
from ..core.spec import ConvSpec
from .trace import HETCALC_LAYERS, fixed_reason


@dataclass
class Conversion:
    """What ``convert`` did: the names of the replaced convolutions, and (name, reason) of those kept."""

    variant: str
    replaced: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _convs(module: nn.Module, prefix: str = ""):
    """(parent, attribute, qualified name, conv) for every nn.Conv2d below ``module``, in registration order."""
    for attribute, child in module.named_children():
        name = prefix + attribute
        if isinstance(child, nn.Conv2d):
            yield module, attribute, name, child
        elif not isinstance(child, HETCALC_LAYERS):
            yield from _convs(child, name + ".")


def _padding(conv: nn.Conv2d) -> int:
    if isinstance(conv.padding, str):  # "same" needs stride 1 and here an odd K; "valid" is 0
        return conv.kernel_size[0] // 2 if conv.padding == "same" else 0
    return conv.padding[0]


def _spec(conv: nn.Conv2d) -> ConvSpec:
    (K, _), (stride, _) = conv.kernel_size, conv.stride
    return ConvSpec(M=conv.in_channels, N=conv.out_channels, K=K, stride=stride, bias=conv.bias is not None)


def convert(
    model: nn.Module,
    p: int | None = None,
    *,
    variant: str = "hetconv",
    groups: int | None = None,
    skip_first: bool = True,
    impl: str = "exact",
    return_report: bool = False,
):
    """A deep copy of ``model`` with every eligible nn.Conv2d replaced by ``variant``'s real layer.

    variant: "hetconv" (part ``p``, ``impl`` "exact", "grouped_sum" or "fast"), "gwc_pwc" (``groups``) or
    "dwc_pwc". ``return_report=True`` returns ``(converted, Conversion)``; the model is not changed.
    """
    kind = kinds.variant(variant)
    value = {"P": p, "G": groups}.get(kind.parameter)
    value = positive_int(kind.parameter, value) if kind.parameter else None
    converted = copy.deepcopy(model)
    report, done = Conversion(variant), {}
    for i, (parent, attribute, name, conv) in enumerate(_convs(converted)):
        if id(conv) not in done:  # a module shared by several parents is decided once
            spec = _spec(conv)
            reason = kinds.kept(spec, variant, value, first=skip_first and i == 0, fixed=fixed_reason(conv))
            done[id(conv)] = (
                conv
                if reason
                else kinds.build(
                    variant,
                    spec.M,
                    spec.N,
                    spec.K,
                    value,
                    stride=spec.stride,
                    padding=_padding(conv),
                    bias=spec.bias,
                    impl=impl,
                ).to(device=conv.weight.device, dtype=conv.weight.dtype)
            )
            if reason:
                report.skipped.append((name, reason))
            else:
                report.replaced.append(name)
        setattr(parent, attribute, done[id(conv)])
    return (converted, report) if return_report else converted


def convert_gwc(model: nn.Module, groups: int, **options):
    """``convert`` with GWC+PWC: groupwise K×K (``groups`` groups) M → M, then pointwise M → N."""
    return convert(model, variant="gwc_pwc", groups=groups, **options)


def convert_dwc(model: nn.Module, **options):
    """``convert`` with DWC+PWC: depthwise K×K, then pointwise M → N."""
    return convert(model, variant="dwc_pwc", **options)
