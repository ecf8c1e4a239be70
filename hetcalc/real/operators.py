"""The one table of aten operators by what they carry, and their families (torch).

Only products summed over a contracted dimension are MACs (convolutions, matmuls, attention).
Each aten operator (an overload packet, named without ``aten::``) carries one of:

- ``"formula"``: MACs, counted by its formula in ``hetcalc.real.formulas``;
- ``"none"``: no MAC, for the reason ``reason`` gives: from ``NONE`` below, else from torch's
  tags: element-wise (any overload of the family tagged pointwise), a view, or a creation
  operator (an overload with no Tensor argument);
- ``"unknown"``: everything else; it may carry MACs (composite operators such as ``linear``
  included: the counter decomposes them into operators it knows).

``carries`` is the classification of ``MacCounter`` and of ``hetcalc.real.fvcount`` alike.
``FAMILIES`` names the operator family a MAC is reported under (``MacCounter.by_op``).
"""

from __future__ import annotations

import functools

import torch

from .formulas import FORMULAS

_MOVES = "moves, copies or reshapes data: no arithmetic"
_SIZES = "reads a size or converts a scalar: no arithmetic"
_CREATES = "creates a tensor: no arithmetic"
_RANDOM = "draws random numbers: no arithmetic on the data"
_SELECTS = "comparisons, maxima or selection: no multiplies"
_ELEMENTWISE = "element-wise: no product summed over a contracted dimension"
_ADDS = (
    "element-wise addition, no multiplies (summing the partial results of a split convolution "
    "is the accumulation its counted MACs already include)"
)
_REDUCES = "a reduction of one tensor (sum, mean, norm, statistics): no product of two operands summed"
_NORMALISES = "normalisation: statistics of one tensor and a per-element scale and shift, no MACs"
_POOLS = "pooling: maxima or sums over a window, no product of two operands summed"
_RESAMPLES = "resampling: fixed interpolation weights per output, no contracted dimension"
_DROPOUT = "dropout: identity in eval mode, an element-wise mask in training"
_CHECKS = "a runtime check: no arithmetic"

# Operators that carry no MAC besides those torch's tags decide (element-wise, views, creation);
# names without "aten::", an in-place "_" removed. JIT names fvcore sees (dropout, size, Int, …)
# are here too.
NONE: dict[str, str] = {
    "clone": _MOVES,
    "_to_copy": _MOVES,
    "copy": _MOVES,
    "to": _MOVES,
    "type_as": _MOVES,
    "contiguous": _MOVES,
    "_unsafe_view": _MOVES,
    "_reshape_alias": _MOVES,
    "alias": _MOVES,
    "detach": _MOVES,
    "lift_fresh": _MOVES,
    "lift_fresh_copy": _MOVES,
    "resize": _MOVES,
    "set": _MOVES,
    "flip": _MOVES,
    "roll": _MOVES,
    "rot90": _MOVES,
    "tril": _MOVES,
    "triu": _MOVES,
    "repeat": _MOVES,
    "tile": _MOVES,
    "unfold_copy": _MOVES,
    "unsafe_split": _MOVES,
    "unsafe_split_with_sizes": _MOVES,
    "unsafe_chunk": _MOVES,
    "cat": _MOVES,
    "stack": _MOVES,
    "index": _MOVES,
    "_unsafe_index": _MOVES,
    "index_select": _MOVES,
    "gather": _MOVES,
    "take": _MOVES,
    "embedding": _MOVES,
    "scatter": _MOVES,
    "index_put": _MOVES,
    "_unsafe_index_put": _MOVES,
    "index_copy": _MOVES,
    "index_fill": _MOVES,
    "masked_fill": _MOVES,
    "masked_scatter": _MOVES,
    "slice_scatter": _MOVES,
    "select_scatter": _MOVES,
    "diagonal_scatter": _MOVES,
    "as_strided_scatter": _MOVES,
    "pad": _MOVES,
    "constant_pad_nd": _MOVES,
    "reflection_pad1d": _MOVES,
    "reflection_pad2d": _MOVES,
    "reflection_pad3d": _MOVES,
    "replication_pad1d": _MOVES,
    "replication_pad2d": _MOVES,
    "replication_pad3d": _MOVES,
    "channel_shuffle": _MOVES,
    "native_channel_shuffle": _MOVES,
    "pixel_shuffle": _MOVES,
    "pixel_unshuffle": _MOVES,
    "im2col": _MOVES,
    "col2im": _MOVES,
    "size": _SIZES,
    "numel": _SIZES,
    "Int": _SIZES,
    "ScalarImplicit": _SIZES,
    "empty_like": _CREATES,
    "zeros_like": _CREATES,
    "ones_like": _CREATES,
    "full_like": _CREATES,
    "new_empty": _CREATES,
    "new_empty_strided": _CREATES,
    "new_zeros": _CREATES,
    "new_ones": _CREATES,
    "new_full": _CREATES,
    "fill": _CREATES,
    "zero": _CREATES,
    "rand_like": _RANDOM,
    "randn_like": _RANDOM,
    "randint_like": _RANDOM,
    "uniform": _RANDOM,
    "normal": _RANDOM,
    "bernoulli": _RANDOM,
    "random": _RANDOM,
    "exponential": _RANDOM,
    "cauchy": _RANDOM,
    "log_normal": _RANDOM,
    "geometric": _RANDOM,
    "amax": _SELECTS,
    "amin": _SELECTS,
    "max": _SELECTS,
    "min": _SELECTS,
    "aminmax": _SELECTS,
    "argmax": _SELECTS,
    "argmin": _SELECTS,
    "cummax": _SELECTS,
    "cummin": _SELECTS,
    "any": _SELECTS,
    "all": _SELECTS,
    "sort": _SELECTS,
    "argsort": _SELECTS,
    "topk": _SELECTS,
    "kthvalue": _SELECTS,
    "median": _SELECTS,
    "nonzero": _SELECTS,
    "add": _ADDS,
    "rsub": _ELEMENTWISE,
    "floor_divide": _ELEMENTWISE,
    "__and__": _ELEMENTWISE,
    "__or__": _ELEMENTWISE,
    "__xor__": _ELEMENTWISE,
    "hardswish": _ELEMENTWISE,
    "_prelu_kernel": _ELEMENTWISE,
    "glu": _ELEMENTWISE,
    "log_sigmoid_forward": _ELEMENTWISE,
    "softmax": _ELEMENTWISE,
    "log_softmax": _ELEMENTWISE,
    "_softmax": _ELEMENTWISE,
    "_log_softmax": _ELEMENTWISE,
    "_safe_softmax": _ELEMENTWISE,
    "sum": _REDUCES,
    "mean": _REDUCES,
    "cumsum": _REDUCES,
    "logsumexp": _REDUCES,
    "var": _REDUCES,
    "std": _REDUCES,
    "var_mean": _REDUCES,
    "std_mean": _REDUCES,
    "linalg_vector_norm": _REDUCES,
    "scatter_add": _REDUCES,
    "scatter_reduce": _REDUCES,
    "index_add": _REDUCES,
    "batch_norm": _NORMALISES,
    "native_batch_norm": _NORMALISES,
    "_native_batch_norm_legit": _NORMALISES,
    "_native_batch_norm_legit_no_training": _NORMALISES,
    "_native_batch_norm_legit_functional": _NORMALISES,
    "_batch_norm_with_update": _NORMALISES,
    "_batch_norm_no_update": _NORMALISES,
    "instance_norm": _NORMALISES,
    "layer_norm": _NORMALISES,
    "native_layer_norm": _NORMALISES,
    "group_norm": _NORMALISES,
    "native_group_norm": _NORMALISES,
    "_fused_rms_norm": _NORMALISES,
    "max_pool2d": _POOLS,
    "max_pool2d_with_indices": _POOLS,
    "max_pool3d_with_indices": _POOLS,
    "avg_pool1d": _POOLS,
    "avg_pool2d": _POOLS,
    "avg_pool3d": _POOLS,
    "adaptive_avg_pool2d": _POOLS,
    "_adaptive_avg_pool2d": _POOLS,
    "_adaptive_avg_pool3d": _POOLS,
    "adaptive_max_pool1d": _POOLS,
    "adaptive_max_pool2d": _POOLS,
    "adaptive_max_pool3d": _POOLS,
    "upsample_nearest1d": _RESAMPLES,
    "upsample_nearest2d": _RESAMPLES,
    "upsample_nearest3d": _RESAMPLES,
    "_upsample_nearest_exact1d": _RESAMPLES,
    "_upsample_nearest_exact2d": _RESAMPLES,
    "_upsample_nearest_exact3d": _RESAMPLES,
    "upsample_linear1d": _RESAMPLES,
    "upsample_bilinear2d": _RESAMPLES,
    "upsample_bicubic2d": _RESAMPLES,
    "upsample_trilinear3d": _RESAMPLES,
    "_upsample_bilinear2d_aa": _RESAMPLES,
    "_upsample_bicubic2d_aa": _RESAMPLES,
    "grid_sampler": _RESAMPLES,
    "grid_sampler_2d": _RESAMPLES,
    "grid_sampler_3d": _RESAMPLES,
    "dropout": _DROPOUT,
    "feature_dropout": _DROPOUT,
    "alpha_dropout": _DROPOUT,
    "feature_alpha_dropout": _DROPOUT,
    "native_dropout": _DROPOUT,
    # What autograd runs for the operators above: the same work (or less) run backwards, no MAC.
    "select_backward": _MOVES,
    "slice_backward": _MOVES,
    "unfold_backward": _MOVES,
    "diagonal_backward": _MOVES,
    "index_select_backward": _MOVES,
    "reflection_pad1d_backward": _MOVES,
    "reflection_pad2d_backward": _MOVES,
    "reflection_pad3d_backward": _MOVES,
    "replication_pad1d_backward": _MOVES,
    "replication_pad2d_backward": _MOVES,
    "replication_pad3d_backward": _MOVES,
    "embedding_dense_backward": _REDUCES,
    "hardswish_backward": _ELEMENTWISE,
    "hardtanh_backward": _ELEMENTWISE,
    "hardsigmoid_backward": _ELEMENTWISE,
    "elu_backward": _ELEMENTWISE,
    "leaky_relu_backward": _ELEMENTWISE,
    "softplus_backward": _ELEMENTWISE,
    "mish_backward": _ELEMENTWISE,
    "hardshrink_backward": _ELEMENTWISE,
    "softshrink_backward": _ELEMENTWISE,
    "rrelu_with_noise_backward": _ELEMENTWISE,
    "_prelu_kernel_backward": _ELEMENTWISE,
    "glu_backward": _ELEMENTWISE,
    "log_sigmoid_backward": _ELEMENTWISE,
    "_softmax_backward_data": _ELEMENTWISE,
    "_log_softmax_backward_data": _ELEMENTWISE,
    "native_batch_norm_backward": _NORMALISES,
    "batch_norm_backward": _NORMALISES,
    "native_layer_norm_backward": _NORMALISES,
    "native_group_norm_backward": _NORMALISES,
    "_fused_rms_norm_backward": _NORMALISES,
    "max_pool2d_with_indices_backward": _POOLS,
    "max_pool3d_with_indices_backward": _POOLS,
    "avg_pool2d_backward": _POOLS,
    "avg_pool3d_backward": _POOLS,
    "_adaptive_avg_pool2d_backward": _POOLS,
    "_adaptive_avg_pool3d_backward": _POOLS,
    "adaptive_max_pool2d_backward": _POOLS,
    "adaptive_max_pool3d_backward": _POOLS,
    "upsample_nearest1d_backward": _RESAMPLES,
    "upsample_nearest2d_backward": _RESAMPLES,
    "upsample_nearest3d_backward": _RESAMPLES,
    "_upsample_nearest_exact1d_backward": _RESAMPLES,
    "_upsample_nearest_exact2d_backward": _RESAMPLES,
    "_upsample_nearest_exact3d_backward": _RESAMPLES,
    "upsample_linear1d_backward": _RESAMPLES,
    "upsample_bilinear2d_backward": _RESAMPLES,
    "upsample_bicubic2d_backward": _RESAMPLES,
    "upsample_trilinear3d_backward": _RESAMPLES,
    "grid_sampler_2d_backward": _RESAMPLES,
    "grid_sampler_3d_backward": _RESAMPLES,
    "native_dropout_backward": _DROPOUT,
    "_fused_sdp_choice": _CHECKS,
    "_assert_async": _CHECKS,
    "_assert_scalar": _CHECKS,
    "_assert_tensor_metadata": _CHECKS,
    "_functional_assert_async": _CHECKS,
}

# The family a MAC is reported under: that of the outermost operator with a family being
# decomposed when it runs (linear → addmm is "linear"), else that of the formula's operator.
FAMILIES: dict[str, str] = {
    "linear": "linear",
    "matmul": "matmul",
    "mm": "matmul",
    "addmm": "matmul",
    "_addmm_activation": "matmul",
    "bmm": "matmul",
    "baddbmm": "matmul",
    "addbmm": "matmul",
    "mv": "matmul",
    "addmv": "matmul",
    "dot": "matmul",
    "vdot": "matmul",
    "einsum": "einsum",
    "conv1d": "convolution",
    "conv2d": "convolution",
    "conv3d": "convolution",
    "conv_transpose1d": "convolution",
    "conv_transpose2d": "convolution",
    "conv_transpose3d": "convolution",
    "_convolution_mode": "convolution",
    "convolution": "convolution",
    "_convolution": "convolution",
    "convolution_overrideable": "convolution",
    "convolution_backward": "convolution",
    "mkldnn_convolution": "convolution",
    "cudnn_convolution": "convolution",
    "cudnn_convolution_transpose": "convolution",
    "scaled_dot_product_attention": "attention",
    "_scaled_dot_product_flash_attention_for_cpu": "attention",
    "_scaled_dot_product_efficient_attention": "attention",
    "_scaled_dot_product_flash_attention": "attention",
    "_scaled_dot_product_cudnn_attention": "attention",
    "_scaled_dot_product_flash_attention_for_cpu_backward": "attention",
    "_efficient_attention_forward": "attention",
    "_flash_attention_forward": "attention",
    "_native_multi_head_attention": "attention",
    "_transformer_encoder_layer_fwd": "transformer_encoder_layer",
    "lstm": "lstm",
    "lstm_cell": "lstm",
    "gru": "gru",
    "gru_cell": "gru",
    "rnn_tanh": "rnn",
    "rnn_relu": "rnn",
    "rnn_tanh_cell": "rnn",
    "rnn_relu_cell": "rnn",
}

ACTIVATIONS = frozenset({"convolution", "linear", "matmul", "einsum"})
"""The families whose forward outputs are activations, as fvcore's ``ActivationCountAnalysis`` counts them
(``aten::_convolution``, ``addmm``, ``bmm``, ``einsum``, ``matmul``, ``linear``); not attention or recurrent layers."""

_VIEW_TAGS = frozenset(
    t for t in (getattr(torch.Tag, n, None) for n in ("view_copy", "inplace_view")) if t is not None
)


def _qualified(op) -> tuple[str, str]:
    """(namespace, packet name) of an OpOverload, an OpOverloadPacket or a name ("aten::mul" or "mul")."""
    if isinstance(op, torch._ops.OpOverload):
        text = op._schema.name
    elif isinstance(op, torch._ops.OpOverloadPacket):
        text = op._qualified_op_name
    else:
        text = op if "::" in op else f"aten::{op}"
    namespace, _, name = text.partition("::")
    return namespace, name


@functools.cache
def _dispatcher() -> frozenset[str]:
    """Overloads the dispatcher has ("aten::add.Tensor"); TorchScript's scalar ones (add.int) it has not."""
    return frozenset(torch._C._dispatch_get_all_op_names())


def _by_tags(namespace: str, name: str) -> str | None:
    """Why a packet carries no MAC by torch's tags (any dispatcher overload decides), or None."""
    for family in {name, name.removesuffix("_")}:
        try:
            packet = getattr(getattr(torch.ops, namespace), family)
        except (AttributeError, RuntimeError):
            continue
        for op in (getattr(packet, overload) for overload in packet.overloads()):
            if op.name() not in _dispatcher():
                continue
            if torch.Tag.pointwise in op.tags:
                return _ELEMENTWISE
            if op.is_view or _VIEW_TAGS.intersection(op.tags):
                return _MOVES
            if not any("Tensor" in str(argument.type) for argument in op._schema.arguments):
                return _CREATES  # empty, zeros, arange, randn, scalar_tensor, …
    return None


@functools.cache
def _reason(namespace: str, name: str) -> str | None:
    if namespace == "aten":
        for key in (name, name.removesuffix("_")):
            if key in NONE:
                return NONE[key]
    return _by_tags(namespace, name)


def reason(op) -> str | None:
    """Why the operator ``op`` carries no MAC (``NONE``, else torch's tags), or None if it may carry some."""
    return _reason(*_qualified(op))


def carries(op) -> str:
    """What the operator ``op`` carries: "formula", "none" or "unknown" (see the module docstring).

    ``op``: an OpOverload, an OpOverloadPacket or a name ("aten::mul" or "mul").
    """
    namespace, name = _qualified(op)
    if namespace == "aten" and name in FORMULAS:
        return "formula"
    return "none" if _reason(namespace, name) else "unknown"


def family(op) -> str | None:
    """The family of the operator ``op`` in ``FAMILIES`` (an aten operator), or None."""
    namespace, name = _qualified(op)
    return FAMILIES.get(name) if namespace == "aten" else None


def aten_names() -> list[str]:
    """Every aten operator this torch build registers (packet names) and every name in ``NONE``, sorted."""
    registered = {
        full.partition("::")[2].partition(".")[0] for full in _dispatcher() if full.startswith("aten::")
    }
    return sorted(registered | NONE.keys())
