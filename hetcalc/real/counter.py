"""Exact multiply-accumulate counts of one forward pass, per operator and per module (torch).

Unit: one multiply-accumulate (MAC) = 1 FLOP, the unit of fvcore and the HetConv paper.
torch's FlopCounterMode counts 2 per MAC; this module never does. Only products summed over a
contracted dimension are MACs (convolutions, matmuls, attention). Element-wise operations,
reductions, normalisation, pooling, activations, softmax and bias additions carry none.

>>> with MacCounter(model) as counter:
...     model(x)
>>> counter.total, counter.by_op, counter.macs_in("layer1")

A ``TorchDispatchMode`` sees every aten operator the forward runs, after autograd, on any device
(meta included, so no data is needed). Each operator is handled once, by the first rule that fits:

1. it has a formula in ``FORMULAS``: its MACs, a pure function of the argument shapes, are added
   to the innermost module running (O(1) per operator, whatever the depth of the model);
2. it is CompositeImplicitAutograd (``aten.linear``, ``aten.matmul``, ``aten.einsum``,
   ``aten.conv2d``, ``aten.scaled_dot_product_attention`` reach the mode under ``inference_mode``):
   it is decomposed under the mode, so its parts are counted by rule 1 and never twice;
3. its output shape or value depends on the data (``nonzero``, ``unique``, ``item``, …): it is
   recorded in ``data_dependent``;
4. it is known to carry no MACs (``is_free``): nothing is recorded;
5. otherwise its calls are recorded in ``uncounted``: never dropped silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Formula table: aten OpOverloadPacket → (name reported in by_op, function of shapes).
FORMULAS: dict[object, tuple[str, Callable[..., int | None]]] = {}


def _ops(*names: str) -> list:
    """The aten operators among ``names`` that this torch build has (a missing one is skipped)."""
    return [getattr(aten, name) for name in names if hasattr(aten, name)]


def formula(*ops, name: str | None = None):
    """Register the decorated function as the MAC count of ``ops``; the function is returned unchanged.

    It is called with the operator's arguments, each tensor replaced by its shape (a tuple), and
    ``out_shape`` (the first output's shape) as a keyword; it returns the MACs, or None when the
    shapes alone cannot tell (the call is then recorded as uncounted). ``name`` (default: the
    function's name) is the key in ``MacCounter.by_op``.
    """

    def register(function):
        for op in ops:
            if op in FORMULAS:
                raise ValueError(
                    f"{op} already has a MAC formula ({FORMULAS[op][1].__name__}); "
                    f"{function.__name__} cannot be registered for it too."
                )
            FORMULAS[op] = (name or function.__name__, function)
        return function

    return register


# Convolutions. Zero-padding taps are counted, as fvcore and the HetConv paper do.


@formula(*_ops("convolution", "_convolution", "convolution_overrideable"))
def convolution(x, w, bias, stride, padding, dilation, transposed, *_, out_shape, **__):
    """N·prod(out spatial)·Cout·Cin/G·prod(k); transposed: N·prod(in spatial)·Cin·Cout/G·prod(k).

    x: N×Cin×spatial…, w: Cout×Cin/G×k… (transposed: Cin×Cout/G×k…). A transposed convolution
    scatters each input element to Cout/G·prod(k) outputs: fvcore's convention, padding and
    output_padding left out (they crop or pad the output, they do not change the products).
    """
    if transposed:
        return x[0] * math.prod(x[2:]) * math.prod(w)
    return out_shape[0] * math.prod(out_shape[2:]) * math.prod(w)


@formula(*_ops("mkldnn_convolution", "cudnn_convolution"), name="convolution")
def convolution_backend(x, w, *_, out_shape, **__):
    """A backend's non-transposed convolution: N·prod(out spatial)·prod(w), w: Cout×Cin/G×k…."""
    return out_shape[0] * math.prod(out_shape[2:]) * math.prod(w)


@formula(*_ops("cudnn_convolution_transpose"), name="convolution")
def convolution_transpose_backend(x, w, *_, **__):
    """A backend's transposed convolution: N·prod(in spatial)·prod(w), w: Cin×Cout/G×k…."""
    return x[0] * math.prod(x[2:]) * math.prod(w)


# Matrix products.


@formula(aten.mm)
def mm(a, b, **_):
    """a: m×k, b: k×n → m·k·n."""
    (m, k), (_, n) = a, b
    return m * k * n


@formula(*_ops("addmm", "_addmm_activation"))
def addmm(bias, a, b, *_, **__):
    """bias + a·b, a: m×k, b: k×n → m·k·n (the bias adds no MAC)."""
    return mm(a, b)


@formula(aten.bmm)
def bmm(a, b, **_):
    """a: B×m×k, b: B×k×n → B·m·k·n."""
    (batch, m, k), (_, _, n) = a, b
    return batch * m * k * n


@formula(*_ops("baddbmm", "addbmm"))
def baddbmm(bias, a, b, *_, **__):
    """bias + a·b (addbmm also sums over B), a: B×m×k, b: B×k×n → B·m·k·n."""
    return bmm(a, b)


@formula(aten.mv)
def mv(a, v, **_):
    """a: m×k, v: k → m·k."""
    m, k = a
    return m * k


@formula(aten.addmv)
def addmv(bias, a, v, *_, **__):
    """bias + a·v, a: m×k, v: k → m·k."""
    return mv(a, v)


@formula(*_ops("dot", "vdot"))
def dot(a, b, **_):
    """a, b: k → k."""
    return a[0]


# Attention: QKᵀ then attention·V. A causal or any other mask is counted in full (L·S): the
# dense kernels compute every product and mask afterwards.


def attention_macs(q, k, v) -> int:
    """q: B×H×L×E, k: B×Hk×S×E, v: B×Hk×S×Ev → B·H·L·S·E + B·H·L·S·Ev (query heads: GQA too)."""
    *batch_heads, length, e = q
    s, ev = k[-2], v[-1]
    return math.prod(batch_heads) * length * s * (e + ev)


@formula(
    *_ops(
        "_scaled_dot_product_flash_attention_for_cpu",
        "_scaled_dot_product_efficient_attention",
        "_scaled_dot_product_flash_attention",
        "_scaled_dot_product_cudnn_attention",
    )
)
def attention(q, k, v, *_, **__):
    """The fused SDPA kernels, layout B×H×L×E: see attention_macs."""
    return attention_macs(q, k, v)


def _blhe(q, k, v) -> int:
    """attention_macs for layout B×L×H×E (q), B×S×Hk×E (k), B×S×Hk×Ev (v)."""
    (b, length, h, e), (_, s, hk, _), ev = q, k, v[-1]
    return attention_macs((b, h, length, e), (b, hk, s, e), (b, hk, s, ev))


@formula(*_ops("_efficient_attention_forward"), name="attention")
def efficient_attention_forward(q, k, v, bias=None, cu_seqlens_q=None, cu_seqlens_k=None, *_, **__):
    """Layout B×L×H×E; None (uncounted) for packed variable-length batches (cu_seqlens)."""
    return None if cu_seqlens_q is not None else _blhe(q, k, v)


@formula(*_ops("_flash_attention_forward"), name="attention")
def flash_attention_forward(q, k, v, cum_seq_q=None, cum_seq_k=None, *_, **__):
    """Layout B×L×H×E; None (uncounted) for packed variable-length batches (cum_seq)."""
    return None if cum_seq_q is not None else _blhe(q, k, v)


def _mha_macs(q, k, embed_dim: int) -> int:
    """Projections and attention of multi-head attention, q: B×L×E, k (and v): B×S×E (B optional).

    q-proj B·L·E·E + k,v-proj 2·B·S·E·E + QKᵀ and attention·V 2·B·L·S·E + out-proj B·L·E·E.
    """
    e = embed_dim
    batch = q[0] if len(q) == 3 else 1
    length, s = q[-2], k[-2]
    return batch * (2 * length * e * e + 2 * s * e * e + 2 * length * s * e)


@formula(*_ops("_native_multi_head_attention"))
def native_mha(q, k, v, embed_dim, num_heads, *_, **__):
    """nn.MultiheadAttention's fast path (eval, no grad, batch_first): see _mha_macs."""
    return _mha_macs(q, k, embed_dim)


@formula(*_ops("_transformer_encoder_layer_fwd"))
def transformer_encoder_layer(
    src,
    embed_dim,
    num_heads,
    qkv_w,
    qkv_b,
    proj_w,
    proj_b,
    use_gelu,
    norm_first,
    eps,
    norm_w1,
    norm_b1,
    norm_w2,
    norm_b2,
    ffn_w1,
    *_,
    **__,
):
    """nn.TransformerEncoderLayer's fast path, src: B×L×E, ffn_w1: F×E.

    Self-attention (_mha_macs with S = L) + feed-forward B·L·E·F + B·L·F·E.
    """
    tokens = math.prod(src[:-1])
    return _mha_macs(src, src, embed_dim) + 2 * tokens * math.prod(ffn_w1)


# aten operators known to carry no MAC, besides those of a pointwise family, views and creation
# operators (no tensor argument). Names are overload packets, an in-place "_" removed.
FREE = frozenset(
    """
    clone _to_copy copy to contiguous _unsafe_view alias detach lift_fresh lift_fresh_copy resize set
    empty_like zeros_like ones_like full_like rand_like randn_like new_empty new_empty_strided new_zeros
    new_ones new_full fill zero flip roll rot90 tril triu repeat tile _reshape_alias unfold_copy
    sum mean amax amin max min aminmax argmax argmin cumsum cummax cummin any all logsumexp
    var std var_mean std_mean sort argsort topk kthvalue median
    native_batch_norm _native_batch_norm_legit _native_batch_norm_legit_no_training
    _native_batch_norm_legit_functional _batch_norm_with_update _batch_norm_no_update
    native_layer_norm native_group_norm _fused_rms_norm
    max_pool2d_with_indices max_pool3d_with_indices avg_pool1d avg_pool2d avg_pool3d
    _adaptive_avg_pool2d _adaptive_avg_pool3d adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d
    _softmax _log_softmax _safe_softmax
    index _unsafe_index index_select gather scatter scatter_add scatter_reduce index_put _unsafe_index_put
    index_add index_copy index_fill masked_fill masked_scatter embedding take
    slice_scatter select_scatter diagonal_scatter as_strided_scatter
    cat stack constant_pad_nd reflection_pad1d reflection_pad2d reflection_pad3d
    replication_pad1d replication_pad2d replication_pad3d channel_shuffle native_channel_shuffle
    pixel_shuffle pixel_unshuffle im2col col2im
    native_dropout uniform normal bernoulli random exponential cauchy log_normal geometric randint_like
    hardswish _prelu_kernel glu log_sigmoid_forward rsub
    upsample_nearest1d upsample_nearest2d upsample_nearest3d _upsample_nearest_exact1d
    _upsample_nearest_exact2d _upsample_nearest_exact3d upsample_linear1d upsample_bilinear2d
    upsample_bicubic2d upsample_trilinear3d _upsample_bilinear2d_aa _upsample_bicubic2d_aa
    _assert_async _assert_scalar _assert_tensor_metadata _functional_assert_async
""".split()
)

_FREE_TAGS = frozenset(
    t
    for t in (getattr(torch.Tag, n, None) for n in ("pointwise", "view_copy", "inplace_view"))
    if t is not None
)  # not nondeterministic_seeded: SDPA has it
_DATA_TAGS = frozenset(
    t
    for t in (getattr(torch.Tag, n, None) for n in ("dynamic_output_shape", "data_dependent_output"))
    if t is not None
)


def _pointwise_family(name: str) -> bool:
    """True if an overload of aten ``name`` or of its out-of-place form is tagged pointwise.

    The tag is uneven across overloads (``gelu_``, ``*.out`` lack it), so the family decides.
    """
    for family in {name, name.removesuffix("_")}:
        packet = getattr(aten, family, None)
        if packet is not None and any(
            torch.Tag.pointwise in getattr(packet, overload).tags for overload in packet.overloads()
        ):
            return True
    return False


def is_free(op) -> bool:
    """True if the aten operator ``op`` (an OpOverload) is known to carry no MAC."""
    if _FREE_TAGS.intersection(op.tags) or op.is_view:
        return True
    if not any("Tensor" in str(argument.type) for argument in op._schema.arguments):
        return True  # a creation operator: empty, zeros, arange, randn, scalar_tensor, …
    if op.namespace != "aten":
        return False
    name = op.overloadpacket.__name__
    return name.removesuffix("_") in FREE or _pointwise_family(name)


def is_data_dependent(op) -> bool:
    """True if the output shape or value of ``op`` may depend on the data (nonzero, unique, item, …)."""
    return bool(_DATA_TAGS.intersection(op.tags))


def _depends_on_data(op, args) -> bool:
    """Whether this call of a data-dependent ``op`` does: ``x[indices]`` does only with boolean masks."""
    if op is aten.index.Tensor:
        return any(i is not None and i.dtype in (torch.bool, torch.uint8) for i in args[1])
    return True


def _has_decomposition(op) -> bool:
    """True if ``op`` is CompositeImplicitAutograd in C++: it decomposes into operators that reach the mode.

    A Python-only decomposition (``native_batch_norm`` has one) does not count: the operator is a
    kernel of its own, and decomposing it in Python would be slow.
    """
    return torch._C._dispatch_has_kernel_for_dispatch_key(
        op.name(), torch._C.DispatchKey.CompositeImplicitAutograd
    )


def _shape(value):
    """A tensor's shape as a tuple; lists and tuples converted element-wise; anything else as is."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shape(v) for v in value]
    return value


def _key(value):
    """A hashable description of an argument: a tensor's shape, strides and dtype, else its type and value.

    The type matters: ``x * 2``, ``x * 2.0`` and ``x * True`` promote to different dtypes.
    """
    if isinstance(value, torch.Tensor):
        return (torch.Tensor, tuple(value.shape), value.stride(), value.dtype)
    if isinstance(value, (list, tuple)):
        return (type(value), tuple(map(_key, value)))
    return (type(value), value)


def _layout(out):
    """The metadata of an operator's output (tensors: shape, strides, dtype), or None if it is not tensors."""
    if isinstance(out, torch.Tensor):
        return (tuple(out.shape), out.stride(), out.dtype)
    if isinstance(out, (list, tuple)) and out and all(isinstance(o, torch.Tensor) for o in out):
        return (type(out), [_layout(o) for o in out])
    return None


def _rebuild(layout):
    """Fresh meta tensors with the metadata of ``_layout``, in a container of the same type."""
    if isinstance(layout[1], list):
        container, items = layout
        return container([_rebuild(item) for item in items])
    shape, stride, dtype = layout
    return torch.empty_strided(shape, stride, dtype=dtype, device="meta")


class MetaCache:
    """Outputs of operators on meta tensors, computed once per signature and rebuilt after.

    Some meta kernels are Python (``native_batch_norm``, pointwise ops: milliseconds a call); a
    deep network repeats the same few signatures, so only the first call of each runs the kernel.
    A signature is the operator and ``_key`` of every argument. In-place and view operators, and
    calls with a tensor off the meta device, always run (their outputs alias or hold data).
    """

    def __init__(self):
        self._outputs: dict = {}

    def __len__(self) -> int:
        """The number of signatures stored."""
        return len(self._outputs)

    def __call__(self, func, args, kwargs):
        """``func(*args, **kwargs)``, or fresh meta tensors like the first output of its signature."""
        tensors = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)]
        if (
            not tensors
            or func.is_view
            or func._schema.is_mutable
            or not all(t.is_meta and t.layout == torch.strided for t in tensors)
        ):
            return func(*args, **kwargs)
        try:
            key = (func, _key(args), _key(tuple(kwargs.items())))
            layout = self._outputs.get(key, ...)
        except TypeError:  # an unhashable argument: run it every time
            return func(*args, **kwargs)
        if layout is ...:
            out = func(*args, **kwargs)
            self._outputs[key] = _layout(out)  # None (a scalar, no tensor): run it every time
            return out
        return func(*args, **kwargs) if layout is None else _rebuild(layout)


_FORMULA, _DECOMPOSE, _DATA, _FREE, _UNKNOWN = range(5)


def _rule(op) -> int:
    """Which of the module docstring's five rules handles ``op`` (decided once per OpOverload)."""
    if op.overloadpacket in FORMULAS:
        return _FORMULA
    if _has_decomposition(op):
        return _DECOMPOSE
    if is_data_dependent(op):
        return _DATA
    return _FREE if is_free(op) else _UNKNOWN


class MacCounter(TorchDispatchMode):
    """Count the MACs of everything run inside ``with MacCounter(model) as counter:``.

    ``total``: all MACs; ``by_op``: MACs per formula name; ``by_module``: qualified module name
    ("" = outside any module of ``model``) → {formula name: MACs}, for the innermost module running;
    ``uncounted``: operator → calls, for operators with no formula not known to be free of MACs;
    ``data_dependent``: operator → calls, for operators whose output depends on the data.
    Without ``model``, everything is attributed to "".
    """

    def __init__(self, model: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.total = 0
        self.by_op: dict[str, int] = {}
        self.by_module: dict[str, dict[str, int]] = {}
        self.uncounted: dict[str, int] = {}
        self.data_dependent: dict[str, int] = {}
        self._stack = [""]
        self._handles: list = []
        self._depth = 0
        self._rules: dict[object, int] = {}
        self._params = {id(p) for p in model.parameters()} if model is not None else set()
        self.used_params: set[int] = set()  # ids of the model's parameters that some operator read
        self._meta = MetaCache()

    def subtree_macs(self) -> dict[str, int]:
        """MACs of every module and everything below it, in one pass (each module's ancestors once)."""
        totals: dict[str, int] = {}
        for name, ops in self.by_module.items():
            macs = sum(ops.values())
            parts = name.split(".") if name else []
            for i in range(len(parts) + 1):
                prefix = ".".join(parts[:i])
                totals[prefix] = totals.get(prefix, 0) + macs
        return totals

    def macs_in(self, name: str) -> int:
        """MACs of module ``name`` and every module below it; "" is the total."""
        if name == "":
            return self.total
        prefix = name + "."
        return sum(
            sum(ops.values())
            for module, ops in self.by_module.items()
            if module == name or module.startswith(prefix)
        )

    # Module attribution: a stack of qualified names, pushed by a global forward pre-hook and
    # popped by a global forward hook that runs even when forward raises. Global hooks leave the
    # modules' own hooks empty, so fast paths that refuse hooked modules (nn.TransformerEncoderLayer)
    # are taken as they would be without the counter.

    def __enter__(self):
        self._depth += 1
        if self._depth == 1 and self.model is not None:
            names = {id(module): name for name, module in self.model.named_modules()}
            stack = self._stack
            stack[1:] = []

            def push(module, args):
                name = names.get(id(module))
                if name is not None:
                    stack.append(name)

            def pop(module, args, output):
                name = names.get(id(module))
                if name is not None:
                    while len(stack) > 1 and stack.pop() != name:
                        pass  # entries left by a forward that raised past another hook

            self._handles = [
                register_module_forward_pre_hook(push),
                register_module_forward_hook(pop, always_call=True),
            ]
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
        return super().__exit__(*exc)

    def _add(self, name: str, macs: int) -> None:
        self.total += macs
        self.by_op[name] = self.by_op.get(name, 0) + macs
        ops = self.by_module.setdefault(self._stack[-1], {})
        ops[name] = ops.get(name, 0) + macs

    def _note_params(self, values) -> None:
        """Record which of the model's parameters this call reads."""
        for value in values:
            if isinstance(value, (list, tuple)):
                self._note_params(value)
            elif id(value) in self._params:
                self.used_params.add(id(value))

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._params:
            self._note_params(args)
            self._note_params(kwargs.values())
        rule = self._rules.get(func)
        if rule is None:
            rule = self._rules[func] = _rule(func)
        if rule == _DECOMPOSE:
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
            rule = self._rules[func] = (
                _DATA if is_data_dependent(func) else _FREE if is_free(func) else _UNKNOWN
            )
        if rule == _FREE:
            return self._meta(func, args, kwargs)
        if rule == _DATA:
            if _depends_on_data(func, args):
                self.data_dependent[str(func)] = self.data_dependent.get(str(func), 0) + 1
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if rule == _FORMULA:
            name, count = FORMULAS[func.overloadpacket]
            first = out[0] if isinstance(out, (tuple, list)) else out
            macs = count(
                *map(_shape, args),
                out_shape=_shape(first),
                **{key: _shape(value) for key, value in kwargs.items()},
            )
            if macs is not None:
                self._add(name, macs)
                return out
        self.uncounted[str(func)] = self.uncounted.get(str(func), 0) + 1
        return out
