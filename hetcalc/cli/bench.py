"""``hetcalc bench``: wall-clock speedup of the real layers next to the FLOPs theory (Eq. 9)."""

from __future__ import annotations

from pathlib import Path

import click

from ..core.errors import InvalidInput
from ..render import Column, check_csv_path, console, fitted, print_json, si, write_csv
from . import needs_torch, progress, working
from .options import csv_option, json_option, module_options, refuse_module_options, timing_options


@click.command()
@click.option("--M", "M", type=int, default=256, show_default=True, help="Input channels M.")
@click.option("--N", "N", type=int, default=256, show_default=True, help="Output channels N.")
@click.option("--K", "K", type=int, default=3, show_default=True, help="Kernel size K (odd).")
@click.option(
    "--D",
    "D",
    type=int,
    default=56,
    show_default=True,
    help="Input size D×D (stride 1, padding K//2: also the output size).",
)
@click.option(
    "--P",
    "P",
    default=None,
    help="HetConv parts to time, comma-separated (G = P for GWC+PWC in the layer bench)  [default: "
    "2,4,8,16,32; with a model: 4,8].",
)
@click.option(
    "--impl",
    "impls",
    default=None,
    help="What to time, comma-separated: HetConv2d's exact, fast, grouped_sum, and (layer bench) gwc_pwc, "
    "dwc_pwc, masked  [default: all; with a model and --fold --channels-last: fast, grouped_sum]. "
    "nn.Conv2d is always the reference.",
)
@click.option(
    "--model",
    "model_name",
    default=None,
    metavar="NAME",
    help="Time a whole zoo model (standard against each conversion) instead of one layer.",
)
@module_options
@click.option("--gwc", "G", type=int, default=None, help="With a model: also GWC+PWC with G groups.")
@click.option("--dwc", is_flag=True, help="With a model: also DWC+PWC.")
@click.option(
    "--plan",
    "plan_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="With a model: also the per-layer plan in FILE (repeatable), as 'hetcalc search --out' writes it.",
)
@click.option(
    "--fold",
    is_flag=True,
    help="With a model: every network, standard too, with BatchNorm folded (hetcalc.real.fold.inference); "
    "HetConv fast/grouped_sum fused, fast kept in residue order between layers.",
)
@click.option(
    "--layer-rounds",
    "layer_rounds",
    type=int,
    default=3,
    show_default=True,
    help="With a model: rounds with a clock on every convolution, for the per-layer breakdown.",
)
@timing_options
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda"]),
    default="auto",
    show_default=True,
    help="Layer bench: where the timing runs (auto: the CPU, and the GPU too when torch sees one). "
    "Models are timed on the CPU.",
)
@csv_option
@json_option
def bench(csv_path, as_json, **options):
    """Time nn.Conv2d and every HetConv implementation; measured speedup next to Eq. 9's theory.

    \b
    Example:  hetcalc bench --M 256 --N 256 --K 3 --D 56 --batch 8 --P 2,4,8,16,32
              hetcalc bench --json > bench.json && hetcalc plot speedup --measured bench.json --out f.png
    Inference mode, after a warm-up; each round times the standard conv and every layer once
    (interleaved), speedup is the median of the paired ratios. Theory is each layer's own
    formula in hetcalc.core.cost: Eq. 5 for HetConv (exact and fast), 1/P + 1/K² for grouped_sum,
    Eq. 11 (G = P, mid = M) for GWC+PWC, Eq. 7 for DWC+PWC, the kept taps for the masked conv.

    \b
    Whole models:  hetcalc bench --model vgg16 --P 4,8 --batch 32 --threads 2 --fold --channels-last
                   hetcalc bench --module torchvision.models:resnet18 --P 4
                   hetcalc bench --model vgg16 --plan plan.json --P 4,8 --fold --channels-last
    The standard network and each plan (HetConv per P and implementation, --gwc, --dwc, --plan)
    run in the same interleaved rounds; FLOPs speedup is the cost model's exact count of each,
    realised = speedup / FLOPs speedup; then a clock on every convolution gives each replaced
    layer's time before and after, its FLOPs and time shares, and the time outside them.
    """
    if csv_path:
        check_csv_path(csv_path)
    needs_torch("hetcalc bench")
    result = (bench_model if options["model_name"] or options["module"] else bench_layer)(**options)
    if csv_path:
        write_csv(result["rows"], csv_path)
    if as_json:
        print_json(result)
    elif csv_path != "-":
        out = console()
        if "layers" not in result:
            out.print(result_table(result, out.width))
            return
        out.print(model_table(result, out.width))
        for key in dict.fromkeys(r["variant"] for r in result["layers"]):
            out.print(layers_table(result, key, out.width))


LAYER_OPTIONS = ("M", "N", "K", "D", "device")


def bench_layer(
    M, N, K, D, P, impls, batch, threads, repeats, min_time, channels_last, device, **model
) -> dict:
    """``hetcalc bench``: one layer, nn.Conv2d against every implementation, per P."""
    for option, flag in (
        ("input_size", "--input-size"),
        ("arguments", "--arg"),
        ("G", "--gwc"),
        ("dwc", "--dwc"),
        ("plan_files", "--plan"),
        ("fold", "--fold"),
    ):
        if model[option]:
            raise InvalidInput(flag, "applies to --model or --module only")
    with working("preparing the layers"):
        from ..real import bench as benchmark

    names = benchmark.parse_impls(impls) if impls is not None else None
    P = "2,4,8,16,32" if P is None else P
    return benchmark.run(
        M,
        N,
        K,
        D,
        batch,
        P,
        names,
        threads,
        repeats,
        min_time,
        device,
        progress("timing"),
        channels_last=channels_last,
    )


def bench_model(
    model_name,
    module,
    input_size,
    arguments,
    P,
    impls,
    G,
    dwc,
    plan_files,
    fold,
    layer_rounds,
    batch,
    threads,
    repeats,
    min_time,
    channels_last,
    **_,
) -> dict:
    """``hetcalc bench --model/--module``: the whole network, standard against each plan."""
    from click.core import ParameterSource

    context = click.get_current_context()
    for option in LAYER_OPTIONS:
        if context.get_parameter_source(option) == ParameterSource.COMMANDLINE:
            raise InvalidInput(f"--{option}", "applies to the layer bench, not to --model/--module")
    with working("preparing the models"):
        from ..core.plan import Plan
        from ..real import bench_model as benchmark
        from ..real.load import load_model
        from ..real.trace import trace

        default = benchmark.IMPLS if not (fold and channels_last) else ("fast", "grouped_sum")
        names = benchmark.parse_impls(impls) if impls is not None else list(default)
        if model_name is not None:
            refuse_module_options(model_name, (("--input-size", input_size), ("--arg", arguments)))
        model, size, label = load_model(model_name, module, input_size, arguments)
        spec = trace(model, size, label)
        plans = [(Path(f).stem, Plan.read(f)) for f in plan_files]
        Ps = "4,8" if P is None and not plans else P or ()
        networks = benchmark.variants(spec, Ps, names, G, dwc, plans)
    with working("timing the models"):
        return benchmark.run_model(
            model,
            size,
            label,
            networks,
            spec=spec,
            batch=batch,
            threads=threads,
            repeats=repeats,
            min_time=min_time,
            channels_last=channels_last,
            fold=fold,
            layer_rounds=layer_rounds,
            progress=progress("converting"),
        )


def result_table(result: dict, width: int | None = None):
    """The rich table of a ``hetcalc.real.bench.run`` result, the machine in its title."""
    layer, mach = result["layer"], result["machine"]
    title = (
        f"Layer {layer['M']} → {layer['N']}, {layer['K']}×{layer['K']}, batch {layer['batch']}, "
        f"{layer['D']}×{layer['D']}{', channels last' if layer.get('channels_last') else ''}: "
        f"{mach['cpu']} ({mach['cores']} cores), {result['threads']} threads, "
        f"torch {mach['torch']}" + (f", {mach['cuda']}" if mach["cuda"] else "")
    )
    columns = [
        Column("implementation", "left"),
        Column("device", "left", drop=3),
        Column("P"),
        Column("ms"),
        Column("speedup"),
        Column("theory"),
        Column("realised", drop=2),
        Column("FLOPs\nspeedup", drop=1),
    ]
    body = [
        [
            r["label"],
            r["device"],
            r["P"],
            f"{r['ms']:.2f}",
            f"{r['speedup']:.2f}×",
            f"{r['theory']:.2f}×",
            f"{100 * r['realised_theory']:.0f}%",
            f"{r['flops_speedup']:.2f}×",
        ]
        for r in result["rows"]
    ]
    caption = (
        "speedup = nn.Conv2d time / layer time, median of paired rounds; theory = Eq. 9 of the layer's own "
        "formula; realised = speedup / theory; FLOPs speedup = standard MACs / MACs the layer runs. "
        "HetConv fast runs grouped_sum's MACs (1/P + 1/K²) for the paper's function class; the masked "
        "conv's theory counts its kept taps, but a dense runtime runs every tap and realises about 1×."
    )
    return fitted(title, columns, body, caption, width=width)


def _setup(result: dict) -> str:
    mach = result["machine"]
    layout = ", channels last" if result["channels_last"] else ""
    folded = ", BatchNorm folded" if result["fold"] else ""
    return (
        f"{result['model']}, batch {result['batch']} × {'×'.join(map(str, result['input']))}{layout}{folded}: "
        f"{mach['cpu']} ({mach['cores']} cores), {result['threads']} threads, torch {mach['torch']}"
    )


def model_table(result: dict, width: int | None = None):
    """The rich table of a ``hetcalc.real.bench.run_model`` result: one row per network."""
    columns = [
        Column("network", "left"),
        Column("ms"),
        Column("speedup"),
        Column("FLOPs\nspeedup"),
        Column("realised", drop=1),
        Column("FLOPs", drop=2),
    ]
    body = [
        [
            r["label"],
            f"{r['ms']:.1f}",
            f"{r['speedup']:.2f}×",
            f"{r['flops_speedup']:.2f}×",
            f"{100 * r['realised_flops']:.0f}%",
            si(r["flops"]),
        ]
        for r in result["rows"]
    ]
    caption = (
        "speedup = standard time / network time, median of paired interleaved rounds; FLOPs speedup = the "
        "cost model's exact MACs of the standard network over the converted one's (per image); realised = "
        "speedup / FLOPs speedup."
    )
    notes = dict.fromkeys(f"{r['label']}: {r['note']}" for r in result["rows"] if r.get("note"))
    caption += "".join(f" Note: {note}." for note in notes)
    return fitted(_setup(result), columns, body, caption, width=width)


def layers_table(result: dict, variant: str, width: int | None = None):
    """Where the time goes in one converted network: each replaced convolution before and after."""
    columns = [
        Column("layer", "left", fold=True),
        Column("FLOPs\nshare", drop=2),
        Column("FLOPs\nshare\nafter", drop=3),
        Column("ms\nbefore"),
        Column("ms\nafter"),
        Column("speedup"),
        Column("time\nshare", drop=1),
        Column("time\nshare\nafter"),
    ]
    body = [
        [
            r["name"],
            f"{100 * r['flops_share_before']:.1f}%",
            f"{100 * r['flops_share_after']:.1f}%",
            f"{r['ms_before']:.2f}",
            f"{r['ms_after']:.2f}",
            "" if r["speedup"] is None else f"{r['speedup']:.2f}×",
            f"{100 * r['time_share_before']:.1f}%",
            f"{100 * r['time_share_after']:.1f}%",
        ]
        for r in result["layers"]
        if r["variant"] == variant
    ]
    label = next(r["label"] for r in result["rows"] if r["variant"] == variant)
    caption = (
        "ms: median per forward with a clock on every convolution; shares: of the standard network's "
        "(before) and the converted network's (after) FLOPs and time."
    )
    return fitted(f"{result['model']}: {label}, layer by layer", columns, body, caption, width=width)
