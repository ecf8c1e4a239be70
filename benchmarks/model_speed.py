"""Measured speed of whole models, standard against HetConv, before and after the inference conversion.

    python benchmarks/model_speed.py [--model vgg16] [--batch 32] [--P 4,8] [--repeats 9] [--threads 2]
    python benchmarks/model_speed.py --model resnet50 --batch 8 --repeats 3 --layer-rounds 1

Times, for each setting, the standard network and its conversions (``hetcalc bench --model``,
``hetcalc.real.bench.run_model``) in the same interleaved rounds: first as ``hetcalc.convert`` builds
them (NCHW, BatchNorm as it is), then with every network, standard too, channels last and
through ``hetcalc.real.fold.inference`` (BatchNorm folded, HetConv fused and kept in residue order).
Prints each table and writes model_speed_<model>_<setting>.json into benchmarks/results/
(git-ignored). No assertion: a figure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SETTINGS = {"plain": {"channels_last": False, "fold": False}, "folded": {"channels_last": True, "fold": True}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16", help="zoo model (default vgg16, CIFAR-10)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--P", default="4,8", help="comma-separated P (default 4,8)")
    parser.add_argument("--impl", default="exact,fast,grouped_sum", help="HetConv2d implementations")
    parser.add_argument("--gwc", type=int, default=None, help="also GWC+PWC with G groups")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds (default 9)")
    parser.add_argument(
        "--layer-rounds", type=int, default=3, help="rounds with per-layer clocks (default 3)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--settings", default="plain,folded", help="plain, folded or both (default)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON files")
    args = parser.parse_args()

    from hetcalc.cli.bench import layers_table, model_table
    from hetcalc.real import bench
    from hetcalc.render import console

    out = console()
    args.out.mkdir(parents=True, exist_ok=True)
    for setting in args.settings.split(","):
        print(f"timing {args.model}, {setting} …", file=sys.stderr, flush=True)
        model, size, name = bench.load_model(args.model)
        result = bench.run_model(
            model,
            size,
            name,
            args.P,
            args.impl.split(","),
            G=args.gwc,
            batch=args.batch,
            threads=args.threads,
            repeats=args.repeats,
            layer_rounds=args.layer_rounds,
            **SETTINGS[setting],
        )
        out.print(model_table(result))
        best = max((r for r in result["rows"] if r["impl"] != "standard"), key=lambda r: r["speedup"])
        out.print(layers_table(result, best["variant"]))
        path = args.out / f"model_speed_{args.model}_{setting}.json"
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"Wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
