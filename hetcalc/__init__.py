"""hetcalc: exact FLOPs and parameters of heterogeneous-kernel convolutions (HetConv, LHC).

The symbolic core (``hetcalc.spec``, ``hetcalc.cost``, ``hetcalc.report``) imports no torch.
"""

from .cost import Cost
from .spec import ConvSpec, output_size

__version__ = "0.1.0"
__all__ = ["Cost", "ConvSpec", "output_size", "__version__"]
