"""``hetcalc model``: a zoo network with its convolutions replaced as the paper does, layer by layer."""

from __future__ import annotations

import sys

import click

from ..render import Column, check_csv_path, console, fitted, print_json, si
from ..render import write_csv as write_rows
from .options import (
    count_on_option,
    counted,
    json_option,
    module_options,
    strict_option,
    variant_options,
)


def write_csv(report, path: str) -> None:
    """The per-layer table as CSV (one row per layer, with the convention), written whole or not at all."""
    write_rows([{**r, "convention": report.convention} for r in report.layers], path)


@click.command()
@click.argument("name", required=False)
@module_options
@count_on_option
@variant_options
@click.option(
    "--csv",
    "csv_path",
    default=None,
    metavar="FILE",
    help="Also write the per-layer table to FILE (.csv; - for stdout instead of the table).",
)
@strict_option
@json_option
def model(csv_path, strict, as_json, **options):
    """FLOPs and parameters of zoo model NAME (or --module) with its convolutions replaced, layer by layer.

    \b
    Example:  hetcalc model vgg16 --P 4
              hetcalc model resnet50 --dataset imagenet --P 4 --json
              hetcalc model --module torchvision.models:resnet18 --P 4
              hetcalc model --module ./net.py:make_net --input-size 3 32 32 --dwc
              hetcalc model vgg16 --plan plan.json
    Every convolution but the first is replaced, except 1×1 ones (with K = 1 HetConv changes
    nothing); MobileNet's depthwise + pointwise pairs each become one layer M → N. Without
    --P, --gwc, --dwc or --plan the model is counted as it is. Reductions and speedup (Eq. 9) are
    against the unmodified model, counted the same way. The JSON's "plan" is the per-layer plan
    counted: 'hetcalc.convert(model, plan)' builds it, '--plan FILE' reads it back.

    With --module, the model is built on the meta device and traced through one forward pass
    that counts every multiply-accumulate: nn.Conv2d, nn.Linear and hetcalc's layers are
    recorded as layers; grouped, dilated or non-square convolutions are counted exactly and left
    as they are (the table says why); every other MAC (attention, matmuls, Conv1d/3d, transposed
    convolutions) is in the total under the module that ran it ("ops" rows), carried unchanged;
    other parameters are one more row; parameters the forward never reads are reported.
    """
    if csv_path:
        check_csv_path(csv_path, "--csv")
    report = counted(**options)
    if csv_path:
        write_csv(report, csv_path)
    if as_json:
        print_json(report.to_dict())
    elif csv_path != "-":
        render(report)
    if strict and (report.uncounted or report.data_dependent):
        sys.exit(1)


def shape_text(r) -> str:
    """'64→128 3×3 s2': channels, kernel and stride of a layer row in one cell."""
    if r["M"] is None:
        return ""
    text = f"{r['M']}→{r['N']}"
    if r["K"]:
        text += f" {r['K']}×{r['K']}" + (f" s{r['stride']}" if r["stride"] and r["stride"] > 1 else "")
    return text


def kind_text(r) -> str:
    """'hetconv P=4 +SE/8': the kind a layer is counted as, with its P or G and SE."""
    setting = f" P={r['P']}" if r["P"] else f" G={r['G']}" if r["G"] else ""
    return r["kind"] + setting + (f" +SE/{r['se']}" if r["se"] else "")


def change_text(pct: float) -> str:
    """'85.53 % fewer' or '186.95 % more'."""
    return f"{abs(pct):.2f} % {'fewer' if pct >= 0 else 'more'}"


def render(report) -> None:
    C, H, W = report.input
    context = f"{report.dataset}, input" if report.dataset else "input"
    title = f"{report.model} ({context} {C}×{H}×{W}): {report.variant_title()}"
    columns = [
        Column("layer", "left", fold=True),
        Column("kind", "left"),
        Column("was", "left", drop=4),
        Column("M→N K", "left"),
        Column("D_o", drop=3),
        Column("FLOPs\nbefore"),
        Column("FLOPs\nafter"),
        Column("params\nbefore", drop=2),
        Column("params\nafter", drop=1),
    ]
    body = []
    for r in report.layers:
        size = r["D_out"] if r["W_out"] == r["D_out"] else f"{r['D_out']}×{r['W_out']}"
        body.append(
            [
                r["name"],
                kind_text(r),
                r["kind_before"] if r["kind_before"] != r["kind"] else "",
                shape_text(r),
                "" if size is None else size,
                si(r["flops_before"]),
                si(r["flops_after"]),
                si(r["params_before"]),
                si(r["params_after"]),
            ]
        )
    footer = ["total", "", "", "", ""] + [
        si(v) for v in (report.baseline_flops, report.flops, report.baseline_params, report.params)
    ]
    out = console()
    caption = f"convention: {report.convention} — {conventions_unit(report)}"
    out.print(fitted(title, columns, body, caption, footer, width=out.width))
    out.print(
        f"FLOPs {si(report.flops, 4)} (baseline {si(report.baseline_flops, 4)}): "
        f"{change_text(report.flops_reduction_pct)}, speedup {report.speedup:.2f}× (Eq. 9); "
        f"params {si(report.params, 4)} (baseline {si(report.baseline_params, 4)}): "
        f"{change_text(report.params_reduction_pct)}. Convention: {report.convention}."
    )
    unchanged = {}  # traced models: why layers stay as they are, grouped by reason
    if len(report.flops_by_op) > 1:
        parts = sorted(report.flops_by_op.items(), key=lambda item: -item[1])
        out.print(
            "FLOPs by operator: " + ", ".join(f"{op} {si(flops)}" for op, flops in parts) + ".", markup=False
        )
    carried = [f"{r['name']}: {r['note']}" for r in report.layers if r["kind"] == "ops"]
    if carried:
        out.print(
            "In the totals, unchanged (operators outside the layers above): " + "; ".join(carried),
            markup=False,
        )
    for r in report.layers:
        if r["note"] and r["kind"] != "ops":
            unchanged.setdefault(r["note"], []).append(r["name"])
    for reason, names in unchanged.items():
        out.print(f"Left as they are ({reason}): {', '.join(names)}", markup=False)
    for note in report.notes:
        out.print(note if note.startswith("Warning:") else f"Note: {note}", markup=False)


def conventions_unit(report) -> str:
    from ..core.conventions import UNIT

    return UNIT[report.convention]
