"""``hetcalc bench``: wall-clock speedup of the real layers next to the FLOPs theory (Eq. 9)."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, write_csv
from . import csv_option, json_option, needs_torch, working


@click.command()
@click.option("--M", "M", type=int, default=256, show_default=True, help="Input channels M.")
@click.option("--N", "N", type=int, default=256, show_default=True, help="Output channels N.")
@click.option("--K", "K", type=int, default=3, show_default=True, help="Kernel size K (odd).")
@click.option(
    "--D",
    "D",
    type=int,
    default=56,
    show_default=True,
    help="Input size D×D (stride 1, padding K//2: also the output size).",
)
@click.option("--batch", type=int, default=8, show_default=True, help="Batch size.")
@click.option(
    "--P",
    "P",
    default="2,4,8,16,32",
    show_default=True,
    help="HetConv parts to time, comma-separated (G = P for GWC+PWC).",
)
@click.option(
    "--impl",
    "impls",
    default=None,
    help="Implementations to time, comma-separated  [default: all]; nn.Conv2d is always the reference.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    help="CPU threads (torch.set_num_threads)  [default: torch.get_num_threads()].",
)
@click.option(
    "--repeats", type=int, default=5, show_default=True, help="Interleaved timing rounds per P (at least)."
)
@click.option(
    "--min-time",
    "min_time",
    type=float,
    default=0.0,
    show_default=True,
    help="Keep timing each P for at least this many seconds.",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="auto: the CPU, and the GPU too when torch sees one.",
)
@click.option(
    "--channels-last",
    "channels_last",
    is_flag=True,
    help="Input and weights in channels-last (NHWC) memory, for every layer alike.",
)
@csv_option
@json_option
def bench(M, N, K, D, batch, P, impls, threads, repeats, min_time, device, channels_last, csv_path, as_json):
    """Time nn.Conv2d and every HetConv implementation; measured speedup next to Eq. 9's theory.

    \b
    Example:  hetcalc bench --M 256 --N 256 --K 3 --D 56 --batch 8 --P 2,4,8,16,32
              hetcalc bench --json > bench.json && hetcalc plot speedup --measured bench.json --out f.png
    Inference mode, after a warm-up; each round times the standard conv and every layer once
    (interleaved), speedup is the median of the paired ratios. Theory is each layer's own
    formula in hetcalc.cost: Eq. 5 for HetConv (exact and fast), 1/P + 1/K² for grouped_sum,
    Eq. 11 (G = P, mid = M) for GWC+PWC, Eq. 7 for DWC+PWC, the kept taps for the masked conv.
    """
    if csv_path:
        check_csv_path(csv_path)
    needs_torch("hetcalc bench")
    with working("preparing the layers"):
        from .. import bench as benchmark

    names = benchmark.parse_impls(impls) if impls is not None else None
    err = console(stderr=True)

    def progress(jobs):
        from rich.progress import track

        return track(jobs, description="timing", console=err, transient=True, disable=not err.is_terminal)

    result = benchmark.run(
        M, N, K, D, batch, P, names, threads, repeats, min_time, device, progress, channels_last=channels_last
    )
    if csv_path:
        write_csv(result["rows"], csv_path)
        if csv_path == "-":
            return
    if as_json:
        print_json(result)
        return
    out = console()
    out.print(result_table(result, out.width))


def result_table(result: dict, width: int | None = None):
    """The rich table of a ``hetcalc.bench.run`` result, the machine in its title."""
    layer, mach = result["layer"], result["machine"]
    title = (
        f"Layer {layer['M']} → {layer['N']}, {layer['K']}×{layer['K']}, batch {layer['batch']}, "
        f"{layer['D']}×{layer['D']}{', channels last' if layer.get('channels_last') else ''}: "
        f"{mach['cpu']} ({mach['cores']} cores), {result['threads']} threads, "
        f"torch {mach['torch']}" + (f", {mach['cuda']}" if mach["cuda"] else "")
    )
    columns = [
        Column("implementation", "left"),
        Column("device", "left", drop=3),
        Column("P"),
        Column("ms"),
        Column("speedup"),
        Column("theory"),
        Column("realised", drop=2),
        Column("FLOPs\nspeedup", drop=1),
    ]
    body = [
        [
            r["label"],
            r["device"],
            r["P"],
            f"{r['ms']:.2f}",
            f"{r['speedup']:.2f}×",
            f"{r['theory']:.2f}×",
            f"{100 * r['realised']:.0f}%",
            f"{r['flops_speedup']:.2f}×",
        ]
        for r in result["rows"]
    ]
    caption = (
        "speedup = nn.Conv2d time / layer time, median of paired rounds; theory = Eq. 9 of the layer's own "
        "formula; realised = speedup / theory; FLOPs speedup = standard MACs / MACs the layer runs. "
        "HetConv fast runs grouped_sum's MACs (1/P + 1/K²) for the paper's function class; the masked "
        "conv's theory counts its kept taps, but a dense runtime runs every tap and realises about 1×."
    )
    return fitted(title, columns, body, caption, width=width)
