"""``hetcalc search``: the best per-layer plan on this machine under constraints, and the Pareto front."""

from __future__ import annotations

import click

from ..core.errors import existing_folder, whole_numbers
from ..render import Column, console, fitted, print_json, si
from . import progress
from .latency import check_option, conditions_of, prepared, search_impl_option, with_conditions
from .options import json_option, module_options


@click.command()
@click.argument("name", required=False)
@module_options
@click.option("--P", "P", default="2,4,8,16,32", show_default=True, help="HetConv parts each layer may take.")
@click.option(
    "--gwc", "G", default=None, help="GWC+PWC groups each layer may take, comma-separated, e.g. 2,4."
)
@click.option("--dwc", is_flag=True, help="Each layer may also be DWC+PWC.")
@search_impl_option
@click.option(
    "--keep-first",
    is_flag=True,
    help="Keep the first convolution as it is (the paper's rule); by default the search decides it too.",
)
@click.option(
    "--objective",
    type=click.Choice(["latency", "flops", "params"]),
    default="latency",
    show_default=True,
    help="latency is minimised; flops and params are maximised (the capacity kept under the constraints).",
)
@click.option(
    "--constraint",
    "constraint",
    multiple=True,
    metavar="TEXT",
    help="A bound, repeatable: 'flops>=P4', 'latency<=P8', 'params<=3M', 'latency<=40ms'; P4, P8, GWC2, DWC "
    "and standard name the uniform variants' predicted totals.",
)
@click.option(
    "--out",
    default=None,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the chosen plan as JSON, for convert, 'model --plan', 'latency --plan' and 'bench --plan'.",
)
@with_conditions
@check_option
@json_option
def search(
    name,
    module,
    input_size,
    arguments,
    P,
    G,
    dwc,
    impl,
    keep_first,
    objective,
    constraint,
    out,
    batch,
    threads,
    repeats,
    min_time,
    channels_last,
    fold,
    cache,
    check,
    as_json,
):
    """The exact best per-layer plan of zoo model NAME (or --module) for an objective under constraints.

    \b
    Example:  hetcalc search vgg16 --constraint 'flops>=P4' --batch 32 --fold --channels-last --out plan.json
              hetcalc search vgg16 --objective flops --constraint 'latency<=P8' --json > front.json
              hetcalc plot pareto front.json --out front.png
    Each replaceable layer may stay, or become HetConv with any P of --P that fits it (or GWC+PWC,
    DWC+PWC). FLOPs and params are exact; time is predicted from this machine's latency table (as
    'hetcalc latency'). Costs add up per layer, so a dynamic programme finds the exact Pareto front
    and the exact best plan. Each choice is priced as it runs alone (a folded fast HetConv with its
    residue copies); 'hetcalc latency --plan' then predicts the chosen plan with every copy it skips.
    """
    Ps = whole_numbers("P", P, "2,4,8")
    Gs = whole_numbers("G", G, "2,4") if G else []
    if out is not None:
        existing_folder("out", out)
    model, size, label, spec = prepared(name, module, input_size, arguments)
    from ..real import latency as predicting

    conditions = conditions_of(batch, threads, channels_last, fold)
    table = predicting.Table.load(cache)
    if table.rebuilt:
        click.echo(f"Note: {table.rebuilt}", err=True)
    payload, plan = predicting.run_search(
        model,
        spec,
        conditions,
        table,
        objective,
        constraint,
        Ps,
        Gs,
        dwc,
        impl,
        keep_first,
        repeats,
        progress("timing layers"),
        check,
    )
    if out is not None:
        with open(out, "w", encoding="utf-8") as f:
            f.write(plan.to_json() + "\n")
    if as_json:
        print_json(payload)
    else:
        render(payload)
        if out is not None:
            click.echo(f"Wrote the plan to {out}")


def render(payload: dict) -> None:
    out = console()
    C, H, W = payload["input"]
    title = (
        f"{payload['model']} ({C}×{H}×{W}), batch {payload['batch']}: the best plan for {payload['objective']}"
        + (f" with {' and '.join(payload['constraints'])}" if payload["constraints"] else "")
        + f" — {payload['prediction']}"
    )
    columns = [
        Column("plan", "left"),
        Column("FLOPs"),
        Column("params"),
        Column("ms"),
        Column("speedup"),
        Column("FLOPs\nspeedup", drop=1),
    ]
    rows = [(u["name"], u) for u in payload["uniform"]] + [("searched plan", payload["chosen"])]
    body = [
        [
            label,
            si(t["flops"]),
            si(t["params"]),
            f"{t['ms']:.2f}",
            f"{t['predicted_speedup']:.2f}×",
            f"{t['flops_speedup']:.2f}×",
        ]
        for label, t in rows
    ]
    caption = (
        f"Predicted per forward of the batch; FLOPs and params exact (per image). The front holds "
        f"{len(payload['front'])} plans (--json). Interactions: {payload['interactions']}."
    )
    out.print(fitted(title, columns, body, caption, width=out.width))
    if "measured" in payload["chosen"]:
        m = payload["chosen"]["measured"]
        out.print(
            f"The searched plan measured in this run: {m['ms']:.1f} ms against the standard network's "
            f"{m['standard_ms']:.1f} ms, {m['speedup']:.2f}× (prediction {m['error_pct']:+.1f} % in time, "
            f"{m['speedup_error_pct']:+.1f} % in speedup)."
        )
    layers = [[c["name"], c["choice"], si(c["flops"]), f"{c['ms']:.2f}"] for c in payload["chosen"]["layers"]]
    out.print(
        fitted(
            "The searched plan, layer by layer",
            [Column("layer", "left", fold=True), Column("choice", "left"), Column("FLOPs"), Column("ms")],
            layers,
            width=out.width,
        )
    )
