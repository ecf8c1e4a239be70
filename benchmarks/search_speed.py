"""How fast is the exact design search? ``front`` and ``search`` on synthetic but realistic option tables.

    python benchmarks/search_speed.py [--repeats 3] [--seed 0]

Models from the zoo (ImageNet): VGG-16 (its 12 replaceable 3×3 convolutions), ResNet-50 (its 16
3×3 convolutions) and, as a stress case, ResNet-50 with all 53 convolutions replaceable. Each
layer offers {standard, HetConv P=2, 4, 8, 16, 32, GWC+PWC G=2, 4, DWC+PWC}, where eligible; FLOPs
and params are hetcalc's exact formulas, ms a made-up roofline (MACs at a kind's efficiency,
output traffic, a launch overhead) with 8 % log-normal noise. Prints the best time of
``--repeats`` runs for each query and the sizes of the fronts. No assertion: a figure.
"""

from __future__ import annotations

import argparse
import platform
import random
import time

from hetcalc.core import kinds
from hetcalc.core.analyze import exact_counts
from hetcalc.core.search import Option, Totals, front, plan_totals, search
from hetcalc.core.zoo.registry import get_model

CHOICES = [("standard", None), *(("hetconv", P) for P in (2, 4, 8, 16, 32)), ("gwc_pwc", 2), ("gwc_pwc", 4)]
CHOICES.append(("dwc_pwc", None))
NAMES = {"standard": "standard", "hetconv": "P{}", "gwc_pwc": "GWC{}", "dwc_pwc": "DWC"}
EFFICIENCY = {"standard": 1.0, "hetconv": 0.45, "gwc_pwc": 0.6, "dwc_pwc": 0.35}  # of 50 GMAC/s
STAGES = {"standard": 1, "hetconv": 1, "gwc_pwc": 2, "dwc_pwc": 2}  # kernels launched, outputs written

QUERIES = [
    ("front latency/flops", None, ()),
    ("front latency/flops/params", None, ()),
    ("search latency", "latency", ("flops>=P4",)),
    ("search flops", "flops", ("latency<=P8",)),
    ("search params", "params", ("latency<=P8", "flops>=P16")),
    ("search latency, flops in [P8, P4]", "latency", ("flops>=P8", "flops<=P4")),
]


def milliseconds(spec, kind: str, macs: int, rng: random.Random) -> float:
    """A plausible time for one layer at batch 1 on a small CPU: compute + output traffic + launches, noisy."""
    compute = macs / (50e9 * EFFICIENCY[kind])
    traffic = STAGES[kind] * spec.positions * spec.N * 4 / 10e9
    return 1e3 * (compute + traffic + 20e-6 * STAGES[kind]) * rng.lognormvariate(0, 0.08)


def table(model_name: str, everything: bool, rng: random.Random):
    """(layers, base, references): each replaceable conv's options, the rest, the uniform variants."""
    model = get_model(model_name, "imagenet")
    convs = model.convs()
    replaceable = [c for c in convs if everything or (c.K > 1 and c is not convs[0])]
    layers = []
    for conv in replaceable:
        options = []
        for kind, value in CHOICES:
            if kinds.ineligible(conv.spec, kind, value) is None:
                cost = kinds.layer_cost(conv.spec, kind, value)
                ms = milliseconds(conv.spec, kind, cost.macs, rng)
                options.append(Option((kind, value), cost.flops, cost.params, ms, 0.05 * ms))
        layers.append(options)
    flops, params = exact_counts(model)
    standard = [layer[0] for layer in layers]
    base = Totals(flops - sum(o.flops for o in standard), params - sum(o.params for o in standard), 1.5)
    references = {}
    for kind, value in CHOICES:
        picks = [next((j for j, o in enumerate(layer) if o.choice == (kind, value)), 0) for layer in layers]
        references[NAMES[kind].format(value)] = plan_totals(layers, base, picks)
    return layers, base, references


def best_of(repeats: int, call):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs per query; the best is shown (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the latency noise (default 0)")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}; best of {args.repeats} runs")
    for model_name, everything, title in [
        ("vgg16", False, "VGG-16, 12 replaceable layers"),
        ("resnet50", False, "ResNet-50, 16 replaceable layers"),
        ("resnet50", True, "ResNet-50, all 53 convolutions replaceable (stress)"),
    ]:
        layers, base, references = table(model_name, everything, random.Random(args.seed))
        plans = 1
        for layer in layers:
            plans *= len(layer)
        print(f"\n{title}: {plans:.3g} plans")
        for name, objective, constraints in QUERIES:
            if objective is None:
                directions = {"latency": "min", "flops": "max"}
                if name.endswith("params"):
                    directions["params"] = "min"
                seconds, points = best_of(args.repeats, lambda: front(layers, base, directions))
                print(f"  {name:38} {seconds * 1e3:8.1f} ms   {len(points)} points")
            else:
                call = lambda: search(layers, base, objective, constraints, references)
                seconds, result = best_of(args.repeats, call)
                chosen = result.chosen
                print(
                    f"  {name:38} {seconds * 1e3:8.1f} ms   {', '.join(constraints)}: "
                    f"{chosen.flops / 1e9:.2f}G FLOPs, {chosen.params / 1e6:.2f}M params, {chosen.ms:.2f} ms"
                )


if __name__ == "__main__":
    main()
