"""Time counting a deep conv–BN–ReLU chain: hetcalc's MacCounter, torch's FlopCounterMode, fvcore.

    python benchmarks/trace_scaling.py --layers 250,1000,4000 [--repeats 3] [--trace]

Each chain is nn.Sequential of Conv2d(16, 16, 3, padding=1), BatchNorm2d(16), ReLU, repeated
``layers`` times, on a 1×16×32×32 input. All three run in this process (imports excluded),
best of ``--repeats``: (a) MacCounter on the meta device (or ``hetcalc.real.trace.trace`` with
``--trace``), (b) FlopCounterMode(display=False) with its module tracker, on meta, (c) fvcore's
FlopCountAnalysis(model, x).total() on the cpu; for reference, the meta forward alone (no
counter: torch's Python meta kernel of batch norm dominates it) and MacCounter on the cpu with
data. A linear-time counter takes 4× the time for 4×
the layers.
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch
from fvcore.nn import FlopCountAnalysis
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hetcalc.real.counter import MacCounter

INPUT = (16, 32, 32)


def chain(layers: int) -> nn.Sequential:
    blocks = []
    for _ in range(layers):
        blocks += [nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU()]
    return nn.Sequential(*blocks).eval()


def expected_macs(layers: int) -> int:
    """32×32 outputs · 16 Cout · 16 Cin · 3×3 per layer."""
    return layers * 32 * 32 * 16 * 16 * 9


def best(function, repeats: int) -> tuple[float, object]:
    """The shortest of ``repeats`` wall times of ``function()``, and its last result."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def time_hetcalc(model: nn.Module, input_size: tuple[int, ...], use_trace: bool = False):
    """A function counting ``model`` on a 1×``input_size`` meta input: MacCounter, or trace with use_trace."""
    if use_trace:
        from hetcalc.real.trace import trace

        return lambda: trace(model, input_size)
    x = torch.zeros(1, *input_size, device="meta")

    def run():
        with torch.no_grad(), MacCounter(model) as counter:
            model(x)
        return counter.total

    return run


def time_bare_forward(model: nn.Module, input_size: tuple[int, ...], device: str):
    """The forward alone, no counter: what the meta device's kernels cost by themselves."""
    x = torch.zeros(1, *input_size, device=device)

    def run():
        with torch.no_grad():
            model(x)
        return None

    return run


def time_counter_on(model: nn.Module, input_size: tuple[int, ...], device: str):
    """MacCounter on a forward with data on ``device`` (the cpu: real kernels)."""
    x = torch.zeros(1, *input_size, device=device)

    def run():
        with torch.no_grad(), MacCounter(model) as counter:
            model(x)
        return counter.total

    return run


def time_flop_counter_mode(model: nn.Module, input_size: tuple[int, ...]):
    x = torch.zeros(1, *input_size, device="meta")

    def run():
        with torch.no_grad(), FlopCounterMode(display=False) as mode:
            model(x)
        return mode.get_total_flops() // 2  # FlopCounterMode counts 2 FLOPs per MAC

    return run


def time_fvcore(model: nn.Module, input_size: tuple[int, ...]):
    x = torch.zeros(1, *input_size)

    def run():
        analysis = FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return analysis.by_operator()["conv"]  # fvcore also counts batch_norm, which is no MAC

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="250,1000,4000", help="comma-separated chain lengths")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--trace", action="store_true", help="time hetcalc.real.trace.trace instead of MacCounter"
    )
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    rows = []
    for layers in (int(n) for n in args.layers.split(",")):
        with torch.device("meta"):
            meta_model = chain(layers)
        cpu_model = chain(layers)
        expected = expected_macs(layers)
        t_het, macs = best(time_hetcalc(meta_model, INPUT, args.trace), args.repeats)
        if not args.trace:
            assert macs == expected, (macs, expected)
        t_fcm, macs = best(time_flop_counter_mode(meta_model, INPUT), args.repeats)
        assert macs == expected, (macs, expected)
        t_fv, macs = best(time_fvcore(cpu_model, INPUT), args.repeats)
        assert macs == expected, (macs, expected)
        t_bare, _ = best(time_bare_forward(meta_model, INPUT, "meta"), args.repeats)
        t_cpu, macs = best(time_counter_on(cpu_model, INPUT, "cpu"), args.repeats)
        assert macs == expected, (macs, expected)
        rows.append((layers, t_het, t_fcm, t_fv, t_bare, t_cpu))
    label = "hetcalc trace" if args.trace else "hetcalc"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), best of {args.repeats}")
    print(
        f"{'layers':>7} {label + ' s':>15} {'FlopCounterMode s':>18} {'fvcore s':>9} {'hetcalc/fvcore':>15}"
        f" {'meta forward alone s':>21} {'MacCounter cpu s':>17}"
    )
    for layers, t_het, t_fcm, t_fv, t_bare, t_cpu in rows:
        print(
            f"{layers:>7} {t_het:>15.3f} {t_fcm:>18.3f} {t_fv:>9.3f} {t_het / t_fv:>15.2f} {t_bare:>21.3f} {t_cpu:>17.3f}"
        )
    by_layers = {row[0]: row for row in rows}
    if 1000 in by_layers and 4000 in by_layers:
        r = [by_layers[4000][i] / by_layers[1000][i] for i in range(1, 6)]
        print(
            f"t(4000)/t(1000): {label} {r[0]:.2f}, FlopCounterMode {r[1]:.2f}, fvcore {r[2]:.2f}, "
            f"meta forward alone {r[3]:.2f}, MacCounter cpu {r[4]:.2f}"
        )


if __name__ == "__main__":
    main()
