"""``hetcalc latency``: a plan's predicted time on this machine, layer by layer, beside the standard network's."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, si, write_csv
from . import needs_torch, progress, working
from .options import (
    P_option,
    chosen_variant,
    csv_option,
    dwc_option,
    gwc_option,
    json_option,
    module_options,
    plan_option,
    read_plan,
    refuse_module_options,
    timing_options,
)

IMPLS = ("exact", "fast", "grouped_sum")

search_impl_option = click.option(
    "--impl",
    type=click.Choice(IMPLS),
    default="grouped_sum",
    show_default=True,
    help="HetConv2d's implementation: grouped_sum (the public layout: fastest, and a layer's time does not "
    "depend on its neighbours), fast (the paper's shifted pattern; folded, it skips residue copies between "
    "layers of equal P) or exact (Eq. 4's MACs).",
)
conditions_options = [
    timing_options,
    click.option(
        "--fold",
        is_flag=True,
        help="Every network, standard too, with BatchNorm folded and HetConv fused (as 'bench --model --fold').",
    ),
    click.option(
        "--cache",
        "cache",
        default=None,
        metavar="DIR",
        type=click.Path(file_okay=False),
        help="Where the latency table of this machine lives  [default: $HETCALC_CACHE or ~/.cache/hetcalc].",
    ),
]


check_option = click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Also time the standard network and the plan's (the chosen one's) in the same paired rounds, beside "
    "the prediction.",
)


def with_conditions(command):
    for option in reversed(conditions_options):
        command = option(command)
    return command


def prepared(name, module, input_size, arguments):
    """(model on the CPU, input size, label, traced spec) of zoo model NAME or --module."""
    needs_torch("hetcalc latency")
    with working("loading and tracing the model"):
        from ..real.load import load_model
        from ..real.trace import trace

        if name is not None:
            refuse_module_options(name, (("--input-size", input_size), ("--arg", arguments)))
        model, size, label = load_model(name, module, input_size, arguments)
        return model, size, label, trace(model, size, label)


def conditions_of(batch, threads, channels_last, fold):
    from ..real.latency import Conditions

    return Conditions(batch=batch, threads=threads or 0, channels_last=channels_last, fold=fold).resolved()


@click.command()
@click.argument("name", required=False)
@module_options
@P_option
@gwc_option
@dwc_option
@search_impl_option
@plan_option
@with_conditions
@check_option
@csv_option
@json_option
def latency(
    name,
    module,
    input_size,
    arguments,
    P,
    G,
    dwc,
    impl,
    plan_file,
    batch,
    threads,
    repeats,
    min_time,
    channels_last,
    fold,
    cache,
    check,
    csv_path,
    as_json,
):
    """Predicted time of zoo model NAME (or --module) as a plan builds it, on this machine, layer by layer.

    \b
    Example:  hetcalc latency vgg16 --P 8 --batch 32 --threads 2 --fold --channels-last
              hetcalc latency vgg16 --plan plan.json --batch 32 --fold --channels-last --json
              hetcalc latency --module torchvision.models:resnet18 --P 4 --batch 8
    Each convolution a plan may replace is timed once per setting (kind, implementation, P or G, shape,
    batch, threads, layout, folded or not) in the form the network runs it, and kept in a table of this
    machine (--cache); the rest of the network is timed once per model and setting. The prediction is
    the sum; a second call reuses the table. With --check (the default) the standard network and the
    plan's are also timed in the same run, so every prediction stands beside a measurement.
    """
    if csv_path:
        check_csv_path(csv_path)
    variant = chosen_variant(P, G, dwc, plan_file)
    plan_given = read_plan(plan_file)
    model, size, label, spec = prepared(name, module, input_size, arguments)
    from ..core.plan import apply, derive
    from ..real import latency as predicting

    if plan_given is not None:
        apply(spec, plan_given)  # a plan for another model: refused here, in one line
    plan = plan_given or derive(spec, variant, P, G, impl=impl)
    conditions = conditions_of(batch, threads, channels_last, fold)
    table = predicting.Table.load(cache)
    if table.rebuilt:
        click.echo(f"Note: {table.rebuilt}", err=True)
    result = predicting.run_latency(
        model, spec, plan, conditions, table, check=check, repeats=repeats, progress=progress("timing layers")
    )
    if csv_path:
        write_csv(result["layers"], csv_path)
    if as_json:
        print_json(result)
    elif csv_path != "-":
        render(result)


def plan_title(plan: dict) -> str:
    replaced = [d for d in plan["layers"] if d.get("kind")]
    if plan.get("variant") not in (None, "plan"):
        kinds_ = {(d["kind"], d.get("P"), d.get("G"), d.get("impl")) for d in replaced}
        if len(kinds_) == 1:
            kind, P, G, impl = kinds_.pop()
            setting = f" P={P}" if P else f" G={G}" if G else ""
            return f"{kind}{setting}" + (f" ({impl})" if impl else "")
    return f"plan ({len(replaced)} layers replaced)"


def render(result: dict) -> None:
    out = console()
    C, H, W = result["input"]
    title = (
        f"{result['model']} ({C}×{H}×{W}), batch {result['batch']}: {plan_title(result['plan'])} — "
        f"{result['prediction']}"
    )
    columns = [
        Column("layer", "left", fold=True),
        Column("kind", "left"),
        Column("FLOPs"),
        Column("ms"),
        Column("±", drop=1),
        Column("standard\nms", drop=2),
        Column("share"),
    ]
    total = result["predicted_ms"]
    body = [
        [
            r["name"],
            r["kind"] + (f" P={r['P']}" if r["P"] else f" G={r['G']}" if r["G"] else ""),
            si(r["flops"]),
            f"{r['ms']:.2f}",
            f"{r['spread']:.2f}",
            f"{r['standard_ms']:.2f}",
            f"{100 * r['ms'] / total:.1f}%",
        ]
        for r in result["layers"]
    ]
    body.append(
        [
            "(outside these layers)",
            "",
            "",
            f"{result['outside_ms']:.2f}",
            "",
            f"{result['outside_ms']:.2f}",
            f"{100 * result['outside_ms'] / total:.1f}%",
        ]
    )
    caption = (
        "ms: predicted per forward of the batch (median of paired rounds against each shape's standard "
        "convolution; ±: median absolute deviation); outside: the rest of the network, timed once."
    )
    out.print(fitted(title, columns, body, caption, width=out.width))
    out.print(
        f"Predicted {total:.1f} ms (± {result['spread_ms']:.1f}) against the standard network's "
        f"{result['standard_ms']:.1f} ms: {result['predicted_speedup']:.2f}× faster, for "
        f"{result['flops_speedup']:.2f}× fewer FLOPs."
    )
    if "measured" in result:
        m = result["measured"]
        out.print(
            f"Measured in this run: {m['ms']:.1f} ms against {m['standard_ms']:.1f} ms, {m['speedup']:.2f}× "
            f"(prediction {m['error_pct']:+.1f} % in time, {m['speedup_error_pct']:+.1f} % in speedup)."
        )
