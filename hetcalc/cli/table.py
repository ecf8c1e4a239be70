"""``hetcalc table``: the paper's Table 1 for any model, as a terminal table, Markdown, LaTeX, CSV or JSON."""

from __future__ import annotations

import click

from ..core.errors import InvalidInput
from ..render import Column, check_csv_path, console, fitted, in_unit, prefix_for, print_json, write_csv
from .options import (
    convention_option,
    count_on_option,
    csv_option,
    footprint_of,
    model_source,
    module_options,
    step_options,
)

TRAIN_BATCH = 128  # the batch of `table --train`: CIFAR training's

FORMATS = ("rich", "markdown", "latex", "csv", "json")


@click.command()
@click.argument("words", nargs=-1, metavar="[NAME] [VARIANT]...")
@module_options
@count_on_option
@click.option(
    "--dataset", default=None, help="cifar10 or imagenet  [default: the model's own; see 'hetcalc zoo']."
)
@convention_option()
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="rich",
    show_default=True,
    help="rich: a terminal table; markdown; latex (booktabs); csv; json.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object on stdout (the same as --format json)."
)
@csv_option
@step_options("frozen", "loss", "optimizer", train_batch=TRAIN_BATCH)
def table(
    words,
    module,
    input_size,
    arguments,
    count_on,
    dataset,
    convention,
    fmt,
    as_json,
    csv_path,
    step,
):
    """Table 1 of the HetConv paper for any model: FLOPs, params and their reductions per variant.

    \b
    Example:  hetcalc table vgg16
              hetcalc table resnet50 P4 P8 PC GWC4_PWC DWC_PWC P4_SE --format latex
              hetcalc table --module torchvision.models:resnet18 --input-size 3 224 224 P2 P4
    Variants in the paper's naming: Pα (HetConv, P = α), PC (P = each layer's input channels),
    Pα_SE (with Squeeze-and-Excitation, reduction 8), GWCβ_PWC, DWC_PWC. Without variants: the
    HetConv rows of Table 1, P1 … P64. Reductions are against the first row (P1: the unmodified model).
    Every number is that of 'hetcalc model NAME … --json'.

    With --train, Table 1 for a training step: its FLOPs (forward + backward) and the memory it holds
    (parameters, gradients, --optimizer state, saved activations), at --batch (default 128 with --train).
    """
    from ..core.conventions import UNIT
    from ..core.paper import HETCONV_ROWS, variant_table

    if csv_path:
        check_csv_path(csv_path)
    name, variants = (None, list(words)) if module else (words[0] if words else None, list(words[1:]))
    source = model_source(name, module, input_size, dataset, count_on, arguments, step)
    footprint = footprint_of(source, module, arguments, step)
    fmt = "json" if as_json else fmt
    try:
        rows = variant_table(
            source,
            variants or HETCONV_ROWS,
            convention,
            dataset,
            footprint=footprint,
            **step.counted(bool(module)),
        )
    except InvalidInput as error:
        if error.parameter != "variant":
            raise
        raise InvalidInput("VARIANT", error.reason) from None
    report_of = _context(source, dataset)
    payload = {
        "model": report_of["model"],
        "input_size": report_of["input"],
        "convention": convention,
        "unit": UNIT[convention],
        "batch": step.batch,
        "train": step.train,
        **(
            {"dtype": step.dtype, "optimizer": step.optimizer or "sgd", "frozen": list(step.frozen)}
            if step.train
            else {}
        ),
        "rows": rows,
    }
    if csv_path:
        write_csv(rows, csv_path)
        if csv_path == "-":
            return
    if fmt == "json":
        print_json(payload)
    elif fmt == "csv":
        write_csv(rows, "-")
    elif fmt == "markdown":
        click.echo(markdown(payload, report_of["dataset"]))
    elif fmt == "latex":
        click.echo(latex(payload, report_of["dataset"]))
    else:
        out = console()
        headers, body = _cells(rows)
        words = {"Variant": "variant", "Params": "params", "Memory (": "memory\n(", "Memory": "memory"}
        words.update({"Step FLOPs (": "step FLOPs\n(", " reduced": "\nreduced"})
        folded = []
        for header in headers:
            for word, shown in words.items():
                header = header.replace(word, shown)
            folded.append(header)
        columns = [Column(folded[0], "left")] + [Column(h) for h in folded[1:]]
        title = (
            f"{payload['model']} ({_where(report_of['dataset'], payload['input_size'])}): Table 1"
            + _step(payload)
        )
        caption = (
            f"convention: {convention} — {UNIT[convention]}. "
            f"Reductions against {rows[0]['variant']}; FLOPs = multiply-accumulates."
        )
        out.print(fitted(title, columns, body, caption, width=out.width))


def _context(source, dataset) -> dict:
    """Model name, dataset and input of what is counted (a zoo name or a traced ModelSpec)."""
    from ..core.records import ModelSpec
    from ..core.zoo import get_model

    spec = source if isinstance(source, ModelSpec) else get_model(source, dataset)
    if spec is None:
        raise InvalidInput("MODEL", "nothing to count")
    return {"model": spec.name, "dataset": spec.dataset, "input": list(spec.input)}


def _where(dataset, size, times: str = "×") -> str:
    shape = times.join(map(str, size))
    return f"{dataset}, input {shape}" if dataset else f"input {shape}"


def _step(payload: dict) -> str:
    """' for a training step at batch 128 (float32, sgd)', or '' for a forward pass of one image."""
    if payload.get("train"):
        return (
            f" for a training step at batch {payload['batch']} ({payload['dtype']}, {payload['optimizer']})"
        )
    return f" at batch {payload['batch']}" if payload.get("batch", 1) > 1 else ""


def _cells(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """(column headers, rows of text): counts in one unit per column, two decimals, as the paper; a training
    step's table adds its memory (bytes) and its reduction."""
    f_scale, f_prefix = prefix_for([r["flops"] for r in rows])
    p_scale, p_prefix = prefix_for([r["params"] for r in rows])
    pct = lambda v: "—" if v is None else f"{v:.2f}%"
    train = "memory" in rows[0]
    headers = [
        "Variant",
        f"FLOPs ({f_prefix or 'count'})",
        "FLOPs reduced",
        f"Params ({p_prefix or 'count'})",
    ]
    headers += ["Params reduced"]
    body = [
        [
            r["variant"],
            in_unit(r["flops"], f_scale),
            pct(r["flops_reduction_pct"]),
            in_unit(r["params"], p_scale),
            pct(r["params_reduction_pct"]),
        ]
        for r in rows
    ]
    if train:
        headers[1] = f"Step FLOPs ({f_prefix or 'count'})"
        measured = [r["memory"] for r in rows if r["memory"] is not None]
        m_scale, m_prefix = prefix_for(measured)
        headers += [f"Memory ({m_prefix}B)", "Memory reduced"]
        for cells, r in zip(body, rows):
            memory = "—" if r["memory"] is None else in_unit(r["memory"], m_scale)
            cells += [memory, pct(r["memory_reduction_pct"])]
    return headers, body


def markdown(payload: dict, dataset) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned) with its context in a line above."""
    headers, body = _cells(payload["rows"])
    lines = [
        f"**{payload['model']}** ({_where(dataset, payload['input_size'])}){_step(payload)}, convention: "
        f"{payload['convention']} — {payload['unit']}; reductions against {payload['rows'][0]['variant']}.",
        "",
        "| " + " | ".join(headers) + " |",
        "|:---|" + "---:|" * (len(headers) - 1),
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "×": r"$\times$",
    "—": "---",
    "→": r"$\to$",
    "²": r"$^2$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(char, char) for char in str(text))


def latex(payload: dict, dataset) -> str:
    """A booktabs table (needs \\usepackage{booktabs}), numbers right-aligned, the context in its caption."""
    headers, body = _cells(payload["rows"])
    what = (
        "a training step" + _step(payload).removeprefix(" for a training step")
        if payload.get("train")
        else ""
    )
    caption = (
        f"FLOPs and parameters{' of ' + what + ',' if what else ' of'} {payload['model']} "
        f"({_where(dataset, payload['input_size'])}) per variant (HetConv paper naming), reductions against "
        f"{payload['rows'][0]['variant']}. Convention: {payload['convention']} ({payload['unit']}). "
        f"FLOPs are multiply-accumulates{'; memory in bytes' if payload.get('train') else ''}."
    )
    label = "".join(c if c.isalnum() else "-" for c in payload["model"]).strip("-")
    lines = [
        "% hetcalc table; needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "  \\centering",
        f"  \\caption{{{latex_escape(caption)}}}",
        f"  \\label{{tab:hetcalc-{label}}}",
        "  \\begin{tabular}{l" + "r" * (len(headers) - 1) + "}",
        "    \\toprule",
        "    " + " & ".join(latex_escape(h) for h in headers) + " \\\\",
        "    \\midrule",
    ]
    lines += ["    " + " & ".join(latex_escape(c) for c in cells) + " \\\\" for cells in body]
    lines += ["    \\bottomrule", "  \\end{tabular}", "\\end{table}"]
    return "\n".join(lines)
