"""``hetcalc zoo``: the registered models, their datasets, input sizes, FLOPs and parameters."""

from __future__ import annotations

import click

from ..render import console, print_json, si, table
from . import json_option
from .model import convention_option_with


@click.command()
@click.argument("pattern", default="*")
@convention_option_with("exact")  # the real networks' parameters, as nn.Module.parameters() counts
@json_option
def zoo(pattern, convention, as_json):
    """List the zoo models matching PATTERN (shell-style, default all), as defined on their default dataset.

    Any model can be counted with 'hetcalc model NAME'; --dataset picks another of its datasets.
    """
    from ..analyze import analyze
    from ..conventions import UNIT
    from ..zoo import list_models, model_datasets, model_doc

    rows = []
    for name in list_models(pattern):
        report = analyze(name, variant="standard", convention=convention)
        rows.append(
            {
                "model": name,
                "dataset": report.dataset,
                "datasets": list(model_datasets(name)),
                "input": report.input,
                "flops": report.flops,
                "params": report.params,
                "description": model_doc(name),
            }
        )
    if as_json:
        print_json({"convention": convention, "unit": UNIT[convention], "models": rows})
        return
    columns = [
        ("model", "left"),
        ("dataset", "left"),
        ("also", "left"),
        ("input", "right"),
        ("FLOPs", "right"),
        ("params", "right"),
        ("description", "left"),
    ]
    body = [
        [
            r["model"],
            r["dataset"],
            ", ".join(r["datasets"][1:]),
            "×".join(map(str, r["input"])),
            si(r["flops"]),
            si(r["params"]),
            r["description"],
        ]
        for r in rows
    ]
    console().print(
        table(
            f"hetcalc model zoo ({len(rows)} models)",
            columns,
            body,
            caption=f"convention: {convention} — {UNIT[convention]}",
        )
    )
