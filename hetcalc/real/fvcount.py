"""The one fvcore wrapper: traced multiply-accumulates, parameters, and every operator fvcore skipped.

fvcore counts one multiply-add as one FLOP and counts no bias additions. It silently skips a
list of operators it deems free; hetcalc clears that list so that every operator fvcore did
not count is reported, then explains each from ``FREE_OPS``. An operator not in ``FREE_OPS``
is *unexplained*: fvcore skipped it and it may carry multiply-accumulates.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter

import torch

with warnings.catch_warnings():  # fvcore.nn runs torch.jit.script at import, deprecated in torch 2.x
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn import FlopCountAnalysis, parameter_count
    from fvcore.nn.jit_handles import conv_flop_count, get_shape

logging.getLogger("fvcore").setLevel(logging.ERROR)

_MOVES = "moves, copies or reshapes data: no arithmetic"
_CREATES = "creates a tensor: no arithmetic"
_COMPARES = "comparisons, maxima or selection: no multiplies"
_ADDS = (
    "element-wise addition, no multiplies (summing the partial results of a split convolution "
    "is the accumulation its counted MACs already include)"
)

# Operators that carry no multiply-accumulates, with the reason. Not here on purpose: aten::mul,
# aten::div, aten::mean, aten::avg_pool2d, aten::sigmoid, aten::softmax, … (they multiply).
FREE_OPS: dict[str, str] = {
    "aten::view": _MOVES,
    "aten::view_as": _MOVES,
    "aten::reshape": _MOVES,
    "aten::reshape_as": _MOVES,
    "aten::expand_as": _MOVES,
    "aten::flatten": _MOVES,
    "aten::unflatten": _MOVES,
    "aten::permute": _MOVES,
    "aten::transpose": _MOVES,
    "aten::t": _MOVES,
    "aten::contiguous": _MOVES,
    "aten::expand": _MOVES,
    "aten::squeeze": _MOVES,
    "aten::unsqueeze": _MOVES,
    "aten::unsqueeze_": _MOVES,
    "aten::select": _MOVES,
    "aten::slice": _MOVES,
    "aten::narrow": _MOVES,
    "aten::split": _MOVES,
    "aten::split_with_sizes": _MOVES,
    "aten::chunk": _MOVES,
    "aten::unbind": _MOVES,
    "aten::cat": _MOVES,
    "aten::stack": _MOVES,
    "aten::index": _MOVES,
    "aten::index_select": _MOVES,
    "aten::gather": _MOVES,
    "aten::scatter": _MOVES,
    "aten::scatter_": _MOVES,
    "aten::index_put": _MOVES,
    "aten::index_put_": _MOVES,
    "aten::copy_": _MOVES,
    "aten::clone": _MOVES,
    "aten::to": _MOVES,
    "aten::type_as": _MOVES,
    "aten::detach": _MOVES,
    "aten::unfold": _MOVES,
    "aten::as_strided": _MOVES,
    "aten::roll": _MOVES,
    "aten::constant_pad_nd": _MOVES,
    "aten::pad": _MOVES,
    "aten::size": _MOVES,
    "aten::numel": _MOVES,
    "aten::Int": _MOVES,
    "aten::ScalarImplicit": _MOVES,
    "aten::movedim": _MOVES,
    "aten::dropout": "identity in eval mode: no arithmetic",
    "aten::zeros": _CREATES,
    "aten::zeros_like": _CREATES,
    "aten::ones": _CREATES,
    "aten::empty": _CREATES,
    "aten::full": _CREATES,
    "aten::full_like": _CREATES,
    "aten::new_zeros": _CREATES,
    "aten::new_empty": _CREATES,
    "aten::new_full": _CREATES,
    "aten::arange": _CREATES,
    "aten::relu": _COMPARES,
    "aten::relu_": _COMPARES,
    "aten::hardtanh": _COMPARES,
    "aten::hardtanh_": _COMPARES,
    "aten::clamp": _COMPARES,
    "aten::clamp_": _COMPARES,
    "aten::max": _COMPARES,
    "aten::max_pool2d": _COMPARES,
    "aten::eq": _COMPARES,
    "aten::ge": _COMPARES,
    "aten::gt": _COMPARES,
    "aten::le": _COMPARES,
    "aten::lt": _COMPARES,
    "aten::floor": _COMPARES,
    "aten::floor_divide": _COMPARES,
    "aten::remainder": _COMPARES,
    "aten::__and__": _COMPARES,
    "aten::bitwise_not": _COMPARES,
    "aten::masked_fill": _COMPARES,
    "aten::nonzero": _COMPARES,
    "aten::add": _ADDS,
    "aten::add_": _ADDS,
}


# fvcore handles that count arithmetic outside the exact convention (normalisation, pooling):
# whole-model checks zero them, and say so. Neither carries convolution or linear MACs.
NOT_MACS: dict[str, str] = {
    "aten::batch_norm": "BatchNorm: a per-element scale and shift, left out of both conventions",
    "aten::adaptive_avg_pool2d": "pooling: additions and one division per output, left out of both conventions",
    "aten::avg_pool2d": "pooling: additions and one division per output, left out of both conventions",
}


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
    """The skipped operators that are not known to be free of multiply-accumulates, sorted."""
    return sorted(op for op in ignored if op not in FREE_OPS)


def param_count(module) -> int:
    """All parameters of ``module``, counted by fvcore (each shared tensor once)."""
    return int(parameter_count(module)[""])
