"""Predicted time of a network on this machine, from a table of its layers' measured times (torch).

>>> model, size, name = load_model("vgg16")
>>> spec = trace(model, size, name)
>>> prediction = predict(model, spec, plan, Conditions(batch=32, fold=True, channels_last=True), Table.load())

A network's time is predicted as the sum of its parts, as hardware-aware NAS does with latency
lookup tables (FBNet, ProxylessNAS). Each convolution a plan may replace is a ``Setting``: what it
is built as (kind, implementation, P or G), its shape (M, N, K, stride, input size) and the
``Conditions`` it runs in (batch, threads, channels-last, folded or not). A setting is timed once,
in the context the model runs it: the uniform plan of its choice is built and prepared as ``bench
--model`` prepares it (``hetcalc.real.fold.inference`` with ``fold``) and run with a clock on each
of these convolutions, in the same paired, interleaved rounds as the standard network
(``hetcalc.real.timing``); the table keeps each layer's time over the standard layer's in the same
round (the median ratio, and its median absolute deviation as the spread). The standard network's
own clocks give each standard convolution's time in place, and the time outside them (the first
convolution where it stays, 1×1 and fixed layers, pooling, activations, the classifier): the
model's *context*, timed once per model and conditions. A layer's predicted time is its ratio times
its standard convolution's time in place; the network's, the outside time plus its layers'.

Interactions: a folded ``fast`` HetConv skips the copy into residue order when the layer before it
hands its output over in residue order, and the copy back when the layer after it takes it so
(``hetcalc.real.fold``): its ``Setting`` carries ``gather``/``scatter``, read from the folded
network the plan builds (``residue_flags``). Every other choice is independent of its neighbours.

The table is a JSON file per machine (CPU model, cores) and torch version, in ``cache_dir()``
(``$HETCALC_CACHE`` or ``~/.cache/hetcalc``); a file that does not parse, is of another format, or
was written for another machine or torch is set aside and rebuilt, never trusted (``Table.rebuilt``
says why).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ..core import conventions
from ..core.errors import InvalidInput, positive_int
from ..core.plan import Plan, apply, derive, module_name
from ..core.records import Conv, ModelSpec
from .conversion import convert
from .layers import build_layer
from .timing import clocked, machine, median, time_layers, using_threads

FORMAT = "hetcalc-latency"
VERSION = 3


@dataclass(frozen=True)
class Conditions:
    """What a timing runs under: batch size, CPU threads, channels-last memory, BatchNorm folded and HetConv fused."""

    batch: int = 8
    threads: int = 0  # 0: torch's default, resolved by ``resolved``
    channels_last: bool = False
    fold: bool = False

    def resolved(self) -> Conditions:
        batch = positive_int("batch", self.batch)
        return replace(
            self, batch=batch, threads=positive_int("threads", self.threads or torch.get_num_threads())
        )

    def key(self) -> str:
        return f"b{self.batch}-t{self.threads}-{'nhwc' if self.channels_last else 'nchw'}-{'fold' if self.fold else 'plain'}"


@dataclass(frozen=True)
class Setting:
    """One convolution as it is timed: built as ``kind`` (``impl``, P or G = ``value``) for a shape."""

    kind: str
    impl: str | None
    value: int | None
    M: int
    N: int
    K: int
    stride: int
    padding: int | str
    bias: bool
    H: int  # input height and width
    W: int
    gather: bool = True  # folded fast HetConv only: copies its input into residue order
    scatter: bool = True  # … and its output back to filter order

    def shape(self) -> tuple:
        return (self.M, self.N, self.K, self.stride, self.padding, self.bias, self.H, self.W)

    def key(self, conditions: Conditions) -> str:
        flags = f"-g{int(self.gather)}s{int(self.scatter)}" if self.impl == "fast" and conditions.fold else ""
        what = self.kind + (f"-{self.impl}" if self.impl else "") + (f"-{self.value}" if self.value else "")
        shape = "x".join(map(str, self.shape()))
        return f"{what}{flags}@{shape}/{conditions.key()}"

    def standard(self) -> Setting:
        return replace(self, kind="standard", impl=None, value=None)


def cache_dir() -> Path:
    """Where tables live: ``$HETCALC_CACHE``, else ``~/.cache/hetcalc``."""
    return Path(os.environ.get("HETCALC_CACHE") or Path.home() / ".cache" / "hetcalc")


def _machine_key() -> dict:
    found = machine()
    return {"cpu": found["cpu"], "cores": found["cores"], "torch": found["torch"], "cuda": found["cuda"]}


@dataclass
class Table:
    """Measured times for one machine and torch version: by setting key ``{"ratio", "spread", "ms", "rounds",
    "timed"}``, and by context key a model's context (``fill``)."""

    path: Path
    machine: dict
    entries: dict
    rebuilt: str = ""  # why an existing file was not trusted ("" if none was, or it was)

    @classmethod
    def load(cls, folder: Path | str | None = None) -> Table:
        """This machine's table from ``folder`` (default ``cache_dir()``); empty, with the reason, where the
        file does not parse or was written for another format, machine or torch."""
        here = _machine_key()
        digest = hashlib.sha256(json.dumps(here, sort_keys=True).encode()).hexdigest()[:16]
        path = Path(folder or cache_dir()) / f"latency-{digest}.json"
        table, why = cls(path, here, {}), ""
        if path.exists():
            try:
                data = json.loads(path.read_text())
                if not isinstance(data, dict) or (data.get("format"), data.get("version")) != (
                    FORMAT,
                    VERSION,
                ):
                    why = "written in another format"
                elif data.get("machine") != here:
                    why = "written for another machine or torch version"
                elif not isinstance(data.get("entries"), dict) or not all(
                    _sound(key, entry) for key, entry in data["entries"].items()
                ):
                    why = "holds malformed entries"
                else:
                    table.entries = data["entries"]
            except (OSError, ValueError) as error:
                why = f"unreadable ({type(error).__name__})"
        table.rebuilt = f"{path}: {why}; rebuilt" if why else ""
        return table

    def save(self) -> None:
        """Write the table whole (a temporary file, then renamed), or not at all."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".part")
        partial.write_text(
            json.dumps(
                {"format": FORMAT, "version": VERSION, "machine": self.machine, "entries": self.entries}
            )
        )
        os.replace(partial, self.path)

    def get(self, key: str) -> dict | None:
        return self.entries.get(key)


def _sound(key: str, entry) -> bool:
    """Whether a stored entry has the numbers a prediction reads (a context's, or a setting's)."""
    numbers = ("ms", "spread", "clock") if key.startswith("context:") else ("ms", "ratio", "spread")
    if not isinstance(entry, dict) or not all(isinstance(entry.get(n), (int, float)) for n in numbers):
        return False
    layers = entry.get("layers") if key.startswith("context:") else {}
    return isinstance(layers, dict) and all(isinstance(v, (int, float)) for v in layers.values())


def _built(setting: Setting, conditions: Conditions) -> nn.Module:
    """The layer of ``setting`` as a network runs it under ``conditions`` (folded with a BatchNorm, fused)."""
    layer = build_layer(
        setting.kind,
        setting.M,
        setting.N,
        setting.K,
        setting.value,
        stride=setting.stride,
        padding=setting.padding,
        bias=setting.bias,
        impl=setting.impl or "exact",
    )
    if not conditions.fold:
        return layer.eval().to(
            memory_format=torch.channels_last if conditions.channels_last else torch.contiguous_format
        )
    from .fold import FusedHetConv, inference

    folded = inference(
        nn.Sequential(layer, nn.BatchNorm2d(setting.N)), channels_last=conditions.channels_last
    )
    if isinstance(folded[0], FusedHetConv) and setting.impl == "fast":
        folded[0].gather, folded[0].scatter = setting.gather, setting.scatter
    return folded


def _spread(samples: list[float]) -> float:
    """The median absolute deviation of ``samples``."""
    middle = statistics.median(samples)
    return statistics.median(abs(s - middle) for s in samples)


def fill_alone(table: Table, settings: Iterable[Setting], conditions: Conditions, repeats: int = 5) -> int:
    """Time every setting the table lacks on its own (a setting no uniform network holds); returns how many.

    Each shape's settings run in one interleaved run with that shape's standard convolution; an entry
    keeps its time (``ms``) and its paired ratio to that standard (``ratio``, with its ``spread``).
    """
    conditions = conditions.resolved()
    missing: dict[tuple, dict[str, Setting]] = {}
    for setting in settings:
        if table.get(setting.key(conditions)) is None:
            missing.setdefault(setting.shape(), {})[setting.key(conditions)] = setting
    timed = 0
    with using_threads(conditions.threads), torch.inference_mode():
        for group in missing.values():
            first = next(iter(group.values()))
            runs = {first.standard().key(conditions): first.standard(), **group}
            torch.manual_seed(0)
            modules = {key: _built(s, conditions) for key, s in runs.items()}
            layout = torch.channels_last if conditions.channels_last else torch.contiguous_format
            x = torch.randn(conditions.batch, first.M, first.H, first.W).contiguous(memory_format=layout)
            samples = time_layers(modules, x, "cpu", repeats, 0.0)
            reference = next(iter(samples.values()))
            for key, values in samples.items():
                ratios = [v / r for v, r in zip(values, reference)]
                table.entries[key] = {
                    "ms": median(values) * 1e3,
                    "ratio": median(ratios),
                    "spread": _spread(ratios),
                    "rounds": len(values),
                    "timed": "alone",
                }
            timed += len(group)
            table.save()
    return timed


# From a model and a plan to settings.


def _padding(layer: Conv):
    """The padding that gives ``layer`` its output size ("same" where stride 1 keeps the size)."""
    if layer.spec.stride == 1 and layer.spec.H == layer.D_in and layer.spec.W == (layer.W_in or layer.D_in):
        return "same" if layer.K % 2 == 0 else layer.K // 2
    return max(0, math.ceil(((layer.spec.H - 1) * layer.spec.stride + layer.K - layer.D_in) / 2))


def priced(spec: ModelSpec) -> list[Conv]:
    """The convolution calls the table prices: of every module a plan may replace (K > 1, nothing fixed),
    the first convolution included, each call of a shared one."""
    return [layer for layer in spec.layers if isinstance(layer, Conv) and layer.K > 1 and not layer.fixed]


def setting_of(layer: Conv, decision, flags=(True, True)) -> Setting:
    """The setting of a priced convolution as ``decision`` (a plan's) builds it; ``flags``: (gather, scatter)."""
    kind = decision.kind if decision is not None and decision.replaced else "standard"
    impl = decision.impl if kind == "hetconv" else None
    value = decision.setting if kind != "standard" else None
    return Setting(
        kind,
        impl,
        value,
        layer.M,
        layer.N,
        layer.K,
        layer.spec.stride,
        _padding(layer),
        layer.spec.bias,
        layer.D_in,
        layer.W_in or layer.D_in,
        *flags,
    )


def residue_flags(model: nn.Module, plan: Plan, conditions: Conditions) -> dict[str, tuple[bool, bool]]:
    """(gather, scatter) of each folded fast HetConv the plan builds, as ``hetcalc.real.fold`` arranges them."""
    if not conditions.fold or not any(d.impl == "fast" for d in plan.replaced()):
        return {}
    from .fold import inference

    return _fused_flags(inference(convert(model, plan), channels_last=conditions.channels_last))


def context_key(spec: ModelSpec, conditions: Conditions) -> str:
    """The table key of a model's context (``fill``): its name, a digest of its records, the conditions."""
    digest = hashlib.sha256(repr(spec.layers).encode()).hexdigest()[:16]
    return f"context:{spec.name}:{digest}/{conditions.key()}"


def fill(
    model: nn.Module,
    spec: ModelSpec,
    settings: Iterable[Setting],
    conditions: Conditions,
    table: Table,
    repeats: int = 5,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """Time what the table lacks of ``settings`` and of the model's context; returns the context.

    In the network: for each choice (kind, implementation, P or G) a missing setting asks for, the
    uniform plan of that choice is built, prepared as ``bench --model`` prepares it, and run with a
    clock on every priced convolution in the same interleaved rounds as the standard network; each
    layer's entry is its time there over the standard layer's in the same round (the median ratio,
    and its median absolute deviation as ``spread``). The context, once per model and conditions:
    each priced layer's time in the standard network (``layers``, by module), the rest (``ms``), both
    from the clocked rounds, and ``clock``: the network's time without clocks (``network_ms``) over
    its time with them, which takes the clocks' own cost back out of a prediction. Settings no
    uniform network holds (a fast HetConv whose neighbours differ) are timed alone (``fill_alone``).
    The table is saved at the end.
    """
    from .bench_model import prepare

    conditions = conditions.resolved()
    missing = {s.key(conditions): s for s in settings if table.get(s.key(conditions)) is None}
    key = context_key(spec, conditions)
    if not missing and table.get(key) is not None:
        return table.entries[key]
    choices = sorted({(s.kind, s.impl or "", s.value or 0) for s in missing.values() if s.kind != "standard"})
    plans = {"standard": derive(spec, "standard")}
    plans.update({f"{k} {i} {v}": uniform(spec, k, v or None, i or "exact") for k, i, v in choices})
    networks = {}
    for name in progress(list(plans)) if progress else plans:
        built = model if name == "standard" else convert(model, plans[name])
        networks[name] = prepare(built, conditions.fold, conditions.channels_last)
    layout = torch.channels_last if conditions.channels_last else torch.contiguous_format
    x = torch.randn(conditions.batch, *spec.input).contiguous(memory_format=layout)
    names = list(dict.fromkeys(module_name(layer) for layer in priced(spec)))
    with using_threads(conditions.threads), torch.inference_mode():
        totals = time_layers({"standard": networks["standard"]}, x, "cpu", repeats, 0.0)["standard"]
        clocks = clocked(networks, x, repeats, {name: names for name in networks})
    clocked_totals, standard = clocks["standard"]
    if table.get(key) is None:
        outside = [
            total - sum(times[i] for times in standard.values()) for i, total in enumerate(clocked_totals)
        ]
        table.entries[key] = {
            "ms": median(outside) * 1e3,
            "spread": _spread(outside) * 1e3,
            "rounds": repeats,
            "layers": {name: median(times) * 1e3 for name, times in standard.items()},
            "network_ms": median(totals) * 1e3,
            "clock": median(totals) / median(clocked_totals),
        }
    for name, plan in plans.items():
        flags = _fused_flags(networks[name]) if conditions.fold else {}
        for layer in priced(spec):
            module = module_name(layer)
            setting = setting_of(layer, plan.get(module), flags.get(module, (True, True)))
            if setting.key(conditions) in missing and setting.key(conditions) not in table.entries:
                ratios = [t / s for t, s in zip(clocks[name][1][module], standard[module])]
                table.entries[setting.key(conditions)] = {
                    "ms": median(clocks[name][1][module]) * 1e3,
                    "ratio": median(ratios),
                    "spread": _spread(ratios),
                    "rounds": len(ratios),
                    "timed": "in the network",
                }
    fill_alone(table, [s for k, s in missing.items() if k not in table.entries], conditions, repeats)
    table.save()
    return table.entries[key]


def _fused_flags(network: nn.Module) -> dict[str, tuple[bool, bool]]:
    """(gather, scatter) of every fused fast HetConv of a prepared network, by name."""
    from .fold import FusedHetConv

    return {
        name: (module.gather, module.scatter)
        for name, module in network.named_modules()
        if isinstance(module, FusedHetConv) and module.impl == "fast"
    }


def in_context(spec: ModelSpec, context: dict, layer: Conv) -> float:
    """The standard convolution's time of one call of ``layer`` in the network (its module's, per call)."""
    name = module_name(layer)
    calls = sum(1 for r in spec.layers if isinstance(r, Conv) and module_name(r) == name)
    return context["layers"][name] / calls


@dataclass
class Prediction:
    """A plan's predicted time: per priced layer, the outside time, totals; and the standard network's."""

    model: str
    conditions: Conditions
    layers: list[dict]
    outside_ms: float
    outside_spread: float
    predicted_ms: float
    standard_ms: float
    flops: int
    standard_flops: int
    params: int
    spread_ms: float

    @property
    def predicted_speedup(self) -> float:
        return self.standard_ms / self.predicted_ms

    @property
    def flops_speedup(self) -> float:
        return self.standard_flops / self.flops


def settings_for(spec: ModelSpec, plan: Plan, flags: dict | None = None) -> list[Setting]:
    """The settings of every priced convolution under ``plan``, and of each one's standard convolution."""
    found = []
    for layer in priced(spec):
        name = module_name(layer)
        setting = setting_of(layer, plan.get(name), (flags or {}).get(name, (True, True)))
        found += [setting, setting.standard()]
    return found


def estimate(
    spec: ModelSpec, plan: Plan, conditions: Conditions, table: Table, context: dict, flags=None
) -> Prediction:
    """The prediction of ``plan`` from a filled table (every setting of ``settings_for``) and the network's
    ``context`` (``fill``): each layer, its table ratio times its standard convolution's time there."""
    conditions = conditions.resolved()
    built = {r.name: r for r in apply(spec, plan).layers if isinstance(r, Conv)}
    outside = context["ms"] * context["clock"]
    rows, total, standard, spreads = [], outside, outside, [context["spread"]]
    for layer in priced(spec):
        name = module_name(layer)
        setting = setting_of(layer, plan.get(name), (flags or {}).get(name, (True, True)))
        entry = table.get(setting.key(conditions))
        if entry is None:
            raise InvalidInput(
                "plan", f"{layer.name}: no time for {setting.key(conditions)} (fill the table first)"
            )
        base = in_context(spec, context, layer) * context["clock"]
        record = built[layer.name]
        rows.append(
            {
                "name": layer.name,
                "kind": setting.kind,
                "impl": setting.impl,
                "P": record.P,
                "G": record.G,
                "flops": conventions.measure(record, "exact")[0],
                "ms": entry["ratio"] * base,
                "spread": entry["spread"] * base,
                "standard_ms": base,
            }
        )
        total, standard = total + entry["ratio"] * base, standard + base
        spreads.append(entry["spread"] * base)
    counted = conventions_totals(spec, plan)
    return Prediction(
        spec.name,
        conditions,
        rows,
        outside,
        context["spread"],
        total,
        standard,
        counted[0],
        counted[1],
        counted[2],
        math.sqrt(sum(s * s for s in spreads)),
    )


def conventions_totals(spec: ModelSpec, plan: Plan) -> tuple[int, int, int]:
    """(MACs of the plan's network, MACs of the standard network, parameters of the plan's): exact convention."""
    from ..core.analyze import analyze

    report = analyze(spec, plan=plan, convention="exact")
    return report.flops, report.baseline_flops, report.params


def predict(
    model: nn.Module,
    spec: ModelSpec,
    plan: Plan,
    conditions: Conditions,
    table: Table,
    *,
    repeats: int = 5,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Prediction:
    """Fill what ``plan`` needs into ``table`` (its layers' settings, the model's context), then estimate."""
    conditions = conditions.resolved()
    flags = residue_flags(model, plan, conditions)
    context = fill(model, spec, settings_for(spec, plan, flags), conditions, table, repeats, progress)
    return estimate(spec, plan, conditions, table, context, flags)


def to_dict(prediction: Prediction) -> dict:
    """The JSON of ``hetcalc latency``: totals, per-layer rows, and what the prediction holds for."""
    mach = machine()
    c = prediction.conditions
    return {
        "model": prediction.model,
        "batch": c.batch,
        "threads": c.threads,
        "channels_last": c.channels_last,
        "fold": c.fold,
        "prediction": (
            f"predicted, this machine ({mach['cpu']}, {mach['cores']} cores, {c.threads} threads, "
            f"torch {mach['torch']})"
        ),
        "machine": mach,
        "predicted_ms": prediction.predicted_ms,
        "spread_ms": prediction.spread_ms,
        "standard_ms": prediction.standard_ms,
        "predicted_speedup": prediction.predicted_speedup,
        "flops": prediction.flops,
        "standard_flops": prediction.standard_flops,
        "flops_speedup": prediction.flops_speedup,
        "params": prediction.params,
        "outside_ms": prediction.outside_ms,
        "layers": prediction.layers,
        "conditions": asdict(c),
    }


def measure(
    model: nn.Module, spec: ModelSpec, plans: dict[str, Plan], conditions: Conditions, repeats: int = 5
) -> dict:
    """The measured time of the standard network and of each plan's, in the same paired, interleaved rounds.

    Returns {key: {"ms", "spread", "speedup"}} with "standard" first: the measurement a prediction is
    checked against, taken in the same run.
    """
    from .bench_model import prepare
    from .timing import paired_speedup

    conditions = conditions.resolved()
    networks = {"standard": prepare(model, conditions.fold, conditions.channels_last)}
    networks.update(
        {
            key: prepare(convert(model, plan), conditions.fold, conditions.channels_last)
            for key, plan in plans.items()
        }
    )
    layout = torch.channels_last if conditions.channels_last else torch.contiguous_format
    x = torch.randn(conditions.batch, *spec.input).contiguous(memory_format=layout)
    with using_threads(conditions.threads), torch.inference_mode():
        samples = time_layers(networks, x, "cpu", repeats, 0.0)
    return {
        key: {
            "ms": median(values) * 1e3,
            "spread": _spread(values) * 1e3,
            "speedup": paired_speedup(samples["standard"], values),
        }
        for key, values in samples.items()
    }


def uniform(spec: ModelSpec, variant: str, value=None, impl: str = "exact") -> Plan:
    """The uniform plan of a variant (every layer it fits), as the search compares against."""
    return derive(
        spec,
        variant,
        value if variant == "hetconv" else None,
        value if variant == "gwc_pwc" else None,
        impl=impl,
    )


# The design search's space: options per replaceable layer, priced from the table.


@dataclass
class Space:
    """What ``hetcalc.core.search`` searches: for each replaceable module, its options (``Option.choice`` is a
    plan ``Decision``); ``base``: the rest of the network; ``references``: the uniform variants' totals."""

    names: list[str]
    layers: list[list]
    base: object
    references: dict
    standard: object
    context: dict


def space(
    model: nn.Module,
    spec: ModelSpec,
    conditions: Conditions,
    table: Table,
    Ps=(),
    Gs=(),
    dwc: bool = False,
    impl: str = "grouped_sum",
    keep_first: bool = True,
    repeats: int = 5,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> Space:
    """The options of every module a plan may replace: kept, HetConv with each P of ``Ps`` that fits it,
    GWC+PWC with each G of ``Gs``, DWC+PWC; each priced exactly (FLOPs, params) and from the table (ms).

    Interactions: each option is priced as it runs alone (a folded ``fast`` HetConv with its residue
    copies in and out, ``residue_flags``' worst case), so the search is exact for that additive
    model; the plan it picks is then predicted exactly, copies included, by ``predict``.
    """
    from ..core import kinds
    from ..core.plan import Decision, candidates, convolutions, rebuilt
    from ..core.search import Option, Totals, plan_totals

    conditions = conditions.resolved()
    open_ = candidates(spec) if keep_first else [c for c in convolutions(spec) if c.K > 1 and not c.fixed]
    names = [layer.name for layer in open_]
    calls = {
        name: [r for r in spec.layers if isinstance(r, Conv) and module_name(r) == name] for name in names
    }
    choices = {}
    for layer in open_:
        found = [Decision(layer.name, keep="kept by the search")]
        found += [
            Decision(layer.name, "hetconv", P=P, impl=impl)
            for P in Ps
            if P > 1 and not kinds.kept(layer.spec, "hetconv", P)
        ]
        found += [
            Decision(layer.name, "gwc_pwc", G=G) for G in Gs if not kinds.kept(layer.spec, "gwc_pwc", G)
        ]
        found += [Decision(layer.name, "dwc_pwc")] if dwc else []
        choices[layer.name] = found
    if not any(len(options) > 1 for options in choices.values()):
        raise InvalidInput("P", "no P, G or DWC fits any replaceable layer of this model: nothing to search")
    settings = [setting_of(r, d) for name in names for d in choices[name] for r in calls[name]]
    settings += [setting_of(r, None) for r in priced(spec)]
    context = fill(model, spec, settings, conditions, table, repeats, progress)

    def ms(record, decision) -> tuple[float, float]:
        entry = table.get(setting_of(record, decision).key(conditions))
        base = in_context(spec, context, record) * context["clock"]
        return entry["ratio"] * base, entry["spread"] * base

    layers = []
    for name in names:
        options = []
        for decision in choices[name]:
            records = [rebuilt(r, decision) for r in calls[name]]
            counted = [conventions.measure(r, "exact") for r in records]
            times = [ms(r, decision) for r in calls[name]]
            options.append(
                Option(
                    decision,
                    sum(f for f, _ in counted),
                    sum(p for _, p in counted),
                    math.fsum(t for t, _ in times),
                    math.sqrt(sum(s * s for _, s in times)),
                )
            )
        layers.append(options)
    whole = conventions_totals(spec, derive(spec, "standard"))
    fixed_ms = context["ms"] * context["clock"] + math.fsum(
        ms(r, None)[0] for r in priced(spec) if module_name(r) not in calls
    )
    base = Totals(
        whole[1] - sum(options[0].flops for options in layers),
        whole[2] - sum(options[0].params for options in layers),
        fixed_ms,
    )
    references = {"standard": plan_totals(layers, base, tuple(0 for _ in layers))}
    for label, kind, value in (
        [(f"P{P}", "hetconv", P) for P in Ps]
        + [(f"GWC{G}", "gwc_pwc", G) for G in Gs]
        + ([("DWC", "dwc_pwc", None)] if dwc else [])
    ):
        picks = tuple(
            next((i for i, o in enumerate(options) if o.choice.kind == kind and o.choice.setting == value), 0)
            for options in layers
        )
        references[label] = plan_totals(layers, base, picks)
    return Space(names, layers, base, references, references["standard"], context)


def plan_of(spec: ModelSpec, found: Space, picks, keep_first: bool = True) -> Plan:
    """The plan of a point of the search: each searched module's pick, every other convolution kept with its reason."""
    from ..core import kinds
    from ..core.plan import Decision, convolutions

    picked = {name: options[i].choice for name, options, i in zip(found.names, found.layers, picks)}
    decisions = []
    for i, layer in enumerate(convolutions(spec)):
        if layer.name in picked:
            decisions.append(picked[layer.name])
        else:
            reason = kinds.kept(layer.spec, "standard", first=keep_first and i == 0, fixed=layer.fixed)
            decisions.append(Decision(layer.name, keep=reason or "kept by the search"))
    return Plan(spec.name, tuple(spec.input), tuple(decisions), "plan")


# What the commands and the API return.


def run_latency(
    model: nn.Module,
    spec: ModelSpec,
    plan: Plan,
    conditions: Conditions,
    table: Table,
    *,
    check: bool = True,
    repeats: int = 5,
    progress: Callable[[Iterable], Iterable] | None = None,
) -> dict:
    """``hetcalc latency``'s JSON: the prediction of ``plan`` and, with ``check``, the standard network and the
    plan's measured in the same run (``measured``: ms, speedup, and the prediction's errors in %)."""
    prediction = predict(model, spec, plan, conditions, table, repeats=repeats, progress=progress)
    result = to_dict(prediction)
    result.update(
        input=list(spec.input), plan=plan.to_dict(), cache=str(table.path), cache_rebuilt=table.rebuilt
    )
    if check:
        result["measured"] = checked(
            model, spec, plan, conditions, repeats, prediction.predicted_ms, prediction.predicted_speedup
        )
    return result


def checked(model, spec, plan, conditions, repeats, predicted_ms, predicted_speedup) -> dict:
    """The plan's network and the standard one measured now, in the same paired rounds, beside a prediction:
    ms, speedup, and the prediction's error in % of each."""
    measured = measure(model, spec, {"plan": plan}, conditions, repeats)
    return {
        "ms": measured["plan"]["ms"],
        "standard_ms": measured["standard"]["ms"],
        "speedup": measured["plan"]["speedup"],
        "error_pct": 100 * (predicted_ms / measured["plan"]["ms"] - 1),
        "speedup_error_pct": 100 * (predicted_speedup / measured["plan"]["speedup"] - 1),
    }


def run_search(
    model: nn.Module,
    spec: ModelSpec,
    conditions: Conditions,
    table: Table,
    objective: str = "latency",
    constraints=(),
    Ps=(2, 4, 8, 16, 32),
    Gs=(),
    dwc: bool = False,
    impl: str = "grouped_sum",
    keep_first: bool = False,
    repeats: int = 5,
    progress: Callable[[Iterable], Iterable] | None = None,
    check: bool = True,
) -> tuple[dict, Plan]:
    """``hetcalc search``'s JSON and the chosen plan: the exact best plan for ``objective`` under ``constraints``
    over the options of ``space``, the latency/FLOPs front, and each uniform variant's predicted totals; with
    ``check``, the chosen plan's network and the standard one measured in the same run (``chosen.measured``)."""
    from ..core.search import search

    conditions = conditions.resolved()
    found = space(model, spec, conditions, table, Ps, Gs, dwc, impl, keep_first, repeats, progress)
    result = search(found.layers, found.base, objective, constraints, found.references)
    plan = plan_of(spec, found, result.chosen.picks, keep_first)
    payload = _search_payload(
        spec.name, spec.input, conditions, objective, constraints, found, result, plan, impl
    )
    if check:
        chosen = payload["chosen"]
        chosen["measured"] = checked(
            model, spec, plan, conditions, repeats, chosen["ms"], chosen["predicted_speedup"]
        )
    return payload, plan


def _totals(point, standard) -> dict:
    return {
        "flops": point.flops,
        "params": point.params,
        "ms": point.ms,
        "predicted_speedup": standard.ms / point.ms,
        "flops_speedup": standard.flops / point.flops,
    }


def _search_payload(label, size, conditions, objective, constraints, found, result, plan, impl) -> dict:
    mach = machine()
    standard = found.standard
    uniform = [
        {"name": key, "bench": _bench_key(key, impl), **_totals(totals, standard)}
        for key, totals in found.references.items()
    ]
    choices = [
        {"name": n, "choice": options[i].choice.title(), "flops": options[i].flops, "ms": options[i].ms}
        for n, options, i in zip(found.names, found.layers, result.chosen.picks)
    ]
    return {
        "model": label,
        "input": list(size),
        "batch": conditions.batch,
        "threads": conditions.threads,
        "channels_last": conditions.channels_last,
        "fold": conditions.fold,
        "prediction": (
            f"predicted, this machine ({mach['cpu']}, {mach['cores']} cores, {conditions.threads} threads, "
            f"torch {mach['torch']})"
        ),
        "machine": mach,
        "objective": objective,
        "constraints": list(constraints),
        "interactions": (
            "each choice priced as it runs alone: a folded fast HetConv with its residue copies in and out "
            "(layers of equal P next to each other skip them: 'hetcalc latency --plan' prices that)"
        ),
        "chosen": {**_totals(result.chosen, standard), "layers": choices},
        "uniform": uniform,
        "front": [{"flops": p.flops, "params": p.params, "ms": p.ms} for p in result.front],
        "plan": plan.to_dict(),
    }


def _bench_key(key: str, impl: str) -> str | None:
    """The name 'hetcalc bench --model' gives the uniform variant ``key`` (to match measured points)."""
    if key.startswith("P"):
        return f"{impl} P={key[1:]}"
    if key.startswith("GWC"):
        return f"gwc_pwc G={key[3:]}"
    return {"DWC": "dwc_pwc", "standard": "standard"}.get(key)
