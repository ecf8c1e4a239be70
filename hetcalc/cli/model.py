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
    step_options,
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
@step_options("frozen", "loss", "optimizer")
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

    \b
    With --train:  hetcalc model vgg16 --P 4 --train --batch 128 --optimizer momentum
                   hetcalc model --module ./net.py:make_net --input-size 3 32 32 --train --frozen features.0
    one training step at --batch: forward + backward (each layer's input gradient, none for the first
    layer; its weight gradient, none for a --frozen one), the bytes autograd saves for backward (measured
    on the meta device) and the step's memory (parameters, gradients, --optimizer state, activations).
    A --module model is run through its step on meta (loss: the sum of its output, or of --loss NAME).
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
    what = f", training step at batch {report.batch}" if report.train else f", batch {report.batch}"
    title = f"{report.model} ({context} {C}×{H}×{W}): {report.variant_title()}" + (
        what if report.train or report.batch > 1 else ""
    )
    step = "step " if report.train else ""
    columns = [
        Column("layer", "left", fold=True),
        Column("kind", "left"),
        Column("was", "left", drop=4),
        Column("M→N K", "left"),
        Column("D_o", drop=3),
        Column(f"{step}FLOPs\nbefore"),
        Column(f"{step}FLOPs\nafter"),
        *([Column("backward\nafter", drop=5)] if report.train else []),
        Column("params\nbefore", drop=2),
        Column("params\nafter", drop=1),
        Column("MACs/\nbyte", drop=6),
    ]
    body = []
    for r in report.layers:
        size = r["D_out"] if r["W_out"] == r["D_out"] else f"{r['D_out']}×{r['W_out']}"
        body.append(
            [
                r["name"],
                kind_text(r) + (" (frozen)" if r.get("frozen") else ""),
                r["kind_before"] if r["kind_before"] != r["kind"] else "",
                shape_text(r),
                "" if size is None else size,
                si(r["flops_before"]),
                si(r["flops_after"]),
                *([si(r["backward_flops"])] if report.train else []),
                si(r["params_before"]),
                si(r["params_after"]),
                "" if r["intensity"] is None else f"{r['intensity']:.1f}",
            ]
        )
    footer = ["total", "", "", "", ""] + [si(report.baseline_flops), si(report.flops)]
    footer += [si(report.backward_flops)] if report.train else []
    footer += [si(report.baseline_params), si(report.params)]
    footer += ["" if report.intensity is None else f"{report.intensity:.1f}"]
    out = console()
    caption = f"convention: {report.convention} — {conventions_unit(report)}"
    out.print(fitted(title, columns, body, caption, footer, width=out.width))
    out.print(
        f"{step.capitalize()}FLOPs {si(report.flops, 4)} (baseline {si(report.baseline_flops, 4)}): "
        f"{change_text(report.flops_reduction_pct)}, speedup {report.speedup:.2f}× (Eq. 9); "
        f"params {si(report.params, 4)} (baseline {si(report.baseline_params, 4)}): "
        f"{change_text(report.params_reduction_pct)}. Convention: {report.convention}."
    )
    if report.train:
        out.print(step_text(report), markup=False)
    out.print(
        f"Activations {si(report.activations)} output elements; the layers move {bytes_text(report.bytes)} "
        f"({report.dtype})" + (f", {report.intensity:.1f} MACs per byte." if report.intensity else "."),
        markup=False,
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


def bytes_text(count) -> str:
    """'12.35 MB': decimal prefixes, as the counts."""
    return f"{si(count)}B" if count >= 1000 else f"{count} B"


def step_text(report) -> str:
    """The training step in words: forward and backward, who computes no gradient, and its memory."""
    first = [r["name"] for r in report.layers if r.get("input_grad") is False]
    text = (
        f"Training step at batch {report.batch}: forward {si(report.forward_flops, 4)} + backward "
        f"{si(report.backward_flops, 4)} FLOPs"
        + (f"; no input gradient: {', '.join(first)}" if first else "")
        + (f"; frozen (no weight gradient): {', '.join(report.frozen)}" if report.frozen else "")
        + (f"; loss: the output {report.loss!r}" if report.loss else "")
        + "."
    )
    if report.memory:
        m = report.memory
        text += (
            f" Memory ({report.dtype}, {report.optimizer}): params {bytes_text(m['params'])}, buffers "
            f"{bytes_text(m['buffers'])}, gradients {bytes_text(m['grads'])}, optimizer {bytes_text(m['optimizer'])}, "
            f"saved activations {bytes_text(m['activations'])}; total {bytes_text(m['total'])}."
        )
    return text


def conventions_unit(report) -> str:
    from ..core.conventions import UNIT

    return UNIT[report.convention]
