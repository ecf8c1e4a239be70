"""Loading a user's model (torch): its factory, its arguments, the device it is built on, its input size.

``trace_factory`` is the one way every command takes a model it did not build itself: it loads
``PKG.MOD:FACTORY`` (or ``path/to/file.py:FACTORY``), builds it on the meta device (no weights,
no compute), reads its input size where the model says one, and traces it
(``hetcalc.real.trace``). Where meta lacks a kernel or an operator depends on the data, and only
then, it retries on the CPU if the weights fit in memory, and says so (``ModelSpec.fallback``).
Any other failure (a wrong input size, a bug in the model) is the user's, reported at once in one line.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import itertools
import os
import sys
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..core.errors import InvalidInput
from ..core.records import Footprint, ModelSpec
from .trace import ForwardFailed, first_line, trace, trace_step


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
            raise InvalidInput("module", f"cannot import {where}: {first_line(error)}") from None


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
        raise InvalidInput("module", f"{label}() raised {first_line(error)}") from None
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


def default_input_size(model: nn.Module, factory=None):
    """(C, H, W) where the model says its input, else None.

    hetcalc's zoo models: ``hetcalc_input_size`` (set by ``build_model``); timm: the model's ``pretrained_cfg``/``default_cfg`` "input_size"; torchvision: the crop size of
    its builder's DEFAULT weights' transforms (``torchvision.models.get_model_weights``).
    """
    if isinstance(getattr(model, "hetcalc_input_size", None), tuple):  # hetcalc.real.build.build_model
        return model.hetcalc_input_size
    for attribute in ("pretrained_cfg", "default_cfg"):
        config = getattr(model, attribute, None)
        size = config.get("input_size") if isinstance(config, dict) else None
        if isinstance(size, (tuple, list)) and len(size) == 3:
            return tuple(int(v) for v in size)
    if factory is not None and getattr(factory, "__module__", "").startswith("torchvision.models"):
        from torchvision.models import get_model_weights

        try:
            transforms = get_model_weights(factory).DEFAULT.transforms
        except (ValueError, KeyError, AttributeError):
            return None
        crop = getattr(transforms, "keywords", {}).get("crop_size")
        crop = crop[0] if isinstance(crop, (tuple, list)) else crop
        return (3, int(crop), int(crop)) if crop else None
    return None


def input_size_of(model: nn.Module, input_size=None, factory=None) -> tuple[int, int, int]:
    """``input_size`` as given, else the model's own (``default_input_size``), else InvalidInput."""
    size = tuple(input_size) if input_size else default_input_size(model, factory)
    if size is None:
        raise InvalidInput(
            "input_size",
            "is required: give the input as C H W, e.g. --input-size 3 224 224 (the model does not say)",
        )
    return size


META_GAPS = (
    "meta",
    "data-dependent",
    "data dependent",
    "nonzero",
    ".item()",
    "cannot copy out of",
)
"""Words in an error that say the meta device, not the model or its input, is at fault."""


def meta_gap(error: BaseException) -> bool:
    """Whether ``error`` of a forward on meta is meta's: a missing kernel or an operator that needs the data."""
    return isinstance(error, NotImplementedError) or any(word in str(error).lower() for word in META_GAPS)


def trace_factory(
    factory, input_size=None, name: str | None = None, device="meta", arguments=None, **step
) -> ModelSpec:
    """Build ``factory(**arguments)`` on ``device`` and trace it; on meta, retry on the CPU where meta fails.

    Meta (the default) allocates nothing and computes nothing. Where a forward cannot run there
    because meta lacks a kernel or an operator depends on the data (``nonzero`` in a detection
    head), the model is sized from its meta build and, if it fits in half the memory available,
    built and counted on the CPU (``ModelSpec.fallback`` says why). Any other failure is raised at
    once, in one line. ``input_size`` defaults to the model's own (``default_input_size``). A
    MaskedConv2d's mask holds no values on the meta device; build on "cpu" to count its kept taps.
    ``step`` (``load_traced``): ``batch`` images; ``train``, a training step (``hetcalc.real.trace.trace_step``,
    with ``frozen`` and ``loss``); ``dtype`` ("float32", "bfloat16", "float16"), the model converted to it first.
    """
    return load_traced(factory, input_size, name, device, arguments, **step)[0]


def load_traced(
    factory,
    input_size=None,
    name: str | None = None,
    device="meta",
    arguments=None,
    *,
    batch: int = 1,
    train: bool = False,
    frozen=(),
    loss: str | None = None,
    dtype: str | None = None,
) -> tuple[ModelSpec, nn.Module]:
    """``trace_factory``'s spec and the model it traced (on meta, or on the CPU where meta could not run it)."""
    label = name or getattr(factory, "__name__", None)

    def made(device):
        model = build(factory, device, arguments)
        return model.to(_dtype(dtype)) if dtype else model

    def traced(model):
        if train:
            return trace_step(model, input_size, label, batch=batch, frozen=frozen, loss=loss)
        return trace(model, input_size, label, batch=batch)

    model = made(device)
    input_size = input_size_of(model, input_size, factory)
    try:
        return traced(model), model
    except ForwardFailed as failure:
        if device != "meta" or not meta_gap(failure.error):
            raise
        needed, free = model_bytes(model), _available_memory()
        if needed > free // 2:
            raise InvalidInput(
                "device",
                f"the meta device cannot run this model ({failure.cause}), and counting it on the CPU would "
                f"allocate {needed / 2**30:.1f} GiB of weights with {free / 2**30:.1f} GiB available",
            ) from None
        model = made("cpu")
        return replace(traced(model), fallback=failure.cause), model


def _dtype(name: str):
    """The torch dtype named ``name`` ("float32", "bfloat16", "float16")."""
    from ..core.cost import DTYPES

    if name not in DTYPES:
        raise InvalidInput("dtype", f"must be one of {', '.join(DTYPES)}, got {name!r}")
    return getattr(torch, name)


def converted_footprint(model: nn.Module, plan, input_size, *, batch=1, frozen=(), loss=None) -> Footprint:
    """What a training step of ``model`` converted by ``plan`` (``hetcalc.convert``) holds, measured as
    ``trace_step`` measures it; the converted layers keep their names, so ``frozen`` names the same modules."""
    from .conversion import convert

    converted = convert(model, plan) if plan.replaced() else model
    return trace_step(converted, input_size, batch=batch, frozen=frozen, loss=loss).footprint


def module_footprint(
    module: str, plan, spec: ModelSpec, *, arguments=(), batch=1, frozen=(), loss=None, dtype="float32"
) -> Footprint:
    """What a training step of the user's model ``module`` (PKG.MOD:FACTORY) holds as ``plan`` converts it, built
    again where ``spec`` (its traced step) was counted: on meta, or on the CPU where meta could not run it."""
    model = build(load_factory(module), spec.counted_on or "meta", factory_arguments(arguments)).to(
        _dtype(dtype)
    )
    return converted_footprint(model, plan, spec.input, batch=batch, frozen=frozen, loss=loss)


def zoo_footprint(spec: ModelSpec, *, batch: int = 1, dtype: str = "float32") -> Footprint:
    """What a training step of the zoo model ``spec`` describes holds (its plan applied, its ``frozen`` records
    marked), measured on the model ``hetcalc.real.build.build_model`` makes of it, on the meta device."""
    from .build import build_model, units

    with torch.device("meta"):
        model = build_model(spec).to(_dtype(dtype))
    built = units(model)
    frozen = [name for layer in spec.layers if getattr(layer, "frozen", False) for name in built[layer.name]]
    return trace_step(model, spec.input, spec.name, batch=batch, frozen=frozen).footprint


def load_model(name: str | None = None, module: str | None = None, input_size=None, arguments=()):
    """(model on the CPU, its input (C, H, W), its name): zoo model ``name`` or ``module`` (PKG.MOD:FACTORY)."""
    if (name is None) == (module is None):
        raise InvalidInput(
            "model", "give a zoo model name or a module PKG.MOD:FACTORY" + (", not both" if name else "")
        )
    if name is not None:
        from .build import build_model

        if input_size or arguments:
            raise InvalidInput(
                "input_size" if input_size else "arguments",
                f"applies to a module only, not to zoo model {name}",
            )
        model = build_model(name)
        return model, model.hetcalc_input_size, name
    factory = load_factory(module)
    model = build(factory, "cpu", factory_arguments(arguments))
    return model, input_size_of(model, input_size, factory), module


def zoo_footprints(*, batch: int = 1, dtype: str = "float32"):
    """``zoo_footprint`` as ``hetcalc.core.analyze`` takes a footprint: a function of the records counted and their
    plan."""
    return lambda after, plan: zoo_footprint(after, batch=batch, dtype=dtype)
