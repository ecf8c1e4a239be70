"""How fast can a HetConv built from stock kernels be? The floor under HetConv2d(impl="fast").

    python benchmarks/fast_floor.py [--P 4,8] [--repeats 9] [--threads 2] [--channels-last]

Layer 256 → 256, 3×3, batch 8, 56×56 (the configuration of ``hetcalc bench``), CPU. Times,
interleaved with nn.Conv2d (``hetcalc.real.bench.time_layers``): the grouped K×K conv alone, the
dense 1×1 conv alone, and the two back to back with no sum, no channel permutation and no
copy, which is the least time any layer made of these two oneDNN kernels can take; then
HetConv fast and grouped_sum. Prints each speedup over nn.Conv2d (median of paired rounds)
next to Eq. 9's theory. No assertion: a figure.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from torch import nn

from hetcalc.core import cost
from hetcalc.core.errors import whole_numbers
from hetcalc.core.spec import ConvSpec
from hetcalc.real import bench
from hetcalc.real.layers import HetConv2d

M = N = 256
K, D, BATCH = 3, 56, 8


class Parts(nn.Module):
    """The kernels of a grouped + 1×1 HetConv, run alone or back to back (outputs discarded)."""

    def __init__(self, P: int, parts: tuple[str, ...]):
        super().__init__()
        self.grouped = nn.Conv2d(M, N, K, padding=K // 2, groups=P, bias=False)
        self.pointwise = nn.Conv2d(M, N, 1, bias=False)
        self.parts = parts

    def forward(self, x):
        return [getattr(self, part)(x) for part in self.parts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--P", default="4,8", help="comma-separated P (default 4,8)")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds per P (default 9)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--channels-last", action="store_true", help="NHWC input and weights")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    mach = bench.machine()
    print(
        f"Machine: {mach['cpu']}, {mach['cores']} cores; torch {mach['torch']}, {args.threads} threads; "
        f"{'channels last' if args.channels_last else 'NCHW'}; layer {M} → {N}, {K}×{K}, batch {BATCH}, {D}×{D}"
    )
    spec = ConvSpec(M=M, N=N, K=K, H=D)
    with torch.inference_mode():
        for P in dict.fromkeys(whole_numbers("P", args.P, "2,4,8")):
            modules = {
                "standard": nn.Conv2d(M, N, K, padding=K // 2, bias=False),
                "grouped K×K alone": Parts(P, ("grouped",)),
                "1×1 alone": Parts(P, ("pointwise",)),
                "floor: both, no sum": Parts(P, ("grouped", "pointwise")),
                "HetConv fast": HetConv2d(M, N, K, P, impl="fast"),
                "grouped_sum": HetConv2d(M, N, K, P, impl="grouped_sum"),
            }
            modules = {name: module.eval().to(memory_format=layout) for name, module in modules.items()}
            x = torch.randn(BATCH, M, D, D).contiguous(memory_format=layout)
            samples = bench.time_layers(modules, x, "cpu", args.repeats, 0.0)
            theory = cost.standard(spec).macs / cost.hetconv(spec, P).macs
            print(f"P = {P}: Eq. 9 theory {theory:.2f}×")
            for name, times in samples.items():
                speedup = statistics.median(r / t for r, t in zip(samples["standard"], times))
                share = "" if name == "standard" else f"  ({100 * speedup / theory:.0f}% of theory)"
                print(f"  {name:22} {statistics.median(times) * 1e3:7.1f} ms  {speedup:5.2f}×{share}")


if __name__ == "__main__":
    main()
