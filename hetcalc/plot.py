"""Figures: the paper's Figure 5 and per-layer model costs, as matplotlib Figures.

Data first, drawing second: :func:`speedup_series` computes every plotted value from
``hetcalc.core.cost`` (Eqs. 5, 7, 9, 11) and :func:`figure5` only draws those series, so the
``--json`` output of ``hetcalc plot speedup`` and the figure are the same numbers.
Figures are ``matplotlib.figure.Figure`` objects, never pyplot: no global state, no show().
matplotlib is imported inside the drawing functions, not when this module is imported.
"""

from __future__ import annotations

import json
from itertools import cycle
from pathlib import Path

from .core import cost
from .core.errors import InvalidInput, existing_folder, positive_int, whole_numbers
from .render import si

FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}
P_MAX_LIMIT = 2**16

# Drawing styles, one per series kind.
_STYLE = {
    "hetconv": {"linestyle": "-", "marker": "o", "linewidth": 2.2, "zorder": 4},
    "gwc_pwc": {"linestyle": "--", "marker": "s", "linewidth": 1.6, "zorder": 3},
    "dwc_pwc": {"linestyle": ":", "marker": None, "linewidth": 1.8, "zorder": 3},
}
_KIND_COLOUR = {"hetconv": "C0", "gwc_pwc": "C1", "dwc_pwc": "C2"}
_MEASURED_MARKERS = ("D", "^", "v", "P", "X", "*", "h", "<", ">")


# Data --------------------------------------------------------------------------------------


def speedup_series(K=3, P_max: int = 64, M: int = 256) -> list[dict]:
    """The series of Figure 5 for every K: speedup (Eq. 9) against P = 1 … P_max.

    Per K: ``hetconv`` (Eq. 5), ``gwc_pwc`` with G = P (Eq. 11) and ``dwc_pwc`` with
    N = M (Eq. 7, constant in P). Each series holds every integer P; the paper's points
    are the powers of two among them. ``limit`` is the asymptote K² of HetConv.
    """
    Ks = kernel_sizes(K)
    P_max = positive_int("--P-max", P_max)
    if P_max > P_MAX_LIMIT:
        raise InvalidInput("--P-max", f"must be at most {P_MAX_LIMIT}, got {P_max}")
    M = positive_int("--M", M)
    Ps = list(range(1, P_max + 1))
    series = []
    for k in Ks:
        dwc = cost.speedup(cost.dwc_pwc_reduction(M, k))
        series += [
            {
                "kind": "hetconv",
                "K": k,
                "P": Ps,
                "limit": k**2,
                "speedup": [cost.speedup(cost.hetconv_reduction(p, k)) for p in Ps],
            },
            {
                "kind": "gwc_pwc",
                "K": k,
                "P": Ps,
                "G": Ps,
                "speedup": [cost.speedup(cost.gwc_pwc_reduction(p, k)) for p in Ps],
            },
            {"kind": "dwc_pwc", "K": k, "M": M, "N": M, "P": Ps, "speedup": [dwc] * len(Ps)},
        ]
    return series


def kernel_sizes(K) -> list[int]:
    """K as sorted distinct kernel sizes; K is an int, a '3,5,7' string or an iterable of those."""
    values = K if isinstance(K, (list, tuple, set)) else [K]
    Ks = []
    for value in values:
        Ks += whole_numbers("--K", value, "3,5,7") if isinstance(value, str) else [positive_int("--K", value)]
    if not Ks:
        raise InvalidInput("--K", "give at least one kernel size")
    return sorted(set(Ks))


def measured_series(payload) -> list[dict]:
    """Measured points from ``hetcalc bench --json``: one ``measured`` series per impl.

    ``payload`` is ``{"rows": [{"impl": str, "P": int, "speedup": float, ...}, ...]}``;
    rows of the ``standard`` implementation (the baseline, speedup 1) are left out; rows with a
    ``device`` other than ``cpu`` form their own series, named "impl (device)".
    """
    rows = payload.get("rows") if isinstance(payload, dict) else None
    if not isinstance(rows, list):
        raise InvalidInput("--measured", 'expected a JSON object {"rows": [{"impl", "P", "speedup"}, ...]}')
    by_impl: dict[str, dict] = {}
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidInput("--measured", f"rows[{i}] is not an object")
        impl, P, value = row.get("impl"), row.get("P"), row.get("speedup")
        if not isinstance(impl, str) or not impl:
            raise InvalidInput("--measured", f"rows[{i}].impl must be a non-empty string, got {impl!r}")
        if isinstance(P, bool) or not isinstance(P, int) or P < 1:
            raise InvalidInput("--measured", f"rows[{i}].P must be a whole number >= 1, got {P!r}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidInput("--measured", f"rows[{i}].speedup must be a positive number, got {value!r}")
        if impl == "standard":
            continue
        if row.get("device") not in (None, "cpu"):  # hetcalc bench times the GPU too when there is one
            impl = f"{impl} ({row['device']})"
        entry = by_impl.setdefault(impl, {"kind": "measured", "impl": impl, "P": [], "speedup": []})
        entry["P"].append(P)
        entry["speedup"].append(float(value))
    return list(by_impl.values())


def _read_json(path, parameter: str):
    """The JSON value in file ``path``, or InvalidInput naming ``parameter`` for a missing or broken file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InvalidInput(parameter, f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput(parameter, f"cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise InvalidInput(parameter, f"{path} is not valid JSON ({error})") from None


def load_measured(path) -> list[dict]:
    """:func:`measured_series` of a JSON file, with one-line errors for a missing or broken file."""
    return measured_series(_read_json(path, "--measured"))


def long_form(series: list[dict]):
    """Series as one long DataFrame: kind, K, P, speedup (+ impl for measured points)."""
    import pandas as pd

    frames = [
        pd.DataFrame(
            {
                "kind": s["kind"],
                "K": s.get("K"),
                "P": s["P"],
                "speedup": s["speedup"],
                **({"impl": s["impl"]} if "impl" in s else {}),
            }
        )
        for s in series
    ]
    return pd.concat(frames, ignore_index=True)


# Output files ------------------------------------------------------------------------------


def output_format(path) -> str:
    """'png', 'svg' or 'pdf' from the file's extension; the folder must exist."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidInput("--out", f"cannot tell the format of {path.name!r}; use a .png, .svg or .pdf file")
    existing_folder("--out", path)
    return fmt


def save(fig, path) -> str:
    """Write ``fig`` to ``path`` in the format its extension names; reproducible (no dates)."""
    fmt = output_format(path)
    metadata = {"svg": {"Date": None}, "pdf": {"CreationDate": None}}.get(fmt, {})
    fig.savefig(path, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
    return fmt


# Figures -----------------------------------------------------------------------------------


def _powers_of_two(up_to: float) -> list[int]:
    powers, p = [], 1
    while p <= up_to:
        powers.append(p)
        p *= 2
    return powers


def figure5(series: list[dict]):
    """Figure 5: speedup against P (log₂ axis) with the asymptote K² dashed.

    HetConv and GWC+PWC are drawn over every integer P with markers at powers of two;
    DWC+PWC is a horizontal line; ``measured`` series are markers only. With one K the
    colours tell the kinds apart; with several, the colours tell the K apart.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    theory = [s for s in series if s["kind"] != "measured"]
    measured = [s for s in series if s["kind"] == "measured"]
    Ks = sorted({s["K"] for s in theory})
    single = len(Ks) <= 1

    def colour(s):
        return _KIND_COLOUR[s["kind"]] if single else f"C{Ks.index(s['K']) % 10}"

    fig = Figure(figsize=((11 if measured else 8), 5.2) if single else (8.5, 6.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log", base=2)
    P_max = max([p for s in series for p in s["P"]] or [1])

    for s in theory:
        style = _STYLE[s["kind"]]
        marks = [i for i, p in enumerate(s["P"]) if p & (p - 1) == 0] if style["marker"] else None
        label = _label(s, single) if single else "_nolegend_"  # several K: one legend entry per kind, below
        ax.plot(
            s["P"],
            s["speedup"],
            color=colour(s),
            label=label,
            markevery=marks,
            markersize=6,
            markeredgecolor="white",
            markeredgewidth=0.8,
            **style,
        )
        if s["kind"] == "dwc_pwc":
            ax.annotate(
                f"DWC+PWC {s['speedup'][0]:.2f}×",
                xy=(1, s["speedup"][0]),
                xytext=(4, -3),
                textcoords="offset points",
                va="top",
                fontsize=8,
                color=colour(s),
            )
        if s["kind"] != "hetconv":
            continue
        limit_colour = "0.35" if single else colour(s)
        ax.axhline(s["limit"], color=limit_colour, linestyle=(0, (6, 3)), linewidth=1, alpha=0.8, zorder=1)
        ax.annotate(
            f"asymptote K² = {s['limit']}  (P → ∞)",
            xy=(1, s["limit"]),
            xytext=(4, 3),
            textcoords="offset points",
            color=limit_colour,
            fontsize=9,
            va="bottom",
        )
        if single:
            for i in marks[1:]:
                ax.annotate(
                    f"{s['speedup'][i]:.2f}×",
                    xy=(s["P"][i], s["speedup"][i]),
                    xytext=(-4, 7),
                    textcoords="offset points",
                    ha="right",
                    fontsize=8,
                    color=colour(s),
                )

    for s, marker in zip(measured, cycle(_MEASURED_MARKERS)):  # coloured as the theory they measure
        impl = s["impl"].split(" ")[0]
        family = "hetconv" if impl in ("exact", "fast", "grouped_sum") else impl
        ax.scatter(
            s["P"],
            s["speedup"],
            marker=marker,
            s=46,
            color=_KIND_COLOUR.get(family, "black"),
            facecolor="white",
            linewidths=1.4,
            label=f"measured: {s['impl']}",
            zorder=5,
        )

    ax.xaxis.set_major_locator(FixedLocator(_powers_of_two(P_max)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0.9, P_max * 1.12)
    top = max([k**2 for k in Ks] + [v for s in series for v in s["speedup"]] + [1])
    ax.set_ylim(0, top * 1.1)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("P  (each filter has M/P kernels of K×K and M − M/P of 1×1; log₂ scale)")
    ax.set_ylabel("Speedup over standard convolution (×)")
    ax.set_title("HetConv speedup over standard convolution (paper's Figure 5, Eq. 9)")
    if single and measured:  # measured points fill the lower right: the legend goes beside the axes
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9)
    elif single:
        ax.legend(loc="lower right", fontsize=9, framealpha=0.95)
    else:
        kinds = list(dict.fromkeys(s["kind"] for s in theory))
        handles = [Line2D([], [], color="0.25", **_STYLE[kind]) for kind in kinds]
        labels = [_label(next(s for s in theory if s["kind"] == kind), single) for kind in kinds]
        handles += [Line2D([], [], color=f"C{i % 10}", linewidth=5) for i in range(len(Ks))]
        labels += [f"K = {k}  ({k}×{k} kernels)" for k in Ks]
        extra, extra_labels = ax.get_legend_handles_labels()
        fig.legend(handles + extra, labels + extra_labels, loc="outside lower center", ncols=3, fontsize=9)
    return fig


def _label(s: dict, single: bool) -> str:
    shape = f" ({s['K']}×{s['K']} + 1×1)" if single else ""
    return {
        "hetconv": f"HetConv{shape} — Eq. 5",
        "gwc_pwc": "GWC+PWC, G = P — Eq. 11, +1 layer latency",
        "dwc_pwc": f"DWC+PWC, N = M = {s.get('M')} — Eq. 7, +1 layer latency",
    }[s["kind"]]


def model_figure(report, title: str | None = None):
    """Per-layer FLOPs, standard vs replaced network (log scale), and each layer's reduction.

    ``report`` is a ModelReport (``hetcalc.core.analyze``) or a DataFrame of its layers with
    columns name, flops_before, flops_after.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    layers = report if hasattr(report, "columns") else report.frame()
    names = [str(n) for n in layers["name"]]
    before = [float(v) for v in layers["flops_before"]]
    after = [float(v) for v in layers["flops_after"]]
    reduction = [cost.saved_pct(a, b) for a, b in zip(after, before)]
    x = list(range(len(names)))

    width = max(7.5, 0.32 * len(names) + 2)
    fig = Figure(figsize=(width, 6), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1.3))
    replaced = _variant_label(report)
    top.bar([i - 0.2 for i in x], before, width=0.4, color="#9aa5b1", label="standard")
    top.bar([i + 0.2 for i in x], after, width=0.4, color="C0", label=replaced)
    top.set_yscale("log")
    top.set_ylim(top=max(before + after + [1]) * 12)  # headroom for the legend on a log axis
    top.set_ylabel("FLOPs (multiply-accumulates)")
    top.grid(True, axis="y", which="major", alpha=0.3)
    top.legend(loc="upper right", ncols=2, fontsize=9)

    bottom.bar(x, reduction, width=0.6, color="C2")
    bottom.yaxis.set_major_formatter(PercentFormatter(decimals=0))
    bottom.set_ylim(0, 100)
    bottom.set_ylabel("FLOPs reduced")
    bottom.grid(True, axis="y", alpha=0.3)
    if len(names) <= 40:
        for i, r in enumerate(reduction):
            if r > 0.05:
                bottom.annotate(
                    f"{r:.0f}",
                    xy=(i, r),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    bottom.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    bottom.set_xlabel("layer")

    total_before, total_after = sum(before), sum(after)
    saved = cost.saved_pct(total_after, total_before)
    model = getattr(report, "model", None)
    convention = getattr(report, "convention", None)
    head = title or f"{model or 'Model'}: per-layer FLOPs, standard vs {replaced}"
    top.set_title(
        f"{head}\ntotal {si(total_before)} → {si(total_after)} FLOPs ({saved:.2f}% fewer)"
        + (f", {convention} convention" if convention else "")
    )
    return fig


def _variant_label(report) -> str:
    """The variant's title of a ModelReport; 'HetConv' for a DataFrame of layers."""
    return report.variant_title() if hasattr(report, "variant_title") else "HetConv"


def load_bench(path) -> dict:
    """A ``hetcalc bench --model --json`` file, checked to hold per-layer rows (one-line errors)."""
    payload = _read_json(path, "FILE")
    layers = payload.get("layers") if isinstance(payload, dict) else None
    keys = (
        "variant",
        "name",
        "flops_share_before",
        "flops_share_after",
        "time_share_before",
        "time_share_after",
    )
    if (
        not isinstance(layers, list)
        or not layers
        or not all(isinstance(r, dict) and set(keys) <= set(r) for r in layers)
    ):
        raise InvalidInput(
            "FILE", f"{path} is not the JSON of 'hetcalc bench --model … --json' (no per-layer rows)"
        )
    return payload


def _bench_variants(payload: dict, variants: list[str] | None) -> list[str]:
    known = list(dict.fromkeys(r["variant"] for r in payload["layers"]))
    unknown = [v for v in variants or () if v not in known]
    if unknown:
        raise InvalidInput("variant", f"unknown {', '.join(unknown)}; in the file: {', '.join(known)}")
    return list(variants or known)


def layer_speedups(payload: dict, variant: str, predicted: dict | None = None) -> list[dict]:
    """Per replaced layer of ``variant``: measured speedup (ms before / after), FLOPs speedup and, from a
    ``hetcalc latency --json`` of the same plan, the predicted speedup (its standard ms / its ms)."""
    by_name = {r["name"]: r for r in (predicted or {}).get("layers", [])}
    rows = []
    for r in payload["layers"]:
        if r["variant"] != variant or r["name"].startswith("("):
            continue
        guess = by_name.get(r["name"])
        rows.append(
            {
                "name": r["name"],
                "measured": r["ms_before"] / r["ms_after"] if r["ms_after"] else None,
                "flops": r["flops_before"] / r["flops_after"] if r["flops_after"] else None,
                "predicted": guess["standard_ms"] / guess["ms"] if guess and guess["ms"] else None,
            }
        )
    return rows


def bench_figure(payload: dict, variants: list[str] | None = None, view: str = "speedup", predicted=None):
    """Per replaced layer of each converted network (one panel each): ``view="speedup"``, measured speedup
    against FLOPs speedup (and predicted, from ``predicted``: a ``hetcalc latency --json`` payload);
    ``view="share"``, FLOPs share against time share, standard and converted."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    if view not in ("speedup", "share"):
        raise InvalidInput("view", f"must be speedup or share, got {view!r}")
    variants = _bench_variants(payload, variants)
    labels = {r["variant"]: r.get("label", r["variant"]) for r in payload.get("rows", [])}
    speedups = {r["variant"]: r for r in payload.get("rows", [])}
    names = [r["name"] for r in payload["layers"] if r["variant"] == variants[0]]
    if view == "speedup":
        names = [n for n in names if not n.startswith("(")]
    fig = Figure(figsize=(max(8, 0.55 * len(names) + 3), 3.2 * len(variants) + 0.8), layout="constrained")
    axes = fig.subplots(len(variants), 1, sharex=True, squeeze=False)[:, 0]
    for ax, variant in zip(axes, variants):
        if view == "speedup":
            rows = layer_speedups(payload, variant, predicted)
            x = list(range(len(rows)))
            ax.bar(x, [r["flops"] or 0 for r in rows], 0.6, color="#c9d1d9", label="FLOPs speedup")
            ax.plot(x, [r["measured"] for r in rows], "o", color="C0", label="measured speedup")
            if any(r["predicted"] for r in rows):
                ax.plot(x, [r["predicted"] for r in rows], "x", color="C3", ms=8, label="predicted speedup")
            ax.axhline(1, color="#6e7781", lw=0.8)
            ax.set_ylabel("speedup (×)")
        else:
            rows = [r for r in payload["layers"] if r["variant"] == variant]
            for i, (key, label, colour) in enumerate(
                (
                    ("flops_share_before", "FLOPs share, standard", "#c9d1d9"),
                    ("time_share_before", "time share, standard", "#6e7781"),
                    ("flops_share_after", "FLOPs share, converted", "#9ecae1"),
                    ("time_share_after", "time share, converted", "C0"),
                )
            ):
                ax.bar(
                    [j + (i - 1.5) * 0.2 for j in range(len(rows))],
                    [100 * r[key] for r in rows],
                    0.2,
                    color=colour,
                    label=label,
                )
            ax.yaxis.set_major_formatter(PercentFormatter(decimals=None))
            ax.set_ylabel("share of the network")
        row = speedups.get(variant, {})
        measured = f": measured {row['speedup']:.2f}×, FLOPs {row['flops_speedup']:.2f}×" if row else ""
        ax.set_title(f"{labels.get(variant, variant)}{measured}", fontsize=10, loc="left")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", ncols=2, fontsize=8)
    axes[-1].set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    mach = payload.get("machine", {})
    fig.suptitle(
        f"{payload.get('model', 'model')}, batch {payload.get('batch')}: "
        + ("measured speedup against FLOPs, layer by layer" if view == "speedup" else "where the time goes")
        + f" ({mach.get('cpu', '?')}, {payload.get('threads')} threads)"
    )
    return fig


def load_search(path) -> dict:
    """A ``hetcalc search --json`` file, checked to hold a front, the uniform variants and the chosen plan."""
    payload = _read_json(path, "FILE")
    if not isinstance(payload, dict) or not {"front", "uniform", "chosen"} <= set(payload):
        raise InvalidInput("FILE", f"{path} is not the JSON of 'hetcalc search … --json' (no front)")
    return payload


def pareto_figure(payload: dict, measured: dict | None = None):
    """The search's front (predicted time against FLOPs), the uniform variants and the chosen plan; with
    ``measured`` (a ``hetcalc bench --model --json`` payload), each network's measured time beside it."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    front = payload["front"]
    ax.step([p["ms"] for p in front], [p["flops"] / 1e6 for p in front], where="post", color="C0", lw=1.4)
    ax.plot(
        [p["ms"] for p in front],
        [p["flops"] / 1e6 for p in front],
        ".",
        color="C0",
        ms=4,
        label="Pareto front (predicted)",
    )
    for u in payload["uniform"]:
        ax.plot(u["ms"], u["flops"] / 1e6, "s", color="#6e7781", ms=6)
        ax.annotate(
            u["name"], (u["ms"], u["flops"] / 1e6), xytext=(5, 3), textcoords="offset points", fontsize=8
        )
    chosen = payload["chosen"]
    ax.plot(chosen["ms"], chosen["flops"] / 1e6, "*", color="C3", ms=15, label="searched plan (predicted)")
    if measured is not None:
        rows = {r["variant"]: r for r in measured.get("rows", [])}
        points = [(u["ms"], rows[u["bench"]]) for u in payload["uniform"] if u.get("bench") in rows]
        points += [(chosen["ms"], r) for r in rows.values() if r.get("impl") == "plan"]
        for predicted_ms, row in points:
            ax.plot([predicted_ms, row["ms"]], [row["flops"] / 1e6] * 2, color="#c9d1d9", lw=1, zorder=1)
        ax.plot(
            [r["ms"] for _, r in points],
            [r["flops"] / 1e6 for _, r in points],
            "o",
            mfc="white",
            color="C2",
            label="measured",
        )
    ax.set_xlabel(f"time per forward of a batch of {payload['batch']} (ms)")
    ax.set_ylabel("FLOPs per image (M multiply-accumulates)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    bounds = f" with {' and '.join(payload['constraints'])}" if payload.get("constraints") else ""
    fig.suptitle(
        f"{payload['model']}: best {payload['objective']}{bounds}\n{payload['prediction']}", fontsize=10
    )
    return fig


def intensity_series(payload: dict, variants: list[str] | None = None) -> list[dict]:
    """Per replaced layer of a ``hetcalc bench --model --json`` file: its arithmetic intensity after conversion
    (forward MACs per byte it moves at the file's batch, float32: the file's ``bytes_after``,
    ``hetcalc.core.conventions.step``) and the fraction of its FLOPs speedup the measurement realised
    (measured speedup / FLOPs speedup); one series per network."""
    rows = {r["variant"]: r for r in payload.get("rows", []) if r["variant"] != "standard"}
    unknown = [v for v in variants or () if v not in rows]
    if unknown:
        raise InvalidInput("variant", f"unknown {', '.join(unknown)}; in the file: {', '.join(rows)}")
    if not all("bytes_after" in layer for layer in payload["layers"]):
        raise InvalidInput(
            "FILE", "holds no bytes per layer: write it again with this hetcalc's 'bench --model --json'"
        )
    batch, series = payload.get("batch", 1), []
    for key in variants or list(rows):
        points = []
        for layer in payload["layers"]:
            if layer["variant"] != key or layer["name"].startswith("(") or not layer.get("speedup"):
                continue
            macs, moved = layer["flops_after"] * batch, layer["bytes_after"]
            flops_speedup = layer["flops_before"] / layer["flops_after"]
            points.append(
                {
                    "name": layer["name"],
                    "macs": macs,
                    "bytes": moved,
                    "intensity": macs / moved,
                    "speedup": layer["speedup"],
                    "flops_speedup": flops_speedup,
                    "realised": layer["speedup"] / flops_speedup,
                }
            )
        series.append({"variant": key, "label": rows[key].get("label", key), "points": points})
    return series


def intensity_figure(series: list[dict], payload: dict | None = None):
    """Realised fraction of each layer's FLOPs speedup against its arithmetic intensity (log axis), per network."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(8.5, 5.2), layout="constrained")
    ax = fig.add_subplot()
    ax.set_xscale("log")
    for s, marker in zip(series, cycle(_MEASURED_MARKERS)):
        xs, ys = [p["intensity"] for p in s["points"]], [p["realised"] for p in s["points"]]
        ax.scatter(xs, ys, marker=marker, s=46, label=s["label"], zorder=4)
        if len(series) == 1:
            for p in s["points"]:
                ax.annotate(
                    p["name"],
                    (p["intensity"], p["realised"]),
                    xytext=(4, 3),
                    textcoords="offset points",
                    fontsize=7,
                )
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.axhline(1, color="0.35", linestyle=(0, (6, 3)), linewidth=1, zorder=1)
    ax.annotate(
        "FLOPs speedup realised in full",
        xy=(0, 1),
        xycoords=("axes fraction", "data"),
        xytext=(4, 3),
        textcoords="offset points",
        fontsize=8,
        color="0.35",
    )
    ax.set_ylim(bottom=0)
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("arithmetic intensity after conversion (MACs per byte moved, float32; log scale)")
    ax.set_ylabel("realised fraction (measured speedup / FLOPs speedup)")
    payload = payload or {}
    mach = payload.get("machine", {})
    ax.set_title(
        f"{payload.get('model', 'model')}, batch {payload.get('batch')}: realised speedup per layer against "
        f"intensity\n({mach.get('cpu', '?')}, {payload.get('threads')} threads)",
        fontsize=10,
    )
    if series:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    return fig
