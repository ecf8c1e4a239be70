"""Measured speed of whole networks (torch): the standard network against plans, in the same paired rounds.

>>> model, size, name = load_model("vgg16")
>>> result = run_model(model, size, name, variants(trace(model, size), Ps=[4, 8], impls=["fast"]))

Every network is a plan (``hetcalc.core.plan``) built by ``hetcalc.convert`` (fresh random weights:
timing does not depend on their values) and prepared alike (``prepare``: BatchNorm folded and
HetConv fused by ``hetcalc.real.fold.inference`` with ``fold``; channels-last memory); the
standard network is the empty plan. ``flops_speedup`` is the cost model's exact MACs of the
standard network over a plan's (``hetcalc.core.analyze`` of the traced spec: what it runs);
``realised_flops`` = measured speedup / FLOPs speedup. A clock on each of the plan's layers then
gives each replaced layer's time before and after, and the time outside them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from ..core import conventions, kinds
from ..core.errors import InvalidInput, positive_int
from ..core.plan import Plan, apply, derive, module_name
from ..core.records import Conv, ModelSpec
from .bench import distinct_P, known_names
from .conversion import convert
from .timing import clocked, machine, median, paired_speedup, time_layers, using_threads

SLOW_EXACT = (
    "exact on a channels-last input runs a matmul per image for its 1×1 taps: pathologically slow, "
    "left out of channels-last runs unless asked for"
)
IMPLS = tuple(kinds.IMPLS)
"""HetConv2d's implementations, the names ``--impl`` takes (as in the layer bench)."""


def parse_impls(text) -> list[str]:
    """'exact,fast' → HetConv2d implementations, each known (``kinds.IMPLS``)."""
    return known_names(text, IMPLS)


@dataclass(frozen=True)
class Variant:
    """One network to time: ``plan`` applied to the model, named ``key`` ('fast P=4') and ``label``."""

    key: str
    label: str
    plan: Plan
    impl: str | None = None
    P: int | None = None
    G: int | None = None


def variants(spec: ModelSpec, Ps=(), impls=IMPLS, G=None, dwc=False, plans=()) -> list[Variant]:
    """The variants asked for, each a plan derived from ``spec`` (the traced model): HetConv with every P and
    implementation, GWC+PWC with ``G`` groups, DWC+PWC, then the given ``plans`` ((key, Plan) pairs)."""
    found = [
        Variant(f"{impl} P={P}", f"HetConv {impl} P={P}", derive(spec, "hetconv", P, impl=impl), impl, P)
        for P in distinct_P(Ps, "4,8")
        for impl in impls
    ]
    found += (
        [Variant(f"gwc_pwc G={G}", f"GWC+PWC G={G}", derive(spec, "gwc_pwc", G=G), "gwc_pwc", G=G)]
        if G
        else []
    )
    found += [Variant("dwc_pwc", "DWC+PWC", derive(spec, "dwc_pwc"), "dwc_pwc")] if dwc else []
    found += [Variant(key, f"plan {key}", plan, "plan") for key, plan in plans]
    if not found:
        raise InvalidInput("P", "give at least one P (or G, dwc or a plan)")
    return found


def prepare(model: torch.nn.Module, fold: bool, channels_last: bool) -> torch.nn.Module:
    """``model`` as it is timed: eval mode, folded and fused (``fold``), channels-last memory (``channels_last``)."""
    if fold:
        from .fold import inference

        return inference(model, channels_last=channels_last)
    return model.eval().to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def flops_by_layer(spec: ModelSpec, plan: Plan, batch: int = 1) -> tuple[int, dict[str, int], dict[str, int]]:
    """The exact MACs (per image) of the network ``plan`` builds from ``spec``, of each of its convolutions (by
    module), and the bytes each moves at ``batch`` in float32 (input read, weights read, output written:
    ``hetcalc.core.conventions.step``)."""
    total, layers, moved = 0, {}, {}
    for record in apply(spec, plan).layers:
        macs = conventions.measure(record, "exact")[0]
        total += macs
        if isinstance(record, Conv):
            name = module_name(record)
            layers[name] = layers.get(name, 0) + macs
            moved[name] = moved.get(name, 0) + 4 * conventions.step(record, "exact", batch=batch).moved
    return total, layers, moved


def _layer_rows(variant: Variant, flops, times, std_flops, std_times) -> list[dict]:
    """The breakdown of one variant: each replaced convolution, the kept ones, and the rest."""
    (std_total, std_layers), (total, layers) = std_times, times
    std_ms, ms = median(std_total) * 1e3, median(total) * 1e3

    def row(name, before, after, t_before, t_after, names=()):
        return {
            "variant": variant.key,
            "name": name,
            "flops_before": before,
            "flops_after": after,
            "bytes_before": sum(std_flops[2][n] for n in names) if names else None,
            "bytes_after": sum(flops[2][n] for n in names) if names else None,
            "flops_share_before": before / std_flops[0],
            "flops_share_after": after / flops[0],
            "ms_before": t_before,
            "ms_after": t_after,
            "time_share_before": t_before / std_ms,
            "time_share_after": t_after / ms,
            "speedup": t_before / t_after if t_after else None,
        }

    def measured(names, counts, clocks):
        """(MACs, ms per forward) of the layers ``names`` together."""
        return sum(counts.get(n, 0) for n in names), sum(median(clocks.get(n)) for n in names) * 1e3

    def compared(label, names):
        (f0, t0), (f1, t1) = measured(names, std_flops[1], std_layers), measured(names, flops[1], layers)
        return row(label, f0, f1, t0, t1, names)

    rows = [compared(d.name, [d.name]) for d in variant.plan.replaced()]
    kept = [d.name for d in variant.plan.layers if not d.replaced]
    rows += [compared("(kept convolutions)", kept)] if kept else []
    every = [d.name for d in variant.plan.layers]
    (f0, t0), (f1, t1) = measured(every, std_flops[1], std_layers), measured(every, flops[1], layers)
    rows.append(row("(outside convolutions)", std_flops[0] - f0, flops[0] - f1, std_ms - t0, ms - t1))
    return rows


def run_model(
    model,
    input_size,
    name: str | None = None,
    networks: list[Variant] | None = None,
    *,
    spec: ModelSpec | None = None,
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
    """Time ``model`` (on a batch of ``input_size`` = (C, H, W) images) and each of ``networks`` on the CPU.

    ``networks``: the variants to time (``variants``); ``spec``: the model's traced spec, if the caller
    has it. All networks run in the same interleaved rounds (``hetcalc.real.timing.time_layers``,
    inference mode, after a warm-up): ``speedup`` is the median of the paired ratios standard time /
    network time; then ``layer_rounds`` more rounds with a clock on each of the plan's convolutions
    give the per-layer breakdown (``layers``).
    """
    from .trace import trace

    batch, repeats, layer_rounds = (
        positive_int(option, value)
        for option, value in (("batch", batch), ("repeats", repeats), ("layer_rounds", layer_rounds))
    )
    if not min_time >= 0:
        raise InvalidInput("min_time", f"must be >= 0 seconds, got {min_time}")
    size = tuple(input_size)
    torch.manual_seed(seed)
    model = model.eval()
    spec = spec or trace(model, size, name)
    networks = networks if networks is not None else variants(spec, (4, 8))
    standard = derive(spec, "standard")
    flops = {"standard": flops_by_layer(spec, standard, batch)}
    models = {"standard": prepare(model, fold, channels_last)}
    for variant in progress(networks) if progress else networks:
        flops[variant.key] = flops_by_layer(spec, variant.plan, batch)
        models[variant.key] = prepare(convert(model, variant.plan), fold, channels_last)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(batch, *size).contiguous(memory_format=layout)
    every = [d.name for d in standard.layers]
    with using_threads(threads) as threads, torch.inference_mode():
        samples = time_layers(models, x, "cpu", repeats, min_time)
        times = clocked(models, x, layer_rounds, {key: every for key in models})
    reference, std_flops = samples["standard"], flops["standard"]
    rows, layers = [], []
    for variant in [Variant("standard", "Standard (reference)", standard, "standard"), *networks]:
        total = flops[variant.key][0]
        speedup = paired_speedup(reference, samples[variant.key])
        rows.append(
            {
                "variant": variant.key,
                "impl": variant.impl,
                "P": variant.P,
                "G": variant.G,
                "label": variant.label,
                "ms": median(samples[variant.key]) * 1e3,
                "ms_min": min(samples[variant.key]) * 1e3,
                "speedup": speedup,
                "flops_speedup": std_flops[0] / total,
                "realised_flops": speedup / (std_flops[0] / total),
                "flops": total,
                "replaced": len(variant.plan.replaced()),
                "plan": variant.plan.to_dict(),
                "rounds": len(samples[variant.key]),
                "note": SLOW_EXACT if variant.impl == "exact" and channels_last else "",
            }
        )
        if variant.key != "standard":
            layers += _layer_rows(
                variant, flops[variant.key], times[variant.key], std_flops, times["standard"]
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
