"""MAC formulas of aten operators: pure functions of argument shapes (torch).

Unit: one multiply-accumulate (MAC). A formula is registered under the names of the aten
operators it counts (overload packets, without ``aten::``) and serves every overload of them:
``macs`` binds a call's arguments to the operator's schema names (``mm``: ``self``, ``mat2``),
each tensor replaced by its shape, defaults filled in, and calls the formula with them as
keywords, plus ``out_shape`` (the first output's shape). A formula names the arguments it needs
and takes ``**_`` for the rest (``mm.dtype``'s ``out_dtype``, ``out=``, …).

>>> mm(self=(4, 8), mat2=(8, 5))
160
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

# aten operator name → its MAC formula.
FORMULAS: dict[str, Callable[..., int | None]] = {}


def formula(*names: str):
    """Register the decorated function as the MAC count of the aten operators ``names``; returned unchanged.

    It returns the MACs, or None when the shapes alone cannot tell (the call is then uncounted).
    """

    def register(function):
        for name in names:
            if name in FORMULAS:
                raise ValueError(
                    f"aten.{name} already has a MAC formula ({FORMULAS[name].__name__}); "
                    f"{function.__name__} cannot be registered for it too."
                )
            FORMULAS[name] = function
        return function

    return register


def _shape(value):
    """A tensor's shape as a tuple; lists and tuples converted element-wise; anything else as is."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape(v) for v in value]
    return value


def arguments(op, args, kwargs) -> dict:
    """A call's arguments of the OpOverload ``op`` by schema name, tensors as shapes, defaults filled in."""
    bound = {}
    for i, argument in enumerate(op._schema.arguments):
        if i < len(args):
            bound[argument.name] = _shape(args[i])
        elif argument.name in kwargs:
            bound[argument.name] = _shape(kwargs[argument.name])
        elif argument.has_default_value():
            bound[argument.name] = argument.default_value
    return bound


def macs(op, args, kwargs, out) -> int | None:
    """The MACs of one call of the OpOverload ``op`` that returned ``out``, by its packet's formula."""
    first = out[0] if isinstance(out, (tuple, list)) else out
    return FORMULAS[op.overloadpacket.__name__](**arguments(op, args, kwargs), out_shape=_shape(first))


# Convolutions. Zero-padding taps are counted, as fvcore and the HetConv paper do.


def convolution_macs(x, w, out_shape, transposed: bool) -> int:
    """N·prod(out spatial)·Cout·Cin/G·prod(k); transposed: N·prod(in spatial)·Cin·Cout/G·prod(k).

    x: N×Cin×spatial…, w: Cout×Cin/G×k… (transposed: Cin×Cout/G×k…). A transposed convolution
    scatters each input element to Cout/G·prod(k) outputs: fvcore's convention, padding and
    output_padding left out (they crop or pad the output, they do not change the products).
    """
    if transposed:
        return x[0] * math.prod(x[2:]) * math.prod(w)
    return out_shape[0] * math.prod(out_shape[2:]) * math.prod(w)


@formula("convolution", "_convolution", "convolution_overrideable")
def convolution(input, weight, transposed, out_shape, **_):
    """Any convolution: see convolution_macs."""
    return convolution_macs(input, weight, out_shape, transposed)


@formula("mkldnn_convolution", "cudnn_convolution")
def convolution_backend(self, weight, out_shape, **_):
    """A backend's convolution: see convolution_macs."""
    return convolution_macs(self, weight, out_shape, transposed=False)


@formula("cudnn_convolution_transpose")
def convolution_transpose_backend(self, weight, out_shape, **_):
    """A backend's transposed convolution: see convolution_macs."""
    return convolution_macs(self, weight, out_shape, transposed=True)


@formula("convolution_backward")
def convolution_backward(grad_output, input, weight, transposed, output_mask, **_):
    """The gradients of a convolution: each of the input's and the weight's, where ``output_mask`` asks for it,
    runs the forward's products again (the input's: the transposed convolution of grad_output over the same taps;
    the weight's: every tap summed over every position it touched); the bias's is a sum, no MAC."""
    forward = convolution_macs(input, weight, grad_output, transposed)
    return forward * (int(output_mask[0]) + int(output_mask[1]))


# Matrix products.


@formula("mm")
def mm(self, mat2, **_):
    """self: m×k, mat2: k×n → m·k·n."""
    (m, k), (_, n) = self, mat2
    return m * k * n


@formula("addmm", "_addmm_activation")
def addmm(mat1, mat2, **_):
    """self + mat1·mat2 → mm (the addition adds no MAC)."""
    return mm(mat1, mat2)


@formula("bmm")
def bmm(self, mat2, **_):
    """self: B×m×k, mat2: B×k×n → B·m·k·n."""
    (batch, m, k), (_, _, n) = self, mat2
    return batch * m * k * n


@formula("baddbmm", "addbmm")
def baddbmm(batch1, batch2, **_):
    """self + batch1·batch2 (addbmm also sums over B) → bmm."""
    return bmm(batch1, batch2)


@formula("mv")
def mv(self, vec, **_):
    """self: m×k, vec: k → m·k."""
    m, k = self
    return m * k


@formula("addmv")
def addmv(mat, vec, **_):
    """self + mat·vec → mv."""
    return mv(mat, vec)


@formula("dot", "vdot")
def dot(self, **_):
    """self and the other operand: k → k."""
    return self[0]


# Attention: QKᵀ then attention·V. A causal or any other mask is counted in full (L·S): the
# dense kernels compute every product and mask afterwards.


def attention_macs(q, k, v) -> int:
    """q: B×H×L×E, k: B×Hk×S×E, v: B×Hk×S×Ev → B·H·L·S·E + B·H·L·S·Ev (query heads: GQA too)."""
    *batch_heads, length, e = q
    s, ev = k[-2], v[-1]
    return math.prod(batch_heads) * length * s * (e + ev)


@formula(
    "_scaled_dot_product_flash_attention_for_cpu",
    "_scaled_dot_product_efficient_attention",
    "_scaled_dot_product_flash_attention",
    "_scaled_dot_product_cudnn_attention",
)
def attention(query, key, value, **_):
    """The fused SDPA kernels, layout B×H×L×E: see attention_macs."""
    return attention_macs(query, key, value)


def _blhe(q, k, v) -> int:
    """attention_macs for layout B×L×H×E (q), B×S×Hk×E (k), B×S×Hk×Ev (v)."""
    (b, length, h, e), (_, s, hk, _), ev = q, k, v[-1]
    return attention_macs((b, h, length, e), (b, hk, s, e), (b, hk, s, ev))


@formula("_scaled_dot_product_flash_attention_for_cpu_backward")
def attention_backward_cpu(query, key, value, **_):
    """The CPU flash kernel's backward, per batch and head: QKᵀ again (L·S·E: it keeps only the log-sum-exp),
    dV = Pᵀ·dO (L·S·Ev), dP = dO·Vᵀ (L·S·Ev), dQ = dS·K (L·S·E), dK = dSᵀ·Q (L·S·E): L·S·(3·E + 2·Ev). The
    softmax's own backward (a row sum) is element-wise work, no MAC, as ``_softmax_backward_data`` is."""
    *batch_heads, length, e = query
    s, ev = key[-2], value[-1]
    return math.prod(batch_heads) * length * s * (3 * e + 2 * ev)


@formula("_efficient_attention_forward")
def efficient_attention_forward(query, key, value, cu_seqlens_q, **_):
    """Layout B×L×H×E; None (uncounted) for packed variable-length batches (cu_seqlens)."""
    return None if cu_seqlens_q is not None else _blhe(query, key, value)


@formula("_flash_attention_forward")
def flash_attention_forward(query, key, value, cum_seq_q, **_):
    """Layout B×L×H×E; None (uncounted) for packed variable-length batches (cum_seq)."""
    return None if cum_seq_q is not None else _blhe(query, key, value)


def _mha_macs(q, k, embed_dim: int) -> int:
    """Projections and attention of multi-head attention, q: B×L×E, k (and v): B×S×E (B optional).

    q-proj B·L·E·E + k,v-proj 2·B·S·E·E + QKᵀ and attention·V 2·B·L·S·E + out-proj B·L·E·E.
    """
    e = embed_dim
    batch = q[0] if len(q) == 3 else 1
    length, s = q[-2], k[-2]
    return batch * (2 * length * e * e + 2 * s * e * e + 2 * length * s * e)


@formula("_native_multi_head_attention")
def native_mha(query, key, embed_dim, **_):
    """nn.MultiheadAttention's fast path (eval, no grad, batch_first): see _mha_macs."""
    return _mha_macs(query, key, embed_dim)


@formula("_transformer_encoder_layer_fwd")
def transformer_encoder_layer(src, embed_dim, ffn_weight_1, **_):
    """nn.TransformerEncoderLayer's fast path, src: B×L×E, ffn_weight_1: F×E.

    Self-attention (_mha_macs with S = L) + feed-forward B·L·E·F + B·L·F·E.
    """
    tokens = math.prod(src[:-1])
    return _mha_macs(src, src, embed_dim) + 2 * tokens * math.prod(ffn_weight_1)
