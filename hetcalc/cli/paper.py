"""``hetcalc paper``: the paper's published tables beside hetcalc's reproduction."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, write_csv
from .options import convention_option, csv_option, json_option


@click.group()
def paper():
    """The paper's published numbers, reproduced."""


def _ours(value, ok, digits: int) -> str:
    """'175.2350 ✓': ours, and whether it reproduces the published value."""
    mark = "" if ok is None else " [green]✓[/green]" if ok else " [red]✗[/red]"
    return f"{value:.{digits}f}{mark}"


@paper.command()
@convention_option()
@csv_option
@json_option
def table1(convention, csv_path, as_json):
    """Table 1 (VGG-16 on CIFAR-10): published beside reproduced, with deltas.

    A value reproduces when it lies within 0.01 of the published one (one unit in its last
    digit: covers rounding and truncation). Rows that do not are flagged, with what the
    published number implies (the P, the layer-level reduction or SE reduction it needs).
    """
    from ..core.conventions import UNIT
    from ..core.paper import DATASET, MODEL, TOLERANCE
    from ..core.paper import table1 as rows_of

    if csv_path:
        check_csv_path(csv_path)
    rows = rows_of(convention)
    if csv_path:
        write_csv([{**r, "convention": convention} for r in rows], csv_path)
        if csv_path == "-":
            return
    if as_json:
        print_json(
            {
                "table": "Table 1",
                "model": MODEL,
                "dataset": DATASET,
                "convention": convention,
                "unit": UNIT[convention],
                "values": "FLOPs and params in M, reductions in %",
                "tolerance": TOLERANCE,
                "rows": rows,
            }
        )
        return
    columns = [Column("row", "left")]
    for header in ("FLOPs\n(M)", "FLOPs\nred. %", "params\n(M)", "params\nred. %"):
        columns += [Column(header), Column("ours"), Column("Δ", drop=1)]
    body = []
    for r in rows:
        line = [r["row"].split("_", 1)[1]]
        for column, digits in (
            ("flops", 4),
            ("flops_reduction_pct", 3),
            ("params", 4),
            ("params_reduction_pct", 3),
        ):
            published, delta = r[f"published_{column}"], r[f"delta_{column}"]
            line += [
                "—" if published is None else f"{published:.2f}",
                _ours(r[column], r[f"{column}_ok"], digits),
                "" if delta is None else f"{delta:+.{digits}f}",
            ]
        body.append(line)
    out = console()
    t = fitted(
        f"Table 1: VGG-16 ({MODEL}) on {DATASET}, published vs hetcalc, convention: {convention}",
        columns,
        body,
        caption=f"Published beside ours (Δ = ours − published); FLOPs and params in M, reductions in %. "
        f"{UNIT[convention]}. ✓: |Δ| ≤ {TOLERANCE} (one unit in the last published digit).",
        width=out.width,
    )
    out.print(t)
    counts = {
        column: (
            sum(r[f"{column}_ok"] is True for r in rows),
            sum(r[f"{column}_ok"] is not None for r in rows),
        )
        for column in ("flops", "flops_reduction_pct", "params", "params_reduction_pct")
    }
    out.print(
        "Reproduced: "
        + ", ".join(
            f"{name} {ok}/{n}"
            for name, (ok, n) in zip(
                ("FLOPs", "FLOPs reductions", "params", "params reductions"), counts.values()
            )
        )
        + "."
    )
    for r in rows:
        if not r["reproduces"]:
            out.print(f"[bold]{r['row']}[/bold]: {r['note']}", highlight=False)
