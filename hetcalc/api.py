"""The notebook API: pandas DataFrames and matplotlib Figures, nothing printed, nothing shown.

>>> from hetcalc.api import layer_report, speedup_curve, figure5
>>> layer_report(M=256, N=256, K=3, P=4, D=56)          # one row per kind
>>> speedup_curve(K=[3, 5])                              # long form: kind, K, P, speedup
>>> figure5(K=3)                                         # a matplotlib Figure (the paper's Figure 5)

Every number comes from ``hetcalc.core.cost``; figures are drawn by ``hetcalc.plot``.
"""

from __future__ import annotations

from . import plot
from .core.report import frame, layer_rows
from .core.spec import ConvSpec


def layer_report(M: int, N: int, K: int, P: int, G: int | None = None, D: int = 1, bias: bool = False):
    """One layer M → N (K×K, output D×D) as standard, HetConv(P), DWC+PWC and GWC+PWC(G, default P)."""
    return frame(layer_rows(ConvSpec(M=M, N=N, K=K, H=D, bias=bias), P, G))


def analyze(model: str, **options):
    """A model's ModelReport (``hetcalc.core.analyze.analyze``): totals as attributes, layers via ``.frame()``.

    With ``train=True`` on a zoo model, the step's memory is measured on the model it builds where torch is
    installed (``hetcalc.real.load.zoo_footprints``), as ``hetcalc model NAME --train`` measures it.
    """
    import importlib.util

    from .core.analyze import analyze as run

    if options.get("train") and isinstance(model, str) and "footprint" not in options:
        if importlib.util.find_spec("torch") is not None:
            from .real.load import zoo_footprints

            batch, dtype = options.get("batch") or 1, options.get("dtype", "float32")
            options["footprint"] = zoo_footprints(batch=batch, dtype=dtype)
    return run(model, **options)


def model_report(model: str, **options):
    """A model's per-layer DataFrame; ``options`` as for ``hetcalc.core.analyze.analyze`` (P, dataset, variant, …)."""
    return analyze(model, **options).frame()


def table1(convention: str = "paper"):
    """The paper's Table 1 (VGG-16 on CIFAR-10): published and reproduced numbers with deltas."""
    from .core.paper import table1_frame

    return table1_frame(convention)


def speedup_curve(K=3, P_max: int = 64, M: int = 256):
    """Figure 5's data in long form: columns kind (hetconv, gwc_pwc, dwc_pwc), K, P, speedup."""
    return plot.long_form(plot.speedup_series(K, P_max, M))


def figure5(K=3, P_max: int = 64, M: int = 256, measured=None):
    """The paper's Figure 5 as a Figure; ``measured`` is a bench JSON file or its parsed dict."""
    series = plot.speedup_series(K, P_max, M)
    if measured is not None:
        series += (
            plot.measured_series(measured) if isinstance(measured, dict) else plot.load_measured(measured)
        )
    return plot.figure5(series)


def model_figure(report, **options):
    """Per-layer FLOPs, standard vs replaced; ``report`` is a ModelReport, its DataFrame or a model name."""
    if isinstance(report, str):
        report = analyze(report, **options)
    return plot.model_figure(report)


save = plot.save
