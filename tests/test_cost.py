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


# A training step, from each kind's stages.

LATENCY_0 = [
    ("standard", lambda spec, v: cost.standard_stages(spec)),
    ("hetconv", cost.hetconv_stages),
    ("hetconv_grouped_sum", cost.hetconv_grouped_sum_stages),
    ("grouped", cost.grouped_stages),
]
CHAINED = [("dwc_pwc", lambda spec, v: cost.dwc_pwc_stages(spec)), ("gwc_pwc", cost.gwc_pwc_stages)]


def test_hetconv_stages_are_eqs_2_and_3():
    # M = N = 8, K = 3, P = 2, D_o = 4: the grouped K×K conv 16·8·(8/2)·9, the 1×1 taps 16·8·(8 − 4)
    kxk, ones = cost.hetconv_stages(ConvSpec(M=8, N=8, K=3, H=4), 2)
    assert (kxk.cost.macs, ones.cost.macs) == (16 * 8 * 4 * 9, 16 * 8 * 4) == (4608, 512)
    assert (kxk.outputs, ones.outputs, ones.chained) == (16 * 8, 16 * 8, False)  # both write the N×4×4 map
    assert (
        cost.hetconv_stages(ConvSpec(M=8, N=8, K=3, H=4), 1)[0].cost.macs == 16 * 8 * 8 * 9
    )  # P = 1: one conv


def test_backward_of_a_hetconv_layer_by_hand():
    spec = ConvSpec(M=8, N=8, K=3, H=4)
    stages = cost.hetconv_stages(spec, 2)
    forward = 4608 + 512  # Eq. 4
    assert (
        cost.backward(stages).macs == 2 * forward
    )  # input gradient + weight gradient, each Eq. 4's products
    assert cost.backward(stages, input_grad=False).macs == forward  # the first layer: weights only
    assert cost.backward(stages, trained=False).macs == forward  # frozen: the input gradient only
    assert cost.backward(stages, input_grad=False, trained=False).macs == 0


def test_backward_of_dwc_pwc_as_a_first_layer_by_hand():
    # M = 4, N = 6, K = 3, D_o = 5: depthwise 25·4·9 = 900, pointwise 25·4·6 = 600
    stages = cost.dwc_pwc_stages(ConvSpec(M=4, N=6, K=3, H=5))
    # the first layer: no gradient of the data, the depthwise weights' 900; the pointwise conv reads the depthwise
    # output, which needs a gradient (its weights are trained): 600 for its input, 600 for its weights
    assert cost.backward(stages, input_grad=False).macs == 900 + 600 + 600
    assert cost.backward(stages).macs == 2 * 900 + 2 * 600
    assert cost.backward(stages, trained=False).macs == 900 + 600  # frozen: both input gradients
    assert cost.backward(stages, input_grad=False, trained=False).macs == 0  # nothing upstream needs one


def test_backward_of_gwc_pwc_and_bias_gradients_by_hand():
    # M = N = 8, K = 3, G = 4, D_o = 2, bias: groupwise 4·8·2·9 = 576 + 32 adds, pointwise 4·8·8 = 256 + 32 adds
    stages = cost.gwc_pwc_stages(ConvSpec(M=8, N=8, K=3, H=2, bias=True), 4)
    assert cost.backward(stages) == cost.Cost(
        2 * 576 + 2 * 256, 32 + 32, 0
    )  # a bias gradient: one add per output
    assert cost.backward(stages, trained=False) == cost.Cost(576 + 256, 0, 0)


def test_squeeze_excitation_backward_reads_the_layer_output():
    # SE on 16 channels, R = 4: fc1 16·4 (+4), fc2 4·16 (+16); both read what the layer wrote
    stages = cost.squeeze_excitation_stages(16, 4)
    assert [s.cost.macs for s in stages] == [64, 64] and stages[1].chained
    assert cost.backward(stages).macs == 4 * 64
    assert (
        cost.backward(stages, input_grad=False).macs == 64 + 2 * 64
    )  # fc1's weights; fc2's input and weights


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(LATENCY_0 + CHAINED),
    st.integers(1, 4).map(lambda k: 2 * k - 1),
    st.sampled_from([1, 2, 4]),
    st.integers(1, 4),
    st.integers(1, 9),
    st.booleans(),
)
def test_backward_identities_of_every_kind(kind, K, value, width, D, bias):
    """Input and weight gradients each run a stage's forward products; a chained stage's input gradient runs
    wherever something upstream is trained."""
    name, stages_of = kind
    spec = ConvSpec(M=4 * width, N=4 * width, K=K, H=D, bias=bias)
    stages = stages_of(spec, value)
    forward = cost.total(stages)
    assert cost.backward(stages).macs == 2 * forward.macs
    assert cost.backward(stages, trained=False).macs == forward.macs
    assert cost.backward(stages, input_grad=False, trained=False) == cost.ZERO
    chained = sum(s.cost.macs for s in stages if s.chained)
    assert cost.backward(stages, input_grad=False).macs == forward.macs + chained
    assert cost.backward(stages).adds == forward.adds  # one bias-gradient add per biased output element
    assert cost.activations(stages) == sum(s.outputs for s in stages)


def test_activations_and_traffic_by_hand():
    # standard 3 → 8, 3×3 at 4×4 from a 4×4 input, batch 2: reads 2·3·16, writes 2·8·16, weights 8·3·9 once
    (conv,) = cost.standard_stages(ConvSpec(M=3, N=8, K=3, H=4))
    assert cost.activations([conv]) == 8 * 16
    assert cost.traffic([conv], 3 * 16, batch=2) == 2 * 3 * 16 + 2 * 8 * 16 + 8 * 3 * 9
    # DWC+PWC 4 → 6 at 5×5 (stride 1): its 4×5×5 intermediate is written and read again
    stages = cost.dwc_pwc_stages(ConvSpec(M=4, N=6, K=3, H=5))
    assert cost.activations(stages) == 4 * 25 + 6 * 25
    assert cost.traffic(stages, 4 * 25) == 4 * 25 + 6 * 25 + 2 * 4 * 25 + (4 * 9 + 4 * 6)
    # HetConv: one layer, latency 0: its two stages share the input read and the output written
    het = cost.hetconv_stages(ConvSpec(M=4, N=4, K=3, H=5), 2)
    assert cost.traffic(het, 4 * 25) == 4 * 25 + 4 * 25 + cost.hetconv(ConvSpec(M=4, N=4, K=3), 2).params


def test_step_memory_by_hand():
    # 1,000 parameter bytes, 600 of them trained in 3 tensors, 40 bytes of buffers, 5,000 bytes saved
    sgd = cost.step_memory(1000, 40, 600, 3, 5000, "sgd")
    assert sgd == {
        "params": 1000,
        "buffers": 40,
        "grads": 600,
        "optimizer": 0,
        "activations": 5000,
        "total": 6640,
    }
    assert cost.step_memory(1000, 40, 600, 3, 5000, "momentum")["optimizer"] == 600
    assert cost.step_memory(1000, 40, 600, 3, 5000, "adam")["optimizer"] == 2 * 600 + 4 * 3  # moments + steps
    with pytest.raises(InvalidInput, match="^optimizer: must be one of sgd, momentum, adam, got 'lamb'"):
        cost.step_memory(1000, 40, 600, 3, 5000, "lamb")
