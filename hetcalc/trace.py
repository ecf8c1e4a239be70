"""Any ``nn.Module`` → a ModelSpec (torch): the layers hetcalc counts, in call order, at their real sizes.

>>> spec = trace_factory(make_net, (3, 32, 32))  # built on the meta device: no weights, no compute
>>> analyze(spec, variant="hetconv", P=4, convention="exact")

One forward pass on a 1×C×H×W input, with hooks, records every ``nn.Conv2d`` (any groups,
kernel, stride, dilation) and ``nn.Linear``, and hetcalc's real layers (HetConv2d, DwPwConv2d,
GwPwConv2d, MaskedConv2d) as their kinds, each with the output size it produced. Every other
learnable parameter (BatchNorm, LayerNorm, embeddings, …) goes into one "other parameters" record,
so the exact convention's params equal ``sum(p.numel() for p in model.parameters())``.
torch's FlopCounterMode watches the same pass: multiply-accumulates of operations outside the
recorded layers (a functional matmul, attention, an ``nn.Conv1d``) are reported, not added.
A layer no variant can replace (grouped, dilated, non-square, …) carries the reason (``fixed``).
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import math
import os
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from . import kinds
from .conventions import costs
from .errors import InvalidInput, positive_int
from .layers import DwPwConv2d, GwPwConv2d, HetConv2d
from .lhc import MaskedConv2d
from .records import Conv, Linear, ModelSpec, Other
from .spec import ConvSpec

HETCALC_LAYERS = (HetConv2d, DwPwConv2d, GwPwConv2d)
TORCH_FLOPS_PER_MAC = 2  # torch.utils.flop_counter counts a multiply-accumulate as 2 FLOPs; hetcalc as 1
RECORDED = (nn.Conv2d, nn.Linear) + HETCALC_LAYERS


def _first_line(error: BaseException) -> str:
    """'RuntimeError: first line of the message' (one line, for a one-line CLI error)."""
    lines = str(error).strip().splitlines()
    return type(error).__name__ + (f": {lines[0]}" if lines else "")


def fixed_reason(conv: nn.Conv2d) -> str:
    """Why no variant may replace this ``nn.Conv2d`` ("" if one may): what HetConv2d & co. cannot carry.

    Structure only; the first convolution, 1×1 kernels and each kind's own eligibility (odd K,
    divisibility by P or G) are ``hetcalc.kinds.kept``.
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


# Loading a factory from "PKG.MOD:FACTORY" or "path/to/file.py:FACTORY".


@contextmanager
def _on_path(folder: str):
    """``folder`` first on sys.path for the duration (so a user's module finds its siblings)."""
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)


def _import(where: str):
    """The module ``where`` (a dotted name, found from the working directory, or a .py file path)."""
    is_file = where.endswith(".py") or "/" in where or os.sep in where
    if is_file and not Path(where).is_file():
        raise InvalidInput("--module", f"no such file: {where}")
    with _on_path(str(Path(where).resolve().parent) if is_file else os.getcwd()):
        try:
            return _exec_file(Path(where)) if is_file else importlib.import_module(where)
        except Exception as error:
            raise InvalidInput("--module", f"cannot import {where}: {_first_line(error)}") from None


def _exec_file(path: Path):
    name = f"_hetcalc_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up here
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_factory(text: str):
    """The callable named by ``PKG.MOD:FACTORY`` or ``path/to/file.py:FACTORY``, or InvalidInput."""
    where, colon, attribute = text.rpartition(":")
    if not colon or not where or not attribute:
        raise InvalidInput("--module", f"expected PKG.MOD:FACTORY or path/to/file.py:FACTORY, got {text!r}")
    found = _import(where)
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise InvalidInput("--module", f"{where} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise InvalidInput(
            "--module",
            f"{text} is not callable (a {type(found).__name__} object); "
            "name a function or class that builds the model",
        )
    return found


def build(factory, device="meta") -> nn.Module:
    """``factory()`` called under ``torch.device(device)`` (meta: no weights allocated), checked to be a module."""
    if isinstance(factory, nn.Module):
        return factory
    label = getattr(factory, "__name__", type(factory).__name__)
    try:
        with torch.device(device):
            model = factory()
    except Exception as error:
        raise InvalidInput("--module", f"{label}() raised {_first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise InvalidInput("--module", f"{label}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def trace_factory(factory, input_size, name: str | None = None, device="meta") -> ModelSpec:
    """Build ``factory()`` under ``device`` (meta by default: nothing allocated, nothing computed) and trace it.

    A MaskedConv2d's mask holds no values on the meta device; build on "cpu" to count its kept taps.
    """
    return trace(build(factory, device), input_size, name or getattr(factory, "__name__", None))


# Tracing.


class _Recorder:
    """Forward hooks: each outermost recorded module's call, with shapes and torch's FLOPs inside it."""

    def __init__(self, counter):
        self.counter, self.depth, self.calls, self.before = counter, 0, [], None

    def pre(self, module, inputs):
        if self.depth == 0:
            self.before = self.counter.get_flop_counts().get("Global", {})
        self.depth += 1

    def post(self, module, args, kwargs, output):
        self.depth -= 1
        if self.depth == 0:
            now = self.counter.get_flop_counts().get("Global", {})
            inside = Counter({op: n - self.before.get(op, 0) for op, n in now.items()})
            x = args[0] if args else next(iter(kwargs.values()))
            self.calls.append((module, tuple(x.shape), tuple(output.shape), inside))


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
    if isinstance(module, HetConv2d):
        return Conv(name, spec, D_in, kind=kinds.IMPLS[module.impl], P=module.P, fixed=fixed)
    if isinstance(module, GwPwConv2d):
        return Conv(name, spec, D_in, kind="gwc_pwc", G=module.groups, mid=module.mid_channels, fixed=fixed)
    return Conv(name, spec, D_in, kind="dwc_pwc", fixed=fixed)


def _note(module, record, torch_macs: int) -> str | None:
    """A sentence for the reader where a layer's count needs one (None where it does not)."""
    built = costs(record)
    macs = built.built.macs
    if isinstance(module, MaskedConv2d):
        if module.binary_mask().is_meta:
            return (
                f"{record.name}: masked, counted as its dense bank ({macs:,} MACs): a mask holds no values on "
                f"the meta device; build the model on a real device (--device cpu) to count its kept taps"
            )
        dense = built.standard
        return (
            f"{record.name}: masked, {macs:,} MACs and {built.built.params:,} parameters on its kept taps "
            f"(a sparse runtime); a dense runtime (and fvcore) pays {dense.macs:,} and holds {dense.params:,}"
        )
    if torch_macs != macs:
        return f"{record.name}: torch counted {torch_macs:,} MACs inside this layer, hetcalc counts {macs:,}"
    return None


def _other(model: nn.Module, recorded) -> Other | None:
    """The parameters of no recorded module: BatchNorm (as channels) and all others, each tensor once."""
    owner = {id(p): m for m in model.modules() for p in m.parameters(recurse=False)}
    owned = {id(p) for module in recorded for p in module.parameters()}
    norm, params, seen_norms = [], 0, set()
    for p in model.parameters():
        module = owner[id(p)]
        if id(p) in owned:
            continue
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
            if id(module) not in seen_norms:
                seen_norms.add(id(module))
                norm.append(module.num_features)
        else:
            params += p.numel()
    return Other("(other parameters)", params, tuple(norm)) if params or norm else None


def _layers(model: nn.Module, calls) -> tuple[list, list[str], Counter]:
    """Layer records of the recorded calls (+ other parameters), notes, and torch's FLOPs inside them by op."""
    names = {id(m): n for n, m in model.named_modules()}
    times = Counter(id(module) for module, *_ in calls)
    seen, layers, notes, inside_all, repeated_params = Counter(), [], [], Counter(), 0
    for module, x_shape, y_shape, inside in calls:
        seen[id(module)] += 1
        name = names.get(id(module)) or type(module).__name__
        record = _record(
            module, name + (f"#{seen[id(module)]}" if seen[id(module)] > 1 else ""), x_shape, y_shape
        )
        if times[id(module)] > 1 and isinstance(record, Conv):
            record = record.with_(fixed=f"called {times[id(module)]} times (shared weights)")
        if seen[id(module)] > 1:
            repeated_params += costs(record).built.params
        layers.append(record)
        inside_all += inside
        notes.append(_note(module, record, sum(inside.values()) // TORCH_FLOPS_PER_MAC))
    other = _other(model, {id(module): module for module, *_ in calls}.values())
    if repeated_params:
        other = Other(
            "(other parameters)",
            (other.params if other else 0) - repeated_params,
            other.norm if other else (),
        )
        notes.append(
            f"modules called more than once hold their parameters once: {repeated_params:,} subtracted "
            f"in '(other parameters)'"
        )
    return layers + ([other] if other else []), [note for note in notes if note], inside_all


def trace(model: nn.Module, input_size, name: str | None = None) -> ModelSpec:
    """The ModelSpec of ``model`` on a 1×C×H×W input (``input_size`` = (C, H, W)), in eval mode, no grad.

    The input lives where the model's parameters do (the meta device: no compute). A module
    called more than once is recorded per call (its MACs each time, its parameters once) and
    marked fixed. Raises InvalidInput (one line) where the forward pass fails.
    """
    from torch.utils.flop_counter import FlopCounterMode

    if len(input_size) != 3:
        raise InvalidInput("--input-size", f"expected C H W, got {' '.join(map(str, input_size))}")
    C, H, W = (positive_int("--input-size", v) for v in input_size)
    reference = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = reference.device if reference is not None else "cpu"
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    counter = FlopCounterMode(display=False)
    recorder = _Recorder(counter)
    hooks = [
        hook
        for m in model.modules()
        if isinstance(m, RECORDED)
        for hook in (
            m.register_forward_pre_hook(recorder.pre),
            m.register_forward_hook(recorder.post, with_kwargs=True),
        )
    ]
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, C, H, W, device=device, dtype=dtype))
    except Exception as error:
        message = f"the model rejects a 1×{C}×{H}×{W} input: {_first_line(error)}"
        raise InvalidInput("--input-size", message) from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)

    layers, notes, inside = _layers(model, recorder.calls)
    outside = Counter(counter.get_flop_counts().get("Global", {}))
    outside.subtract(inside)
    outside = {str(op): n // TORCH_FLOPS_PER_MAC for op, n in outside.items() if n}
    macs_outside = sum(outside.values())
    if macs_outside:
        ops = ", ".join(f"{op} {n:,}" for op, n in sorted(outside.items()))
        notes.append(
            f"Warning: {macs_outside:,} MACs in operations outside recorded layers ({ops}): not in the totals"
        )
    return ModelSpec(
        name=name or type(model).__name__,
        input=(C, H, W),
        layers=tuple(layers),
        notes=tuple(notes),
        macs_outside_layers=macs_outside,
    )
