"""Measured speed of the real layers: wall clock against the FLOPs theory (``hetcalc bench``).

For each P, every implementation runs on the same input, inference only, after a warm-up;
then rounds interleave them, each round timing the standard ``nn.Conv2d`` once and every
other layer once (in reverse order every other round), so that machine noise hits all of them
alike. ``ms`` is the median time of a call; ``speedup`` the median over rounds of (standard
time / layer time), paired within a round. ``theory`` is Eq. 9 (1 / reduction) of each implementation's own formula in
``hetcalc.core.cost``; ``flops_speedup`` is standard MACs over the MACs the layer actually runs.
torch is imported here, not at ``import hetcalc``.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..core import cost, kinds
from ..core.errors import InvalidInput, positive_int, whole_numbers
from ..core.spec import ConvSpec


@dataclass(frozen=True)
class Timed:
    """One implementation to time: how to build it, its theory and what it runs, as hetcalc.core.cost formulas."""

    name: str
    label: str
    build: Callable[[int, int, int, int], torch.nn.Module]  # (M, N, K, P) → module
    theory: Callable[[ConvSpec, int], cost.Cost]  # the cost whose Eq. 9 speedup it is held to
    runs: Callable[[ConvSpec, int], cost.Cost]  # the multiply-accumulates it executes


def _kind(kind: str, label: str, impl: str = "exact") -> Timed:
    """A kind's real layer (``hetcalc.core.kinds``), held to its own formula, G = P for GWC+PWC."""
    runs = kinds.IMPLS[impl] if kind == "hetconv" else kind
    name = f"hetconv_{impl}" if kind == "hetconv" else kind
    theory = kinds.get(kind)
    return Timed(
        name,
        label,
        lambda M, N, K, P: kinds.build(kind, M, N, K, P if theory.parameter else None, impl=impl),
        lambda spec, P: theory.cost(spec, P if theory.parameter else None, None),
        lambda spec, P: kinds.get(runs).cost(spec, P if kinds.get(runs).parameter else None, None),
    )


def _hetconv_mask(M, N, K, P):
    from ..core.masks import kind_mask

    return kind_mask("hetconv", M, N, K, P)


def _masked(M, N, K, P):
    from .lhc import MaskedConv2d

    return MaskedConv2d(M, N, K, mask=torch.from_numpy(_hetconv_mask(M, N, K, P)), bias=False)


def _mask_taps(spec: ConvSpec, P: int) -> cost.Cost:
    """The effective cost of the HetConv mask: its kept taps (Eq. 4 again, counted from the mask)."""
    return cost.masked(int(_hetconv_mask(spec.M, spec.N, spec.K, P).sum()), spec.positions)


TIMED = (
    _kind("standard", "nn.Conv2d (reference)"),
    _kind("hetconv", "HetConv exact (Eq. 4 MACs)", "exact"),
    _kind("hetconv", "HetConv fast (shifted, grouped + 1×1)", "fast"),
    _kind("hetconv_grouped_sum", "grouped K×K + 1×1 (public code)"),
    _kind("gwc_pwc", "GWC+PWC, G = P"),
    _kind("dwc_pwc", "DWC+PWC"),
    Timed("masked", "masked dense conv (HetConv mask)", _masked, _mask_taps, lambda s, P: cost.standard(s)),
)
BY_NAME = {timed.name: timed for timed in TIMED}


def _known_names(text, known) -> list[str]:
    """'a,b' → the distinct names, in order, each one of ``known``; else InvalidInput naming ``impls``."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InvalidInput(
            "impls", f"unknown implementation {', '.join(unknown) or repr(text)}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def _distinct_P(Ps, example: str) -> list[int]:
    """P as '2,4,8' or an iterable of whole numbers → the distinct values, in order."""
    return list(dict.fromkeys(whole_numbers("P", Ps, example) if isinstance(Ps, str) else Ps))


def parse_impls(text) -> list[str]:
    """'hetconv_fast,masked' → names; 'standard' (the reference) is always timed and need not be given."""
    return ["standard"] + [name for name in _known_names(text, BY_NAME) if name != "standard"]


def devices(requested: str = "auto") -> list[str]:
    """'cpu', 'cuda' or 'auto' (cpu, plus cuda when torch sees a GPU) as a list of torch devices."""
    if requested not in ("auto", "cpu", "cuda"):
        raise InvalidInput("device", f"must be auto, cpu or cuda, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise InvalidInput("device", "cuda requested but torch sees no GPU")
    if requested == "auto":
        return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    return [requested]


def machine() -> dict:
    """The CPU model, its cores, torch's version and the GPU torch sees (None without one)."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            model = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), model
            )
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    }


def _timer(device: str) -> Callable[[], float]:
    """A clock that waits for the device to finish first (CUDA runs asynchronously)."""
    if device == "cuda":

        def clock():
            torch.cuda.synchronize()
            return time.perf_counter()

        return clock
    return time.perf_counter


def _calls_per_sample(call, clock, target: float = 0.01) -> int:
    """Calls per timed sample so that a sample lasts about ``target`` seconds (at least 1)."""
    start = clock()
    call()
    return max(1, math.ceil(target / max(clock() - start, 1e-9)))


def time_layers(modules: dict, x, device: str, repeats: int, min_time: float) -> dict[str, list[float]]:
    """Seconds per call of each module on ``x``: one sample per round, rounds interleaved.

    Each round times ``standard`` first, then the others, in reverse order every other round
    (so no layer always follows the same one). At least ``repeats`` rounds, and ``min_time`` s.
    """
    clock = _timer(device)
    calls = {}
    for name, module in modules.items():
        module(x)  # warm-up: one-off allocations, oneDNN kernel creation
        calls[name] = _calls_per_sample(lambda: module(x), clock)
    samples = {name: [] for name in modules}
    others = [name for name in modules if name != "standard"]
    start = clock()
    while len(samples["standard"]) < repeats or clock() - start < min_time:
        order = others if len(samples["standard"]) % 2 == 0 else others[::-1]
        for name in ["standard", *order]:
            begin = clock()
            for _ in range(calls[name]):
                modules[name](x)
            samples[name].append((clock() - begin) / calls[name])
    return samples


MEMORY_LIMIT = 4 * 2**30  # bytes of float32 tensors one configuration may hold


def _refuse_oversized(M: int, N: int, K: int, D: int, batch: int) -> None:
    """Refuse, before allocating, a layer whose tensors (input, outputs, weights) exceed MEMORY_LIMIT."""
    elements = batch * D * D * (M + 3 * N) + 8 * N * M * K * K  # input, a few outputs, every layer's weights
    if 4 * elements > MEMORY_LIMIT:
        raise InvalidInput(
            "batch",
            f"this configuration needs about {4 * elements / 2**30:.0f} GiB of tensors; "
            f"the limit is {MEMORY_LIMIT // 2**30} GiB: reduce --M, --N, --D or --batch",
        )


def run(
    M: int = 256,
    N: int = 256,
    K: int = 3,
    D: int = 56,
    batch: int = 8,
    Ps: Iterable[int] = (2, 4, 8, 16, 32),
    impls: Iterable[str] | None = None,
    threads: int | None = None,
    repeats: int = 5,
    min_time: float = 0.0,
    device: str = "auto",
    progress: Callable[[Iterable], Iterable] | None = None,
    seed: int = 0,
    channels_last: bool = False,
) -> dict:
    """Time every implementation of one layer M → N (K×K, stride 1, padding K//2, D×D input) for each P.

    ``channels_last``: the input and every layer's weights in torch.channels_last (NHWC) memory,
    as CPU inference is often deployed; oneDNN then skips its layout reorders.

    Returns ``{"rows": [...], "device": ..., "threads": ..., ...}``: one row per device, P and
    implementation, ``standard`` (the reference, speedup 1) first. ``progress`` wraps the
    iteration over (device, P) (e.g. rich.progress.track).
    """
    M, N, K, D, batch = (
        positive_int(option, value)
        for option, value in (("M", M), ("N", N), ("K", K), ("D", D), ("batch", batch))
    )
    Ps = _distinct_P(Ps, "2,4,8")
    if not Ps:
        raise InvalidInput("P", "give at least one P")
    for P in Ps:
        kinds.check(ConvSpec(M=M, N=N, K=K), "hetconv", P)
    names = parse_impls(",".join(impls)) if impls is not None else [timed.name for timed in TIMED]
    repeats = positive_int("repeats", repeats)
    if not min_time >= 0:
        raise InvalidInput("min_time", f"must be >= 0 seconds, got {min_time}")
    targets = devices(device)
    previous = torch.get_num_threads()
    threads = positive_int("threads", previous if threads is None else threads)
    spec = ConvSpec(M=M, N=N, K=K, H=D)
    _refuse_oversized(M, N, K, D, batch)
    standard = cost.standard(spec).macs
    jobs = [(dev, P) for dev in targets for P in Ps]
    rows = []
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            for dev, P in progress(jobs) if progress else jobs:
                torch.manual_seed(seed)
                layout = torch.channels_last if channels_last else torch.contiguous_format
                modules = {
                    name: BY_NAME[name].build(M, N, K, P).eval().to(dev, memory_format=layout)
                    for name in names
                }
                x = torch.randn(batch, M, D, D, device=dev).contiguous(memory_format=layout)
                samples = time_layers(modules, x, dev, repeats, min_time)
                reference = samples["standard"]
                for name in names:
                    impl, times = BY_NAME[name], samples[name]
                    theory = standard / impl.theory(spec, P).macs
                    speedup = statistics.median(r / t for r, t in zip(reference, times))
                    rows.append(
                        {
                            "impl": name,
                            "label": impl.label,
                            "device": dev,
                            "P": P,
                            "ms": statistics.median(times) * 1e3,
                            "ms_min": min(times) * 1e3,
                            "speedup": speedup,
                            "theory": theory,
                            "realised": speedup / theory,
                            "flops_speedup": standard / impl.runs(spec, P).macs,
                            "macs": impl.runs(spec, P).macs,
                            "rounds": len(times),
                        }
                    )
    finally:
        torch.set_num_threads(previous)
    return {
        "layer": {
            "M": M,
            "N": N,
            "K": K,
            "D": D,
            "batch": batch,
            "stride": 1,
            "padding": K // 2,
            "bias": False,
            "channels_last": channels_last,
        },
        "device": "+".join(targets),
        "threads": threads,
        "machine": machine(),
        "timing": f"median of >= {repeats} interleaved rounds, min time {min_time:g} s per P; inference mode",
        "rows": rows,
    }


# Whole models ------------------------------------------------------------------------------

MODEL_IMPLS = tuple(kinds.IMPLS)
"""HetConv2d implementations a model can be converted to (``hetcalc.convert``'s ``impl``)."""


def parse_model_impls(text) -> list[str]:
    """'exact,fast' → HetConv2d implementations, each known (``kinds.IMPLS``)."""
    return _known_names(text, MODEL_IMPLS)


def load_model(name: str | None = None, module: str | None = None, input_size=None, arguments=()):
    """(model on the CPU, its input (C, H, W), its name): zoo model ``name`` or ``module`` (PKG.MOD:FACTORY)."""
    from .trace import build, factory_arguments, input_size_of, load_factory

    if (name is None) == (module is None):
        raise InvalidInput(
            "model", "give a zoo model name or a module PKG.MOD:FACTORY" + (", not both" if name else "")
        )
    if name is not None:
        from ..core.zoo import get_model
        from .build import build_model

        if input_size or arguments:
            raise InvalidInput(
                "input_size" if input_size else "arguments",
                f"applies to a module only, not to zoo model {name}",
            )
        return build_model(name), tuple(get_model(name).input), name
    model = build(load_factory(module), "cpu", factory_arguments(arguments))
    return model, input_size_of(model, input_size), module


def _conv_modules(model) -> dict[str, torch.nn.Module]:
    """The convolutions of ``model`` by name: nn.Conv2d and hetcalc's layers, not entering the latter."""
    from .fold import FusedHetConv
    from .trace import HETCALC_LAYERS

    found, inside = {}, ()
    for name, module in model.named_modules():
        if inside and any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if isinstance(module, (torch.nn.Conv2d, FusedHetConv, *HETCALC_LAYERS)):
            found[name] = module
            inside += (name,)
    return found


def layer_times(models: dict, x, rounds: int) -> dict[str, tuple[list[float], dict[str, list[float]]]]:
    """Per model: (seconds per forward, {convolution: seconds per forward}), ``rounds`` interleaved rounds.

    A forward pre-hook and hook on every convolution read the clock (the CPU runs synchronously).
    """
    result = {key: ([], {}) for key in models}
    for i in range(rounds):
        for key in list(models) if i % 2 == 0 else list(models)[::-1]:
            totals, per_layer = result[key]
            spent, hooks = {}, []
            for name, module in _conv_modules(models[key]).items():

                def pre(module, args, name=name):
                    spent[name] = spent.get(name, 0.0) - time.perf_counter()

                def post(module, args, output, name=name):
                    spent[name] += time.perf_counter()

                hooks += [module.register_forward_pre_hook(pre), module.register_forward_hook(post)]
            try:
                begin = time.perf_counter()
                models[key](x)
                totals.append(time.perf_counter() - begin)
            finally:
                for hook in hooks:
                    hook.remove()
            for name, seconds in spent.items():
                per_layer.setdefault(name, []).append(seconds)
    return result


def _model_variants(model, Ps, impls, G, dwc):
    """(key, impl, P, G, label, converted, Conversion) of every variant asked for."""
    from .conversion import convert

    jobs = [(f"{impl} P={P}", impl, P, None, f"HetConv {impl} P={P}") for P in Ps for impl in impls]
    jobs += [(f"gwc_pwc G={G}", "gwc_pwc", None, G, f"GWC+PWC G={G}")] if G else []
    jobs += [("dwc_pwc", "dwc_pwc", None, None, "DWC+PWC")] if dwc else []
    for key, impl, P, g, label in jobs:
        variant = impl if impl in ("gwc_pwc", "dwc_pwc") else "hetconv"
        options = {"impl": impl} if variant == "hetconv" else {}
        converted, report = convert(model, P, variant=variant, groups=g, return_report=True, **options)
        yield key, impl, P, g, label, converted.eval(), report


def _flops_by_layer(model, size) -> tuple[int, dict[str, int]]:
    """The cost model's exact MACs of ``model`` (traced) and of each recorded layer by name."""
    from ..core.analyze import analyze
    from .trace import trace

    report = analyze(trace(model, size), variant="standard", convention="exact")
    return int(report.flops), {r["name"]: int(r["flops_after"]) for r in report.layers}


def _median(values) -> float:
    return statistics.median(values) if values else 0.0


def _layer_rows(key, replaced, flops, times, total_flops, std_flops, std_times):
    """The breakdown of one variant: each replaced convolution, the kept ones, and the rest."""
    (std_total, std_layers), (total, layers) = std_times, times
    std_ms, ms = _median(std_total) * 1e3, _median(total) * 1e3

    def row(name, before, after, t_before, t_after):
        return {
            "variant": key,
            "name": name,
            "flops_before": before,
            "flops_after": after,
            "flops_share_before": before / std_flops[0],
            "flops_share_after": after / total_flops,
            "ms_before": t_before,
            "ms_after": t_after,
            "time_share_before": t_before / std_ms,
            "time_share_after": t_after / ms,
            "speedup": t_before / t_after if t_after else None,
        }

    rows = [
        row(
            n,
            std_flops[1].get(n, 0),
            flops.get(n, 0),
            _median(std_layers.get(n)) * 1e3,
            _median(layers.get(n)) * 1e3,
        )
        for n in replaced
    ]
    kept = [n for n in layers if n not in replaced]
    if kept:
        rows.append(
            row(
                "(kept convolutions)",
                sum(std_flops[1].get(n, 0) for n in kept),
                sum(flops.get(n, 0) for n in kept),
                sum(_median(std_layers.get(n)) for n in kept) * 1e3,
                sum(_median(layers.get(n)) for n in kept) * 1e3,
            )
        )
    conv_flops = (sum(std_flops[1].get(n, 0) for n in std_layers), sum(flops.get(n, 0) for n in layers))
    conv_ms = (sum(map(_median, std_layers.values())) * 1e3, sum(map(_median, layers.values())) * 1e3)
    rows.append(
        row(
            "(outside convolutions)",
            std_flops[0] - conv_flops[0],
            total_flops - conv_flops[1],
            std_ms - conv_ms[0],
            ms - conv_ms[1],
        )
    )
    return rows


def run_model(
    model,
    input_size,
    name: str | None = None,
    Ps: Iterable[int] = (4, 8),
    impls: Iterable[str] | None = None,
    G: int | None = None,
    dwc: bool = False,
    batch: int = 8,
    threads: int | None = None,
    repeats: int = 5,
    min_time: float = 0.0,
    channels_last: bool = False,
    fold: bool = False,
    layer_rounds: int = 3,
    progress: Callable[[Iterable], Iterable] | None = None,
    seed: int = 0,
) -> dict:
    """Time ``model`` (on a batch of ``input_size`` = (C, H, W) images) and each converted copy, on the CPU.

    Variants: HetConv with every P in ``Ps`` and implementation in ``impls`` (``kinds.IMPLS``;
    default all), GWC+PWC with ``G`` groups, DWC+PWC (``dwc``), each by ``hetcalc.convert``
    (fresh random weights: timing does not depend on their values). ``fold``: every model, the
    standard one too, goes through ``hetcalc.real.fold.inference`` (BatchNorm folded; HetConv fused,
    in residue order); ``channels_last``: weights and input in channels-last memory.

    All models are timed in the same interleaved rounds (``time_layers``, inference mode, after
    a warm-up): ``speedup`` is the median of the paired ratios standard time / variant time;
    ``flops_speedup`` the cost model's exact MACs of the standard network over those of the
    converted one (traced, so what it runs); ``realised`` their ratio. Then ``layer_rounds``
    more rounds with a clock on every convolution give the per-layer breakdown (``layers``).
    """
    Ps = _distinct_P(Ps, "4,8")
    impls = parse_model_impls(",".join(impls)) if impls is not None else list(MODEL_IMPLS)
    if not Ps and not G and not dwc:
        raise InvalidInput("P", "give at least one P (or G, or dwc)")
    batch, repeats, layer_rounds = (
        positive_int(option, value)
        for option, value in (("batch", batch), ("repeats", repeats), ("layer_rounds", layer_rounds))
    )
    if not min_time >= 0:
        raise InvalidInput("min_time", f"must be >= 0 seconds, got {min_time}")
    previous = torch.get_num_threads()
    threads = positive_int("threads", previous if threads is None else threads)
    size = tuple(input_size)
    torch.manual_seed(seed)
    model = model.eval()
    std_flops = _flops_by_layer(model, size)
    variants = list(
        progress(_model_variants(model, Ps, impls, G, dwc))
        if progress
        else _model_variants(model, Ps, impls, G, dwc)
    )
    layout = torch.channels_last if channels_last else torch.contiguous_format

    def prepared(m):
        if fold:
            from .fold import inference

            return inference(m, channels_last=channels_last)
        return m.to(memory_format=layout)

    models = {"standard": prepared(model)}
    flops = {}
    for key, *_, converted, _report in variants:
        flops[key] = _flops_by_layer(converted, size)
        models[key] = prepared(converted)
    x = torch.randn(batch, *size).contiguous(memory_format=layout)
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            samples = time_layers(models, x, "cpu", repeats, min_time)
            times = layer_times(models, x, layer_rounds)
    finally:
        torch.set_num_threads(previous)
    reference = samples["standard"]
    rows, layers = [], []
    entries = [("standard", "standard", None, None, "Standard (reference)", model, None), *variants]
    for key, impl, P, g, label, _, report in entries:
        total = std_flops[0] if key == "standard" else flops[key][0]
        speedup = statistics.median(r / t for r, t in zip(reference, samples[key]))
        rows.append(
            {
                "variant": key,
                "impl": impl,
                "P": P,
                "G": g,
                "label": label,
                "ms": statistics.median(samples[key]) * 1e3,
                "ms_min": min(samples[key]) * 1e3,
                "speedup": speedup,
                "flops_speedup": std_flops[0] / total,
                "realised": speedup / (std_flops[0] / total),
                "flops": total,
                "replaced": len(report.replaced) if report else 0,
                "rounds": len(samples[key]),
            }
        )
        if report:
            layers += _layer_rows(
                key, report.replaced, flops[key][1], times[key], total, std_flops, times["standard"]
            )
    return {
        "model": name or type(model).__name__,
        "input": list(size),
        "batch": batch,
        "threads": threads,
        "channels_last": channels_last,
        "fold": fold,
        "device": "cpu",
        "machine": machine(),
        "timing": (
            f"median of >= {repeats} interleaved rounds (min time {min_time:g} s), paired ratios; "
            f"layers: {layer_rounds} rounds with a clock on every convolution; inference mode"
        ),
        "rows": rows,
        "layers": layers,
    }
