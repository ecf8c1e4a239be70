"""Exact multiply-accumulate counts of one forward pass, per operator family and per module (torch).

Unit: one multiply-accumulate (MAC) = 1 FLOP, the unit of fvcore and the HetConv paper.
torch's FlopCounterMode counts 2 per MAC; this module never does. Only products summed over a
contracted dimension are MACs (convolutions, matmuls, attention). Element-wise operations,
reductions, normalisation, pooling, activations, softmax and bias additions carry none.

>>> with torch.no_grad(), MacCounter(model) as counter:
...     model(x)
>>> counter.total, counter.by_op, counter.macs_in("layer1")

A ``TorchDispatchMode`` sees every aten operator the forward runs, after autograd, on any device
(meta included, so no data is needed). Each operator is handled once, by the first rule that fits
(``rule``):

1. it has a formula (``hetcalc.real.formulas``): its MACs, a pure function of the argument
   shapes, are added to the innermost module running (O(1) per operator, whatever the depth);
2. it is CompositeImplicitAutograd (``linear``, ``matmul``, ``einsum``, ``conv2d``,
   ``scaled_dot_product_attention``, ``lstm``): it is decomposed under the mode, so its parts are
   counted by rule 1 and never twice, under its family (``hetcalc.real.operators.FAMILIES``);
3. its output shape or value depends on the data (``nonzero``, ``unique``, ``item``, …): it is
   recorded in ``data_dependent``;
4. it carries no MAC (``operators.carries``): nothing is recorded;
5. otherwise its calls are recorded in ``uncounted``: never dropped silently.

Composite operators reach the mode whole where autograd does not decompose them first: under
``torch.inference_mode`` and under ``torch.no_grad`` (the counter then runs without autograd's
dispatch keys, as inference mode does). With gradients enabled they arrive decomposed, and their
MACs are reported under the family of the operator that ran (``nn.Linear`` as ``matmul``).

A training step (``loss.backward()`` inside the counter) is counted too: what autograd runs is seen as it runs
(``convolution_backward`` with its output mask, the matmuls of a matmul's gradients, attention's backward
kernel), kept apart as ``backward`` and attributed to the module whose forward created the autograd node that
ran it (nodes are numbered as they are created; the counter notes which module was running at each number).
On the meta device ``scaled_dot_product_attention`` runs the kernel the CPU would choose (``cpu_attention``), so a
step counted there runs, and saves, what it runs on the CPU.

Activations (fvcore's ``ActivationCountAnalysis``): the output elements of every forward convolution, linear and
matmul-family operator, counted once for a composite (``einsum``), by module (``activations_by_module``).
"""

from __future__ import annotations

import bisect
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode

from . import formulas
from .operators import ACTIVATIONS, carries, family

aten = torch.ops.aten

_DATA_TAGS = frozenset(
    t
    for t in (getattr(torch.Tag, n, None) for n in ("dynamic_output_shape", "data_dependent_output"))
    if t is not None
)
_AUTOGRAD = (
    torch._C.DispatchKeySet(torch._C.DispatchKey.AutogradFunctionality)
    | torch._C.DispatchKeySet(torch._C.DispatchKey.AutogradOther)
    | torch._C.DispatchKeySet(torch._C.DispatchKey.AutogradNestedTensor)
)  # the keys torch.inference_mode excludes


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


def _undecomposed(op) -> str:
    """Rules 3 to 5 of the module docstring: "data", "none" or "unknown"."""
    return "data" if is_data_dependent(op) else carries(op)


def rule(op) -> str:
    """The rule of the module docstring for the OpOverload ``op``.

    "formula", "decompose", "data", "none" or "unknown".
    """
    if carries(op) == "formula":
        return "formula"
    return "decompose" if _has_decomposition(op) else _undecomposed(op)


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


@dataclass(frozen=True)
class Call:
    """One outermost call of a recorded module: qualified name, input and output shapes (None: no tensor), and
    whether its input needed a gradient."""

    module: nn.Module
    name: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    input_grad: bool = False


def _shape_of(value) -> tuple[int, ...] | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


class MacCounter(TorchDispatchMode):
    """Count the MACs of everything run inside ``with MacCounter(model) as counter:``.

    ``total``: all MACs; ``by_op``: MACs per operator family (``operators.FAMILIES``);
    ``by_module``: qualified module name ("" = outside any module of ``model``) → {family: MACs},
    for the innermost module running; ``backward``, ``backward_by_op``, ``backward_by_module``: the MACs autograd's
    backward ran (in ``total``, not in ``by_op`` and ``by_module``), by the module whose forward made the node that
    ran them; ``activations`` and ``activations_by_module``: forward output elements (module docstring); ``uncounted``: operator → calls, for operators with no formula
    that may carry MACs; ``data_dependent``: operator → calls, for operators whose output depends on
    the data; ``used_params``: ids of the model's parameters some operator read; ``calls``: each
    outermost call of a module of ``model`` that is an instance of one of ``record`` (a recorded
    module inside another is not), in call order; ``reached``: the indices of the calls whose output a backward
    pass reached (a gradient flowed into it). Without ``model``, everything is attributed to "".
    """

    def __init__(self, model: nn.Module | None = None, record: tuple[type, ...] = ()):
        super().__init__()
        self.model = model
        self.record = tuple(record)
        self.total = 0
        self.by_op: dict[str, int] = {}
        self.by_module: dict[str, dict[str, int]] = {}
        self.backward = 0
        self.backward_by_op: dict[str, int] = {}
        self.backward_by_module: dict[str, dict[str, int]] = {}
        self.activations = 0
        self.activations_by_module: dict[str, int] = {}
        self.uncounted: dict[str, int] = {}
        self.data_dependent: dict[str, int] = {}
        self.used_params: set[int] = set()
        self.calls: list[Call] = []
        self.reached: set[int] = set()
        self._stack = [""]
        self._families: list[str] = []  # of the operators being decomposed, outermost first
        self._handles: list = []
        self._depth = 0
        self._recording = 0  # recorded modules running
        self._no_autograd = None
        self._rules: dict[object, tuple[str, str | None]] = {}
        self._params = {id(p) for p in model.parameters()} if model is not None else set()
        self._meta = MetaCache()
        self._starts: list[int] = []  # autograd's next node number at each change of the running module …
        self._owners: list[str] = []  # … and the module running from then on
        self._attention = None

    def subtree_macs(self, by_module: dict | None = None) -> dict[str, int]:
        """MACs of every module and everything below it, in one pass (each module's ancestors once);
        ``by_module``: another count by module (``backward_by_module``), else ``by_module``."""
        totals: dict[str, int] = {}
        for name, ops in (self.by_module if by_module is None else by_module).items():
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

    # Module attribution and recording: a stack of qualified names, pushed by a global forward
    # pre-hook and popped by a global forward hook that runs even when forward raises. Global
    # hooks leave the modules' own hooks empty, so fast paths that refuse hooked modules
    # (nn.TransformerEncoderLayer) are taken as they would be without the counter.

    def _hooks(self) -> list:
        names = {id(module): name for name, module in self.model.named_modules()}
        stack, record = self._stack, self.record
        stack[1:] = []

        def push(module, args):
            name = names.get(id(module))
            if name is not None:
                stack.append(name)
                self._recording += isinstance(module, record)
                self._running(name)

        def note(module, args, kwargs, output):  # registered before pop: runs first, on success only
            if self._recording == 1 and isinstance(module, record) and id(module) in names:
                x = next((a for a in args if isinstance(a, torch.Tensor)), None)
                if x is None and kwargs:
                    x = next(iter(kwargs.values()))
                grad = isinstance(x, torch.Tensor) and x.requires_grad
                self.calls.append(Call(module, names[id(module)], _shape_of(x), _shape_of(output), grad))
                if isinstance(output, torch.Tensor) and output.requires_grad:
                    index = len(self.calls) - 1
                    output.register_hook(lambda grad: self.reached.add(index))

        def pop(module, args, output):
            name = names.get(id(module))
            if name is not None:
                self._recording -= isinstance(module, record)
                while len(stack) > 1 and stack.pop() != name:
                    pass  # entries left by a forward that raised past another hook
                self._running(stack[-1])

        handles = [register_module_forward_pre_hook(push)]
        if record:
            handles.append(register_module_forward_hook(note, with_kwargs=True))
        return handles + [register_module_forward_hook(pop, always_call=True)]

    def _running(self, name: str) -> None:
        """Note that module ``name`` runs from autograd's next node number on (a training step's attribution)."""
        if torch.is_grad_enabled():
            self._starts.append(torch._C._autograd._get_sequence_nr())
            self._owners.append(name)

    def _owner(self, node) -> str:
        """The module whose forward created the autograd ``node`` ("" outside the model's modules)."""
        i = bisect.bisect_right(self._starts, node._sequence_nr()) - 1
        return self._owners[i] if i >= 0 else ""

    def __enter__(self):
        self._depth += 1
        if self._depth == 1:
            self._recording = 0
            if self.model is not None:
                self._handles = self._hooks()
            if not torch.is_grad_enabled():
                self._no_autograd = torch._C._ExcludeDispatchKeyGuard(_AUTOGRAD)
                self._no_autograd.__enter__()
            else:
                self._attention = cpu_attention()
                self._attention.__enter__()
        return super().__enter__()

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            for handle in self._handles:
                handle.remove()
            self._handles.clear()
            if self._no_autograd is not None:
                self._no_autograd.__exit__(None, None, None)
                self._no_autograd = None
            if self._attention is not None:
                self._attention.__exit__(None, None, None)
                self._attention = None
        return super().__exit__(*exc)

    def _add(self, name: str, macs: int) -> None:
        self.total += macs
        node = torch._C._current_autograd_node()
        if node is None:
            by_op, by_module, module = self.by_op, self.by_module, self._stack[-1]
        else:
            self.backward += macs
            by_op, by_module, module = self.backward_by_op, self.backward_by_module, self._owner(node)
        by_op[name] = by_op.get(name, 0) + macs
        ops = by_module.setdefault(module, {})
        ops[name] = ops.get(name, 0) + macs

    def _activation(self, out) -> None:
        """Count the output elements of a forward convolution, linear or matmul (fvcore's activations)."""
        if torch._C._current_autograd_node() is None:
            first = out[0] if isinstance(out, (tuple, list)) else out
            elements = first.numel()
            self.activations += elements
            module = self._stack[-1]
            self.activations_by_module[module] = self.activations_by_module.get(module, 0) + elements

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
        known = self._rules.get(func)
        if known is None:
            known = self._rules[func] = (rule(func), family(func))
        how, kind = known
        outermost = not self._families
        if how == "decompose":
            if kind:
                self._families.append(kind)
            try:
                with self:
                    out = func.decompose(*args, **kwargs)
            finally:
                if kind:
                    self._families.pop()
            if out is not NotImplemented:
                if outermost and kind in ACTIVATIONS:
                    self._activation(out)
                return out
            how = _undecomposed(func)
            self._rules[func] = (how, kind)
        if how == "none":
            return self._meta(func, args, kwargs)
        if how == "data":
            if _depends_on_data(func, args):
                self.data_dependent[str(func)] = self.data_dependent.get(str(func), 0) + 1
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if how == "formula":
            macs = formulas.macs(func, args, kwargs, out)
            if macs is not None:
                self._add(self._families[0] if self._families else kind, macs)
                if outermost and kind in ACTIVATIONS:
                    self._activation(out)
                return out
        self.uncounted[str(func)] = self.uncounted.get(str(func), 0) + 1
        return out


_SDPA = torch.ops.aten.scaled_dot_product_attention.default
_FLASH = 1  # torch.nn.attention.SDPBackend.FLASH_ATTENTION, as aten._fused_sdp_choice returns it


def _on_cpu(value):
    """An uninitialised CPU tensor with ``value``'s shape, strides and dtype (its pages never touched), else ``value``."""
    if isinstance(value, torch.Tensor):
        return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="cpu")
    return value


def _attention_as_on_cpu(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False
):
    """``scaled_dot_product_attention`` on meta with gradients: the kernel the CPU chooses for these tensors.

    Meta alone always takes the math path, which saves the attention matrix for backward; where the CPU takes
    its flash kernel, so does this (a boolean mask converted as the CPU converts it), else the same math path.
    """
    try:
        choice = torch.ops.aten._fused_sdp_choice(
            *map(_on_cpu, (query, key, value, attn_mask)),
            dropout_p,
            is_causal,
            scale=scale,
            enable_gqa=enable_gqa,
        )
    except RuntimeError:
        choice = None
    if choice == _FLASH and not enable_gqa:
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            mask = torch.zeros_like(attn_mask, dtype=query.dtype)
            attn_mask = mask.masked_fill_(attn_mask.logical_not(), -float("inf"))
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            query, key, value, dropout_p, is_causal, attn_mask=attn_mask, scale=scale
        )[0]
    return _SDPA.decompose(
        query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa
    )


@contextmanager
def cpu_attention():
    """Within it, ``scaled_dot_product_attention`` on meta tensors that need gradients runs the kernel the CPU would
    choose (``_attention_as_on_cpu``): a kernel for autograd's meta key, registered for the duration only."""
    library = torch.library.Library("aten", "IMPL")
    try:
        library.impl("scaled_dot_product_attention", _attention_as_on_cpu, "AutogradMeta")
        yield
    finally:
        library._destroy()
