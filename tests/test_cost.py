"""The cost model against hand arithmetic and the paper's identities (Eqs. 1–12)."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hetcalc.core import cost
from hetcalc.core.errors import InvalidInput
from hetcalc.core.spec import ConvSpec, output_size


def test_standard_by_hand():
    # 56·56 positions · 64 in · 128 out · 3·3 taps
    spec = ConvSpec(M=64, N=128, K=3, H=56)
    assert cost.standard(spec).macs == 56 * 56 * 64 * 128 * 9 == 231211008
    assert cost.standard(spec).params == 128 * 64 * 9 == 73728


def test_hetconv_by_hand():
    # M = N = 256, K = 3, P = 8, D_o = 14: FL_K = 14²·256·256·9/8, FL_1 = 14²·256·(256 − 32)
    spec = ConvSpec(M=256, N=256, K=3, H=14)
    fl_k = 196 * 256 * 256 * 9 // 8  # 14450688
    fl_1 = 196 * 256 * 224  # 11239424
    assert cost.hetconv(spec, 8).macs == fl_k + fl_1 == 25690112
    assert cost.hetconv(spec, 8).params == 256 * (256 * 9 // 8 + 256 - 32) == 131072


def test_dwc_pwc_and_gwc_pwc_by_hand():
    spec = ConvSpec(M=32, N=64, K=3, H=10)
    # depthwise 100·32·9 + pointwise 100·32·64
    assert cost.dwc_pwc(spec).macs == 28800 + 204800
    assert cost.dwc_pwc(spec).params == 32 * 9 + 32 * 64
    # groupwise 32 → 32 with 4 groups: 100·32·(32/4)·9; pointwise 32 → 64: 100·32·64
    assert cost.gwc_pwc(spec, 4).macs == 230400 + 204800
    assert cost.gwc_pwc(spec, 4).params == 32 * 8 * 9 + 32 * 64


def test_bias_adds_one_flop_per_output_element():
    spec = ConvSpec(M=8, N=16, K=3, H=5, bias=True)
    c = cost.standard(spec)
    assert (c.adds, c.params) == (25 * 16, 16 * 8 * 9 + 16)
    assert c.flops == c.macs + 400
    dw = cost.dwc_pwc(spec)  # both convolutions carry a bias
    assert dw.adds == 25 * (8 + 16)


def test_output_size():
    assert output_size(56, 3, 1) == 56  # padding K//2 keeps the size
    assert output_size(56, 3, 2) == 28
    assert output_size(224, 7, 2, 3) == 112
    assert output_size(32, 5, 1, 0) == 28


def test_grouped_sum_variant_costs_one_over_P_plus_one_over_K2():
    spec = ConvSpec(M=64, N=64, K=3, H=7)
    ratio = Fraction(cost.hetconv_grouped_sum(spec, 4).macs, cost.standard(spec).macs)
    assert ratio == Fraction(1, 4) + Fraction(1, 9)


def test_invalid_P_names_option_and_valid_values():
    with pytest.raises(InvalidInput, match=r"^P: 3 does not divide .* valid values: 1, 2, 4, 8"):
        cost.hetconv(ConvSpec(M=8, N=8, K=3), 3)
    with pytest.raises(InvalidInput, match="^M: "):
        ConvSpec(M=0, N=8, K=3)


# Property tests over many layers.

channels = st.sampled_from([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024])
kernels = st.integers(1, 11)
sizes = st.integers(1, 64)


@st.composite
def layer_and_part(draw):
    M, N, K, D = draw(channels), draw(channels), draw(kernels), draw(sizes)
    divisors = [d for d in range(1, M + 1) if M % d == 0]
    return ConvSpec(M=M, N=N, K=K, H=D), draw(st.sampled_from(divisors))


@settings(max_examples=300)
@given(layer_and_part())
def test_eq5_reduction_is_exact(layer):
    spec, P = layer
    ratio = Fraction(cost.hetconv(spec, P).macs, cost.standard(spec).macs)
    assert ratio == Fraction(1, P) + (1 - Fraction(1, P)) / spec.K**2 == cost.hetconv_reduction(P, spec.K)
    assert Fraction(cost.hetconv(spec, P).params, cost.standard(spec).params) == ratio


@settings(max_examples=200)
@given(channels, channels, kernels, sizes, st.booleans())
def test_P1_is_standard(M, N, K, D, bias):
    spec = ConvSpec(M=M, N=N, K=K, H=D, bias=bias)
    assert cost.hetconv(spec, 1) == cost.standard(spec)


@settings(max_examples=200)
@given(channels, channels, kernels, sizes)
def test_eq7_dwc_pwc_reduction(M, N, K, D):
    spec = ConvSpec(M=M, N=N, K=K, H=D)
    ratio = Fraction(cost.dwc_pwc(spec).macs, cost.standard(spec).macs)
    assert ratio == Fraction(1, N) + Fraction(1, K * K) == cost.dwc_pwc_reduction(N, K)


@settings(max_examples=200)
@given(layer_and_part())
def test_eq11_gwc_pwc_reduction_when_M_equals_N(layer):
    spec, G = layer
    spec = spec.with_(N=spec.M)
    ratio = Fraction(cost.gwc_pwc(spec, G).macs, cost.standard(spec).macs)
    assert ratio == Fraction(1, G) + Fraction(1, spec.K**2) == cost.gwc_pwc_reduction(G, spec.K)


@settings(max_examples=200)
@given(layer_and_part())
def test_eq12_hetconv_beats_gwc_pwc_with_P_equal_G(layer):
    spec, P = layer
    spec = spec.with_(N=spec.M)
    assert cost.hetconv(spec, P).macs < cost.gwc_pwc(spec, P).macs


@settings(max_examples=200)
@given(channels, kernels, sizes)
def test_eq8_hetconv_with_P_equal_M_beats_dwc_pwc(M, K, D):
    spec = ConvSpec(M=M, N=M, K=K, H=D)
    assert cost.hetconv(spec, M).macs < cost.dwc_pwc(spec).macs
    assert cost.hetconv_reduction(M, K) < cost.dwc_pwc_reduction(M, K)


@settings(max_examples=200)
@given(st.integers(1, 4096), kernels)
def test_eq9_speedup_is_inverse_reduction_and_bounded_by_K2(P, K):
    s = cost.speedup(cost.hetconv_reduction(P, K))
    assert s == pytest.approx(1 / (1 / P + (1 - 1 / P) / K**2))
    assert 1 <= s <= K * K


@settings(max_examples=200)
@given(st.integers(1, 300), kernels, st.integers(1, 4), st.integers(0, 5))
def test_output_size_matches_definition(d_in, K, stride, padding):
    if d_in + 2 * padding < K:
        with pytest.raises(InvalidInput):
            output_size(d_in, K, stride, padding)
    else:
        assert output_size(d_in, K, stride, padding) == (d_in + 2 * padding - K) // stride + 1
