"""``hetcalc verify``: build real layers of every kind, trace them with fvcore, compare with hetcalc.core.cost."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, write_csv
from . import needs_torch, progress
from .options import csv_option, json_option

UNIT = (
    "multiply-accumulates; fvcore counts no bias additions, so hetcalc's Cost.macs "
    "(FLOPs without bias adds) is compared with fvcore's total; params include biases"
)


def config_text(config) -> str:
    """{'M': 8, 'N': 16, 'stride': 2, 'D_in': 15, 'D_out': 8, 'bias': True} → '8→16 s=2 D=15→8 bias'."""
    if not isinstance(config, dict):
        return str(config)
    c = dict(config)
    parts = [f"{c.pop('M')}→{c.pop('N')}"] if {"M", "N"} <= c.keys() else []
    if "stride" in c:
        c["s"] = c.pop("stride")
    if {"D_in", "D_out"} <= c.keys():
        c["D"] = f"{c.pop('D_in')}→{c.pop('D_out')}"
    return " ".join(parts + [k if v is True else f"{k}={v}" for k, v in c.items() if v is not False])


def skipped_text(row) -> str:
    if row["unexplained_ops"]:
        return "[red]may carry MACs: " + ", ".join(row["unexplained_ops"]) + "[/red]"
    return f"{sum(row['ignored_ops'].values())} free" if row["ignored_ops"] else ""


@click.command()
@click.option(
    "--quick",
    is_flag=True,
    help="Fewer rows (56 layers: the seven realisations over one layer shape, D_in and bias in turn; three models).",
)
@click.option(
    "--models/--no-models",
    default=True,
    show_default=True,
    help="Also check zoo models (ResNet-56, VGG-16, MobileNet on CIFAR-10) against the exact convention.",
)
@csv_option
@json_option
def verify(quick, models, csv_path, as_json):
    """Check hetcalc's symbolic counts against fvcore's trace of real PyTorch layers and models.

    Builds standard, HetConv (exact and grouped_sum), DWC+PWC and GWC+PWC layers over a grid of
    M, N, K ∈ {1, 3, 5, 7}, P or G, stride 1/2, input size and bias, and zoo models in several
    variants, traces each (batch 1, eval mode, no grad) and compares multiply-accumulates and
    parameters. For models, fvcore's handles of operators that carry no MAC (normalisation,
    pooling, resampling) are zeroed: the exact convention counts convolution and linear MACs
    only. Exit 1 on any mismatch, or when fvcore
    skipped an operator that may carry multiply-accumulates.
    """
    if csv_path:
        check_csv_path(csv_path)
    needs_torch("hetcalc verify", ("torch", "fvcore"))
    from ..real import verify as checks
    from ..real.fvcount import FREE_OPS, NOT_MACS

    cases = list(checks.layer_grid(quick=quick))
    if models:
        cases += checks.model_cases(quick=quick)
    rows = checks.run(cases, progress=progress("tracing with fvcore", len(cases)))
    failed = checks.failures(rows)
    skipped = {}
    for row in rows:
        for op, times in row["ignored_ops"].items():
            skipped[op] = skipped.get(op, 0) + times
    if csv_path:
        write_csv(rows, csv_path)
    if csv_path == "-":
        pass
    elif as_json:
        print_json(
            {
                "unit": UNIT,
                "rows": rows,
                "failures": len(failed),
                "zeroed_handles": NOT_MACS if models else {},
                "ignored_reasons": {
                    op: FREE_OPS.get(op, "unexplained: may carry multiply-accumulates")
                    for op in sorted(skipped)
                },
            }
        )
    else:
        out = console()
        columns = [
            Column("kind", "left"),
            Column("config", "left", fold=True, wrap=True),
            Column("MACs\nhetcalc"),
            Column("MACs\nfvcore", drop=2),
            Column("params\nhetcalc"),
            Column("params\nfvcore", drop=2),
            Column("match", "center"),
            Column("fvcore\nskipped", "left", drop=1),
        ]
        body = [
            [
                r["kind"],
                config_text(r["config"]),
                f"{r['symbolic_flops']:,}",
                f"{r['fvcore_flops']:,}",
                f"{r['symbolic_params']:,}",
                f"{r['fvcore_params']:,}",
                "[green]✓[/green]" if r["match"] else "[red]✗[/red]",
                skipped_text(r),
            ]
            for r in rows
        ]
        title = f"hetcalc vs fvcore: {len(rows)} layers"
        out.print(fitted(title, columns, body, caption=f"FLOPs = {UNIT}.", width=out.width))
        if skipped:
            legend = [
                [
                    op,
                    f"{times:,}",
                    FREE_OPS.get(op, "not known to be free: may carry multiply-accumulates"),
                ]
                for op, times in sorted(skipped.items())
            ]
            legend_columns = [
                Column("operator", "left"),
                Column("times"),
                Column("why that costs no MACs", "left", fold=True, wrap=True),
            ]
            out.print(fitted("Operators fvcore did not count", legend_columns, legend, width=out.width))
        if models:
            zeroed: dict[str, list[str]] = {}
            for op, why in NOT_MACS.items():
                zeroed.setdefault(why, []).append(op)
            out.print(
                "Model rows: fvcore handles zeroed (no convolution or linear MACs): "
                + "; ".join(f"{', '.join(ops)} ({why})" for why, ops in zeroed.items())
                + "."
            )
        if failed:
            out.print(
                f"[red]{len(failed)} of {len(rows)} rows fail[/red] (counts differ, or fvcore skipped an "
                "operator that may carry multiply-accumulates)."
            )
        else:
            out.print(f"All {len(rows)} rows match: symbolic MACs and params equal fvcore's, to the integer.")
    if failed:
        raise click.exceptions.Exit(1)
