"""The timing core (torch): paired, interleaved rounds, clocks on single modules, the machine they ran on.

Every timed figure in hetcalc (``bench``, ``bench --model``, ``latency``) comes from here, so
every figure is taken the same way: after a warm-up, in rounds that time every candidate once,
in reverse order every other round (no candidate always follows the same one), so that noise
from the machine hits all of them alike; speedups are medians of ratios paired within a round.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from contextlib import contextmanager

import torch

from ..core.errors import InvalidInput, positive_int


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


@contextmanager
def using_threads(count: int | None):
    """torch.set_num_threads(count) for the duration (None: as it is); yields the count in use."""
    previous = torch.get_num_threads()
    count = positive_int("threads", previous if count is None else count)
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous)


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


def interleaved(order: list[str], round_: int) -> list[str]:
    """The order of one round: the first (the reference) first, the others reversed every other round."""
    first, *others = order
    return [first, *(others if round_ % 2 == 0 else others[::-1])]


def time_layers(modules: dict, x, device: str, repeats: int, min_time: float) -> dict[str, list[float]]:
    """Seconds per call of each module on ``x``: one sample per round, rounds interleaved.

    The first module is the reference, timed first in every round. At least ``repeats`` rounds,
    and ``min_time`` seconds.
    """
    clock = _timer(device)
    calls = {}
    for name, module in modules.items():
        module(x)  # warm-up: one-off allocations, oneDNN kernel creation
        calls[name] = _calls_per_sample(lambda: module(x), clock)
    samples = {name: [] for name in modules}
    first = next(iter(modules))
    start = clock()
    while len(samples[first]) < repeats or clock() - start < min_time:
        for name in interleaved(list(modules), len(samples[first])):
            begin = clock()
            for _ in range(calls[name]):
                modules[name](x)
            samples[name].append((clock() - begin) / calls[name])
    return samples


def clocked(models: dict, x, rounds: int, layers_of: dict[str, list[str]]) -> dict[str, tuple]:
    """Per model: (seconds per forward, {layer: seconds per forward}) over ``rounds`` interleaved rounds.

    ``layers_of[key]`` names the modules of ``models[key]`` to clock (qualified names): a forward
    pre-hook and hook on each read the clock (the CPU runs synchronously; a module called twice
    adds both calls).
    """
    result = {key: ([], {}) for key in models}
    for i in range(rounds):
        for key in interleaved(list(models), i):
            totals, per_layer = result[key]
            spent, hooks = {}, []
            for name in layers_of.get(key, ()):

                def pre(module, args, name=name):
                    spent[name] = spent.get(name, 0.0) - time.perf_counter()

                def post(module, args, output, name=name):
                    spent[name] += time.perf_counter()

                module = models[key].get_submodule(name)
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


def median(values) -> float:
    return statistics.median(values) if values else 0.0


def paired_speedup(reference: list[float], times: list[float]) -> float:
    """The median over rounds of reference time / time, paired within each round."""
    return statistics.median(r / t for r, t in zip(reference, times))
