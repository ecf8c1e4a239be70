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
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import replace

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

from ..core import kinds
from ..core.conventions import costs
from ..core.errors import InvalidInput, positive_int
from ..core.records import Conv, Linear, ModelSpec, Ops, Other
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


def _note(module, records, counted: int) -> str | None:
    """A sentence for the reader where a recorded module's count needs one (None where it does not)."""
    record = records[0]
    macs = sum(costs(r).built.macs for r in records)
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


def _layers(model: nn.Module, calls, counter: MacCounter) -> tuple[list, list[str]]:
    """Layer records of the recorded calls (parameters read from the modules), Ops records of every other
    MAC, the other parameters; notes on single layers."""
    seen, layers, held, by_module = Counter(), [], set(), {}
    for module, qualified, x_shape, y_shape in (
        (c.module, c.name, c.input_shape, c.output_shape) for c in calls
    ):
        seen[id(module)] += 1
        call = seen[id(module)]
        name = (qualified or type(module).__name__) + (f"#{call}" if call > 1 else "")
        record = replace(_record(module, name, x_shape, y_shape), call=call)
        if isinstance(record, Conv) and x_shape[-1] != x_shape[-2]:
            record = replace(record, W_in=x_shape[-1])
        if call == 1:
            tensors = [p for p in module.parameters() if id(p) not in held]
            held.update(id(p) for p in tensors)
            if not isinstance(module, MaskedConv2d):  # a mask's kept taps are its parameters (LHC)
                record = replace(record, params=sum(p.numel() for p in tensors))
        layers.append(record)
        by_module.setdefault(id(module), (module, qualified, []))[2].append(record)
    recorded = {name for _, name, _ in by_module.values()}
    subtree = counter.subtree_macs()
    notes = [_note(module, records, subtree.get(name, 0)) for module, name, records in by_module.values()]
    layers += [
        Ops(name or type(model).__name__, tuple((op, macs) for op, macs in ops.items() if macs))
        for name, ops in counter.by_module.items()
        if sum(ops.values()) and not _inside(name, recorded)
    ]
    other = _other(model, held)
    return layers + ([other] if other else []), [note for note in notes if note]


def _inside(name: str, recorded: set[str]) -> bool:
    """Whether module ``name`` is a recorded module or lies below one (its MACs are that record's)."""
    parts = name.split(".")
    return name in recorded or any(".".join(parts[:i]) in recorded for i in range(1, len(parts)))


def _where(model: nn.Module, running) -> str:
    """' in layer1.conv (Conv2d on a 1×4×8×8 input)': the innermost module of ``model`` a failing forward was in."""
    names = {id(m): n for n, m in model.named_modules()}
    for module, args in reversed(running):
        if names.get(id(module)):
            shape = next((tuple(a.shape) for a in args if isinstance(a, torch.Tensor)), None)
            on = f" on a {'×'.join(map(str, shape))} input" if shape else ""
            return f", in {names[id(module)]} ({type(module).__name__}{on})"
    return ""


def trace(model: nn.Module, input_size, name: str | None = None) -> ModelSpec:
    """The ModelSpec of ``model`` on a 1×C×H×W input (``input_size`` = (C, H, W)), in eval mode, no grad.

    The input lives where the model's parameters do (the meta device: no compute). A module
    called more than once is recorded per call (its MACs each time, its parameters once).
    Raises ForwardFailed (an InvalidInput, one line) where the forward pass fails.
    """
    if len(input_size) != 3:
        raise InvalidInput("input_size", f"expected C H W, got {' '.join(map(str, input_size))}")
    C, H, W = (positive_int("input_size", v) for v in input_size)
    reference = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = reference.device if reference is not None else torch.device("cpu")
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    training = model.training
    model.eval()
    counter, running = MacCounter(model, record=RECORDED), []
    hooks = [
        register_module_forward_pre_hook(lambda module, args: running.append((module, args)) and None),
        register_module_forward_hook(lambda module, args, output: running.pop() and None),
    ]  # left holding the modules a failing forward was in
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, C, H, W, device=device, dtype=dtype))
    except Exception as error:
        raise ForwardFailed(
            error,
            f"the model's forward pass fails on a 1×{C}×{H}×{W} input{_where(model, running)}: {first_line(error)}",
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)

    layers, notes = _layers(model, counter.calls, counter)
    params = {id(p): p.numel() for p in model.parameters()}
    return ModelSpec(
        name=name or type(model).__name__,
        input=(C, H, W),
        layers=tuple(layers),
        notes=tuple(notes),
        params_unused=sum(n for i, n in params.items() if i not in counter.used_params),
        uncounted=dict(counter.uncounted),
        data_dependent=dict(counter.data_dependent),
        counted_on=device.type,
    )
