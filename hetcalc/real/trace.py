"""Any ``nn.Module`` → a ModelSpec (torch): every multiply-accumulate of one forward pass, by layer and operator.

>>> spec = trace_factory(make_net, (3, 32, 32))  # built on the meta device: no weights, no compute
>>> analyze(spec, variant="hetconv", P=4, convention="exact")

One forward pass on a 1×C×H×W input of zeros, in eval mode without gradients, runs under
``hetcalc.real.counter.MacCounter``, which counts every MAC an operator runs (convolutions of any
dimension, linear, the matmul family, attention) and attributes it to the module that ran it.
Hooks record each call of an ``nn.Conv2d``, ``nn.Linear`` and hetcalc's real layers (HetConv2d,
DwPwConv2d, GwPwConv2d, MaskedConv2d) with the sizes it saw: the layers a variant may replace.
Every other MAC becomes an ``Ops`` record under the module that ran it, in the totals and
carried unchanged by every variant; every other learnable parameter (BatchNorm, LayerNorm,
embeddings, …) one "other parameters" record, each tensor once. Parameters no operator read
(heads the forward never runs) are ``params_unused``. Operators with no formula that may carry
MACs, and data-dependent operators, are named in the notes, never dropped silently.
A layer no variant can replace (grouped, dilated, non-square, …) carries the reason (``fixed``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import math
import os
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

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


def _first_line(error: BaseException) -> str:
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
        raise InvalidInput("module", f"no such file: {where}")
    with _on_path(str(Path(where).resolve().parent) if is_file else os.getcwd()):
        try:
            return _exec_file(Path(where)) if is_file else importlib.import_module(where)
        except Exception as error:
            raise InvalidInput("module", f"cannot import {where}: {_first_line(error)}") from None


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
        raise InvalidInput("module", f"expected PKG.MOD:FACTORY or path/to/file.py:FACTORY, got {text!r}")
    found = _import(where)
    for part in attribute.split("."):
        if not hasattr(found, part):
            raise InvalidInput("module", f"{where} has no attribute {attribute!r}")
        found = getattr(found, part)
    if not callable(found):
        raise InvalidInput(
            "module",
            f"{text} is not callable (a {type(found).__name__} object); "
            "name a function or class that builds the model",
        )
    return found


def factory_arguments(texts) -> dict:
    """``["aux_logits=False", "model_name=resnet50"]`` → keyword arguments; each VALUE a Python literal, else a string.

    Never evaluated as code: ``ast.literal_eval`` reads numbers, booleans, None, strings, tuples,
    lists and dicts; anything else is taken as the string it is.
    """
    arguments = {}
    for text in texts or ():
        name, equals, value = str(text).partition("=")
        if not equals or not name.strip().isidentifier():
            raise InvalidInput("args", f"expected NAME=VALUE with NAME a Python identifier, got {text!r}")
        try:
            arguments[name.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            arguments[name.strip()] = value.strip()
    return arguments


@contextmanager
def _tensors_on_meta():
    """Every parameter and buffer a module registers is moved to the meta device as it is registered.

    For factories that compute with real tensors while they build (torchvision's RegNet reads its
    widths back from tensors, which ``torch.device("meta")`` refuses): the arithmetic runs on the
    CPU, the weights are never kept there (one tensor at a time, uninitialised).
    """
    from torch.nn.modules.module import (
        register_module_buffer_registration_hook,
        register_module_parameter_registration_hook,
    )

    def parameter(module, name, param):
        return None if param is None else nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def buffer(module, name, tensor):
        return None if tensor is None else tensor.to("meta")

    handles = [
        register_module_parameter_registration_hook(parameter),
        register_module_buffer_registration_hook(buffer),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _call(factory, device: str):
    if device != "meta":
        with torch.device(device):
            return factory()
    try:
        with torch.device("meta"):
            return factory()
    except Exception:  # e.g. "Cannot copy out of meta tensor": build on the CPU, tensors on meta
        with _tensors_on_meta():
            return factory()


def build(factory, device="meta", arguments: dict | None = None) -> nn.Module:
    """``factory(**arguments)`` on ``device`` (meta: no weights allocated), checked to be a module."""
    if isinstance(factory, nn.Module):
        return factory
    label = getattr(factory, "__name__", type(factory).__name__)
    try:
        model = _call(partial(factory, **(arguments or {})), device)
    except Exception as error:
        raise InvalidInput("module", f"{label}() raised {_first_line(error)}") from None
    if not isinstance(model, nn.Module):
        raise InvalidInput("module", f"{label}() returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def model_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and buffers (each tensor once), also for a model on meta."""
    tensors = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _available_memory() -> int:
    """Bytes of memory available to allocate now (Linux's MemAvailable; else the physical memory)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def default_input_size(model: nn.Module):
    """(C, H, W) where the model says its input (timm's ``pretrained_cfg``/``default_cfg`` "input_size"), else None."""
    for attribute in ("pretrained_cfg", "default_cfg"):
        config = getattr(model, attribute, None)
        size = config.get("input_size") if isinstance(config, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == 3:
            return tuple(int(v) for v in size)
    return None


def input_size_of(model: nn.Module, input_size=None) -> tuple[int, int, int]:
    """``input_size`` as given, else the model's own (``default_input_size``), else InvalidInput."""
    size = tuple(input_size) if input_size else default_input_size(model)
    if size is None:
        raise InvalidInput(
            "input_size",
            "is required: give the input as C H W, e.g. --input-size 3 224 224 (the model does not say)",
        )
    return size


def trace_factory(
    factory, input_size=None, name: str | None = None, device="meta", arguments=None
) -> ModelSpec:
    """Build ``factory(**arguments)`` on ``device`` and trace it; on meta, retry on the CPU where meta fails.

    Meta (the default) allocates nothing and computes nothing. Where a factory or a forward cannot
    run there (an operator with no meta kernel, ``nonzero`` in a detection head), the model is
    sized from its meta build and, if it fits in the memory available, built and counted on the
    CPU; a note says so. ``input_size`` defaults to the model's own (``default_input_size``).
    A MaskedConv2d's mask holds no values on the meta device; build on "cpu" to count its kept taps.
    """
    label = name or getattr(factory, "__name__", None)
    model = build(factory, device, arguments)
    input_size = input_size_of(model, input_size)
    try:
        return trace(model, input_size, label)
    except _ForwardFailed as failure:
        if device != "meta":
            raise
        needed, free = model_bytes(model), _available_memory()
        if needed > free // 2:
            raise InvalidInput(
                "device",
                f"the meta device cannot run this model ({failure.cause}), and counting it on the CPU would "
                f"allocate {needed / 2**30:.1f} GiB of weights with {free / 2**30:.1f} GiB available",
            ) from None
        cpu = build(factory, "cpu", arguments)
        spec = trace(cpu, input_size, label)
        note = f"counted on the CPU: the meta device cannot run it ({failure.cause})"
        return replace(spec, notes=(note, *spec.notes))


class _ForwardFailed(InvalidInput):
    """The forward pass failed; ``cause`` is the first line of torch's error."""

    def __init__(self, cause: str, message: str):
        self.cause = cause
        super().__init__("input_size", message)


# Tracing.


class _Recorder:
    """Forward hooks: each outermost recorded module's call, with its input and output shapes."""

    def __init__(self):
        self.depth, self.calls = 0, []

    def pre(self, module, inputs):
        self.depth += 1

    def post(self, module, args, kwargs, output):
        self.depth -= 1
        if self.depth == 0:
            x = args[0] if args else next(iter(kwargs.values()))
            self.calls.append((module, tuple(x.shape), tuple(output.shape)))


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
    return Conv(name, spec, D_in, kind=kinds.of_layer(module), P=P, G=G, mid=mid, fixed=fixed)


def _note(module, records, counted: int) -> str | None:
    """A sentence for the reader where a recorded module's count needs one (None where it does not)."""
    record = records[0]
    macs = sum(costs(r).built.macs for r in records)
    if isinstance(module, MaskedConv2d):
        if module.binary_mask().is_meta:
            return (
                f"{record.name}: masked, counted as its dense bank ({macs:,} MACs): a mask holds no values on "
                f"the meta device; build the model on a real device (--device cpu) to count its kept taps"
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


def _layers(model: nn.Module, calls, counter: MacCounter) -> tuple[list, list[str]]:
    """Layer records of the recorded calls, Ops records of every other MAC, other parameters; notes."""
    names = {id(m): n for n, m in model.named_modules()}
    times = Counter(id(module) for module, *_ in calls)
    seen, layers, notes, repeated_params, by_module = Counter(), [], [], 0, {}
    for module, x_shape, y_shape in calls:
        seen[id(module)] += 1
        qualified = names.get(id(module), "")
        name = qualified or type(module).__name__
        record = _record(
            module, name + (f"#{seen[id(module)]}" if seen[id(module)] > 1 else ""), x_shape, y_shape
        )
        if times[id(module)] > 1 and isinstance(record, Conv):
            record = record.with_(fixed=f"called {times[id(module)]} times (shared weights)")
        if seen[id(module)] > 1:
            repeated_params += costs(record).built.params
        layers.append(record)
        by_module.setdefault(id(module), (module, qualified, []))[2].append(record)
    recorded = {name for _, name, _ in by_module.values()}
    subtree = counter.subtree_macs()
    notes += [_note(module, records, subtree.get(name, 0)) for module, name, records in by_module.values()]
    layers += [
        Ops(name or type(model).__name__, tuple((op, macs) for op, macs in ops.items() if macs))
        for name, ops in counter.by_module.items()
        if sum(ops.values()) and not _inside(name, recorded)
    ]
    other = _other(model, [module for module, _, _ in by_module.values()])
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
    return layers + ([other] if other else []), [note for note in notes if note]


def _inside(name: str, recorded: set[str]) -> bool:
    """Whether module ``name`` is a recorded module or lies below one (its MACs are that record's)."""
    parts = name.split(".")
    return name in recorded or any(".".join(parts[:i]) in recorded for i in range(1, len(parts)))


def _counting_notes(counter: MacCounter, size: str) -> list[str]:
    notes = []
    if counter.uncounted:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(counter.uncounted.items()))
        notes.append(
            f"Warning: operators with no MAC formula, which may carry multiply-accumulates, are not in the totals: {ops}"
        )
    if counter.data_dependent:
        ops = ", ".join(f"{op} ×{n}" for op, n in sorted(counter.data_dependent.items()))
        notes.append(
            f"counted on this input ({size} of zeros): data-dependent operators ({ops}) decide what runs, "
            "so another input may run other operations"
        )
    return notes


def trace(model: nn.Module, input_size, name: str | None = None) -> ModelSpec:
    """The ModelSpec of ``model`` on a 1×C×H×W input (``input_size`` = (C, H, W)), in eval mode, no grad.

    The input lives where the model's parameters do (the meta device: no compute). A module
    called more than once is recorded per call (its MACs each time, its parameters once) and
    marked fixed. Raises InvalidInput (one line) where the forward pass fails.
    """
    if len(input_size) != 3:
        raise InvalidInput("input_size", f"expected C H W, got {' '.join(map(str, input_size))}")
    C, H, W = (positive_int("input_size", v) for v in input_size)
    reference = next(itertools.chain(model.parameters(), model.buffers()), None)
    device = reference.device if reference is not None else "cpu"
    dtype = reference.dtype if reference is not None and reference.is_floating_point() else torch.float32
    recorder = _Recorder()
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
    counter = MacCounter(model)
    try:
        with torch.no_grad(), counter:
            model(torch.zeros(1, C, H, W, device=device, dtype=dtype))
    except Exception as error:
        reason = _first_line(error)
        raise _ForwardFailed(
            reason, f"the model's forward pass fails on a 1×{C}×{H}×{W} input: {reason}"
        ) from None
    finally:
        for hook in hooks:
            hook.remove()
        model.train(training)

    layers, notes = _layers(model, recorder.calls, counter)
    params = {id(p): p.numel() for p in model.parameters()}
    unused = sum(n for i, n in params.items() if i not in counter.used_params)
    if unused:
        notes.append(
            f"{unused:,} parameters are never read by this forward pass (in the totals, as params_unused)"
        )
    return ModelSpec(
        name=name or type(model).__name__,
        input=(C, H, W),
        layers=tuple(layers),
        notes=tuple(notes + _counting_notes(counter, f"1×{C}×{H}×{W}")),
        params_unused=unused,
    )
