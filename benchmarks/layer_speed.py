"""Measured speed of the real layers for the issue's configuration, against Eq. 9's theory.

    python benchmarks/layer_speed.py [--repeats 5] [--threads 2] [--channels-last]

Layer 256 → 256, 3×3, batch 8, 56×56, P = 2 … 32, on the CPU (and the GPU when torch sees
one). Prints the machine and the table; writes layer_speed.csv, layer_speed.json and the
Figure 5 overlay layer_speed.png into benchmarks/results/ (git-ignored; layer_speed_channels_last.*
with --channels-last). No assertion: a figure.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = (
    "impl",
    "device",
    "P",
    "ms",
    "ms_min",
    "speedup",
    "theory",
    "realised",
    "flops_speedup",
    "macs",
    "rounds",
)


def announce(jobs):
    """Say on stderr which configuration is being timed."""
    for device, P in jobs:
        print(f"  timing {device}, P = {P} …", file=sys.stderr, flush=True)
        yield device, P


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds per P (default 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(
        "--channels-last", action="store_true", help="NHWC input and weights (hetcalc bench's flag)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the CSV, JSON and PNG")
    args = parser.parse_args()

    from hetcalc.cli.bench import result_table
    from hetcalc.plot import figure5, measured_series, save, speedup_series
    from hetcalc.real import bench
    from hetcalc.render import console

    result = bench.run(
        M=256,
        N=256,
        K=3,
        D=56,
        batch=8,
        Ps=(2, 4, 8, 16, 32),
        threads=args.threads,
        repeats=args.repeats,
        progress=announce,
        channels_last=args.channels_last,
    )
    mach = result["machine"]
    print(
        f"Machine: {mach['cpu']}, {mach['cores']} cores; torch {mach['torch']}, {result['threads']} threads"
        + (f"; GPU {mach['cuda']}" if mach["cuda"] else "; no GPU")
    )
    print(f"Timing: {result['timing']}")
    console().print(result_table(result))

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "layer_speed_channels_last" if args.channels_last else "layer_speed"
    with open(args.out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows([row[c] for c in COLUMNS] for row in result["rows"])
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    save(figure5(speedup_series(3, 32, 256) + measured_series(result)), args.out / f"{stem}.png")
    print(f"Wrote {args.out / stem}.csv, .json and .png")


if __name__ == "__main__":
    main()
