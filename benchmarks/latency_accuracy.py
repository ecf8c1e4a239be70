"""Prediction and search on this machine against measurement in the same run (issue 19's targets); prints figures.

    python benchmarks/latency_accuracy.py                       # VGG-16 CIFAR-10, ResNet-18 and ResNet-50 ImageNet
    python benchmarks/latency_accuracy.py --models vgg16 --repeats 9

For each model, a fresh latency table (a temporary folder) is filled; each case (uniform HetConv
P, GWC+PWC, DWC+PWC, two searched plans) is predicted from it, then every network is timed in the
same paired, interleaved rounds (``hetcalc.real.bench_model.run_model``, as ``hetcalc bench --model
--plan``), and the prediction is set beside the measurement:

- prediction: predicted speedup over the standard network within ±10 % of the measured one, and
  whole-network predicted ms within ±10 %, for every case;
- search: at the FLOPs of uniform P=4 ('--objective latency --constraint flops>=P4') the searched
  plan runs >= 10 % faster than uniform P=4, measured; at the time of uniform P=8 ('--objective
  flops --constraint latency<=P8') it keeps >= 20 % more FLOPs;
- cost: filling VGG-16's table at P = 2…32 (with GWC+PWC G = 2, 4 and DWC+PWC: every choice the
  search offers each layer) under a minute, a search under a second, a second prediction from the
  filled table in seconds.

Run it on a quiet machine: another process on a core makes every timing collapse (README, "Noise").
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hetcalc.core.plan import derive  # noqa: E402
from hetcalc.real import latency as L  # noqa: E402
from hetcalc.real.bench_model import Variant, run_model  # noqa: E402
from hetcalc.real.load import load_model  # noqa: E402
from hetcalc.real.trace import trace  # noqa: E402

SETTINGS = {  # model: (the uniform cases: Ps, G, DWC; batch)
    "vgg16": ((2, 4, 8, 16, 32), 4, True, 32),
    "resnet18": ((4, 8), None, False, 8),
    "resnet50": ((4, 8), None, False, 8),
}
SEARCHED = {"Ps": (2, 4, 8, 16, 32), "Gs": (2, 4), "dwc": True}  # what each layer may become in the search


def run(name: str, args) -> bool:
    Ps, G, dwc, batch = SETTINGS[name]
    batch = args.batch or batch
    model, size, label = load_model(name)
    spec = trace(model, size, label)
    conditions = L.Conditions(batch, args.threads, channels_last=True, fold=True).resolved()
    table = L.Table.load(tempfile.mkdtemp(prefix="hetcalc-latency-"))
    begin = time.perf_counter()
    found = L.space(
        model,
        spec,
        conditions,
        table,
        SEARCHED["Ps"],
        SEARCHED["Gs"],
        SEARCHED["dwc"],
        args.impl,
        True,
        args.repeats,
    )
    fill = time.perf_counter() - begin
    cases = {f"P{P}": derive(spec, "hetconv", P, impl=args.impl) for P in Ps}
    cases.update({f"GWC{G}": derive(spec, "gwc_pwc", G=G)} if G else {})
    cases.update({"DWC": derive(spec, "dwc_pwc")} if dwc else {})
    searches = {
        "searched (latency, flops>=P4)": ("latency", ["flops>=P4"]),
        "searched (flops, latency<=P8)": ("flops", ["latency<=P8"]),
    }
    from hetcalc.core.search import search

    for key, (objective, constraints) in searches.items():
        begin = time.perf_counter()
        chosen = search(found.layers, found.base, objective, constraints, found.references).chosen
        print(
            f"{name}: search {objective} with {constraints[0]}: {1e3 * (time.perf_counter() - begin):.0f} ms"
        )
        cases[key] = L.plan_of(spec, found, chosen.picks, True)
    begin = time.perf_counter()
    predictions = {
        key: L.predict(model, spec, plan, conditions, table, repeats=args.repeats)
        for key, plan in cases.items()
    }
    again = time.perf_counter() - begin
    variants = [Variant(key, key, plan, "plan") for key, plan in cases.items()]
    measured = run_model(
        model,
        size,
        label,
        variants,
        spec=spec,
        batch=batch,
        threads=conditions.threads,
        repeats=args.repeats,
        channels_last=True,
        fold=True,
        layer_rounds=1,
    )
    rows = {r["variant"]: r for r in measured["rows"]}
    standard = rows["standard"]
    print(
        f"\n{name} ({'×'.join(map(str, size))}), batch {batch}, {conditions.threads} threads, folded, channels last, "
        f"impl {args.impl}; table filled in {fill:.1f} s ({len(table.entries)} entries), every prediction "
        f"again in {again:.1f} s"
    )
    print(
        f"standard: predicted {predictions[next(iter(predictions))].standard_ms:.1f} ms, measured {standard['ms']:.1f} ms"
    )
    print(
        f"{'case':32} {'pred ms':>8} {'meas ms':>8} {'err':>7} {'pred ×':>7} {'meas ×':>7} {'err':>7} {'FLOPs ×':>8}"
    )
    ok = True
    for key, prediction in predictions.items():
        row = rows[key]
        time_error = 100 * (prediction.predicted_ms / row["ms"] - 1)
        speedup_error = 100 * (prediction.predicted_speedup / row["speedup"] - 1)
        ok &= abs(time_error) <= 10 and abs(speedup_error) <= 10
        print(
            f"{key:32} {prediction.predicted_ms:8.1f} {row['ms']:8.1f} {time_error:+6.1f}% "
            f"{prediction.predicted_speedup:6.2f}× {row['speedup']:6.2f}× {speedup_error:+6.1f}% {row['flops_speedup']:7.2f}×"
        )
    a, b = rows["searched (latency, flops>=P4)"], rows["searched (flops, latency<=P8)"]
    faster = rows["P4"]["ms"] / a["ms"] - 1
    more = b["flops"] / rows["P8"]["flops"] - 1
    print(
        f"search: at P4's FLOPs ({a['flops'] / rows['P4']['flops']:.3f}× of them) {100 * faster:+.1f} % faster than P4, "
        f"measured (target >= 10 %); within P8's predicted time, {100 * more:+.1f} % more FLOPs than P8 "
        f"(target >= 20 %), measured {b['ms']:.1f} ms against P8's {rows['P8']['ms']:.1f} ms"
    )
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="vgg16,resnet18,resnet50")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--impl", default="grouped_sum")
    args = parser.parse_args()
    results = [run(name, args) for name in args.models.split(",")]
    print("\nprediction within ±10 % everywhere:", all(results))


if __name__ == "__main__":
    main()
