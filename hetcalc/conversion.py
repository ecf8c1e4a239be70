"""Replace a model's convolutions by hetcalc's real layers: ``convert(model, p)`` → a converted copy (torch).

>>> converted, report = convert(model, 4, return_report=True)
>>> report.skipped          # [(layer name, why it stayed as it is), …]

Every eligible ``nn.Conv2d`` becomes a HetConv2d (part P), a GwPwConv2d (G groups) or a
DwPwConv2d with its channels, kernel, stride, padding and bias, on its device and dtype; the new
layers are freshly initialised (train or fine-tune after converting). Eligible is the rule
``hetcalc.analyze`` counts by: not the first convolution (``skip_first``), K > 1, nothing
``hetcalc.trace.fixed_reason`` objects to (groups = 1, square odd kernel, no dilation, …), and the
variant's divisibility (P divides M and N; G divides M). So ``analyze(trace(model), variant, P)``
counts what ``trace(convert(model, P))`` runs. "First" is module registration order (the order of
``model.modules()``), which is the call order in usual networks. hetcalc's own layers are not entered.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from .errors import InvalidInput, positive_int
from .layers import DwPwConv2d, GwPwConv2d, HetConv2d
from .trace import HETCALC_LAYERS, fixed_reason

VARIANTS = ("hetconv", "gwc_pwc", "dwc_pwc")


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


def _divisibility(conv: nn.Conv2d, variant: str, p, groups) -> str:
    M, N = conv.in_channels, conv.out_channels
    if variant == "hetconv":
        return next((f"P={p} does not divide {what} {n}" for what, n in (("in_channels", M), ("out_channels", N))
                     if n % p), "")
    if variant == "gwc_pwc" and M % groups:
        return f"G={groups} does not divide in_channels {M}"
    return ""


def _replacement(conv: nn.Conv2d, variant: str, p, groups, impl) -> nn.Module:
    M, N, K, s, pad, bias = (conv.in_channels, conv.out_channels, conv.kernel_size[0], conv.stride[0],
                             _padding(conv), conv.bias is not None)
    if variant == "hetconv":
        layer = HetConv2d(M, N, K, p, stride=s, padding=pad, bias=bias, impl=impl)
    elif variant == "gwc_pwc":
        layer = GwPwConv2d(M, N, K, groups, stride=s, padding=pad, bias=bias)
    else:
        layer = DwPwConv2d(M, N, K, stride=s, padding=pad, bias=bias)
    return layer.to(device=conv.weight.device, dtype=conv.weight.dtype)


def convert(model: nn.Module, p: int | None = None, *, variant: str = "hetconv", groups: int | None = None,
            skip_first: bool = True, impl: str = "exact", return_report: bool = False):
    """A deep copy of ``model`` with every eligible nn.Conv2d replaced by ``variant``'s real layer.

    variant: "hetconv" (part ``p``, ``impl`` "exact", "grouped_sum" or "fast"), "gwc_pwc" (``groups``) or
    "dwc_pwc". ``return_report=True`` returns ``(converted, Conversion)``; the model is not changed.
    """
    if variant not in VARIANTS:
        raise InvalidInput("variant", f"must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if variant == "hetconv":
        p = positive_int("p", p)
    if variant == "gwc_pwc":
        groups = positive_int("groups", groups)
    converted = copy.deepcopy(model)
    report, done = Conversion(variant), {}
    for i, (parent, attribute, name, conv) in enumerate(_convs(converted)):
        if id(conv) not in done:  # a module shared by several parents is decided once
            reason = ("first convolution (skip_first)" if skip_first and i == 0 else
                      "1×1 kernel: nothing to replace" if conv.kernel_size == (1, 1) else
                      fixed_reason(conv) or _divisibility(conv, variant, p, groups))
            done[id(conv)] = conv if reason else _replacement(conv, variant, p, groups, impl)
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
