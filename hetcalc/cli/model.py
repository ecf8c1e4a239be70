"""``hetcalc model``: a zoo network with its convolutions replaced as the paper does, layer by layer."""

from __future__ import annotations

import click

from ..core.errors import InvalidInput
from ..render import Column, check_csv_path, console, fitted, print_json, si
from ..render import write_csv as write_rows
from . import json_option, needs_torch, working


def convention_option_with(default: str):
    return click.option(
        "--convention",
        type=click.Choice(["paper", "exact"]),
        default=default,
        show_default=True,
        help="paper: MACs + bias adds, replaced layers scaled by their reduction (Table 1's rule); "
        "exact: MACs only, params = every learnable parameter incl. BatchNorm.",
    )


convention_option = convention_option_with("paper")


def variant_options(command):
    """--dataset, --P, --gwc, --dwc, --se and --convention: what to count a model as (model, plot model)."""
    for option in reversed(
        [
            click.option(
                "--dataset",
                default=None,
                help="cifar10 or imagenet  [default: the model's own; see 'hetcalc zoo'].",
            ),
            click.option(
                "--P",
                "P",
                default=None,
                help="HetConv part P: a number, C for P = M in each layer (the paper's PC), or one P per "
                "replaced layer, comma-separated.",
            ),
            click.option(
                "--gwc",
                "G",
                type=int,
                default=None,
                help="GWC+PWC: groupwise (G groups) M → M, then pointwise M → N.",
            ),
            click.option("--dwc", is_flag=True, help="DWC+PWC: depthwise, then pointwise."),
            click.option(
                "--se",
                type=int,
                default=None,
                help="Add Squeeze-and-Excitation with reduction R after each replaced layer.",
            ),
            convention_option,
        ]
    ):
        command = option(command)
    return command


def module_options(command):
    """--module, --input-size and --arg: a user's nn.Module instead of a zoo model (model, table, bench)."""
    for option in reversed(
        [
            click.option(
                "--module",
                default=None,
                metavar="PKG.MOD:FACTORY",
                help="Your own nn.Module instead of a zoo model: FACTORY() builds it (or "
                "path/to/file.py:FACTORY), e.g. torchvision.models:resnet50 or timm:create_model "
                "--arg model_name=resnet50.",
            ),
            click.option(
                "--input-size",
                type=int,
                nargs=3,
                default=None,
                metavar="C H W",
                help="With --module: the input of one image, e.g. 3 224 224  [default: the model's own "
                "(timm's pretrained_cfg), else required].",
            ),
            click.option(
                "--arg",
                "arguments",
                multiple=True,
                metavar="NAME=VALUE",
                help="With --module: a keyword argument of FACTORY (repeatable); VALUE is read as a Python "
                "literal (False, 10, (3, 224, 224)), otherwise as a string; never run as code.",
            ),
        ]
    ):
        command = option(command)
    return command


def refuse_module_options(name: str, given) -> None:
    """InvalidInput for the first (flag, value) of ``given`` set with zoo model ``name``: options of --module only."""
    for option, value in given:
        if value:
            raise InvalidInput(option, f"applies to --module only; zoo model {name} has its own input")


def chosen_variant(P, G, dwc) -> str:
    """The variant the options ask for; at most one of --P, --gwc, --dwc."""
    given = [flag for flag, on in (("--P", P is not None), ("--gwc", G is not None), ("--dwc", dwc)) if on]
    if len(given) > 1:
        raise InvalidInput(given[1], f"give one of --P, --gwc, --dwc, not {' and '.join(given)}")
    return {"--P": "hetconv", "--gwc": "gwc_pwc", "--dwc": "dwc_pwc"}.get(
        given[0] if given else None, "standard"
    )


def write_csv(report, path: str) -> None:
    """The per-layer table as CSV (one row per layer, with the convention), written whole or not at all."""
    write_rows([{**r, "convention": report.convention} for r in report.layers], path)


def traced(module, input_size, device, arguments=()):
    """The ModelSpec of a user's model (``--module``): torch is imported here, only when asked for."""
    needs_torch("--module")
    from ..real.trace import factory_arguments, load_factory, trace_factory

    factory = load_factory(module)
    with working(f"tracing {module}"):
        return trace_factory(
            factory, input_size or None, name=module, device=device, arguments=factory_arguments(arguments)
        )


def model_source(name, module, input_size, dataset, device, arguments=()):
    """What to count: zoo model NAME or ``--module``, exactly one."""
    if (name is None) == (module is None):
        raise InvalidInput(
            "MODEL",
            "give a zoo model NAME or --module PKG.MOD:FACTORY (or path/to/file.py:FACTORY)"
            + (", not both" if name else ""),
        )
    if name is not None:
        refuse_module_options(
            name, (("--input-size", input_size), ("--device", device != "meta"), ("--arg", arguments))
        )
        return name
    if dataset is not None:
        raise InvalidInput("--dataset", "applies to zoo models only, not to --module")
    return traced(module, input_size, device, arguments)


@click.command()
@click.argument("name", required=False)
@module_options
@click.option(
    "--device",
    type=click.Choice(["meta", "cpu"]),
    default="meta",
    show_default=True,
    help="With --module: build on meta (no weights, no compute; where a model cannot run there it is "
    "counted on the CPU, if it fits in memory, and the output says so) or on cpu (LHC masks' kept taps).",
)
@variant_options
@click.option(
    "--csv",
    "csv_path",
    default=None,
    metavar="FILE",
    help="Also write the per-layer table to FILE (.csv; - for stdout instead of the table).",
)
@json_option
def model(name, module, input_size, arguments, device, dataset, P, G, dwc, se, convention, csv_path, as_json):
    """FLOPs and parameters of zoo model NAME (or --module) with its convolutions replaced, layer by layer.

    \b
    Example:  hetcalc model vgg16 --P 4
              hetcalc model resnet50 --dataset imagenet --P 4 --json
              hetcalc model --module torchvision.models:resnet18 --input-size 3 224 224 --P 4
              hetcalc model --module ./net.py:make_net --input-size 3 32 32 --dwc
              hetcalc model --module torchvision.models:googlenet --arg aux_logits=False --input-size 3 224 224
    Every convolution but the first is replaced, except 1×1 ones (with K = 1 HetConv changes
    nothing); MobileNet's depthwise + pointwise pairs each become one layer M → N. Without
    --P, --gwc or --dwc the model is counted as it is. Reductions and speedup (Eq. 9) are
    against the unmodified model, counted the same way.

    With --module, the model is built on the meta device and traced through one forward pass
    that counts every multiply-accumulate: nn.Conv2d, nn.Linear and hetcalc's layers are
    recorded as layers; grouped, dilated or non-square convolutions are counted exactly and left
    as they are (the table says why); every other MAC (attention, matmuls, Conv1d/3d, transposed
    convolutions) is in the total under the module that ran it ("ops" rows), carried unchanged;
    other parameters are one more row; parameters the forward never reads are reported.
    """
    from ..core.analyze import analyze

    if csv_path:
        check_csv_path(csv_path, "--csv")
    source = model_source(name, module, input_size, dataset, device, arguments)
    report = analyze(
        source, dataset=dataset, variant=chosen_variant(P, G, dwc), P=P, G=G, se=se, convention=convention
    )
    if csv_path:
        write_csv(report, csv_path)
        if csv_path == "-":
            return
    if as_json:
        print_json(report.to_dict())
        return
    render(report)


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
