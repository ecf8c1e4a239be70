"""The one fvcore wrapper: traced multiply-accumulates, parameters, and every operator fvcore skipped.

fvcore counts one multiply-add as one FLOP and counts no bias additions. It silently skips a
list of operators it deems free; hetcalc clears that list so that every operator fvcore did
not count is reported, then explains each by ``hetcalc.real.operators``, the classification
of hetcalc's own counter: ``FREE_OPS`` and ``NOT_MACS`` are derived from it. A skipped
operator that may carry multiply-accumulates is *unexplained*.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import torch

from .operators import aten_names, carries, reason

with warnings.catch_warnings():  # fvcore.nn runs torch.jit.script at import, deprecated in torch 2.x
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis, parameter_count
    from fvcore.nn.flop_count import _DEFAULT_SUPPORTED_OPS
    from fvcore.nn.jit_handles import conv_flop_count, get_shape

logging.getLogger("fvcore").setLevel(logging.ERROR)

# Operators that carry no multiply-accumulates (``hetcalc.real.operators``), by fvcore's name.
FREE_OPS: dict[str, str] = {f"aten::{name}": why for name in aten_names() if (why := reason(name))}

# fvcore's default handles whose operator carries no MAC (normalisation, pooling, resampling):
# fvcore counts other arithmetic there; whole-model checks zero them, and say so.
NOT_MACS: dict[str, str] = {op: reason(op) for op in _DEFAULT_SUPPORTED_OPS if carries(op) == "none"}


def _convolution_mode(inputs, outputs):
    """fvcore 0.1.5 has no handle for ``aten::_convolution_mode``, the operator of a convolution with string
    padding ("same", "valid"): it would skip the convolution. Counted with fvcore's own convolution formula
    (N·prod(out)·Cout·Cin/G·prod(k)), named "conv" as fvcore names its convolutions."""
    x, w = inputs[:2]
    return Counter(
        {"conv": conv_flop_count(get_shape(x), get_shape(w), get_shape(outputs[0]), transposed=False)}
    )


def count(module, inputs, uncounted: tuple[str, ...] = ()) -> tuple[int, dict[str, int], dict[str, int]]:
    """fvcore's traced count of ``module(*inputs)``: (MACs, MACs by operator, skipped operator → times).

    ``uncounted`` names handles (keys of ``NOT_MACS``) whose counts are zeroed. fvcore 0.1.5
    keeps its default handle for an op set to None, so a handle returning 0 replaces it.
    Runs under ``torch.no_grad()``; put the module in eval mode first if that matters.
    """
    analysis = (
        FlopCountAnalysis(module, tuple(inputs))
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
    )
    analysis.set_op_handle("aten::_convolution_mode", _convolution_mode)
    for op in uncounted:
        analysis.set_op_handle(op, lambda inputs, outputs: 0)
    analysis._ignored_ops = set()  # fvcore 0.1.5: its silent skip list; emptied, so every skip is reported
    with torch.no_grad():
        macs = analysis.total()
    return (
        int(macs),
        {op: int(n) for op, n in analysis.by_operator().items()},
        dict(analysis.unsupported_ops()),
    )


def unexplained(ignored: dict[str, int]) -> list[str]:
    """The skipped operators that may carry multiply-accumulates (``carries`` is not "none"), sorted."""
    return sorted(op for op in ignored if carries(op) != "none")


def param_count(module) -> int:
    """All parameters of ``module``, counted by fvcore (each shared tensor once)."""
    return int(parameter_count(module)[""])
