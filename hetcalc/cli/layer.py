"""``hetcalc layer``: one layer as standard, HetConv, DWC+PWC and GWC+PWC, side by side."""

from __future__ import annotations

import click

from ..core.errors import InvalidInput, positive_int, whole_numbers
from ..core.report import cheapest, layer_rows, layer_verdicts
from ..core.spec import ConvSpec, output_size
from ..render import Column, check_csv_path, console, fitted, print_json, si, write_csv
from .options import csv_option, json_option, step_options


def resolve_output_size(D, D_in, K, stride, padding) -> tuple[int, str]:
    """D_o from --D, or from --D-in/--stride/--padding, or 1 (cost per output position)."""
    if D is not None and D_in is not None:
        raise InvalidInput("--D", "give either --D (output size) or --D-in (input size), not both")
    if D_in is not None:
        stride = 1 if stride is None else stride
        d_out = output_size(D_in, K, stride, padding)
        return (
            d_out,
            f"D_o = {d_out} from D_in = {D_in}, stride {stride}, padding {K // 2 if padding is None else padding}",
        )
    if padding is not None:
        raise InvalidInput("--padding", "needs --D-in (the input size it pads)")
    if stride is not None:
        raise InvalidInput(
            "--stride", "needs --D-in (the input size it strides over; --D is the output size)"
        )
    if D is None:
        return 1, "per output position (D_o = 1); pass --D or --D-in for a whole feature map"
    return positive_int("D", D), f"D_o = {D}"


@click.command()
@click.option("--M", "M", type=int, required=True, help="Input channels M.")
@click.option("--N", "N", type=int, required=True, help="Output channels (filters) N.")
@click.option("--K", "K", type=int, default=3, show_default=True, help="Kernel size K (K×K).")
@click.option(
    "--P",
    "P",
    default="4",
    show_default=True,
    help="HetConv part P: M/P kernels of K×K per filter; a list (2,4,8) gives one row per value.",
)
@click.option("--gwc", "G", default=None, help="Groups G of GWC+PWC, or a list  [default: P].")
@click.option(
    "--D",
    "D",
    type=int,
    default=None,
    help="Output size D_o (square). Default: 1, the cost per output position.",
)
@click.option(
    "--D-in", "D_in", type=int, default=None, help="Input size D_i; D_o follows from --stride and --padding."
)
@click.option("--stride", type=int, default=None, help="Stride s with --D-in  [default: 1].")
@click.option("--padding", type=int, default=None, help="Padding p with --D-in  [default: K//2].")
@click.option(
    "--bias/--no-bias",
    default=False,
    show_default=True,
    help="Bias: N parameters and one add per output element.",
)
@click.option(
    "--grouped-sum",
    is_flag=True,
    help="Also show the common public HetConv (grouped K×K + full 1×1, summed).",
)
@click.option(
    "--first",
    is_flag=True,
    help="With --train: the network's first layer, fed by data: no input gradient.",
)
@step_options()
@csv_option
@json_option
def layer(M, N, K, P, G, D, D_in, stride, padding, bias, grouped_sum, first, step, csv_path, as_json):
    """Cost of one layer M → N (K×K) as standard conv, HetConv, DWC+PWC and GWC+PWC.

    \b
    Example:  hetcalc layer --M 256 --N 256 --K 3 --P 8 --D 56
              hetcalc layer --M 256 --N 256 --K 3 --P 2,4,8,16,32 --D 56
    FLOPs are multiply-accumulates (Eqs. 1–12 of the HetConv paper); reduction is FLOPs
    relative to the standard convolution (Eqs. 5, 7, 11), speedup its inverse (Eq. 9) and
    latency the extra sequential layers a replacement adds. Every kind also shows the bytes it
    moves (input read, weights read, output written; a second stage's input written and read again)
    and its arithmetic intensity, MACs per byte.

    \b
    With --train:  hetcalc layer --M 64 --N 64 --D 32 --P 4 --train [--first] --batch 128
    FLOPs are a training step's: forward + backward (the input gradient, none with --first; the
    weight gradient; the bias gradient's additions with --bias).
    """
    positive_int("K", K)
    train, batch, dtype = step.train, step.batch, step.dtype
    if first and not train:
        raise InvalidInput("--first", "applies to a training step: add --train")
    Ps = whole_numbers("P", P, "4 or 2,4,8")
    Gs = None if G is None else whole_numbers("G", G, "4 or 2,4,8")
    if csv_path:
        check_csv_path(csv_path)
    d_out, d_note = resolve_output_size(D, D_in, K, stride, padding)
    spec = ConvSpec(M=M, N=N, K=K, H=d_out, stride=stride or 1, bias=bias)
    step = {"train": train, "first": first, "batch": batch, "D_in": D_in or d_out, "dtype": dtype}
    rows = layer_rows(spec, Ps, Gs, grouped_sum=grouped_sum, **step)
    verdicts = layer_verdicts(spec, rows, **step)
    notes = [d_note]
    if train:
        gradients = (
            "the weight gradient; no input gradient: the first layer"
            if first
            else "input and weight gradients"
        )
        notes.append(f"a training step at batch {batch}: forward + backward ({gradients})")
    elif batch > 1:
        notes.append(f"batch {batch}")
    if M != N:
        notes.append(
            "GWC+PWC: groupwise M → M, then pointwise M → N (the paper's experiments; Eq. 10 assumes M = N)"
        )
    if csv_path:
        write_csv(rows, csv_path)
        if csv_path == "-":
            return
    if as_json:
        one = lambda values: values[0] if len(values) == 1 else values
        print_json(
            {
                "unit": "multiply-accumulates",
                "layer": {
                    "M": M,
                    "N": N,
                    "K": K,
                    "D_out": d_out,
                    "stride": stride or 1,
                    "bias": bias,
                    "P": one(Ps),
                    "G": one(Gs or Ps),
                    "D_in": D_in or d_out,
                    "batch": batch,
                    "train": train,
                    "first": first,
                    "dtype": dtype,
                },
                "rows": rows,
                "comparisons": verdicts,
                "cheapest": cheapest(rows)["kind"],
                "notes": notes,
            }
        )
        return
    out = console()
    title = f"Layer {M} → {N}, {K}×{K}, D_o = {d_out}" + (", with bias" if bias else "")
    columns = [
        Column("kind", "left"),
        Column("step FLOPs\n(MACs)" if train else "FLOPs\n(MACs)"),
        *([Column("backward", drop=5)] if train else []),
        Column("params"),
        Column("reduction"),
        Column("speedup"),
        Column("latency", drop=2),
        Column("bytes", drop=4),
        Column("MACs/\nbyte", drop=3),
        Column("equation", "left", drop=1),
    ]
    body = [
        [
            r["label"],
            si(r["flops"]),
            *([si(r["backward_flops"])] if train else []),
            si(r["params"]),
            f"{r['reduction']:.4f}",
            f"{r['speedup']:.2f}×",
            r["latency"],
            si(r["bytes"]),
            f"{r['intensity']:.1f}",
            r["equation"],
        ]
        for r in rows
    ]
    caption = "FLOPs = multiply-accumulates" + (" + bias adds" if bias else "") + "; " + "; ".join(notes)
    caption += f"; bytes in {dtype}"
    out.print(fitted(title, columns, body, caption, width=out.width))
    best = cheapest(rows)
    out.print(
        f"Cheapest: [bold]{best['label']}[/bold] ({si(best['flops'])} FLOPs, latency {best['latency']})."
    )
    for v in verdicts:
        mark = "holds" if v["holds"] else "does not hold"
        note = f" ({v['note']})" if v["note"] else ""
        out.print(
            f"{v['equation']}: {v['claim']}: {v['left']:.4f} vs {v['right']:.4f} of standard — {mark}{note}."
        )
