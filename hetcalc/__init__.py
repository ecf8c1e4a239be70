"""hetcalc: exact FLOPs and parameters of heterogeneous-kernel convolutions (HetConv, LHC).

The symbolic core (``hetcalc.core``: specs, formulas, kinds, records, plans, counting) imports no torch.
``hetcalc.convert(model, plan)`` (and ``convert_gwc``, ``convert_dwc``; from ``hetcalc.real.conversion``)
load torch on first use; ``hetcalc.real.trace.trace`` turns any nn.Module into a model spec;
``hetcalc.Plan`` is a per-layer plan (``hetcalc.core.plan``).
"""

from .core.cost import Cost
from .core.spec import ConvSpec, output_size

__version__ = "0.1.0"
__all__ = ["Cost", "ConvSpec", "output_size", "__version__"]  # convert, Plan &c. stay lazy: not in *-imports

_LAZY = {
    "convert": ".real.conversion",
    "convert_gwc": ".real.conversion",
    "convert_dwc": ".real.conversion",
    "Plan": ".core.plan",
}


def __getattr__(name):
    """``hetcalc.convert(model, plan)`` and ``hetcalc.Plan``, imported on first use: ``import hetcalc`` stays light."""
    if name not in _LAZY:
        raise AttributeError(f"module 'hetcalc' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value
