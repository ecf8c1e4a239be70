"""Wall time of the symbolic commands against importing torch (median of several runs).

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
    print(f"hetcalc layer --M 256 --N 256 --K 3 --P 8     {layer * 1000:8.1f} ms"
          f"   ratio to torch import: {layer / torch_import:.3f} (goal <= 0.05)")


if __name__ == "__main__":
    main()
