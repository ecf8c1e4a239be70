"""The cost model: the paper's Equations 1–12, one function per kind, exact integers.

Unit: one multiply-accumulate (MAC) = 1 FLOP, as in the paper and in fvcore.
Every function returns a :class:`Cost` whose ``macs`` are the multiply-accumulates of the
convolutions, ``adds`` the bias additions (one per output element of a layer with bias)
and ``params`` the learnable parameters. ``flops = macs + adds``.

Each kind is a sequence of :class:`Stage` s, the contractions its real layer runs (HetConv: a grouped
K×K conv and its 1×1 taps, both reading the layer's input; DWC+PWC: a depthwise conv, then a pointwise
conv reading its output); its forward cost is their sum, and from the same stages come a training step's
gradients (``backward``), its activations (output elements) and the elements it moves (``traffic``).
This module imports nothing heavy: it is the one home of every formula in hetcalc.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .errors import InvalidInput, dividing, positive_int
from .spec import ConvSpec


@dataclass(frozen=True)
class Cost:
    macs: int
    adds: int = 0
    params: int = 0

    @property
    def flops(self) -> int:
        """Multiply-accumulates plus bias additions (the paper counts both)."""
        return self.macs + self.adds

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.macs + other.macs, self.adds + other.adds, self.params + other.params)

    def scaled(self, factor: Fraction) -> Cost:
        """This cost times ``factor`` (kept fractional; the paper convention uses it)."""
        return Cost(self.macs * factor, self.adds * factor, self.params * factor)


ZERO = Cost(0, 0, 0)


@dataclass(frozen=True)
class Stage:
    """One contraction a layer runs: its cost, the elements it writes per image, and what it reads.

    ``chained``: it reads the stage before it (the second layer of a pair, latency 1), not the layer's input.
    """

    cost: Cost
    outputs: int
    chained: bool = False


def total(stages) -> Cost:
    """The cost of a layer: the sum of its stages'."""
    return sum((stage.cost for stage in stages), ZERO)


def _conv(spec: ConvSpec, cout: int, taps_per_filter: int) -> Cost:
    """One convolution with ``cout`` filters of ``taps_per_filter`` kept weights each, at spec's output size."""
    bias = cout if spec.bias else 0
    return Cost(
        macs=spec.positions * cout * taps_per_filter,
        adds=spec.positions * bias,
        params=cout * taps_per_filter + bias,
    )


def _conv_stage(spec: ConvSpec, cout: int, taps_per_filter: int, chained: bool = False) -> Stage:
    return Stage(_conv(spec, cout, taps_per_filter), spec.positions * cout, chained)


def standard_stages(spec: ConvSpec) -> tuple[Stage, ...]:
    """Eq. 1 as one convolution."""
    return (_conv_stage(spec, spec.N, spec.M * spec.K**2),)


def standard(spec: ConvSpec) -> Cost:
    """Eq. 1: FL_S = D_o · D_o · M · N · K · K; params N · M · K²."""
    return total(standard_stages(spec))


def hetconv_stages(spec: ConvSpec, P: int) -> tuple[Stage, ...]:
    """Eq. 2 as a grouped K×K conv with P groups (it carries the bias), and for P > 1 Eq. 3's 1×1 taps as one
    batched matmul reading the same input, written into the same output (``HetConv2d(impl="exact")``)."""
    P = dividing("P", P, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    kxk = _conv_stage(spec, spec.N, spec.M // P * spec.K**2)
    if P == 1:
        return (kxk,)
    ones = spec.N * (spec.M - spec.M // P)
    return kxk, Stage(Cost(spec.positions * ones, 0, ones), spec.positions * spec.N)


def hetconv(spec: ConvSpec, P: int) -> Cost:
    """Eqs. 2–4: FL_HC = D_o²·M·N·K²/P + D_o²·N·(M − M/P); params N·(M·K²/P + M − M/P).

    Each filter keeps M/P kernels of K×K and M − M/P kernels of 1×1 (P = 1: standard).
    """
    return total(hetconv_stages(spec, P))


def hetconv_grouped_sum_stages(spec: ConvSpec, P: int) -> tuple[Stage, ...]:
    """A grouped K×K conv (P groups, with the bias) and a full 1×1 conv over the same input, summed."""
    P = dividing("P", P, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    P = dividing("P", P, spec.N, f"the output channels N of {spec.name or 'the layer'}")
    ones = spec.N * spec.M
    kxk = _conv_stage(spec, spec.N, spec.M // P * spec.K**2)
    return kxk, Stage(Cost(spec.positions * ones, 0, ones), spec.positions * spec.N)


def hetconv_grouped_sum(spec: ConvSpec, P: int) -> Cost:
    """The common public HetConv: a grouped K×K conv (P groups) plus a full 1×1 conv, summed.

    FL = D_o²·M·N·K²/P + D_o²·M·N, a reduction of 1/P + 1/K² (not Eq. 5): its 1×1 conv
    also covers the channels that already hold a K×K kernel. One bias, on the sum.
    """
    return total(hetconv_grouped_sum_stages(spec, P))


def grouped_stages(spec: ConvSpec, G: int) -> tuple[Stage, ...]:
    G = dividing("G", G, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    G = dividing("G", G, spec.N, f"the output channels N of {spec.name or 'the layer'}")
    return (_conv_stage(spec, spec.N, spec.M // G * spec.K**2),)


def grouped(spec: ConvSpec, G: int) -> Cost:
    """One grouped K×K convolution M → N with G groups: D_o²·N·(M/G)·K² (G = 1: Eq. 1)."""
    return total(grouped_stages(spec, G))


def dwc_pwc_stages(spec: ConvSpec) -> tuple[Stage, ...]:
    """A depthwise K×K conv M → M, then a pointwise conv M → N reading its output."""
    (depthwise,) = grouped_stages(spec.with_(N=spec.M), spec.M)
    (pointwise,) = standard_stages(spec.with_(K=1))
    return depthwise, Stage(pointwise.cost, pointwise.outputs, chained=True)


def dwc_pwc(spec: ConvSpec) -> Cost:
    """Eq. 6: FL = D_o²·M·K² (depthwise, M → M) + M·N·D_o² (pointwise, M → N)."""
    return total(dwc_pwc_stages(spec))


def gwc_pwc_stages(spec: ConvSpec, G: int, mid: int | None = None) -> tuple[Stage, ...]:
    """A groupwise K×K conv M → mid (G groups), then a pointwise conv mid → N reading its output."""
    mid = spec.M if mid is None else positive_int("mid", mid)
    (groupwise,) = grouped_stages(spec.with_(N=mid), G)
    (pointwise,) = standard_stages(spec.with_(M=mid, K=1))
    return groupwise, Stage(pointwise.cost, pointwise.outputs, chained=True)


def gwc_pwc(spec: ConvSpec, G: int, mid: int | None = None) -> Cost:
    """Eq. 10: groupwise K×K conv M → mid with G groups, then pointwise mid → N.

    With ``mid = M = N`` this is Eq. 10 as written, D_o²·M·N·K²/G + M·N·D_o².
    ``mid`` defaults to M, as in the paper's experiments (groupwise M → M, pointwise M → N).
    """
    return total(gwc_pwc_stages(spec, G, mid))


def masked_stages(
    kept_taps: int, positions: int, out_channels: int = 0, bias: bool = False
) -> tuple[Stage, ...]:
    """A masked (LHC) convolution, one stage."""
    bias_terms = out_channels if bias else 0
    cost = Cost(macs=positions * kept_taps, adds=positions * bias_terms, params=kept_taps + bias_terms)
    return (Stage(cost, positions * out_channels),)


def masked(kept_taps: int, positions: int, out_channels: int = 0, bias: bool = False) -> Cost:
    """LHC (any binary topology mask): FLOPs = D_o² · kept taps; params = kept taps (+ N biases)."""
    return total(masked_stages(kept_taps, positions, out_channels, bias))


def linear_stages(
    in_features: int, out_features: int, bias: bool = True, positions: int = 1
) -> tuple[Stage, ...]:
    """A fully connected layer, one stage."""
    bias_terms = out_features if bias else 0
    cost = Cost(
        positions * in_features * out_features,
        positions * bias_terms,
        in_features * out_features + bias_terms,
    )
    return (Stage(cost, positions * out_features),)


def linear(in_features: int, out_features: int, bias: bool = True, positions: int = 1) -> Cost:
    """A fully connected layer applied to ``positions`` vectors: in · out MACs and one add per output (bias) each."""
    return total(linear_stages(in_features, out_features, bias, positions))


def batchnorm(channels: int) -> Cost:
    """BatchNorm over ``channels``: 2 learnable parameters per channel (scale and shift).

    Its arithmetic is not counted (the paper leaves out BatchNorm, ReLU and pooling), nor are
    its running statistics (buffers, not parameters).
    """
    return Cost(0, 0, 2 * positive_int("channels", channels))


def squeeze_excitation_stages(
    channels: int, reduction: int, bias: bool = True, name: str = ""
) -> tuple[Stage, ...]:
    """Linear(C, C/R) on the pooled output, then Linear(C/R, C) reading its output."""
    R = dividing("se", reduction, channels, f"the output channels N of {name or 'the layer'}")
    (fc1,) = linear_stages(channels, channels // R, bias)
    (fc2,) = linear_stages(channels // R, channels, bias)
    return fc1, Stage(fc2.cost, fc2.outputs, chained=True)


def squeeze_excitation(channels: int, reduction: int, bias: bool = True, name: str = "") -> Cost:
    """Squeeze-and-Excitation on C channels: Linear(C, C/R) + Linear(C/R, C), biased as in Hu et al.

    Counts the two fully connected layers only; the global average pooling and the channel-wise
    rescaling are left out, like pooling and activations elsewhere.
    """
    return total(squeeze_excitation_stages(channels, reduction, bias, name))


# A training step, from the same stages.


def backward(stages, input_grad: bool = True, trained: bool = True) -> Cost:
    """What ``loss.backward()`` runs for a layer: ``macs`` of its input and weight gradients, ``adds`` of its bias
    gradient.

    Each stage's input gradient is the transposed contraction (the same products as its forward: a convolution's
    is a transposed convolution over the same taps, a matmul's the product with the other operand), run where its
    input needs a gradient: a stage reading the layer's input where that input does (``input_grad``; not the first
    layer of a network, fed by data), a chained stage where the layer's input does or an earlier stage is trained.
    Its weight gradient is the same products again (each weight summed over every position it touched), run where
    the layer is ``trained`` (not frozen); so is its bias gradient, one addition per output element, as in the
    forward. A stage's other work (BatchNorm, activations) carries no MAC, as in the forward convention.
    """
    macs = adds = 0
    upstream = input_grad
    for stage in stages:
        needs = upstream if stage.chained else input_grad
        macs += stage.cost.macs * (int(needs) + int(trained))
        adds += stage.cost.adds if trained else 0
        upstream = upstream or trained
    return Cost(macs, adds, 0)


def activations(stages) -> int:
    """Output elements per image of a layer's contractions (fvcore's ``ActivationCountAnalysis``: every
    convolution, linear and matmul output)."""
    return sum(stage.outputs for stage in stages)


def traffic(stages, inputs: int, batch: int = 1) -> int:
    """Elements a layer moves for ``batch`` images: its input read (``inputs`` per image), its weights read once,
    its output written; where a stage reads the one before it (latency 1), their intermediate map is written and
    read again. Stages reading the layer's input share one read and one output (HetConv: one layer, latency 0)."""
    between = sum(stage.outputs for stage, after in zip(stages, stages[1:]) if after.chained)
    return batch * (inputs + stages[-1].outputs + 2 * between) + total(stages).params


DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2}
"""Bytes per element of the dtypes a step is counted in (``--dtype``)."""

OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2}
"""Tensors of state ``torch.optim`` keeps per trained parameter, each its shape and dtype: SGD none, SGD with
momentum its buffer, Adam its two moments (and a float32 ``step`` scalar per parameter tensor)."""

STEP_BYTES = 4  # Adam's per-tensor step counter: a float32 scalar, as torch.optim.Adam keeps it


def step_memory(
    params: int, buffers: int, trained: int, trained_tensors: int, saved: int, optimizer: str = "sgd"
) -> dict[str, int]:
    """Bytes a training step holds: parameters, buffers, the gradients of the trained parameters, the optimizer's
    state, and the activations autograd saves for backward (``saved``), their sum ``total``.

    ``params``, ``buffers``, ``trained`` (the trained parameters) and ``saved`` are bytes as the model holds them
    (its dtype); ``trained_tensors`` counts the trained parameter tensors. It is what is held when the backward
    pass starts (every saved activation alive, every gradient allocated): the usual peak, less the transient
    buffers of single operators.
    """
    if optimizer not in OPTIMIZERS:
        raise InvalidInput("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    state = OPTIMIZERS[optimizer] * trained + (STEP_BYTES * trained_tensors if optimizer == "adam" else 0)
    parts = {"params": params, "buffers": buffers, "grads": trained, "optimizer": state, "activations": saved}
    return {**parts, "total": sum(parts.values())}


# Closed forms of the ratios, exact as fractions.


def hetconv_reduction(P: int, K: int) -> Fraction:
    """Eq. 5: FL_HC / FL_S = 1/P + (1 − 1/P)/K²."""
    return Fraction(1, P) + (1 - Fraction(1, P)) / K**2


def dwc_pwc_reduction(N: int, K: int) -> Fraction:
    """Eq. 7: FL_MobNet / FL_S = 1/N + 1/K²."""
    return Fraction(1, N) + Fraction(1, K**2)


def gwc_pwc_reduction(G: int, K: int) -> Fraction:
    """Eq. 11: FL_G / FL_S = 1/G + 1/K² (Eq. 10 with M = N)."""
    return Fraction(1, G) + Fraction(1, K**2)


def hetconv_grouped_sum_reduction(P: int, K: int) -> Fraction:
    """The grouped-plus-1×1 variant: 1/P + 1/K²."""
    return Fraction(1, P) + Fraction(1, K**2)


def saved_pct(value, base) -> float:
    """Percent saved against ``base``: 100 · (1 − value / base) (0 where there is nothing to save)."""
    return float(100 * (1 - Fraction(value) / Fraction(base))) if base else 0.0


def hetconv_P_for(reduction, K: int) -> Fraction | None:
    """Eq. 5 solved for P: the P whose reduction is ``reduction`` at this K (None where no P > 0 gives it)."""
    inverse_k2 = Fraction(1, K**2)
    x = (Fraction(reduction) - inverse_k2) / (1 - inverse_k2)  # = 1/P
    return 1 / x if x > 0 else None


def squeeze_excitation_reduction_for(widths, weights) -> Fraction:
    """The SE reduction R that gives ``weights`` weights over SE blocks on layers of these widths:
    Σ 2·C²/R = weights (the weights of Linear(C, C/R) + Linear(C/R, C), biases aside)."""
    return Fraction(sum(2 * C**2 for C in widths)) / Fraction(weights)


def speedup(reduction) -> float:
    """Eq. 9: Speedup = 1 / Reduction."""
    if reduction <= 0:
        raise InvalidInput("reduction", f"must be positive, got {reduction}")
    return float(1 / Fraction(reduction))
