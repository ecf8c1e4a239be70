"""``hetcalc plot``: the paper's Figure 5 and per-layer model costs as PNG, SVG or PDF.

matplotlib and pandas are imported inside the commands; no pyplot, so no display is needed.
"""

from __future__ import annotations

import click

from ..core.errors import InvalidInput
from .options import chosen_variant, count_on_option, counted, module_options, variant_options

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the plotted data as one JSON object on stdout."
)
out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Figure file; .png, .svg or .pdf picks the format. Optional with --json.",
)


def _check_out(out, as_json):
    """Validate --out before any work, so a bad path writes nothing."""
    from ..plot import output_format

    if out is None and not as_json:
        raise InvalidInput("--out", "give a .png, .svg or .pdf file to write (or --json for the data)")
    if out is not None:
        output_format(out)


def _write(fig, out, as_json):
    from ..plot import save

    fmt = save(fig, out)
    click.echo(f"Wrote {out} ({fmt.upper()})", err=as_json)


variant_option = click.option(
    "--variant",
    "variants",
    multiple=True,
    help="Networks to draw, as the JSON names them ('fast P=4'; repeatable)  [default: all].",
)


@click.group()
def plot():
    """Figures: the paper's Figure 5 (speedup against P), per-layer FLOPs of a model, and bench results."""


@plot.command()
@click.option(
    "--K",
    "K",
    multiple=True,
    default=("3",),
    show_default=True,
    help="Kernel size; repeat or give a comma list (--K 3,5,7) for one curve each.",
)
@click.option("--P-max", "P_max", type=int, default=64, show_default=True, help="Largest P on the x axis.")
@click.option(
    "--M",
    "M",
    type=int,
    default=256,
    show_default=True,
    help="Channels of the DWC+PWC line (Eq. 7 with N = M).",
)
@click.option(
    "--measured",
    type=click.Path(dir_okay=False),
    default=None,
    help='Overlay measured speedups: JSON {"rows": [{"impl", "P", "speedup"}, ...]} (hetcalc bench --json).',
)
@out_option
@json_option
def speedup(K, P_max, M, measured, out, as_json):
    """Figure 5: speedup of HetConv over standard convolution against P (Eq. 9 = 1 / Eq. 5).

    \b
    Example:  hetcalc plot speedup --out figure5.png
              hetcalc plot speedup --K 3,5 --P-max 256 --out figure5.svg
    Curves cover every integer P, with markers at the paper's points (powers of two);
    GWC+PWC (G = P, Eq. 11) and DWC+PWC (N = M, Eq. 7) are overlaid, the asymptote K² dashed.
    """
    from ..plot import figure5, load_measured, speedup_series

    series = speedup_series(list(K), P_max, M)
    if measured is not None:
        series += load_measured(measured)
    _check_out(out, as_json)
    if as_json:
        from ..render import print_json

        print_json({"figure": "speedup", "equation": "Eq. 9: speedup = 1 / reduction", "series": series})
    if out is not None:
        _write(figure5(series), out, as_json)


@plot.command()
@click.argument("name", required=False)
@module_options
@count_on_option
@variant_options
@out_option
@json_option
def model(out, as_json, **options):
    """Per-layer FLOPs of zoo model NAME (or --module): standard against HetConv (or GWC+PWC, DWC+PWC, a plan).

    \b
    Example:  hetcalc plot model vgg16 --P 4 --out vgg16_p4.png
              hetcalc plot model --module torchvision.models:resnet18 --P 4 --out r18.png
    The options are those of 'hetcalc model'; --json prints the same report.
    """
    if chosen_variant(options["P"], options["G"], options["dwc"], options["plan_file"]) == "standard":
        raise InvalidInput("--P", "give --P, --gwc, --dwc or --plan: what to compare the standard model with")
    _check_out(out, as_json)
    from ..plot import model_figure

    report = counted(**options)
    if as_json:
        from ..render import print_json

        print_json(report.to_dict())
    if out is not None:
        _write(model_figure(report), out, as_json)


@plot.command(name="bench")
@click.argument("file", type=click.Path(dir_okay=False))
@variant_option
@click.option(
    "--view",
    type=click.Choice(["speedup", "share"]),
    default="speedup",
    show_default=True,
    help="speedup: each replaced layer's measured speedup against its FLOPs speedup; share: FLOPs share "
    "against time share, standard and converted.",
)
@click.option(
    "--predicted",
    default=None,
    type=click.Path(dir_okay=False),
    help="A 'hetcalc latency --json' file of the same plan: its predicted layer speedups are drawn too.",
)
@out_option
def bench_plot(file, variants, view, predicted, out):
    """Each replaced layer's measured speedup against its FLOPs speedup, from 'hetcalc bench --model --json'.

    \b
    Example:  hetcalc bench --model vgg16 --P 4,8 --json > vgg.json
              hetcalc plot bench vgg.json --out vgg_layers.png
              hetcalc plot bench vgg.json --view share --out vgg_shares.png
    """
    from ..plot import _read_json, bench_figure, load_bench

    _check_out(out, False)
    guess = _read_json(predicted, "predicted") if predicted else None
    _write(bench_figure(load_bench(file), list(variants) or None, view, guess), out, False)


@plot.command(name="pareto")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--measured",
    default=None,
    type=click.Path(dir_okay=False),
    help="A 'hetcalc bench --model … --plan … --json' file: each network's measured time beside its prediction.",
)
@out_option
def pareto_plot(file, measured, out):
    """The Pareto front of a 'hetcalc search --json' file: predicted time against FLOPs, uniform variants, the plan.

    \b
    Example:  hetcalc search vgg16 --constraint 'flops>=P4' --out plan.json --json > front.json
              hetcalc bench --model vgg16 --plan plan.json --P 2,4,8 --impl grouped_sum --json > measured.json
              hetcalc plot pareto front.json --measured measured.json --out front.png
    """
    from ..plot import _read_json, load_search, pareto_figure

    _check_out(out, False)
    checked = _read_json(measured, "measured") if measured else None
    _write(pareto_figure(load_search(file), checked), out, False)


@plot.command(name="intensity")
@click.argument("file", type=click.Path(dir_okay=False))
@variant_option
@out_option
@json_option
def intensity_plot(file, variants, out, as_json):
    """Each replaced layer's realised fraction of its FLOPs speedup against its arithmetic intensity, from
    'hetcalc bench --model --json'.

    \b
    Example:  hetcalc bench --model vgg16 --P 4,8 --json > vgg.json
              hetcalc plot intensity vgg.json --out vgg_intensity.png
    Intensity: forward MACs per byte a layer moves after conversion (input read, weights read, output
    written, in float32, at the file's batch); realised: measured speedup / FLOPs speedup of the layer.
    """
    from ..plot import intensity_figure, intensity_series, load_bench

    _check_out(out, as_json)
    payload = load_bench(file)
    series = intensity_series(payload, list(variants) or None)
    if as_json:
        from ..render import print_json

        print_json(
            {
                "figure": "intensity",
                "model": payload.get("model"),
                "batch": payload.get("batch"),
                "series": series,
            }
        )
    if out is not None:
        _write(intensity_figure(series, payload), out, as_json)
