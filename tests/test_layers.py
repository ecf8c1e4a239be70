"""The real layers: FLOP-exact against fvcore, parameter-exact, dense-equivalent, trainable."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hetcalc.core import cost
from hetcalc.core.errors import InvalidInput
from hetcalc.core.spec import ConvSpec, output_size
from hetcalc.real.fvcount import count, param_count, unexplained
from hetcalc.real.layers import DwPwConv2d, GwPwConv2d, HetConv2d

SETTINGS = settings(max_examples=30, deadline=None)


def traced(module, M, D_in):
    module.eval()
    macs, _, _ = count(module, (torch.zeros(1, M, D_in, D_in),))
    return macs, param_count(module)


# One worked example per kind, by hand: M = 8, N = 16, K = 3, D_o = 8 (64 positions).
# HetConv P=4: 64·16·(8·9/4 + 8 − 8/4) = 64·16·24 = 24576 MACs; params 16·24 + 16 bias = 400.
# grouped_sum P=4: 64·16·(8·9/4 + 8) = 26624; params 16·26 + 16 = 432. fast: the same layout, shifted.
# DWC+PWC: 64·8·9 + 64·8·16 = 4608 + 8192 = 12800; params 72 + 128 + 8 + 16 bias = 224.
# GWC+PWC G=2, mid 8: 64·8·(8/2·9) + 64·16·8 = 18432 + 8192 = 26624; params 288 + 128 = 416.
@pytest.mark.parametrize(
    "module, macs, params",
    [
        (lambda: HetConv2d(8, 16, 3, 4, bias=True), 24576, 400),
        (lambda: HetConv2d(8, 16, 3, 4, bias=True, impl="grouped_sum"), 26624, 432),
        (lambda: HetConv2d(8, 16, 3, 4, bias=True, impl="fast"), 26624, 432),
        (lambda: DwPwConv2d(8, 16, 3, bias=True), 12800, 224),
        (lambda: GwPwConv2d(8, 16, 3, 2), 26624, 416),
    ],
)
def test_worked_example(module, macs, params):
    layer = module()
    assert traced(layer, 8, 8) == (macs, params)
    assert (layer.cost(8).macs, layer.cost(8).params) == (macs, params)
    assert layer.cost(8, 4).macs == macs // 2  # an 8×4 output: half the positions


configs = st.integers(0, 2).flatmap(
    lambda e: st.fixed_dictionaries(
        {
            "P": st.just(2**e),
            "M": st.integers(1, 3).map(lambda a: a * 2**e),
            "N": st.integers(1, 3).map(lambda b: b * 2**e),
            "K": st.sampled_from([1, 3, 5, 7]),
            "stride": st.sampled_from([1, 2]),
            "D_in": st.integers(5, 11),
            "bias": st.booleans(),
            "mid_factor": st.integers(1, 2),
        }
    )
)


@SETTINGS
@given(configs)
def test_fvcore_equals_symbolic_for_every_kind(c):
    M, N, K, P, s, D_in, bias = c["M"], c["N"], c["K"], c["P"], c["stride"], c["D_in"], c["bias"]
    D = output_size(D_in, K, s)
    spec = ConvSpec(M=M, N=N, K=K, H=D, stride=s, bias=bias)
    mid = c["mid_factor"] * M
    cases = [
        (torch.nn.Conv2d(M, N, K, s, K // 2, bias=bias), cost.standard(spec)),
        (HetConv2d(M, N, K, P, s, bias=bias), cost.hetconv(spec, P)),
        (HetConv2d(M, N, K, P, s, bias=bias, impl="grouped_sum"), cost.hetconv_grouped_sum(spec, P)),
        (HetConv2d(M, N, K, P, s, bias=bias, impl="fast"), cost.hetconv_grouped_sum(spec, P)),
        (DwPwConv2d(M, N, K, s, bias=bias), cost.dwc_pwc(spec)),
        (GwPwConv2d(M, N, K, P, s, bias=bias, mid_channels=mid), cost.gwc_pwc(spec, P, mid)),
    ]
    for layer, symbolic in cases:
        assert traced(layer, M, D_in) == (symbolic.macs, symbolic.params), layer
        assert layer(torch.zeros(1, M, D_in, D_in)).shape == (1, N, D, D)
        if hasattr(layer, "cost"):
            assert layer.cost(D) == symbolic


def shifted_mask(M, N, K, P):
    """The paper's pattern: (c − n) mod P == 0 → full K×K kernel, else the centre tap only."""
    mask = torch.zeros(N, M, K, K, dtype=torch.bool)
    mask[:, :, K // 2, K // 2] = True
    for n in range(N):
        for c in range(M):
            if (c - n) % P == 0:
                mask[n, c] = True
    return mask


def grouped_mask(M, N, K, P):
    """grouped_sum: full K×K where channel c and filter n are in the same contiguous group; centre everywhere."""
    mask = torch.zeros(N, M, K, K, dtype=torch.bool)
    mask[:, :, K // 2, K // 2] = True
    for n in range(N):
        for c in range(M):
            if c // (M // P) == n // (N // P):
                mask[n, c] = True
    return mask


layer_configs = st.integers(0, 2).flatmap(
    lambda e: st.tuples(
        st.integers(1, 3).map(lambda a: a * 2**e),
        st.integers(1, 3).map(lambda b: b * 2**e),
        st.sampled_from([1, 3, 5]),
        st.just(2**e),
        st.sampled_from([1, 2]),
        st.integers(0, 3),
        st.booleans(),
        st.sampled_from(["exact", "grouped_sum", "fast"]),
    )
)


@SETTINGS
@given(layer_configs)
def test_layer_equals_conv2d_with_its_dense_weight(c):
    M, N, K, P, s, padding, bias, impl = c
    layer = HetConv2d(M, N, K, P, s, padding=padding, bias=bias, impl=impl).double()
    x = torch.randn(2, M, 7, 6, dtype=torch.double)
    expected = F.conv2d(x, layer.dense_weight(), layer.bias, stride=s, padding=padding)
    torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-10)
    with torch.inference_mode():  # as benchmarked
        torch.testing.assert_close(layer(x), expected, atol=1e-10, rtol=1e-10)


@SETTINGS
@given(layer_configs.filter(lambda c: c[-1] == "fast"))
def test_fast_on_channels_last_equals_conv2d_and_keeps_the_layout(c):
    M, N, K, P, s, padding, bias, _ = c
    layer = HetConv2d(M, N, K, P, s, padding=padding, bias=bias, impl="fast").double()
    x = torch.randn(2, M, 7, 6, dtype=torch.double).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        y = layer(x)
    torch.testing.assert_close(
        y, F.conv2d(x, layer.dense_weight(), layer.bias, stride=s, padding=padding), atol=1e-10, rtol=1e-10
    )
    assert (
        y.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous()
    )  # M = 1: both layouts at once


@SETTINGS
@given(configs)
def test_fast_on_channels_last_counts_grouped_sums_macs_in_fvcore(c):
    M, N, K, P, s, D_in, bias = c["M"], c["N"], c["K"], c["P"], c["stride"], c["D_in"], c["bias"]
    spec = ConvSpec(M=M, N=N, K=K, H=output_size(D_in, K, s), stride=s, bias=bias)
    x = torch.zeros(1, M, D_in, D_in).contiguous(memory_format=torch.channels_last)
    macs, _, ignored = count(HetConv2d(M, N, K, P, s, bias=bias, impl="fast").eval(), (x,))
    assert macs == cost.hetconv_grouped_sum(spec, P).macs
    assert unexplained(ignored) == []


@SETTINGS
@given(layer_configs)
def test_dense_weight_support_is_the_pattern_and_parameters_are_the_kept_taps(c):
    M, N, K, P, _, _, bias, impl = c
    layer = HetConv2d(M, N, K, P, bias=bias, impl=impl)
    pattern = (grouped_mask if impl == "grouped_sum" else shifted_mask)(M, N, K, P)
    assert torch.equal(layer.dense_weight() != 0, pattern)
    params = sum(p.numel() for p in layer.parameters())
    if impl == "exact":
        assert (
            params == N * (M * K * K // P + M - M // P) + (N if bias else 0) == int(pattern.sum()) + N * bias
        )
    else:  # M/P extra 1×1 taps per filter that fold into centre taps
        assert params == N * (M * K * K // P + M) + (N if bias else 0)
        assert sum(p.numel() for p in HetConv2d(M, N, K, P, bias=bias, impl="fast").parameters()) == params


def test_padding_default_is_half_the_kernel_and_p1_is_a_standard_conv():
    layer = HetConv2d(4, 4, 5, 1)
    assert layer.padding == 2 and layer.weight_1x1 is None
    assert torch.equal(layer.dense_weight() != 0, torch.ones(4, 4, 5, 5, dtype=torch.bool))


@SETTINGS
@given(layer_configs)
def test_gradients_reach_every_kept_tap_and_only_those(c):
    M, N, K, P, s, padding, bias, impl = c
    layer = HetConv2d(M, N, K, P, s, padding=padding, bias=bias, impl=impl).double()
    x = torch.randn(2, M, 7, 7, dtype=torch.double)
    probe = torch.randn_like(layer(x))
    (layer(x) * probe).sum().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and (parameter.grad != 0).all(), name
    # The dense conv's gradient, restricted to the kept taps, is the layer's gradient.
    dense = layer.dense_weight().detach().requires_grad_()
    (F.conv2d(x, dense, layer.bias, stride=s, padding=padding) * probe).sum().backward()
    as_params = copy.deepcopy(layer)
    for target, parameter in zip(as_params.parameters(), layer.parameters()):
        target.data = parameter.grad.clone()
    placed = as_params.dense_weight().detach()  # parameter gradients laid out as a dense kernel
    if impl == "exact":
        mask = shifted_mask(M, N, K, P)
        assert torch.equal(placed != 0, mask)
        torch.testing.assert_close(placed, dense.grad * mask)
    elif impl == "fast":  # as grouped_sum, the centre tap of a K×K kernel holds two weights
        twice = shifted_mask(M, N, K, P).double()
        own = (torch.arange(M)[None, :] - torch.arange(N)[:, None]) % P == 0  # the K×K kernels' channels
        twice[:, :, K // 2, K // 2] += own
        torch.testing.assert_close(placed, dense.grad * twice)
    else:  # the in-group centre tap holds two weights; each gets that tap's dense gradient
        n = torch.arange(N)
        in_group = dense.grad.view(N, P, M // P, K, K)[n, n // (N // P)]
        torch.testing.assert_close(layer.weight.grad, in_group)
        torch.testing.assert_close(layer.weight_1x1.grad.view(N, M), dense.grad[:, :, K // 2, K // 2])


def test_init_is_conv2d_default_for_the_kept_fan_in():
    torch.manual_seed(0)  # the largest of 64 uniform draws exceeds 0.9 of the bound but for ~0.1 % of seeds
    layer = HetConv2d(64, 64, 3, 4, bias=True)
    bound = 1 / (64 // 4 * 9 + 64 - 64 // 4) ** 0.5  # fan-in 192
    for parameter in layer.parameters():
        assert parameter.abs().max() <= bound
        assert parameter.abs().max() > 0.9 * bound


@pytest.mark.parametrize(
    "build, option",
    [
        (lambda: HetConv2d(8, 8, 3, 3), "P"),
        (lambda: HetConv2d(8, 6, 3, 4), "P"),
        (lambda: HetConv2d(8, 8, 4, 2), "K"),
        (lambda: HetConv2d(8, 8, 3, 2, impl="masked"), "impl"),
        (lambda: HetConv2d(8, 8, 3, 0), "P"),
        (lambda: GwPwConv2d(8, 8, 3, 3), "G"),
        (lambda: GwPwConv2d(8, 8, 3, 4, mid_channels=6), "G"),
        (lambda: DwPwConv2d(8, 8, 3, stride=0), "stride"),
    ],
)
def test_bad_arguments_raise_invalid_input(build, option):
    with pytest.raises(InvalidInput) as error:
        build()
    assert error.value.parameter == option


def test_bad_p_message_lists_valid_values():
    with pytest.raises(
        InvalidInput, match=r"^P: P=3 does not divide the input channels M \(8\); valid values: 1, 2, 4, 8"
    ):
        HetConv2d(8, 8, 3, 3)


@pytest.mark.parametrize("P", [1, 4])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_fast_takes_any_memory_format(memory_format, P):
    layer = HetConv2d(16, 8, 3, P, bias=True, impl="fast").double()
    x = torch.randn(2, 16, 9, 9, dtype=torch.double).contiguous(memory_format=memory_format)
    with torch.inference_mode():
        y = layer(x)
    torch.testing.assert_close(y, F.conv2d(x, layer.dense_weight(), layer.bias, padding=1))


def test_fast_is_the_exact_function_class():
    """Any exact HetConv is a fast one: its 1×1 weights go to fast's 1×1 kernel, the K×K ones to fast's K×K."""
    exact = HetConv2d(8, 8, 3, 4, bias=True).double()
    fast = HetConv2d(8, 8, 3, 4, bias=True, impl="fast").double()
    with torch.no_grad():
        fast.weight.copy_(exact.weight)
        fast.bias.copy_(exact.bias)
        fast.weight_1x1.zero_()
        centres = exact.dense_weight()[:, :, 1, 1] - fast.dense_weight()[:, :, 1, 1]  # the 1×1 kernels
        fast.weight_1x1.copy_(centres)
    torch.testing.assert_close(fast.dense_weight(), exact.dense_weight())
    x = torch.randn(2, 8, 6, 6, dtype=torch.double)
    torch.testing.assert_close(fast(x), exact(x))


def test_fast_counts_every_multiply_in_fvcore():
    _, by_operator, ignored = count(
        HetConv2d(16, 16, 3, 4, impl="fast").eval(), (torch.zeros(2, 16, 10, 10),)
    )
    assert by_operator == {"conv": 2 * 100 * 16 * 4 * 9, "bmm": 2 * 100 * 16 * 16}  # grouped K×K, dense 1×1
    assert unexplained(ignored) == []
