"""How a model's FLOPs and parameters are totalled: two conventions, one general rule each.

Conventions (README section)
----------------------------

hetcalc counts a network in one of two conventions, named in every output (``--convention``).
Both count one multiply-accumulate (MAC) as one FLOP, the unit of the HetConv paper and of
fvcore. A variant replaces every convolution but the first, except 1×1 convolutions (with K = 1
HetConv changes nothing); the baseline is the unmodified network counted the same way.

``exact`` — what the network computes and stores. FLOPs are the multiply-accumulates of the
convolution and fully connected layers (Squeeze-and-Excitation included), every kept kernel tap
counted once (the unit of Eqs. 1–12); no bias additions, BatchNorm, activations or pooling.
Params are every learnable parameter, as ``sum(p.numel() for p in model.parameters())`` counts
them: weights, biases and BatchNorm's scale and shift (2 per channel). These are the numbers
fvcore and PyTorch report for ``hetcalc.real.build.build_model``.

``paper`` (the default) — the rule the paper's Table 1 follows. FLOPs are MACs plus bias
additions of the convolution and fully connected layers (SE included); BatchNorm, ReLU and
pooling are left out, and so are BatchNorm's parameters. A convolution of any kind costs what
the standard convolution M → N, K×K in its place costs (MACs + bias additions; weights +
biases), times its layer-level reduction: the ratio of its multiply-accumulates to the
standard convolution's (Eq. 5 for HetConv, Eq. 7 for DWC+PWC, Eq. 10 over Eq. 1 for GWC+PWC,
whose groupwise stage maps M → M). A layer kept as it is has ratio 1, so the convention differs from
an exact count with bias adds only in scaling a replaced layer's bias along with its kernels.

A published number reproduces when ours lies within one unit of its last digit (0.01M;
0.01 percentage points), a tolerance that covers rounding to nearest and truncation alike.

Table 1 (VGG-16 on CIFAR-10) under ``paper`` (``hetcalc paper table1``):

- FLOPs reproduce in every HetConv row, P1 … P64: 313.740810M, 175.235025M, 105.982133M,
  71.355686M, 54.042463M, 45.385852M, 41.057546M, which the paper prints truncated, not
  rounded. So do the FLOPs reductions (within 0.01 pp; the paper's percentages are
  computed from its printed, truncated numbers: 1 − 45.38/313.74 = 85.54 %, ours 85.53 %),
  P1_SE's FLOPs (314.197074M), and the params of P2 … P64 and PC (8.443409M … 2.108690M:
  each replaced layer's weights and bias scaled by Eq. 5, like its FLOPs).
- P1 params: 14.982474M against 15.00M (+17,526). The CIFAR VGG-16 has 9,472 BatchNorm
  parameters (18,944 with the running statistics, which would give 15.001418M), so the
  published P1 count likely includes BatchNorm while the other rows do not.
- Params reductions (P2 … P64) come out 0.02–0.04 pp off the published ones (43.645 %
  against 43.68 %, …): no single baseline and count reproduces all six, and several are
  inconsistent with the published params themselves (1 − 5.17/15.00 = 65.53 %, published
  65.45 %, which is the exact per-kernel count 1 − 5.176650/14.982474). Reported, not fitted.
- GWC4_PWC and DWC_PWC: 107.553688M and 38.371476M, 0.116M and 0.159M below the published
  107.67M and 38.53M. The published values are instead what an exact count of real layers
  gives with a bias on the groupwise/depthwise stage only: 107.666954M and 38.528522M
  (rounded, not truncated), so these two rows were likely counted from built layers rather
  than by the Eq.-ratio rule. Their params (5.42M, 1.97M) lie 31K–32K above ours; an exact
  count with biases on both stages and a BatchNorm after each stage (as in MobileNet) gives
  5.412298M and 1.962058M, within 0.01M.
- PC: with P = M (each layer's input channels, the realisable HetConv and Eq. 8's case)
  38.418680M, 0.239M above the published 38.18M; its params (1.937638M) reproduce. P = N
  (each layer's filter count) gives 38.189006M and 1.934051M, both reproducing: the paper
  likely set P to the layer's width N, which differs from M only where the width doubles
  (64→128, 128→256, 256→512) and is not a divisor of M there (no real HetConv has it).
- SE rows (reduction 8, Linear(N, N/8) + Linear(N/8, N) with biases after each replaced
  convolution): the published FLOPs imply SE blocks of about 0.44M (R ≈ 8: ours 0.456M), but
  the published params imply about 0.23M (R ≈ 16), so no single SE block reproduces both.
  P1_SE's FLOPs reproduce; P4_SE's and P32_SE's are 0.018M and 0.022M above (0.014M and
  0.017M without SE biases), while their published FLOPs reductions (66.08 %, 85.39 %) do
  match ours. Their params reductions (64.48 %, 83.28 %) match SE params of R = 16 taken
  against P1_SE rather than against VGG-16.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from . import cost, kinds
from .cost import Cost
from .errors import InvalidInput
from .records import Conv, Linear, Ops

CONVENTIONS = ("paper", "exact")
UNIT = {
    "paper": "FLOPs = multiply-accumulates + bias adds; replaced layers scaled by their reduction (paper convention)",
    "exact": "FLOPs = multiply-accumulates; params = all learnable incl. BatchNorm (exact convention)",
}


def check(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise InvalidInput("convention", f"must be one of {', '.join(CONVENTIONS)}, got {convention!r}")
    return convention


@dataclass(frozen=True)
class LayerCosts:
    """A record's costs: as built, the standard convolution its reduction is measured against, SE, BatchNorm."""

    built: Cost
    standard: Cost
    se: Cost = cost.ZERO
    norm: Cost = cost.ZERO


def costs(layer) -> LayerCosts:
    """The costs of one layer record (Conv, Linear, Ops or Other), by its kind's formula in ``hetcalc.core.kinds``.

    A convolution's reduction is measured against the standard convolution M → N, K×K in its
    place; a grouped or non-square layer (never replaced) against itself, a masked one against
    its dense filter bank.
    """
    norm = sum((cost.batchnorm(c) for c in layer.norm), cost.ZERO)
    if isinstance(layer, Linear):
        built = held(layer, cost.linear(layer.in_features, layer.out_features, layer.bias, layer.positions))
        return LayerCosts(built, built, norm=norm)
    if isinstance(layer, Ops):
        built = Cost(sum(macs for _, macs in layer.macs))
        return LayerCosts(built, built, norm=norm)
    if not isinstance(layer, Conv):  # Other: parameters only
        return LayerCosts(Cost(0, 0, layer.params), Cost(0, 0, layer.params), norm=norm)
    if layer.taps is not None:
        built = cost.masked(layer.taps, layer.spec.positions, layer.N, layer.spec.bias)
        standard = cost.grouped(layer.spec, layer.G or 1) if layer.kind == "masked" else built
    else:
        built = kinds.layer_cost(layer.spec, layer.kind, layer.setting, layer.mid)
        standard = built if layer.kind == "grouped" else cost.standard(layer.spec)
    se = cost.squeeze_excitation(layer.N, layer.se, name=layer.name) if layer.se else cost.ZERO
    return LayerCosts(held(layer, built), standard, se, norm)


def held(layer, built: Cost) -> Cost:
    """``built`` with the parameters the layer holds: as read from its module where a trace read them
    (``params``), none in a repeated call of a module (its first call holds them)."""
    if layer.call > 1:
        return Cost(built.macs, built.adds, 0)
    return built if layer.params is None else Cost(built.macs, built.adds, layer.params)


def measure(layer, convention: str) -> tuple:
    """(FLOPs, params) of one layer record under ``convention``; exact ints or Fractions."""
    c = costs(layer)
    if check(convention) == "exact":
        return c.built.macs + c.se.macs, c.built.params + c.se.params + c.norm.params
    core = c.built
    if isinstance(layer, Conv):  # the standard convolution in its place, times its layer-level reduction
        core = held(layer, c.standard.scaled(Fraction(c.built.macs, c.standard.macs)))
    return core.flops + c.se.flops, core.params + c.se.params
