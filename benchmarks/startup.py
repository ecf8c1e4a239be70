"""Wall time of the symbolic commands against torch import and the fvcore pipeline (median of runs).

    python benchmarks/startup.py [--runs 7]

Prints one line per measurement and the ratio the README quotes. No assertion: a figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def wall(argv: list[str], runs: int) -> float:
    """Median wall time in seconds of running ``argv`` (after one warm-up run)."""
    subprocess.run(argv, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    hetcalc = [py, "-m", "hetcalc.cli"]
    torch_import = wall([py, "-c", "import torch"], args.runs)
    print(f"python -c 'import torch'                      {torch_import * 1000:8.1f} ms")
    layer = wall(hetcalc + ["layer", "--M", "256", "--N", "256", "--K", "3", "--P", "8", "--json"], args.runs)
    print(
        f"hetcalc layer --M 256 --N 256 --K 3 --P 8     {layer * 1000:8.1f} ms"
        f"   ratio to torch import: {layer / torch_import:.3f} (goal <= 0.05)"
    )
    model = wall(hetcalc + ["model", "resnet50", "--dataset", "imagenet", "--P", "4", "--json"], args.runs)
    fvcore = wall([py, "-c", FVCORE_PIPELINE], max(3, args.runs // 2))
    print(f"hetcalc model resnet50 --dataset imagenet --P 4 --json {model * 1000:8.1f} ms")
    print(
        f"fvcore pipeline, same model (import, build, trace)     {fvcore * 1000:8.1f} ms"
        f"   ratio: {model / fvcore:.3f} (goal <= 0.05)"
    )


# What a user without hetcalc's symbolic model runs for the same answer.
FVCORE_PIPELINE = """
import torch
from hetcalc.real.fvcount import count
from hetcalc.real.build import build_model
model = build_model("resnet50", "imagenet", variant="hetconv", P=4).eval()
count(model, (torch.zeros(1, 3, 224, 224),))
"""


if __name__ == "__main__":
    main()
