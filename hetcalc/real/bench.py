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

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..core import cost, kinds
from ..core.errors import InvalidInput, positive_int, whole_numbers
from ..core.spec import ConvSpec
from .layers import build_layer
from .timing import devices, machine, median, paired_speedup, time_layers, using_threads


@dataclass(frozen=True)
class Timed:
    """One implementation to time: how to build it, its theory and what it runs, as hetcalc.core.cost formulas."""

    name: str
    label: str
    build: Callable[[int, int, int, int], torch.nn.Module]  # (M, N, K, P) → module
    theory: Callable[[ConvSpec, int], cost.Cost]  # the cost whose Eq. 9 speedup it is held to
    runs: Callable[[ConvSpec, int], cost.Cost]  # the multiply-accumulates it executes


def _kind(name: str, kind: str, label: str, impl: str = "exact") -> Timed:
    """A kind's real layer (``hetcalc.core.kinds``), held to its own formula, G = P for GWC+PWC."""
    runs = kinds.IMPLS[impl] if kind == "hetconv" else kind
    theory = kinds.get(kind)
    return Timed(
        name,
        label,
        lambda M, N, K, P: build_layer(kind, M, N, K, P if theory.parameter else None, impl=impl),
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
    _kind("standard", "standard", "nn.Conv2d (reference)"),
    _kind("exact", "hetconv", "HetConv exact (Eq. 4 MACs)", "exact"),
    _kind("fast", "hetconv", "HetConv fast (shifted, grouped + 1×1)", "fast"),
    _kind("grouped_sum", "hetconv_grouped_sum", "HetConv grouped_sum (public code)"),
    _kind("gwc_pwc", "gwc_pwc", "GWC+PWC, G = P"),
    _kind("dwc_pwc", "dwc_pwc", "DWC+PWC"),
    Timed("masked", "masked dense conv (HetConv mask)", _masked, _mask_taps, lambda s, P: cost.standard(s)),
)
"""What the layer bench times, by the names ``--impl`` takes: HetConv2d's implementations (exact, fast,
grouped_sum, as everywhere in hetcalc), then the other kinds and the masked dense conv."""
BY_NAME = {timed.name: timed for timed in TIMED}


def known_names(text, known) -> list[str]:
    """'a,b' → the distinct names, in order, each one of ``known``; else InvalidInput naming ``impls``."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise InvalidInput(
            "impls", f"unknown implementation {', '.join(unknown) or repr(text)}; known: {', '.join(known)}"
        )
    return list(dict.fromkeys(names))


def distinct_P(Ps, example: str) -> list[int]:
    """P as '2,4,8' or an iterable of whole numbers → the distinct values, in order."""
    return list(dict.fromkeys(whole_numbers("P", Ps, example) if isinstance(Ps, str) else Ps))


def parse_impls(text) -> list[str]:
    """'fast,masked' → names; 'standard' (the reference) is always timed and need not be given."""
    return ["standard"] + [name for name in known_names(text, BY_NAME) if name != "standard"]


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
    Ps = distinct_P(Ps, "2,4,8")
    if not Ps:
        raise InvalidInput("P", "give at least one P")
    for P in Ps:
        kinds.check(ConvSpec(M=M, N=N, K=K), "hetconv", P)
    names = parse_impls(",".join(impls)) if impls is not None else [timed.name for timed in TIMED]
    repeats = positive_int("repeats", repeats)
    if not min_time >= 0:
        raise InvalidInput("min_time", f"must be >= 0 seconds, got {min_time}")
    targets = devices(device)
    spec = ConvSpec(M=M, N=N, K=K, H=D)
    _refuse_oversized(M, N, K, D, batch)
    standard = cost.standard(spec).macs
    jobs = [(dev, P) for dev in targets for P in Ps]
    rows = []
    with using_threads(threads) as threads, torch.inference_mode():
        for dev, P in progress(jobs) if progress else jobs:
            torch.manual_seed(seed)
            layout = torch.channels_last if channels_last else torch.contiguous_format
            modules = {
                name: BY_NAME[name].build(M, N, K, P).eval().to(dev, memory_format=layout) for name in names
            }
            x = torch.randn(batch, M, D, D, device=dev).contiguous(memory_format=layout)
            samples = time_layers(modules, x, dev, repeats, min_time)
            reference = samples["standard"]
            for name in names:
                impl, times = BY_NAME[name], samples[name]
                theory = standard / impl.theory(spec, P).macs
                speedup = paired_speedup(reference, times)
                rows.append(
                    {
                        "impl": name,
                        "label": impl.label,
                        "device": dev,
                        "P": P,
                        "ms": median(times) * 1e3,
                        "ms_min": min(times) * 1e3,
                        "speedup": speedup,
                        "theory": theory,
                        "realised_theory": speedup / theory,
                        "flops_speedup": standard / impl.runs(spec, P).macs,
                        "macs": impl.runs(spec, P).macs,
                        "rounds": len(times),
                    }
                )
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
