"""MacCounter: every formula against hand arithmetic, fvcore on random convolutions, module attribution."""

from __future__ import annotations

import copy
import math
import operator

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hetcalc.real import counter as C
from hetcalc.real.counter import FORMULAS, MacCounter, MetaCache, formula, is_free

aten = torch.ops.aten

DEVICES = ["meta", "cpu"]


def count(fn, device="cpu", mode=torch.no_grad, model=None) -> MacCounter:
    """Run ``fn(device)`` inside a MacCounter (and ``mode``); the counter afterwards."""
    with mode(), MacCounter(model) as counter:
        fn(device)
    return counter


def module_macs(module, *inputs, device="cpu", mode=torch.no_grad) -> MacCounter:
    module = copy.deepcopy(module).to(device).eval()
    return count(lambda d: module(*(x.to(d) for x in inputs)), device, mode, module)


def fvcore_total(module, *inputs) -> int:
    analysis = FlopCountAnalysis(module.eval(), inputs)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return analysis.total()


# The formula table.


def test_formula_refuses_a_second_formula_for_an_operator():
    with pytest.raises(
        ValueError, match=r"aten\.mm already has a MAC formula \(mm\); .* cannot be registered"
    ):

        @formula(torch.ops.aten.mm)
        def other(a, b, **_):
            return 0

    assert FORMULAS[torch.ops.aten.mm] == ("mm", C.mm)


def test_formulas_are_plain_functions_of_shapes():
    assert C.mm((4, 8), (8, 5)) == 4 * 8 * 5
    assert C.bmm((3, 4, 8), (3, 8, 5)) == 3 * 4 * 8 * 5
    assert C.addmm((5,), (4, 8), (8, 5)) == 160
    assert C.mv((4, 8), (8,)) == 32 and C.dot((8,), (8,)) == 8
    # conv: 2 images · 6×6 outputs · weight 16×3×3×3
    assert (
        C.convolution(
            (2, 3, 8, 8),
            (16, 3, 3, 3),
            None,
            [1, 1],
            [0, 0],
            [1, 1],
            False,
            [0, 0],
            1,
            out_shape=(2, 16, 6, 6),
        )
        == 2 * 36 * 16 * 27
    )


def test_no_operator_with_a_formula_is_classified_free():
    for packet in FORMULAS:
        for overload in packet.overloads():
            assert not is_free(getattr(packet, overload)), packet


@pytest.mark.parametrize(
    "op",
    [
        "relu.default",
        "add.Tensor",
        "gelu_.default",
        "hardswish_.default",
        "view.default",
        "cat.default",
        "_softmax.default",
        "native_layer_norm.default",
        "mean.dim",
        "max_pool2d_with_indices.default",
        "empty.memory_format",
        "_to_copy.default",
    ],
)
def test_known_free_operators(op):
    packet, overload = op.split(".")
    assert is_free(getattr(getattr(torch.ops.aten, packet), overload))


@pytest.mark.parametrize(
    "op",
    [
        "_cdist_forward.default",
        "_trilinear.default",
        "_fft_c2c.default",
        "linalg_vector_norm.default",
        "prod.default",
    ],
)
def test_operators_that_may_carry_macs_are_not_free(op):
    packet, overload = op.split(".")
    assert not is_free(getattr(getattr(torch.ops.aten, packet), overload))


# Convolutions, by hand.


@pytest.mark.parametrize("device", DEVICES)
def test_conv1d(device):
    # out length floor((11 + 2 - 3) / 2) + 1 = 6; 2 samples · 6 outputs · Cout 6 · Cin 4 · k 3
    c = module_macs(nn.Conv1d(4, 6, 3, stride=2, padding=1), torch.zeros(2, 4, 11), device=device)
    assert c.total == c.by_op["convolution"] == 2 * 6 * 6 * 4 * 3 == 864


@pytest.mark.parametrize("device", DEVICES)
def test_conv2d_groups_dilation_stride_padding(device):
    # dilated kernel spans 5; out floor((15 + 4 - 5) / 2) + 1 = 8 → 8×8; weight 12 × 8/4 × 3 × 3 = 216
    conv = nn.Conv2d(8, 12, 3, stride=2, padding=2, dilation=2, groups=4)
    c = module_macs(conv, torch.zeros(1, 8, 15, 15), device=device)
    assert c.total == 8 * 8 * 12 * 2 * 9 == 13_824


def test_depthwise_conv2d_with_bias():
    # 32 channels, each its own 3×3 filter on 10×10 outputs; the bias adds no MAC
    c = module_macs(nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=True), torch.zeros(1, 32, 10, 10))
    assert c.total == 100 * 32 * 9 == 28_800


@pytest.mark.parametrize("device", DEVICES)
def test_conv3d(device):
    # padding 1 keeps 4×6×6 = 144 outputs; weight 5 × 3 × 3×3×3 = 405
    c = module_macs(nn.Conv3d(3, 5, 3, padding=1), torch.zeros(1, 3, 4, 6, 6), device=device)
    assert c.total == 144 * 405 == 58_320


@pytest.mark.parametrize("device", DEVICES)
def test_conv_transpose2d_counts_every_input_element_times_the_whole_weight(device):
    # 16·16 = 256 input pixels, each scattered through Cin 64 × Cout 32 × 4×4 taps:
    # 256 · 64 · 32 · 16 = 8,388,608 (= 32×32 outputs · 32 Cout · 64 Cin · 2×2 taps that reach each)
    conv = nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1)
    c = module_macs(conv, torch.zeros(1, 64, 16, 16), device=device)
    assert c.total == 16 * 16 * 64 * 32 * 16 == 8_388_608


def test_grouped_conv_transpose1d():
    # weight Cin 4 × Cout/G 3 × k 3 = 36; 5 input positions
    c = module_macs(nn.ConvTranspose1d(4, 6, 3, groups=2), torch.zeros(1, 4, 5))
    assert c.total == 5 * 4 * 3 * 3 == 180


# Matrix products, by hand.


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_on_2d_and_3d_inputs(device, bias):
    linear = nn.Linear(8, 5, bias=bias)
    assert module_macs(linear, torch.zeros(4, 8), device=device).total == 4 * 8 * 5
    assert module_macs(linear, torch.zeros(2, 3, 8), device=device).total == 2 * 3 * 8 * 5


@pytest.mark.parametrize(
    ("a", "b", "macs"),
    [
        ((8,), (8,), 8),  # dot
        ((3, 8), (8,), 3 * 8),  # mv
        ((8,), (8, 3), 8 * 3),  # vector · matrix
        ((3, 8), (8, 4), 3 * 8 * 4),  # mm
        ((2, 3, 8), (8, 4), 2 * 3 * 8 * 4),  # batch folded into mm
        ((3, 8), (2, 8, 4), 2 * 3 * 8 * 4),  # broadcast to bmm
        ((2, 1, 3, 8), (1, 5, 8, 4), 2 * 5 * 3 * 8 * 4),  # both batch dimensions broadcast
    ],
)
@pytest.mark.parametrize("device", DEVICES)
def test_matmul_every_rank_combination(a, b, macs, device):
    c = count(lambda d: torch.randn(a, device=d) @ torch.randn(b, device=d), device)
    assert c.total == macs and not c.uncounted


@pytest.mark.parametrize("device", DEVICES)
def test_addmm_baddbmm_addbmm_addmv_and_functional_linear(device):
    def run(d):
        torch.addmm(torch.zeros(4, device=d), torch.zeros(3, 8, device=d), torch.zeros(8, 4, device=d))  # 96
        torch.baddbmm(
            torch.zeros(2, 3, 4, device=d), torch.zeros(2, 3, 8, device=d), torch.zeros(2, 8, 4, device=d)
        )  # 2·3·8·4 = 192
        torch.addbmm(
            torch.zeros(3, 4, device=d), torch.zeros(2, 3, 8, device=d), torch.zeros(2, 8, 4, device=d)
        )  # 192
        torch.addmv(torch.zeros(3, device=d), torch.zeros(3, 8, device=d), torch.zeros(8, device=d))  # 24
        F.linear(torch.zeros(2, 3, 8, device=d), torch.zeros(5, 8, device=d))  # 2·3·8·5 = 240

    c = count(run, device)
    assert c.total == 96 + 192 + 192 + 24 + 240
    assert c.by_op["baddbmm"] == 2 * 192 and c.by_op["addmv"] == 24


class Einsum(nn.Module):
    def forward(self, q, k):
        return torch.einsum("bhqd,bhkd->bhqk", q, k)


def test_einsum_is_exact_where_fvcore_rounds():
    # 1 · 8 heads · 24 queries · 24 keys · 16 dims = 73,728; fvcore reads numpy's printed FLOP
    # estimate "1.475e+05" and halves it: 73,750
    q, k = torch.zeros(1, 8, 24, 16), torch.zeros(1, 8, 24, 16)
    assert module_macs(Einsum(), q, k).total == 1 * 8 * 24 * 24 * 16 == 73_728
    assert fvcore_total(Einsum(), q, k) == 73_750


# Attention.


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("causal", [False, True])
def test_scaled_dot_product_attention(device, causal):
    # B 2 · H 4 · L 8 · S 8 · (E 16 + Ev 16): a causal mask is counted in full
    def run(d):
        F.scaled_dot_product_attention(
            *(torch.randn(2, 4, 8, 16, device=d) for _ in range(3)), is_causal=causal
        )

    c = count(run, device)
    assert c.total == 2 * 4 * 8 * 8 * (16 + 16) == 16_384
    assert set(c.by_op) == ({"attention"} if device == "cpu" else {"bmm"})  # fused on cpu, math on meta


@pytest.mark.parametrize("device", DEVICES)
def test_attention_with_another_value_width(device):
    # B 2 · H 4 · L 8 · S 9 · (E 16 + Ev 12); cpu's fused kernel wants Ev = E: the math path's bmm
    def run(d):
        F.scaled_dot_product_attention(
            torch.randn(2, 4, 8, 16, device=d),
            torch.randn(2, 4, 9, 16, device=d),
            torch.randn(2, 4, 9, 12, device=d),
        )

    assert count(run, device).total == 2 * 4 * 8 * 9 * (16 + 12) == 16_128


def test_the_fused_cpu_kernel_directly():
    q, k, v = torch.randn(1, 2, 3, 8), torch.randn(1, 2, 5, 8), torch.randn(1, 2, 5, 8)
    c = count(lambda d: torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v))
    assert c.by_op == {"attention": 2 * 3 * 5 * (8 + 8)}


@pytest.mark.parametrize("device", DEVICES)
def test_grouped_query_attention_counts_query_heads(device):
    # 8 query heads share 2 key/value heads: B 1 · H 8 · L 5 · S 7 · (E 16 + Ev 16)
    def run(d):
        F.scaled_dot_product_attention(
            torch.randn(1, 8, 5, 16, device=d),
            torch.randn(1, 2, 7, 16, device=d),
            torch.randn(1, 2, 7, 16, device=d),
            enable_gqa=True,
        )

    assert count(run, device).total == 8 * 5 * 7 * 32 == 8_960


def test_batch_length_heads_layout_of_the_fused_kernels():
    # q: B 2 × L 5 × H 4 × E 16, k: B 2 × S 7 × H 4 × E 16, v: Ev 8 → 2·4·5·7·(16 + 8)
    q, k, v = (2, 5, 4, 16), (2, 7, 4, 16), (2, 7, 4, 8)
    assert C.efficient_attention_forward(q, k, v, None, None, None) == 2 * 4 * 5 * 7 * 24
    assert C.flash_attention_forward(q, k, v, None, None) == 6_720
    assert (
        C.efficient_attention_forward((1, 12, 4, 16), (1, 12, 4, 16), (1, 12, 4, 16), None, (3,), (3,))
        is None
    )


def mha_macs(b, length, s, e):
    """q-proj + k,v-proj + QKᵀ and attention·V + out-proj."""
    return b * length * e * e + 2 * b * s * e * e + 2 * b * length * s * e + b * length * e * e


@pytest.mark.parametrize("need_weights", [False, True])
def test_multihead_attention_fast_and_slow_paths_agree(need_weights):
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 6, 32)
    expected = mha_macs(2, 6, 6, 32)  # 2·6·32·32·4 + 2·2·6·6·32 = 53,760
    assert expected == 53_760
    fast = count(lambda d: mha(x, x, x, need_weights=need_weights), mode=torch.no_grad)
    slow = count(lambda d: mha(x, x, x, need_weights=need_weights), mode=torch.enable_grad)
    on_meta = module_macs(mha, x, x, x, device="meta")
    assert "native_mha" in fast.by_op and "native_mha" not in slow.by_op
    assert fast.total == slow.total == on_meta.total == expected


def test_cross_attention_with_another_length_for_keys():
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    q, kv = torch.randn(2, 6, 32), torch.randn(2, 10, 32)
    for mode in (torch.no_grad, torch.enable_grad, torch.inference_mode):
        assert count(lambda d: mha(q, kv, kv, need_weights=False), mode=mode).total == mha_macs(2, 6, 10, 32)
    assert C.native_mha((2, 6, 32), (2, 10, 32), (2, 10, 32), 32, 4) == 73_216


def test_transformer_encoder_layer_fast_path():
    layer = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True)
    x = torch.randn(2, 6, 32)
    # attention 53,760 + feed-forward 2·6·32·64 · 2 = 49,152
    expected = mha_macs(2, 6, 6, 32) + 2 * (2 * 6 * 32 * 64)
    fast = module_macs(layer, x)
    assert set(fast.by_op) == {"transformer_encoder_layer"}
    assert fast.total == expected == 102_912
    assert module_macs(layer, x, device="meta").total == expected
    assert module_macs(layer, x, mode=torch.enable_grad).total == expected


# Composite operators reach the mode under inference_mode: decomposed, never counted twice.


@pytest.mark.parametrize("device", DEVICES)
def test_inference_mode_decomposes_composite_operators_once(device):
    def run(d):
        F.linear(torch.zeros(2, 3, 8, device=d), torch.zeros(5, 8, device=d), torch.zeros(5, device=d))  # 240
        torch.zeros(3, 8, device=d) @ torch.zeros(8, 4, device=d)  # 96
        torch.einsum("ij,jk->ik", torch.zeros(3, 8, device=d), torch.zeros(8, 4, device=d))  # 96
        F.conv2d(torch.zeros(1, 3, 8, 8, device=d), torch.zeros(4, 3, 3, 3, device=d))  # 36·4·27 = 3,888
        F.scaled_dot_product_attention(
            *(torch.zeros(1, 2, 4, 8, device=d) for _ in range(3))
        )  # 2·4·4·16 = 512

    c = count(run, device, torch.inference_mode)
    assert c.total == 240 + 96 + 96 + 3_888 + 512
    assert not c.uncounted


# Property tests: closed form and fvcore.


def out_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


@st.composite
def conv_configs(draw):
    dims = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    padding, dilation = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    size = draw(st.integers(dilation * (kernel - 1) + 1, 7))
    return dims, cin, cout, kernel, stride, padding, dilation, groups, size, draw(st.booleans())


@settings(max_examples=40, deadline=None, derandomize=True)
@given(conv_configs(), st.integers(1, 2))
def test_random_convolutions_match_the_closed_form_and_fvcore(config, batch):
    dims, cin, cout, kernel, stride, padding, dilation, groups, size, transposed = config
    kinds = {
        (1, False): nn.Conv1d,
        (2, False): nn.Conv2d,
        (3, False): nn.Conv3d,
        (1, True): nn.ConvTranspose1d,
        (2, True): nn.ConvTranspose2d,
        (3, True): nn.ConvTranspose3d,
    }
    conv = kinds[dims, transposed](
        cin, cout, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups
    )
    x = torch.zeros(batch, cin, *[size] * dims)
    if transposed:  # every input element times Cin·Cout/G·k^dims
        padding = min(padding, dilation * (kernel - 1))  # keep the output non-empty
        conv.padding = (padding,) * dims
        expected = batch * size**dims * cin * (cout // groups) * kernel**dims
    else:  # every output element times Cout·Cin/G·k^dims / Cout per output channel
        expected = (
            batch
            * out_size(size, kernel, stride, padding, dilation) ** dims
            * cout
            * (cin // groups)
            * kernel**dims
        )
    assert module_macs(conv, x).total == expected
    assert fvcore_total(conv, x) == expected


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=2), st.integers(1, 9), st.integers(1, 9), st.booleans()
)
def test_random_linears_match_the_closed_form_and_fvcore(batch, n_in, n_out, bias):
    linear, x = nn.Linear(n_in, n_out, bias=bias), torch.zeros(*batch, n_in)
    expected = math.prod(batch) * n_in * n_out
    assert module_macs(linear, x).total == expected == fvcore_total(linear, x)


# The meta cache: a free operator's output metadata, computed once per signature.


def test_the_meta_cache_reuses_a_signature_and_keys_scalars_by_type():
    cache, x = MetaCache(), torch.zeros(2, 3, dtype=torch.int64, device="meta")
    first, again = cache(aten.mul.Tensor, (x, 2), {}), cache(aten.mul.Tensor, (x, 2), {})
    assert len(cache) == 1 and again is not first and again.dtype == torch.int64
    assert cache(aten.mul.Tensor, (x, 2.0), {}).dtype == torch.float32  # 2.0 == 2, but it promotes
    assert cache(aten.mul.Tensor, (x, True), {}).dtype == torch.int64
    assert len(cache) == 3
    cache(aten.view.default, (x, [6]), {})  # views and in-place operators run every time
    cache(aten.mul_.Tensor, (x, 2), {})
    assert len(cache) == 3


def test_python_scalars_of_equal_value_promote_apart_under_the_counter():
    with MacCounter():
        ints = torch.arange(4, device="meta")
        flags = torch.zeros(4, dtype=torch.bool, device="meta")
        seen = [(ints * 2).dtype, (ints * 2.0).dtype, (flags + True).dtype, (flags + 1).dtype]
    assert seen == [torch.int64, torch.float32, torch.bool, torch.int64]  # as eager


BASES = {
    "int64": lambda: torch.arange(6, device="meta").view(2, 3),
    "float32": lambda: torch.zeros(2, 3, device="meta"),
    "bool": lambda: torch.zeros(2, 3, dtype=torch.bool, device="meta"),
    "float16, transposed": lambda: torch.zeros(3, 2, dtype=torch.float16, device="meta").t(),
}
SCALAR_OPS = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "truediv": operator.truediv,
    "pow": operator.pow,
    "remainder": operator.mod,
    "eq": operator.eq,
    "clamp": lambda x, s: torch.clamp(x, min=s),
    "where": lambda x, s: torch.where(x > 0, x, s),
}


def run_steps(steps):
    """Each step's result as (dtype, shape, strides); a step reads a base tensor or the previous result."""
    previous, seen = BASES["float32"](), []
    for source, op, scalar in steps:
        previous = SCALAR_OPS[op](previous if source == "previous" else BASES[source](), scalar)
        seen.append((previous.dtype, tuple(previous.shape), previous.stride()))
    return seen


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([*BASES, "previous"]),
            st.sampled_from(list(SCALAR_OPS)),
            st.sampled_from([0, 1, 2, 0.0, 1.0, 2.0, 0.5, False, True]),  # equal values of other types
        ),
        min_size=1,
        max_size=12,
    )
)
def test_cached_meta_outputs_equal_eager_ones(steps):
    with MacCounter():
        cached = run_steps(steps)
    assert cached == run_steps(steps)


# Module attribution.


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)  # 4×4 out · 4 · 2 · 9 = 1,152
        self.fc = nn.Linear(4, 3)  # 4×4 pixels · 4 · 3 = 192

    def forward(self, x):
        y = self.conv(x)
        return self.fc(y.permute(0, 2, 3, 1))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.shared = nn.Linear(3, 3, bias=False)  # 16 · 3 · 3 = 144 per call
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))  # 48 · 2 = 96

    def forward(self, x):
        y = self.block(x=x)  # called with a keyword
        y = self.shared(self.shared(y))
        z = y @ torch.ones(3, 3, device=y.device)  # the model's own matmul: 144, attributed to ""
        return self.head(z)


@pytest.mark.parametrize("device", DEVICES)
def test_innermost_module_gets_the_macs_and_macs_in_sums_a_subtree(device):
    net = Net()
    c = module_macs(net, torch.zeros(1, 2, 4, 4), device=device)
    per_module = {name: sum(ops.values()) for name, ops in c.by_module.items()}
    assert per_module == {"block.conv": 1_152, "block.fc": 192, "shared": 2 * 144, "": 144, "head.1": 96}
    assert c.by_module["block.conv"] == {"convolution": 1_152}
    assert c.macs_in("block") == 1_152 + 192
    assert c.macs_in("shared") == 288 and c.macs_in("head") == 96
    assert c.macs_in("") == c.total == 1_152 + 192 + 288 + 144 + 96
    assert c.macs_in("block.co") == 0  # a prefix of a name is not its parent


def hooks_left() -> bool:
    from torch.nn.modules import module

    return bool(module._global_forward_hooks or module._global_forward_pre_hooks)


def test_hooks_are_removed_on_exit_and_the_counter_can_be_reused():
    net = Net()
    with torch.no_grad(), MacCounter(net) as c:
        net(torch.zeros(1, 2, 4, 4))
        net(torch.zeros(1, 2, 4, 4))
    assert c.total == 2 * 1_872
    assert not hooks_left()


class Raises(nn.Module):
    def forward(self, x):
        x = x @ torch.ones(3, 3)  # 2·3·3 = 18, before the error
        raise ValueError("no")


class Recovers(nn.Module):
    def __init__(self):
        super().__init__()
        self.bad = Raises()
        self.fc = nn.Linear(3, 3, bias=False)  # 2·3·3 = 18

    def forward(self, x):
        try:
            self.bad(x)
        except ValueError:
            pass
        y = x @ torch.ones(3, 4)  # 2·3·4 = 24, the model's own
        return self.fc(x), y


def test_a_module_raising_in_forward_leaves_the_stack_intact():
    model = Recovers()
    c = module_macs(model, torch.zeros(2, 3))
    assert c.by_module == {"bad": {"mm": 18}, "": {"mm": 24}, "fc": {"mm": 18}}


def test_an_error_escaping_the_model_leaves_the_counter_usable():
    model = Recovers()
    with pytest.raises(ValueError), torch.no_grad(), MacCounter(model) as c:
        model.bad(torch.zeros(2, 3))
    assert c.by_module == {"bad": {"mm": 18}}
    assert not hooks_left()
    with torch.no_grad(), c:
        model.fc(torch.zeros(2, 3))
    assert c.by_module == {"bad": {"mm": 18}, "fc": {"mm": 18}}


def test_without_a_model_everything_is_attributed_to_the_root():
    c = module_macs(Net(), torch.zeros(1, 2, 4, 4))
    d = count(lambda d: Net()(torch.zeros(1, 2, 4, 4)))
    assert d.total == c.total and set(d.by_module) == {""}


# What is not counted is reported.


class Unknown(nn.Module):
    def forward(self, x, y):
        torch.cdist(x, y)
        torch.cdist(x, y)
        F.bilinear(x, y, torch.zeros(5, 3, 3))
        return torch.fft.fft2(x)


def test_operators_with_no_formula_are_reported_with_their_calls():
    c = module_macs(Unknown(), torch.ones(4, 3), torch.ones(4, 3))
    assert c.uncounted == {
        "aten._cdist_forward.default": 2,
        "aten._trilinear.default": 1,
        "aten._fft_c2c.default": 1,
    }
    assert c.total == 0


def test_data_dependent_operators_are_flagged():
    def run(d):
        x = torch.tensor([[0.0, 1.0], [2.0, 0.0]], device=d)
        torch.nonzero(x)
        x[x > 0]  # a boolean mask: the output length depends on the data
        x[torch.tensor([1, 0], device=d)]  # integer indices: it does not
        torch.unique(x)

    c = count(run)
    assert set(c.data_dependent) >= {"aten.nonzero.default", "aten.index.Tensor"}
    assert c.data_dependent["aten.index.Tensor"] == 1
    assert any("unique" in op for op in c.data_dependent)
    assert c.total == 0 and not c.uncounted


def test_subtree_macs_agree_with_macs_in():
    model = nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)), nn.Linear(2, 3))
    with MacCounter(model) as counter:
        model(torch.zeros(5, 4))
    subtree = counter.subtree_macs()
    assert subtree == {name: counter.macs_in(name) for name in subtree}
    assert subtree["0"] == 5 * (4 * 8 + 8 * 2) and subtree[""] == counter.total == subtree["0"] + 5 * 2 * 3
