"""Measured speed of the real layers: wall clock against the FLOPs theory (``hetcalc bench``).

For each P, every implementation runs on the same input, inference only, after a warm-up;
then rounds interleave them, each round timing the standard ``nn.Conv2d`` once and every
other layer once (in reverse order every other round), so that machine noise hits all of them
alike. ``ms`` is the median time of a call; ``speedup`` the median over rounds of (standard
time / layer time), paired within a round. ``theory`` is Eq. 9 (1 / reduction) of each implementation's own formula in
``hetcalc.cost``; ``flops_speedup`` is standard MACs over the MACs the layer actually runs.
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

from . import cost, kinds
from .errors import InvalidInput, positive_int, whole_numbers
from .spec import ConvSpec


@dataclass(frozen=True)
class Timed:
    """One implementation to time: how to build it, its theory and what it runs, as hetcalc.cost formulas."""

    name: str
    label: str
    build: Callable[[int, int, int, int], torch.nn.Module]  # (M, N, K, P) → module
    theory: Callable[[ConvSpec, int], cost.Cost]  # the cost whose Eq. 9 speedup it is held to
    runs: Callable[[ConvSpec, int], cost.Cost]  # the multiply-accumulates it executes


def _kind(kind: str, label: str, impl: str = "exact") -> Timed:
    """A kind's real layer (``hetcalc.kinds``), held to its own formula, G = P for GWC+PWC."""
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
    from .masks import kind_mask

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


def parse_impls(text) -> list[str]:
    """'hetconv_fast,masked' → names; 'standard' (the reference) is always timed and need not be given."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [name for name in names if name not in BY_NAME]
    if unknown or not names:
        raise InvalidInput(
            "impls", f"unknown implementation {', '.join(unknown) or repr(text)}; known: {', '.join(BY_NAME)}"
        )
    return ["standard"] + [name for name in dict.fromkeys(names) if name != "standard"]


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
    Ps = list(dict.fromkeys(whole_numbers("P", Ps, "2,4,8") if isinstance(Ps, str) else Ps))
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
