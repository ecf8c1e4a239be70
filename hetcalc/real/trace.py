"""Any ``nn.Module`` → a ModelSpec (torch): every multiply-accumulate of one forward pass, by layer and operator.

>>> spec = trace(model, (3, 32, 32))      # the model on the meta device: no weights, no compute
>>> analyze(spec, variant="hetconv", P=4, convention="exact")

One forward pass on a 1×C×H×W input of zeros, in eval mode without gradients, runs under
``hetcalc.real.counter.MacCounter``, which counts every MAC an operator runs (convolutions of any
dimension, linear, the matmul family, attention) and attributes it to the module that ran it.
Each call of an ``nn.Conv2d``, ``nn.Linear`` and hetcalc's real layers (HetConv2d, DwPwConv2d,
GwPwConv2d, MaskedConv2d) is recorded, in call order, with the sizes it saw: the layers a plan
may replace (``hetcalc.core.plan``). Every other MAC becomes an ``Ops`` record under the module
that ran it, in the totals and carried unchanged by every plan. Parameters are read from the
modules, each tensor once: a recorded module's in its first call's record (a module called again
holds none there), every other learnable tensor (BatchNorm, LayerNorm, embeddings, …) in one
"other parameters" record. Parameters no operator read (heads the forward never runs) are
``params_unused``. Operators with no formula that may carry MACs (``uncounted``) and
data-dependent operators (``data_dependent``) are fields of the spec, never dropped silently.
A layer no variant can replace (grouped, dilated, non-square, …) carries the reason (``fixed``).
Loading a user's factory, and the CPU retry where meta cannot run a model, are ``hetcalc.real.load``.

``trace_step`` counts a training step instead: the model in train mode on a batch, ``loss.backward()`` on the
sum of its output (or of one named output), the counter seeing what autograd runs and which layers' inputs need
a gradient, and saved-tensor hooks measuring what autograd keeps for backward (``Footprint``).
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..core import kinds
from ..core.conventions import costs, step
from ..core.errors import InvalidInput, positive_int
from ..core.records import Conv, Footprint, Linear, ModelSpec, Ops, Other, selected
from ..core.spec import ConvSpec
from .counter import MacCounter
from .layers import DwPwConv2d, GwPwConv2d, HetConv2d
from .lhc import MaskedConv2d

HETCALC_LAYERS = (HetConv2d, DwPwConv2d, GwPwConv2d)
RECORDED = (nn.Conv2d, nn.Linear) + HETCALC_LAYERS


def first_line(error: BaseException) -> str:
    """'RuntimeError: first sentence of the message' (one line, for a one-line CLI error)."""
    lines = str(error).strip().splitlines()
    first = lines[0].split(". ")[0].rstrip(".") if lines else ""
    return type(error).__name__ + (f": {first}" if first else "")


def fixed_reason(conv: nn.Conv2d) -> str:
    """Why no variant may replace this ``nn.Conv2d`` ("" if one may): what HetConv2d & co. cannot carry.

    Structure only; the first convolution, 1×1 kernels and each kind's own eligibility (odd K,
    divisibility by P or G) are ``hetcalc.core.kinds.kept``.
    """
    (kh, kw), groups = conv.kernel_size, conv.groups
    if type(conv) is not nn.Conv2d:
        return f"{type(conv).__name__}, a subclass of nn.Conv2d with its own forward"
    if kh != kw:
        return f"non-square kernel {kh}×{kw}"
    if groups > 1:
        return "depthwise" if groups == conv.in_channels else f"grouped (G={groups})"
    if conv.dilation != (1, 1):
        return f"dilation {conv.dilation[0]}×{conv.dilation[1]}"
    if conv.stride[0] != conv.stride[1]:
        return f"non-square stride {conv.stride[0]}×{conv.stride[1]}"
    if not isinstance(conv.padding, str) and conv.padding[0] != conv.padding[1]:
        return f"non-square padding {conv.padding[0]}×{conv.padding[1]}"
    if conv.padding_mode != "zeros":
        return f"padding_mode {conv.padding_mode!r}"
    return ""


class ForwardFailed(InvalidInput):
    """The forward pass failed: ``error`` is torch's exception, ``cause`` its first line."""

    def __init__(self, error: BaseException, message: str):
        self.error, self.cause = error, first_line(error)
        super().__init__("input_size", message)


def _record(module, name: str, x_shape, y_shape):
    """The layer record of one call of a recorded module."""
    if isinstance(module, nn.Linear):
        return Linear(
            name,
            module.in_features,
            module.out_features,
            module.bias is not None,
            positions=math.prod(y_shape) // module.out_features,
        )
    (H, W), D_in = y_shape[-2:], x_shape[-2]
    if isinstance(module, nn.Conv2d):
        (kh, kw), G = module.kernel_size, (module.groups if module.groups > 1 else None)
        spec = ConvSpec(
            M=module.in_channels,
            N=module.out_channels,
            K=kh,
            H=H,
            W=W,
            stride=module.stride[0],
            bias=module.bias is not None,
            name=name,
        )
        if isinstance(module, MaskedConv2d):
            mask = module.binary_mask()
            taps = module.weight.numel() if mask.is_meta else int(mask.sum())
            return Conv(
                name, spec, D_in, kind="masked", G=G, taps=taps, fixed="masked (LHC): its mask sets the taps"
            )
        taps = module.weight.numel() if kh != kw else None
        return Conv(
            name, spec, D_in, kind="grouped" if G else "standard", G=G, taps=taps, fixed=fixed_reason(module)
        )
    spec = module.spec(H, W).with_(name=name)
    fixed = f"already a {type(module).__name__}"
    P, G, mid = (getattr(module, attribute, None) for attribute in ("P", "groups", "mid_channels"))
    impl = getattr(module, "impl", None)
    return Conv(name, spec, D_in, kind=kinds.of_layer(module), P=P, G=G, mid=mid, fixed=fixed, impl=impl)


def _note(module, records, counted: int, backward: int | None = None) -> str | None:
    """A sentence for the reader where a recorded module's count needs one (None where it does not).

    ``counted``, ``backward``: what its operators ran, forward and (a step) backward.
    """
    record = records[0]
    macs = sum(costs(r).built.macs * getattr(r, "images", 1) for r in records)
    if isinstance(module, MaskedConv2d):
        if module.binary_mask().is_meta:
            return (
                f"{record.name}: masked, counted as its dense bank ({macs:,} MACs): a mask holds no values on "
                f"the meta device; build the model on a real device (--count-on cpu) to count its kept taps"
            )
        built = costs(record)
        return (
            f"{record.name}: masked, {built.built.macs:,} MACs and {built.built.params:,} parameters on its kept "
            f"taps (a sparse runtime); a dense runtime (and fvcore) pays {built.standard.macs:,} and holds "
            f"{built.standard.params:,}"
        )
    if counted != macs:
        return f"{record.name}: its operators ran {counted:,} MACs, hetcalc's formula counts {macs:,}"
    if backward is not None:
        formula = sum(step(r, "exact", train=True, input_grad=bool(r.input_grad)).backward for r in records)
        if backward != formula:
            return f"{record.name}: its gradients ran {backward:,} MACs, hetcalc's formula counts {formula:,}"
    return None


def _other(model: nn.Module, held: set[int]) -> Other | None:
    """The learnable tensors no record holds, each once: BatchNorm's (as channels) and all others."""
    owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
    norm, params, seen_norms = [], 0, set()
    for p in model.parameters():
        if id(p) in held:
            continue
        module = owner[id(p)]
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            if id(module) not in seen_norms:
                seen_norms.add(id(module))
                norm.append(module.num_features)
        else:
            params += p.numel()
    return Other("(other parameters)", params, tuple(norm)) if params or norm else None


def _layers(model: nn.Module, calls, counter: MacCounter, train: bool = False):
    """Layer records of the recorded calls (parameters read from the modules), Ops records of every other
    MAC, the other parameters; notes on single layers. ``train``: the calls of a training step (each record
    with ``input_grad`` and ``frozen``, each Ops record with its ``backward``)."""
    seen, layers, held, by_module = Counter(), [], set(), {}
    for i, c in enumerate(calls):
        module, qualified, x_shape, y_shape = c.module, c.name, c.input_shape, c.output_shape
        seen[id(module)] += 1
        call = seen[id(module)]
        name = (qualified or type(module).__name__) + (f"#{call}" if call > 1 else "")
        record = replace(_record(module, name, x_shape, y_shape), call=call)
        if isinstance(record, Conv) and x_shape[-1] != x_shape[-2]:
            record = replace(record, W_in=x_shape[-1])
        if isinstance(record, Conv) and len(y_shape) == 4:
            record = replace(record, images=y_shape[0])
        if train:
            frozen = not any(p.requires_grad for p in module.parameters())
            record = replace(record, input_grad=c.input_grad, frozen=frozen, reached=i in counter.reached)
        if call == 1:
            tensors = [p for p in module.parameters() if id(p) not in held]
            held.update(id(p) for p in tensors)
            if not isinstance(module, MaskedConv2d):  # a mask's kept taps are its parameters (LHC)
                record = replace(record, params=sum(p.numel() for p in tensors))
        layers.append(record)
        by_module.setdefault(id(module), (module, qualified, []))[2].append(record)
    recorded = {name for _, name, _ in by_module.values()}
    subtree, backward = counter.subtree_macs(), counter.subtree_macs(counter.backward_by_module)
    notes = [
        _note(module, records, subtree.get(name, 0), backward.get(name, 0) if train else None)
        for module, name, records in by_module.values()
    ]
    outside = [
        name
        for name in dict.fromkeys([*counter.by_module, *counter.backward_by_module])
        if not _inside(name, recorded)
    ]

    def families(ops) -> tuple:
        return tuple((op, macs) for op, macs in (ops or {}).items() if macs)

    layers += [
        Ops(
            name or type(model).__name__,
            families(counter.by_module.get(name)),
            backward=families(counter.backward_by_module.get(name)),
            activations=counter.activations_by_module.get(name, 0),
        )
        for name in outside
        if families(counter.by_module.get(name)) or families(counter.backward_by_module.get(name))
    ]
    other = _other(model, held)
    return layers + ([other] if other else []), [note for note in notes if note]


def _inside(name: str, recorded: set[str]) -> bool:
    """Whether module ``name`` is a recorded module or lies below one (its MACs are that record's)."""
    parts = name.split(".")
    return (
        "" in recorded
        or name in recorded
        or any(".".join(parts[:i]) in recorded for i in range(1, len(parts)))
    )


def _where(model: nn.Module, running) -> str:
    """' in layer1.conv (Conv2d on a 1×4×8×8 input)': the innermost module of ``model`` a failing forward was in."""
    names = {id(m): n for n, m in model.named_modules()}
    for module, args in reversed(running):
        if names.get(id(module)):
            shape = next((tuple(a.shape) for a in args if isinstance(a, torch.Tensor)), None)
            on = f" on a {'×'.join(map(str, shape))} input" if shape else ""
            return f", in {names[id(module)]} ({type(module).__name__}{on})"
    return ""


def _input(model: nn.Module, input_size, batch: int):
    """A ``batch``×C×H×W input of zeros where the model's parameters live, in their floating dtype."""
    if len(input_size) != 3:
        raise InvalidInput("input_size", f"expected C H W, got {' '.join(map(str, input_size))}")
    C, H, W = (positive_int("input_size", v) for v in input_size)
    batch = positive_int("batch", batch)
    reference = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    return torch.zeros(batch, C, H, W, device=device, dtype=dtype)


@contextmanager
def _reported(model: nn.Module, x):
    """Run a forward (and backward) pass; where it fails, ForwardFailed naming the innermost module it was in."""
    running = []
    hooks = [
        register_module_forward_pre_hook(lambda module, args: running.append((module, args)) and None),
        register_module_forward_hook(lambda module, args, output: running.pop() and None),
    ]  # left holding the modules a failing forward was in
    try:
        yield
    except InvalidInput:
        raise
    except Exception as error:
        shape = "×".join(map(str, x.shape))
        raise ForwardFailed(
            error,
            f"the model's forward pass fails on a {shape} input{_where(model, running)}: {first_line(error)}",
        ) from None
    finally:
        for hook in hooks:
            hook.remove()


def trace(model: nn.Module, input_size, name: str | None = None, batch: int = 1) -> ModelSpec:
    """The ModelSpec of ``model`` on a ``batch``×C×H×W input (``input_size`` = (C, H, W)), in eval mode, no grad.

    The input lives where the model's parameters do (the meta device: no compute). A module
    called more than once is recorded per call (its MACs each time, its parameters once).
    Raises ForwardFailed (an InvalidInput, one line) where the forward pass fails.
    """
    x = _input(model, input_size, batch)
    training = model.training
    model.eval()
    counter = MacCounter(model, record=RECORDED)
    try:
        with _reported(model, x), torch.no_grad(), counter:
            model(x)
    finally:
        model.train(training)

    return _spec(model, x, name, counter)


def freezing(model: nn.Module, patterns) -> list[nn.Parameter]:
    """The parameters of the modules ``patterns`` select (names or globs, ``hetcalc.core.records.selects``: a module
    and everything below it), each once; InvalidInput naming ``frozen`` for a pattern that selects no module."""
    modules = dict(model.named_modules())
    chosen = selected(patterns, [name for name in modules if name], type(model).__name__)
    found = {id(p): p for name in sorted(chosen) for p in modules[name].parameters()}
    return list(found.values())


def _named(output) -> dict:
    """A model's outputs by name: a dict's keys, a named tuple's fields, a sequence's indices ("0", "1", …)."""
    if isinstance(output, dict):
        return dict(output)
    if hasattr(output, "_fields"):
        return output._asdict()
    if isinstance(output, (tuple, list)):
        return {str(i): value for i, value in enumerate(output)}
    return {}


def loss_of(output, loss: str | None = None):
    """The loss a step sums: every tensor of ``output`` that needs a gradient (a tensor, or tuples, lists and
    dicts of them), or of its output named ``loss`` (a dict's key, a named tuple's field, a sequence's index)."""
    if loss:
        named = _named(output)
        if loss not in named:
            shown = ", ".join(named) if named else "none: the model returns one tensor"
            raise InvalidInput("loss", f"the model has no output named {loss!r}; its outputs: {shown}")
        output = named[loss]
    tensors = [
        t for t in torch.utils._pytree.tree_leaves(output) if isinstance(t, torch.Tensor) and t.requires_grad
    ]
    if not tensors:
        raise InvalidInput("loss", "the output needs no gradient: no trained parameter reaches it")
    return sum(t.sum() for t in tensors)


def _spec(
    model: nn.Module, x, name: str | None, counter: MacCounter, step: bool = False, **fields
) -> ModelSpec:
    """The ModelSpec of what ``counter`` saw ``model`` run on ``x`` (a training step's with ``step``)."""
    layers, notes = _layers(model, counter.calls, counter, train=step)
    return ModelSpec(
        name=name or type(model).__name__,
        input=tuple(x.shape[1:]),
        layers=tuple(layers),
        notes=tuple(notes),
        params_unused=sum(p.numel() for p in model.parameters() if id(p) not in counter.used_params),
        uncounted=dict(counter.uncounted),
        data_dependent=dict(counter.data_dependent),
        counted_on=x.device.type,
        batch=len(x),
        step=step,
        **fields,
    )


def _bytes(tensors) -> int:
    unique = {id(t): t for t in tensors}
    return sum(t.numel() * t.element_size() for t in unique.values())


DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def trace_step(
    model: nn.Module,
    input_size,
    name: str | None = None,
    *,
    batch: int = 1,
    frozen=(),
    loss: str | None = None,
) -> ModelSpec:
    """The ModelSpec of one training step of ``model`` on ``batch`` images of ``input_size`` = (C, H, W).

    The model runs in train mode (BatchNorm on batch statistics, dropout on) with ``frozen`` modules' parameters
    (names or globs, and everything below them) needing no gradient, then ``loss.backward()`` on the sum of its
    output (``loss``: of its output with that name). The counter counts what both passes run (records carry
    whether their input needed a gradient and whether they are frozen; ``Ops`` records their ``backward``);
    saved-tensor hooks measure what autograd keeps for backward: every tensor saved, each storage once, the
    model's own parameters and buffers left out (``Footprint.saved``); the trained parameters are those a gradient
    reached (the optimizer steps no other). The model is left as it was.
    """
    x = _input(model, input_size, batch)
    params = list(model.parameters())
    if not params:
        raise InvalidInput("train", f"{name or type(model).__name__} has no parameters: nothing to train")
    before = [(p, p.requires_grad, p.grad) for p in params]
    for p in freezing(model, frozen) if frozen else ():
        p.requires_grad_(False)
    training = model.training
    own = {t.untyped_storage()._cdata for t in itertools.chain(model.parameters(), model.buffers())}
    saved: dict[int, tuple[int, torch.Tensor]] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage._cdata not in own and storage._cdata not in saved:
            saved[storage._cdata] = (storage.nbytes(), tensor)  # held: its storage is not reused meanwhile
        return tensor

    counter = MacCounter(model, record=RECORDED)
    try:
        for p in params:
            p.grad = None
        if not any(p.requires_grad for p in params):
            raise InvalidInput(
                "frozen", "freezes every parameter of the model: a training step has nothing to train"
            )
        model.train()
        with _reported(model, x), torch.enable_grad(), counter:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                total = loss_of(model(x), loss)
            total.backward()
        trained = [p for p in params if p.grad is not None]  # what the optimizer steps: a gradient reached it
        footprint = Footprint(
            params=_bytes(params),
            buffers=_bytes(model.buffers()),
            trained=_bytes(trained),
            trained_tensors=len({id(p) for p in trained}),
            saved=sum(nbytes for nbytes, _ in saved.values()),
            batch=len(x),
            dtype=DTYPE_NAMES.get(x.dtype, str(x.dtype).removeprefix("torch.")),
        )
        spec = _spec(model, x, name, counter, step=True, loss=loss or "", footprint=footprint)
    finally:
        saved.clear()
        model.train(training)
        for p, requires_grad, grad in before:
            p.requires_grad_(requires_grad)
            p.grad = grad
    return spec
