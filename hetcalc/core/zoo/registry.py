"""The model registry: an entrypoint's name is the model's name (as in timm).

Each entrypoint is a docstring plus a small dict of arguments for one family builder; it is
registered with the datasets it is defined for, the first being its default.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import replace

from ..errors import InvalidInput

_ENTRYPOINTS: dict = {}
_DATASETS: dict[str, tuple[str, ...]] = {}


def register_model(*datasets: str):
    """Decorator: file ``fn`` under its own name, defined for ``datasets`` (the first is the default)."""

    def register(fn):
        name = fn.__name__
        if name in _ENTRYPOINTS:
            raise ValueError(f"A model named {name!r} is already registered; pick another name.")
        _ENTRYPOINTS[name], _DATASETS[name] = fn, datasets
        return fn

    return register


def _natural(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, in natural order (resnet18 < resnet110)."""
    return sorted(fnmatch.filter(_ENTRYPOINTS, pattern), key=_natural)


def _known(name: str) -> str:
    if name not in _ENTRYPOINTS:
        raise InvalidInput("MODEL", f"unknown model {name!r}; known models: {', '.join(list_models())}")
    return name


def model_datasets(name: str) -> tuple[str, ...]:
    """The datasets ``name`` is defined for, default first."""
    return _DATASETS[_known(name)]


def model_doc(name: str) -> str:
    """The first line of the entrypoint's docstring."""
    return (_ENTRYPOINTS[_known(name)].__doc__ or "").strip().splitlines()[0]


def get_model(name: str, dataset: str | None = None):
    """The ModelSpec of ``name`` on ``dataset`` (default: the model's own)."""
    datasets = model_datasets(name)
    dataset = datasets[0] if dataset is None else dataset
    if dataset not in datasets:
        raise InvalidInput("dataset", f"{name} is defined for {' and '.join(datasets)}, not {dataset!r}")
    return replace(_ENTRYPOINTS[name](dataset), name=name)
