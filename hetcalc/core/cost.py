"""The cost model: the paper's Equations 1–12, one function per kind, exact integers.

Unit: one multiply-accumulate (MAC) = 1 FLOP, as in the paper and in fvcore.
Every function returns a :class:`Cost` whose ``macs`` are the multiply-accumulates of the
convolutions, ``adds`` the bias additions (one per output element of a layer with bias)
and ``params`` the learnable parameters. ``flops = macs + adds``.
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


def _conv(spec: ConvSpec, cout: int, taps_per_filter: int) -> Cost:
    """One convolution with ``cout`` filters of ``taps_per_filter`` kept weights each, at spec's output size."""
    bias = cout if spec.bias else 0
    return Cost(
        macs=spec.positions * cout * taps_per_filter,
        adds=spec.positions * bias,
        params=cout * taps_per_filter + bias,
    )


def standard(spec: ConvSpec) -> Cost:
    """Eq. 1: FL_S = D_o · D_o · M · N · K · K; params N · M · K²."""
    return _conv(spec, spec.N, spec.M * spec.K**2)


def hetconv(spec: ConvSpec, P: int) -> Cost:
    """Eqs. 2–4: FL_HC = D_o²·M·N·K²/P + D_o²·N·(M − M/P); params N·(M·K²/P + M − M/P).

    Each filter keeps M/P kernels of K×K and M − M/P kernels of 1×1 (P = 1: standard).
    """
    P = dividing("P", P, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    kept = spec.M // P * spec.K**2 + (spec.M - spec.M // P)
    return _conv(spec, spec.N, kept)


def hetconv_grouped_sum(spec: ConvSpec, P: int) -> Cost:
    """The common public HetConv: a grouped K×K conv (P groups) plus a full 1×1 conv, summed.

    FL = D_o²·M·N·K²/P + D_o²·M·N, a reduction of 1/P + 1/K² (not Eq. 5): its 1×1 conv
    also covers the channels that already hold a K×K kernel. One bias, on the sum.
    """
    P = dividing("P", P, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    P = dividing("P", P, spec.N, f"the output channels N of {spec.name or 'the layer'}")
    return _conv(spec, spec.N, spec.M // P * spec.K**2 + spec.M)


def grouped(spec: ConvSpec, G: int) -> Cost:
    """One grouped K×K convolution M → N with G groups: D_o²·N·(M/G)·K² (G = 1: Eq. 1)."""
    G = dividing("G", G, spec.M, f"the input channels M of {spec.name or 'the layer'}")
    G = dividing("G", G, spec.N, f"the output channels N of {spec.name or 'the layer'}")
    return _conv(spec, spec.N, spec.M // G * spec.K**2)


def dwc_pwc(spec: ConvSpec) -> Cost:
    """Eq. 6: FL = D_o²·M·K² (depthwise, M → M) + M·N·D_o² (pointwise, M → N)."""
    depthwise = grouped(spec.with_(N=spec.M), spec.M)
    pointwise = standard(spec.with_(K=1))
    return depthwise + pointwise


def gwc_pwc(spec: ConvSpec, G: int, mid: int | None = None) -> Cost:
    """Eq. 10: groupwise K×K conv M → mid with G groups, then pointwise mid → N.

    With ``mid = M = N`` this is Eq. 10 as written, D_o²·M·N·K²/G + M·N·D_o².
    ``mid`` defaults to M, as in the paper's experiments (groupwise M → M, pointwise M → N).
    """
    mid = spec.M if mid is None else positive_int("mid", mid)
    groupwise = grouped(spec.with_(N=mid), G)
    pointwise = standard(spec.with_(M=mid, K=1))
    return groupwise + pointwise


def masked(kept_taps: int, positions: int, out_channels: int = 0, bias: bool = False) -> Cost:
    """LHC (any binary topology mask): FLOPs = D_o² · kept taps; params = kept taps (+ N biases)."""
    bias_terms = out_channels if bias else 0
    return Cost(macs=positions * kept_taps, adds=positions * bias_terms, params=kept_taps + bias_terms)


def linear(in_features: int, out_features: int, bias: bool = True, positions: int = 1) -> Cost:
    """A fully connected layer applied to ``positions`` vectors: in · out MACs and one add per output (bias) each."""
    bias_terms = out_features if bias else 0
    return Cost(
        positions * in_features * out_features,
        positions * bias_terms,
        in_features * out_features + bias_terms,
    )


def batchnorm(channels: int) -> Cost:
    """BatchNorm over ``channels``: 2 learnable parameters per channel (scale and shift).

    Its arithmetic is not counted (the paper leaves out BatchNorm, ReLU and pooling), nor are
    its running statistics (buffers, not parameters).
    """
    return Cost(0, 0, 2 * positive_int("channels", channels))


def squeeze_excitation(channels: int, reduction: int, bias: bool = True, name: str = "") -> Cost:
    """Squeeze-and-Excitation on C channels: Linear(C, C/R) + Linear(C/R, C), biased as in Hu et al.

    Counts the two fully connected layers only; the global average pooling and the channel-wise
    rescaling are left out, like pooling and activations elsewhere.
    """
    R = dividing("se", reduction, channels, f"the output channels N of {name or 'the layer'}")
    return linear(channels, channels // R, bias) + linear(channels // R, channels, bias)


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
