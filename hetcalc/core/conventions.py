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
from functools import lru_cache

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
    """A record's costs: as built, the standard convolution its reduction is measured against, SE, BatchNorm;
    and the stages (``hetcalc.core.cost.Stage``) of the first three, from which a training step is counted."""

    built: Cost
    standard: Cost
    se: Cost = cost.ZERO
    norm: Cost = cost.ZERO
    stages: tuple = ()
    standard_stages: tuple = ()
    se_stages: tuple = ()


@lru_cache(maxsize=4096)
def costs(layer) -> LayerCosts:
    """The costs of one layer record (Conv, Linear, Ops or Other), by its kind's formula in ``hetcalc.core.kinds``.

    A convolution's reduction is measured against the standard convolution M → N, K×K in its
    place; a grouped or non-square layer (never replaced) against itself, a masked one against
    its dense filter bank.
    """
    norm = sum((cost.batchnorm(c) for c in layer.norm), cost.ZERO)
    if isinstance(layer, Linear):
        stages = cost.linear_stages(layer.in_features, layer.out_features, layer.bias, layer.positions)
        built = held(layer, cost.total(stages))
        return LayerCosts(built, built, norm=norm, stages=stages, standard_stages=stages)
    if isinstance(layer, Ops):
        built = Cost(sum(macs for _, macs in layer.macs))
        return LayerCosts(built, built, norm=norm)
    if not isinstance(layer, Conv):  # Other: parameters only
        return LayerCosts(Cost(0, 0, layer.params), Cost(0, 0, layer.params), norm=norm)
    if layer.taps is not None:
        stages = cost.masked_stages(layer.taps, layer.spec.positions, layer.N, layer.spec.bias)
        standard = cost.grouped_stages(layer.spec, layer.G or 1) if layer.kind == "masked" else stages
    else:
        stages = kinds.layer_stages(layer.spec, layer.kind, layer.setting, layer.mid)
        standard = stages if layer.kind == "grouped" else cost.standard_stages(layer.spec)
    se = cost.squeeze_excitation_stages(layer.N, layer.se, name=layer.name) if layer.se else ()
    built = held(layer, cost.total(stages))
    return LayerCosts(built, cost.total(standard), cost.total(se), norm, stages, standard, se)


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


@dataclass(frozen=True)
class Step:
    """One layer record in a count at a batch: forward and backward FLOPs under a convention (``backward`` None:
    not a training count), params, activations (output elements) and the elements it moves (None: a record with
    no traffic formula, ``Ops``)."""

    forward: object
    backward: object
    params: object
    activations: int
    moved: int | None


def step(layer, convention: str, *, batch: int = 1, train: bool = False, input_grad: bool = True) -> Step:
    """The counts of one layer record ``batch`` times (a zoo record: ``batch`` images; a traced one, which holds its
    call's images, once); with ``train``, what ``loss.backward()`` runs for it too.

    Backward (``hetcalc.core.cost.backward``, from the layer's stages): the input gradient where ``input_grad``,
    the weight and bias gradients where the layer is not ``frozen``; none where the loss does not reach it
    (``reached``). Under ``exact`` its MACs; under ``paper`` the rule of the forward: the standard convolution's
    backward in its place (MACs + bias-gradient additions) times the ratio of the layer's backward MACs to it.
    An ``Ops`` record holds what its trace counted, at the spec's batch.
    """
    flops, params = measure(layer, convention)
    c = costs(layer)
    if isinstance(layer, Ops):
        backward = sum(macs for _, macs in layer.backward) if train else None
        return Step(flops, backward, params, layer.activations, None)
    if not isinstance(layer, (Conv, Linear)):
        return Step(0, 0 if train else None, params, 0, None)
    batch *= getattr(layer, "images", 1)
    se_input = layer.N if isinstance(layer, Conv) else layer.out_features
    moved = cost.traffic(c.stages, _inputs(layer), batch) + (
        cost.traffic(c.se_stages, se_input, batch) if c.se_stages else 0
    )
    acts = batch * (cost.activations(c.stages) + cost.activations(c.se_stages))
    backward = None
    if train and not layer.reached:
        backward = 0
    elif train:
        trained = not layer.frozen
        built = cost.backward(c.stages, input_grad, trained)
        se = cost.backward(c.se_stages, input_grad or trained, trained)
        if convention == "exact":
            backward = built.macs + se.macs
        else:
            core = built
            if isinstance(layer, Conv):
                standard = cost.backward(c.standard_stages, input_grad, trained)
                core = standard.scaled(Fraction(built.macs, standard.macs)) if standard.macs else cost.ZERO
            backward = core.flops + se.flops
        backward *= batch
    return Step(flops * batch, backward, params, acts, moved)


def _inputs(layer) -> int:
    """Elements of one image's input to a Conv or Linear record."""
    if isinstance(layer, Linear):
        return layer.in_features * layer.positions
    return layer.M * layer.D_in * (layer.W_in or layer.D_in)
