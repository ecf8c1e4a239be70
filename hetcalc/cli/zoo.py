"""``hetcalc zoo``: the registered models, their datasets, input sizes, FLOPs and parameters."""

from __future__ import annotations

import click

from ..render import Column, check_csv_path, console, fitted, print_json, si, write_csv
from .options import convention_option, csv_option, footprint_of, json_option, step_options
from .table import TRAIN_BATCH


@click.command()
@click.argument("pattern", default="*")
@convention_option("exact")  # the real networks' parameters, as nn.Module.parameters() counts
@step_options("optimizer", train_batch=TRAIN_BATCH)
@csv_option
@json_option
def zoo(pattern, convention, step, csv_path, as_json):
    """List the zoo models matching PATTERN (shell-style, default all), as defined on their default dataset.

    Any model can be counted with 'hetcalc model NAME'; --dataset picks another of its datasets.
    With --train: a training step's FLOPs and the memory it holds, at --batch (default 128 with --train).
    """
    from ..core.analyze import analyze
    from ..core.conventions import UNIT
    from ..core.zoo import list_models, model_datasets, model_doc

    if csv_path:
        check_csv_path(csv_path)
    footprint, train = footprint_of(None, step=step), step.train
    rows = []
    for name in list_models(pattern):
        report = analyze(
            name, variant="standard", convention=convention, footprint=footprint, **step.counted(False)
        )
        rows.append(
            {
                "model": name,
                "dataset": report.dataset,
                "datasets": list(model_datasets(name)),
                "input": report.input,
                "flops": report.flops,
                "params": report.params,
                **(
                    {
                        "forward_flops": report.forward_flops,
                        "backward_flops": report.backward_flops,
                        "memory": report.memory and report.memory["total"],
                        "saved_bytes": report.saved_bytes,
                    }
                    if train
                    else {}
                ),
                "description": model_doc(name),
            }
        )
    if csv_path:
        write_csv([{**r, "convention": convention} for r in rows], csv_path)
        if csv_path == "-":
            return
    if as_json:
        context = {"batch": step.batch, "train": train}
        context.update({"dtype": step.dtype, "optimizer": step.optimizer or "sgd"} if train else {})
        print_json({"convention": convention, "unit": UNIT[convention], **context, "models": rows})
        return
    if not rows:
        console().print(
            f"No zoo model matches {pattern!r}; known models: {', '.join(list_models())}.", markup=False
        )
        return
    columns = [
        Column("model", "left"),
        Column("dataset", "left"),
        Column("also", "left", drop=2),
        Column("input"),
        Column("step\nFLOPs" if train else "FLOPs"),
        Column("params"),
        *([Column("memory")] if train else []),
        Column("description", "left", drop=1, fold=True, wrap=True),
    ]
    body = [
        [
            r["model"],
            r["dataset"],
            ", ".join(r["datasets"][1:]),
            "×".join(map(str, r["input"])),
            si(r["flops"]),
            si(r["params"]),
            *([si(r["memory"]) + "B" if r["memory"] else "—"] if train else []),
            r["description"],
        ]
        for r in rows
    ]
    out = console()
    title = f"hetcalc model zoo ({len(rows)} models)" + (
        f": a training step at batch {step.batch} ({step.dtype}, {step.optimizer or 'sgd'})" if train else ""
    )
    out.print(fitted(title, columns, body, f"convention: {convention} — {UNIT[convention]}", width=out.width))
