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


# Plans, predicted time and the design search (torch: imported inside).


def _loaded(model, input_size=None):
    """(model on the CPU, input size, name, traced spec) of a zoo name or an nn.Module."""
    from .real.load import input_size_of, load_model
    from .real.trace import trace

    if isinstance(model, str):
        model, size, name = load_model(model)
    else:
        size, name = input_size_of(model, input_size), type(model).__name__
    return model, size, name, trace(model, size, name)


def plan(
    model, variant: str = "hetconv", *, P=None, G=None, impl: str = "exact", keep_first=True, input_size=None
):
    """The per-layer plan (``hetcalc.core.plan.Plan``) of ``variant`` for a zoo model's records (a name; no
    torch) or an ``nn.Module`` (traced: call order); ``plan.to_json()`` is what ``--plan FILE`` reads."""
    from .core.plan import derive

    if isinstance(model, str):
        from .core.zoo import get_model

        return derive(get_model(model), variant, P, G, impl=impl, keep_first=keep_first)
    return derive(_loaded(model, input_size)[3], variant, P, G, impl=impl, keep_first=keep_first)


def _conditions(batch, threads, channels_last, fold):
    from .real.latency import Conditions

    return Conditions(batch=batch, threads=threads or 0, channels_last=channels_last, fold=fold).resolved()


def latency(
    model,
    plan=None,
    *,
    P=None,
    G=None,
    dwc: bool = False,
    impl: str = "grouped_sum",
    batch: int = 8,
    threads: int | None = None,
    channels_last: bool = False,
    fold: bool = False,
    check: bool = True,
    repeats: int = 5,
    cache=None,
    input_size=None,
):
    """The predicted time of ``model`` (a zoo name or an nn.Module) as ``plan`` (or the variant of ``P``, ``G``,
    ``dwc``) builds it, on this machine: a DataFrame per layer (name, kind, P, G, flops, ms, spread), the
    totals and the same-run measurement (``check``) in ``.attrs``, as ``hetcalc latency --json``."""
    import pandas as pd

    from .core.plan import derive
    from .real import latency as predicting

    model, _, _, spec = _loaded(model, input_size)
    variant = "gwc_pwc" if G is not None else "dwc_pwc" if dwc else "hetconv"
    plan = plan or derive(spec, variant, P, G, impl=impl)
    table = predicting.Table.load(cache)
    result = predicting.run_latency(
        model,
        spec,
        plan,
        _conditions(batch, threads, channels_last, fold),
        table,
        check=check,
        repeats=repeats,
    )
    frame = pd.DataFrame(result["layers"])
    frame.attrs.update({k: v for k, v in result.items() if k != "layers"})
    return frame


class SearchResult:
    """What ``search`` found: ``plan`` (the chosen ``Plan``), ``payload`` (``hetcalc search --json``), the front
    and the uniform variants as DataFrames, and ``figure()`` (the Pareto front)."""

    def __init__(self, payload: dict, plan):
        self.payload, self.plan = payload, plan

    @property
    def front(self):
        import pandas as pd

        return pd.DataFrame(self.payload["front"])

    @property
    def uniform(self):
        import pandas as pd

        return pd.DataFrame(self.payload["uniform"])

    def figure(self, measured=None):
        return plot.pareto_figure(self.payload, measured)


def search(
    model,
    *,
    P=(2, 4, 8, 16, 32),
    G=(),
    dwc: bool = False,
    impl: str = "grouped_sum",
    objective: str = "latency",
    constraints=(),
    keep_first: bool = False,
    batch: int = 8,
    threads: int | None = None,
    channels_last: bool = False,
    fold: bool = False,
    repeats: int = 5,
    check: bool = True,
    cache=None,
    input_size=None,
) -> SearchResult:
    """The exact best per-layer plan of ``model`` for ``objective`` under ``constraints`` ('flops>=P4',
    'latency<=P8', 'params<=3M'), time predicted on this machine, the plan measured beside its prediction
    (``check``): as ``hetcalc search``."""
    from .real import latency as predicting

    model, _, _, spec = _loaded(model, input_size)
    payload, chosen = predicting.run_search(
        model,
        spec,
        _conditions(batch, threads, channels_last, fold),
        predicting.Table.load(cache),
        objective,
        constraints,
        P,
        G,
        dwc,
        impl,
        keep_first,
        repeats,
        check=check,
    )
    return SearchResult(payload, chosen)
