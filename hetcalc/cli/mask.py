"""``hetcalc mask``: count an LHC topology mask (or several) exactly."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, si, write_csv
from . import needs_torch
from .options import csv_option, json_option


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--D",
    "D",
    type=int,
    default=None,
    help="Output size D_o of every layer (unless the file stores output_sizes).",
)
@click.option(
    "--bias/--no-bias",
    default=False,
    show_default=True,
    help="Count N biases and one add per output element.",
)
@csv_option
@json_option
def mask(file, D, bias, csv_path, as_json):
    """Count a binary topology mask: FLOPs = D_o² · kept taps, params = kept taps.

    FILE is a .npy holding one boolean N×M×K×K mask, or a .pt holding a tensor or a dict of
    them (a state dict: keys ending in 'mask'; an optional 'output_sizes' {name: D_o}).
    The dense columns are what a runtime that executes the full K×K filter bank pays
    (what fvcore traces for a masked nn.Conv2d); the effective columns count kept taps only.
    """
    if csv_path:
        check_csv_path(csv_path)
    read_pt = None
    if str(file).endswith(".pt"):
        needs_torch("hetcalc mask FILE.pt")
        from ..real.lhc import read_masks as read_pt
    from ..core.masks import load

    rows = [layer.report(bias) for layer in load(file, D, read_pt)]
    totals = {
        key: sum(r[key] for r in rows)
        for key in ("flops", "params", "dense_flops", "dense_params", "kept_taps")
    }
    if csv_path:
        write_csv(rows, csv_path)
        if csv_path == "-":
            return
    if as_json:
        print_json({"file": str(file), "unit": "multiply-accumulates", **totals, "layers": rows})
        return
    columns = [
        Column("layer", "left", fold=True),
        Column("N×M×K×K", "left"),
        Column("D_o"),
        Column("density", drop=2),
        Column("FLOPs"),
        Column("dense\nFLOPs"),
        Column("params"),
        Column("full", drop=1),
        Column("1×1", drop=1),
        Column("empty", drop=1),
        Column("other", drop=1),
    ]
    body = [
        [
            r["name"],
            f"{r['N']}×{r['M']}×{r['K']}×{r['K']}",
            r["D_out"],
            f"{r['density']:.3f}",
            si(r["flops"]),
            si(r["dense_flops"]),
            si(r["params"]),
            r["kernels_full"],
            r["kernels_centre_only"],
            r["kernels_empty"],
            r["kernels_other"],
        ]
        for r in rows
    ]
    body.append(
        [
            "total",
            "",
            "",
            "",
            si(totals["flops"]),
            si(totals["dense_flops"]),
            si(totals["params"]),
            "",
            "",
            "",
            "",
        ]
    )
    caption = (
        "FLOPs = multiply-accumulates of kept taps (a sparse/heterogeneous runtime); dense FLOPs = "
        "what a dense conv with the mask applied pays. Kernels by effective shape: full K×K, centre-only 1×1, "
        "empty, other."
    )
    out = console()
    out.print(fitted(f"Topology mask {file}", columns, body, caption, width=out.width))
