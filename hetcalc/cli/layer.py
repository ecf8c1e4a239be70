"""``hetcalc layer``: one layer as standard, HetConv, DWC+PWC and GWC+PWC, side by side."""

from __future__ import annotations

import click

from ..errors import InvalidInput, positive_int
from ..render import console, print_json, si, table
from ..report import cheapest, layer_rows, layer_verdicts
from ..spec import ConvSpec, output_size
from . import json_option


def resolve_output_size(D, D_in, K, stride, padding) -> tuple[int, str]:
    """D_o from --D, or from --D-in/--stride/--padding, or 1 (cost per output position)."""
    if D is not None and D_in is not None:
        raise InvalidInput("--D", "give either --D (output size) or --D-in (input size), not both")
    if D_in is not None:
        d_out = output_size(D_in, K, stride, padding)
        return (
            d_out,
            f"D_o = {d_out} from D_in = {D_in}, stride {stride}, padding {K // 2 if padding is None else padding}",
        )
    if padding is not None:
        raise InvalidInput("--padding", "needs --D-in (the input size it pads)")
    if D is None:
        return 1, "per output position (D_o = 1); pass --D or --D-in for a whole feature map"
    return positive_int("D", D), f"D_o = {D}"


@click.command()
@click.option("--M", "M", type=int, required=True, help="Input channels M.")
@click.option("--N", "N", type=int, required=True, help="Output channels (filters) N.")
@click.option("--K", "K", type=int, default=3, show_default=True, help="Kernel size K (K×K).")
@click.option(
    "--P", "P", type=int, default=4, show_default=True, help="HetConv part P: M/P kernels of K×K per filter."
)
@click.option("--G", "G", type=int, default=None, help="Groups of GWC+PWC  [default: P].")
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
@click.option("--stride", type=int, default=1, show_default=True, help="Stride s.")
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
@json_option
def layer(M, N, K, P, G, D, D_in, stride, padding, bias, grouped_sum, as_json):
    """Cost of one layer M → N (K×K) as standard conv, HetConv, DWC+PWC and GWC+PWC.

    \b
    Example:  hetcalc layer --M 256 --N 256 --K 3 --P 8 --D 56
    FLOPs are multiply-accumulates (Eqs. 1–12 of the HetConv paper); reduction is FLOPs
    relative to the standard convolution (Eqs. 5, 7, 11), speedup its inverse (Eq. 9) and
    latency the extra sequential layers a replacement adds.
    """
    positive_int("K", K)
    d_out, d_note = resolve_output_size(D, D_in, K, stride, padding)
    spec = ConvSpec(M=M, N=N, K=K, H=d_out, stride=stride, bias=bias)
    rows = layer_rows(spec, P, G, grouped_sum=grouped_sum)
    verdicts = layer_verdicts(spec, P, G)
    notes = [d_note]
    if M != N:
        notes.append(
            "GWC+PWC: groupwise M → M, then pointwise M → N (the paper's experiments; Eq. 10 assumes M = N)"
        )
    if as_json:
        print_json(
            {
                "unit": "multiply-accumulates",
                "layer": {
                    "M": M,
                    "N": N,
                    "K": K,
                    "D_out": d_out,
                    "stride": stride,
                    "bias": bias,
                    "P": P,
                    "G": G or P,
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
        ("kind", "left"),
        ("FLOPs (MACs)", "right"),
        ("params", "right"),
        ("reduction", "right"),
        ("speedup", "right"),
        ("latency", "right"),
        ("equation", "left"),
    ]
    body = [
        [
            r["label"],
            si(r["flops"]),
            si(r["params"]),
            f"{r['reduction']:.4f}",
            f"{r['speedup']:.2f}×",
            r["latency"],
            r["equation"],
        ]
        for r in rows
    ]
    caption = "FLOPs = multiply-accumulates" + (" + bias adds" if bias else "") + "; " + "; ".join(notes)
    out.print(table(title, columns, body, caption))
    best = cheapest(rows)
    out.print(
        f"Cheapest: [bold]{best['label']}[/bold] ({si(best['flops'])} FLOPs, latency {best['latency']})."
    )
    for v in verdicts:
        mark = "holds" if v["holds"] else "does not hold"
        out.print(f"{v['equation']}: {v['claim']}: {v['left']:.4f} vs {v['right']:.4f} of standard — {mark}.")
