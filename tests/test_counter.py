"""MacCounter: every formula against hand arithmetic, fvcore on random convolutions, families, modules."""

from __future__ import annotations

import copy
import math
import operator

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import ActivationCountAnalysis, FlopCountAnalysis
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from hetcalc.real import formulas as fm
from hetcalc.real.counter import Call, MacCounter, MetaCache, rule
from hetcalc.real.formulas import FORMULAS, formula
from hetcalc.real.layers import HetConv2d
from hetcalc.real.operators import FAMILIES, carries, reason

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
        ValueError, match=r"aten\.mm already has a MAC formula \(mm\); other cannot be registered"
    ):

        @formula("mm")
        def other(self, mat2, **_):
            return 0

    assert FORMULAS["mm"] is fm.mm


def test_formulas_are_plain_functions_of_shapes_by_schema_name():
    assert fm.mm(self=(4, 8), mat2=(8, 5)) == 4 * 8 * 5
    assert fm.bmm(self=(3, 4, 8), mat2=(3, 8, 5)) == 3 * 4 * 8 * 5
    assert fm.addmm(self=(5,), mat1=(4, 8), mat2=(8, 5), beta=1, alpha=1) == 160
    assert fm.mv(self=(4, 8), vec=(8,)) == 32 and fm.dot(self=(8,), tensor=(8,)) == 8
    # conv: 2 images · 6×6 outputs · weight 16×3×3×3
    conv = dict(input=(2, 3, 8, 8), weight=(16, 3, 3, 3), bias=None, stride=[1, 1], padding=[0, 0])
    assert fm.convolution(**conv, transposed=False, out_shape=(2, 16, 6, 6)) == 2 * 36 * 16 * 27


# One call of every operator with a formula: tensor shapes and other arguments by schema name,
# the output's shape, and its MACs by hand. Every overload of the operator must count the same.
CONV = dict(stride=[1, 1], padding=[0, 0], dilation=[1, 1], output_padding=[0, 0], groups=1)
CONV_MACS = 2 * 6 * 6 * 16 * 3 * 3 * 3  # 2 images · 6×6 outputs · Cout 16 · Cin 3 · 3×3 = 31,104
SDPA = dict(query=(1, 2, 3, 8), key=(1, 2, 5, 8), value=(1, 2, 5, 8))  # B 1 · H 2 · L 3 · S 5 · E 8
SDPA_MACS = 1 * 2 * 3 * 5 * (8 + 8)  # 480
BLHE = dict(query=(1, 3, 2, 8), key=(1, 5, 2, 8), value=(1, 5, 2, 8))  # the same, as B×L×H×E
MHA = dict(embed_dim=32, qkv_weight=(96, 32), qkv_bias=(96,), proj_weight=(32, 32), proj_bias=(32,))
# B 2 · L 6 · E 32: projections q, k, v, out 4 · 2·6·32·32 + QKᵀ and attention·V 2 · 2·6·6·32
MHA_MACS = 4 * 2 * 6 * 32 * 32 + 2 * 2 * 6 * 6 * 32  # 53,760
EXAMPLES = {
    "convolution": (
        {"input": (2, 3, 8, 8), "weight": (16, 3, 3, 3), "bias": (16,), **CONV},
        (2, 16, 6, 6),
        CONV_MACS,
    ),
    "_convolution": (
        {"input": (2, 3, 8, 8), "weight": (16, 3, 3, 3), "bias": (16,), **CONV},
        (2, 16, 6, 6),
        CONV_MACS,
    ),
    "convolution_overrideable": (
        {"input": (2, 3, 8, 8), "weight": (16, 3, 3, 3), "bias": (16,), **CONV},
        (2, 16, 6, 6),
        CONV_MACS,
    ),
    "mkldnn_convolution": ({"self": (2, 3, 8, 8), "weight": (16, 3, 3, 3), **CONV}, (2, 16, 6, 6), CONV_MACS),
    "cudnn_convolution": ({"self": (2, 3, 8, 8), "weight": (16, 3, 3, 3), **CONV}, (2, 16, 6, 6), CONV_MACS),
    # transposed: the same weight scatters 2·6·6 inputs through 16×3×3×3 taps back to 2×3×8×8
    "cudnn_convolution_transpose": (
        {"self": (2, 16, 6, 6), "weight": (16, 3, 3, 3), **CONV},
        (2, 3, 8, 8),
        CONV_MACS,
    ),
    # every gradient asked for (output_mask): grad_input, the transposed convolution of grad_output over the
    # same taps, and grad_weight, every tap summed over every position: the forward's 31,104 MACs twice; the
    # bias's is a sum
    "convolution_backward": (
        {
            "grad_output": (2, 16, 6, 6),
            "input": (2, 3, 8, 8),
            "weight": (16, 3, 3, 3),
            "bias_sizes": [16],
            **CONV,
            "transposed": False,
            "output_mask": [True, True, True],
        },
        (2, 3, 8, 8),
        2 * CONV_MACS,
    ),
    "mm": ({"self": (4, 8), "mat2": (8, 5)}, (4, 5), 4 * 8 * 5),
    "addmm": ({"self": (5,), "mat1": (4, 8), "mat2": (8, 5)}, (4, 5), 4 * 8 * 5),
    "_addmm_activation": ({"self": (5,), "mat1": (4, 8), "mat2": (8, 5)}, (4, 5), 4 * 8 * 5),
    "bmm": ({"self": (3, 4, 8), "mat2": (3, 8, 5)}, (3, 4, 5), 3 * 4 * 8 * 5),
    "baddbmm": ({"self": (3, 4, 5), "batch1": (3, 4, 8), "batch2": (3, 8, 5)}, (3, 4, 5), 3 * 4 * 8 * 5),
    "addbmm": ({"self": (4, 5), "batch1": (3, 4, 8), "batch2": (3, 8, 5)}, (4, 5), 3 * 4 * 8 * 5),
    "mv": ({"self": (4, 8), "vec": (8,)}, (4,), 4 * 8),
    "addmv": ({"self": (4,), "mat": (4, 8), "vec": (8,)}, (4,), 4 * 8),
    "dot": ({"self": (8,), "tensor": (8,)}, (), 8),
    "vdot": ({"self": (8,), "other": (8,)}, (), 8),
    "_scaled_dot_product_flash_attention_for_cpu": (SDPA, (1, 2, 3, 8), SDPA_MACS),
    "_scaled_dot_product_efficient_attention": (SDPA, (1, 2, 3, 8), SDPA_MACS),
    "_scaled_dot_product_flash_attention": (SDPA, (1, 2, 3, 8), SDPA_MACS),
    "_scaled_dot_product_cudnn_attention": (SDPA, (1, 2, 3, 8), SDPA_MACS),
    # B 1 · H 2 · L 3 · S 5: QKᵀ again 3·5·8, dV 3·5·8, dP 3·5·8, dQ 3·5·8, dK 3·5·8 per head
    "_scaled_dot_product_flash_attention_for_cpu_backward": (
        {**SDPA, "grad_out": (1, 2, 3, 8), "out": (1, 2, 3, 8), "logsumexp": (1, 2, 3)},
        (1, 2, 3, 8),
        1 * 2 * 5 * (3 * 5 * 8),
    ),
    "_efficient_attention_forward": (BLHE, (1, 3, 2, 8), SDPA_MACS),
    "_flash_attention_forward": ({**BLHE, "max_q": 3, "max_k": 5}, (1, 3, 2, 8), SDPA_MACS),
    "_native_multi_head_attention": (
        {"query": (2, 6, 32), "key": (2, 6, 32), "value": (2, 6, 32), "num_head": 4, **MHA},
        (2, 6, 32),
        MHA_MACS,
    ),
    # attention 53,760 + feed-forward 2·6·32·64 (E → F) + 2·6·64·32 (F → E)
    "_transformer_encoder_layer_fwd": (
        {
            "src": (2, 6, 32),
            "num_heads": 4,
            "eps": 1e-5,
            **MHA,
            **{f"norm_{p}_{i}": (32,) for p in ("weight", "bias") for i in (1, 2)},
            **{"ffn_weight_1": (64, 32), "ffn_bias_1": (64,), "ffn_weight_2": (32, 64), "ffn_bias_2": (32,)},
        },
        (2, 6, 32),
        MHA_MACS + 2 * (2 * 6 * 32 * 64),
    ),
}
# Other required arguments, by schema type.
BY_TYPE = {"bool": False, "int": 0, "SymInt": 0, "float": 0.0, "ScalarType": torch.float32}
# Operators and overloads with no meta kernel in torch 2.13 (CUDA or backend kernels): counted from
# their arguments above, and run on meta where a later torch can.
NOT_ON_META = {
    "convolution_overrideable": "a hook for out-of-tree backends",
    "mkldnn_convolution": "oneDNN: CPU tensors only",
    "cudnn_convolution": "cuDNN only",
    "cudnn_convolution_transpose": "cuDNN only",
    "mm.dtype": "CUDA only",
    "mm.dtype_out": "CUDA only",
    "bmm.dtype": "CUDA only",
    "bmm.dtype_out": "CUDA only",
    "addmm.dtype": "CUDA only",
    "addmm.dtype_out": "CUDA only",
    "baddbmm.dtype": "CUDA only",
    "baddbmm.dtype_out": "CUDA only",
}


def example_call(overload):
    """Positional and keyword arguments of ``overload`` from its packet's example; the output shape."""
    values, out_shape, _ = EXAMPLES[overload.overloadpacket.__name__]
    args, kwargs, by_name = [], {}, False
    for argument in overload._schema.arguments:
        if argument.is_out:
            value = torch.empty(out_shape, device="meta")
        elif argument.name in values:
            value = values[argument.name]
            if str(argument.type).startswith(("Tensor", "Optional[Tensor]")):
                value = torch.empty(value, device="meta")
        elif argument.has_default_value():
            by_name = True  # the arguments after a default left out go by name
            continue
        elif str(argument.type).startswith("Optional"):
            value = None
        else:
            value = BY_TYPE[str(argument.type)]
        if argument.kwarg_only or by_name:
            kwargs[argument.name] = value
        else:
            args.append(value)
    return args, kwargs, out_shape


def overloads():
    return [
        pytest.param(getattr(getattr(aten, name), o), id=f"{name}.{o}")
        for name in sorted(FORMULAS)
        for o in getattr(aten, name).overloads()
    ]


def test_every_operator_with_a_formula_has_an_example_and_a_family():
    assert set(EXAMPLES) == set(FORMULAS)
    assert all(name in FAMILIES for name in FORMULAS)


@pytest.mark.parametrize("overload", overloads())
def test_every_overload_counts_its_hand_arithmetic(overload):
    args, kwargs, out_shape = example_call(overload)
    expected = EXAMPLES[overload.overloadpacket.__name__][2]
    assert fm.macs(overload, args, kwargs, torch.empty(out_shape, device="meta")) == expected
    packet = overload.overloadpacket.__name__
    why = NOT_ON_META.get(packet) or NOT_ON_META.get(f"{packet}.{overload._overloadname}")
    try:
        with MacCounter() as counter:
            overload(*args, **kwargs)
    except Exception as error:
        if why is None:
            raise
        pytest.skip(f"no meta kernel ({why}): {type(error).__name__}")
    assert counter.total == expected and set(counter.by_op) == {FAMILIES[packet]}


# The operators table.


def test_no_operator_with_a_formula_is_said_to_carry_none():
    for name in FORMULAS:
        assert reason(name) is None, name
        packet = getattr(aten, name)
        assert all(carries(getattr(packet, o)) == "formula" for o in packet.overloads())


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
        "unsafe_split.Tensor",
        "linalg_vector_norm.default",
    ],
)
def test_operators_that_carry_no_macs(op):
    packet, overload = op.split(".")
    assert carries(getattr(getattr(aten, packet), overload)) == "none"
    assert carries(f"aten::{packet}") == carries(packet) == "none"


@pytest.mark.parametrize(
    "op",
    ["_cdist_forward.default", "_trilinear.default", "_fft_c2c.default", "prod.default", "linear.default"],
)
def test_operators_that_may_carry_macs_are_unknown(op):
    packet, overload = op.split(".")
    assert carries(getattr(getattr(aten, packet), overload)) == "unknown"


def test_the_counter_decides_by_the_table():
    assert rule(aten.mm.default) == "formula"
    assert rule(aten.linear.default) == "decompose"
    assert rule(aten.nonzero.default) == "data"
    assert rule(aten.relu.default) == "none"
    assert rule(aten._cdist_forward.default) == "unknown"


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
    assert module_macs(linear, torch.zeros(4, 8), device=device).by_op == {"linear": 4 * 8 * 5}
    assert module_macs(linear, torch.zeros(2, 3, 8), device=device).by_op == {"linear": 2 * 3 * 8 * 5}


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
    assert c.by_op == {"matmul": macs} and not c.uncounted


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
    assert c.by_op == {"matmul": 96 + 192 + 192 + 24, "linear": 240}


class Einsum(nn.Module):
    def forward(self, q, k):
        return torch.einsum("bhqd,bhkd->bhqk", q, k)


def test_einsum_is_exact_where_fvcore_rounds():
    # 1 · 8 heads · 24 queries · 24 keys · 16 dims = 73,728; fvcore reads numpy's printed FLOP
    # estimate "1.475e+05" and halves it: 73,750
    q, k = torch.zeros(1, 8, 24, 16), torch.zeros(1, 8, 24, 16)
    assert module_macs(Einsum(), q, k).by_op == {"einsum": 1 * 8 * 24 * 24 * 16}
    assert 1 * 8 * 24 * 24 * 16 == 73_728
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

    c = count(run, device)  # fused on cpu, bmm (the math path) on meta: attention either way
    assert c.by_op == {"attention": 2 * 4 * 8 * 8 * (16 + 16)} == {"attention": 16_384}


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
    assert fm.efficient_attention_forward(query=q, key=k, value=v, cu_seqlens_q=None) == 2 * 4 * 5 * 7 * 24
    assert fm.flash_attention_forward(query=q, key=k, value=v, cum_seq_q=None) == 6_720
    packed = (1, 12, 4, 16)
    assert fm.efficient_attention_forward(query=packed, key=packed, value=packed, cu_seqlens_q=(3,)) is None


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
    assert fast.by_op == {"attention": expected}  # _native_multi_head_attention, projections included
    assert "linear" not in slow.by_op  # with gradients, F.linear arrives as addmm: matmul
    assert fast.total == slow.total == on_meta.total == expected


def test_cross_attention_with_another_length_for_keys():
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    q, kv = torch.randn(2, 6, 32), torch.randn(2, 10, 32)
    for mode in (torch.no_grad, torch.enable_grad, torch.inference_mode):
        assert count(lambda d: mha(q, kv, kv, need_weights=False), mode=mode).total == mha_macs(2, 6, 10, 32)
    assert fm.native_mha(query=(2, 6, 32), key=(2, 10, 32), embed_dim=32) == 73_216


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
    assert c.by_op == {"linear": 240, "matmul": 96, "einsum": 96, "convolution": 3_888, "attention": 512}
    assert not c.uncounted


# Families: a MAC is reported under the outermost operator with a family that ran it.


class Attend(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("device", DEVICES)
def test_attention_in_a_module_is_attention_not_matmul(device):
    # B 1 · H 2 · L 4 · S 6 · (E 8 + Ev 8) = 768; on meta it runs as two bmm
    q, k, v = torch.zeros(1, 2, 4, 8), torch.zeros(1, 2, 6, 8), torch.zeros(1, 2, 6, 8)
    c = module_macs(Attend(), q, k, v, device=device)
    assert c.by_op == {"attention": 1 * 2 * 4 * 6 * (8 + 8)} == {"attention": 768}
    assert c.by_module == {"": {"attention": 768}}


@pytest.mark.parametrize("device", DEVICES)
def test_an_explicit_bmm_is_matmul(device):
    c = count(lambda d: torch.bmm(torch.zeros(2, 3, 8, device=d), torch.zeros(2, 8, 4, device=d)), device)
    assert c.by_op == {"matmul": 2 * 3 * 8 * 4}


@pytest.mark.parametrize(
    ("rnn", "gates", "family"), [(nn.LSTM, 4, "lstm"), (nn.GRU, 3, "gru"), (nn.RNN, 1, "rnn")]
)
def test_recurrent_layers_count_their_gates_under_their_family(rnn, gates, family):
    # 5 steps · batch 2, input 4, hidden 6: per step and sample, gates × (4 + 6) × 6. torch runs the
    # input projection of all 5·2 rows at once (10·4·6·gates) and one hidden projection per step
    # (2·6·6·gates, 5 times): the same products.
    c = module_macs(rnn(4, 6), torch.zeros(5, 2, 4), device="meta")
    assert c.by_op == {family: 5 * 2 * gates * (4 + 6) * 6}
    assert 10 * 4 * 6 * gates + 5 * (2 * 6 * 6 * gates) == 5 * 2 * gates * (4 + 6) * 6
    assert not c.uncounted


def test_hetconv_exact_splits_into_its_grouped_convolution_and_its_matmul():
    # 64 → 64, 3×3, P = 4 on 8×8: each filter reads 64/4 channels through 3×3 taps (a grouped
    # conv) and the other 64 − 64/4 through 1×1 taps (a bmm)
    c = module_macs(HetConv2d(64, 64, 3, 4, impl="exact"), torch.zeros(1, 64, 8, 8), device="meta")
    assert c.by_op == {"convolution": 8 * 8 * 64 * (64 // 4) * 9, "matmul": 8 * 8 * 64 * (64 - 64 // 4)}


def test_with_gradients_composites_arrive_decomposed():
    # autograd decomposes F.linear before the counter sees it: an addmm, a matmul
    c = module_macs(nn.Linear(8, 5), torch.zeros(4, 8), mode=torch.enable_grad)
    assert c.by_op == {"matmul": 4 * 8 * 5}


# A training step: what autograd runs, by the module whose forward made it.


def step(module, x, device="cpu") -> MacCounter:
    """The counter of ``module``'s training step on ``x``: forward, then backward of the output's sum."""
    module = copy.deepcopy(module).to(device)
    x = x.detach().to(device).requires_grad_(x.requires_grad)
    with MacCounter(module) as counter:
        module(x).sum().backward()
    return counter


@pytest.mark.parametrize("device", DEVICES)
def test_convolution_backward_runs_what_its_output_mask_asks(device):
    # 3 → 4, 3×3 on 6×6, no padding: 4×4 outputs · 4 · 3 · 9 = 1,728 MACs forward
    conv = nn.Conv2d(3, 4, 3)
    assert step(conv, torch.zeros(1, 3, 6, 6), device).backward == 1_728  # data: the weight gradient only
    x = torch.zeros(1, 3, 6, 6, requires_grad=True)
    c = step(conv, x, device)
    assert (c.backward, c.total) == (2 * 1_728, 3 * 1_728)  # the input's gradient too
    assert c.by_op == {"convolution": 1_728} and c.backward_by_op == {"convolution": 3_456}
    conv.requires_grad_(False)
    assert step(conv, x, device).backward == 1_728  # frozen: the input's gradient only


@pytest.mark.parametrize("device", DEVICES)
def test_a_linear_layers_gradients_are_two_matmuls(device):
    # 4 rows · 8 in · 5 out = 160: grad_input = grad_out (4×5) · W (5×8), grad_weight = grad_outᵀ (5×4) · x (4×8)
    c = step(nn.Linear(8, 5), torch.zeros(4, 8, requires_grad=True), device)
    assert c.by_op == {"matmul": 160} and c.backward_by_op == {"matmul": 2 * 160}


@pytest.mark.parametrize("device", DEVICES)
def test_backward_is_attributed_to_the_module_whose_forward_ran(device):
    c = step(Net(), torch.zeros(1, 2, 4, 4), device)
    per_module = {name: sum(ops.values()) for name, ops in c.backward_by_module.items()}
    assert per_module == {
        "block.conv": 1_152,  # fed by data: the weight gradient only
        "block.fc": 2 * 192,
        "shared": 2 * 2 * 144,  # both calls, each its input's and its weight's gradient
        "": 144,  # y @ ones: the constant needs no gradient, y does
        "head.1": 2 * 96,
    }
    assert c.backward == sum(per_module.values()) and c.total == c.backward + sum(c.by_op.values())
    assert c.subtree_macs(c.backward_by_module)["block"] == 1_152 + 2 * 192


def test_activations_are_what_fvcore_counts():
    # outputs: block.conv 4·4·4 = 64, block.fc 16·3 = 48, shared 48 twice, y @ ones 48, head.1 2
    c = module_macs(Net(), torch.zeros(1, 2, 4, 4))
    assert c.activations == 64 + 48 + 2 * 48 + 48 + 2 == 258
    assert c.activations_by_module == {"block.conv": 64, "block.fc": 48, "shared": 96, "": 48, "head.1": 2}
    analysis = ActivationCountAnalysis(Net().eval(), (torch.zeros(1, 2, 4, 4),))
    analysis.unsupported_ops_warnings(False)
    assert analysis.total() == 258
    assert step(Net(), torch.zeros(1, 2, 4, 4)).activations == 258  # the backward's matmuls are not outputs


@pytest.mark.parametrize("device", DEVICES)
def test_a_step_on_meta_runs_the_attention_kernel_the_cpu_runs(device):
    # batch 2 · 4 heads · L = S = 6 · head width 4: forward QKᵀ and A·V 2·4·6·6·(4 + 4) = 2,304; the CPU's flash
    # backward recomputes QKᵀ, then dV, dP, dQ, dK: 2·4·6·6·(3·4 + 2·4) = 5,760. Meta alone would take the math path
    layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True)
    c = step(layer, torch.zeros(2, 6, 16), device)
    assert (c.by_op["attention"], c.backward_by_op["attention"]) == (2_304, 5_760)
    assert not c.uncounted


def test_the_attention_kernel_is_registered_for_the_step_only():
    has = lambda: torch._C._dispatch_has_kernel_for_dispatch_key(
        "aten::scaled_dot_product_attention", "AutogradMeta"
    )
    assert not has()
    with MacCounter():
        assert has()
    assert not has()
    with torch.no_grad(), MacCounter():
        assert not has()  # inference needs no gradient: nothing to choose


@pytest.mark.parametrize("device", DEVICES)
def test_a_vector_norm_leaves_nothing_uncounted(device):
    c = count(lambda d: torch.linalg.vector_norm(torch.zeros(3, 4, device=d)), device)
    assert c.total == 0 and not c.uncounted


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
    x = torch.ones(2, requires_grad=True)  # autograd, off inside the counter under no_grad, is back
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


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
    assert c.by_module == {"bad": {"matmul": 18}, "": {"matmul": 24}, "fc": {"linear": 18}}


def test_an_error_escaping_the_model_leaves_the_counter_usable():
    model = Recovers()
    with pytest.raises(ValueError), torch.no_grad(), MacCounter(model) as c:
        model.bad(torch.zeros(2, 3))
    assert c.by_module == {"bad": {"matmul": 18}}
    assert not hooks_left()
    with torch.no_grad(), c:
        model.fc(torch.zeros(2, 3))
    assert c.by_module == {"bad": {"matmul": 18}, "fc": {"linear": 18}}


def test_without_a_model_everything_is_attributed_to_the_root():
    c = module_macs(Net(), torch.zeros(1, 2, 4, 4))
    d = count(lambda d: Net()(torch.zeros(1, 2, 4, 4)))
    assert d.total == c.total and set(d.by_module) == {""}


# Recording: the outermost calls of chosen module types, through the counter's own global hooks.


def test_recorded_calls_are_the_outermost_in_call_order():
    net = Net()
    with torch.no_grad(), MacCounter(net, record=(nn.Conv2d, nn.Linear)) as c:
        net(torch.zeros(1, 2, 4, 4))
    assert [(call.name, call.input_shape, call.output_shape) for call in c.calls] == [
        ("block.conv", (1, 2, 4, 4), (1, 4, 4, 4)),
        ("block.fc", (1, 4, 4, 4), (1, 4, 4, 3)),
        ("shared", (1, 4, 4, 3), (1, 4, 4, 3)),
        ("shared", (1, 4, 4, 3), (1, 4, 4, 3)),
        ("head.1", (1, 48), (1, 2)),
    ]
    assert c.calls[2].module is net.shared
    with torch.no_grad(), MacCounter(net, record=(Block, nn.Linear)) as outer:
        net(torch.zeros(1, 2, 4, 4))
    assert [call.name for call in outer.calls] == ["block", "shared", "shared", "head.1"]  # not block.fc
    assert outer.calls[0] == Call(net.block, "block", (1, 2, 4, 4), (1, 4, 4, 3))  # called as block(x=x)


def test_a_call_that_raises_is_not_recorded():
    model = Recovers()
    with torch.no_grad(), MacCounter(model, record=(Raises, nn.Linear)) as c:
        model(torch.zeros(2, 3))
    assert c.calls == [Call(model.fc, "fc", (2, 3), (2, 3))]


def test_recording_keeps_the_transformer_fast_path():
    model = nn.Sequential(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), nn.Linear(32, 10)).eval()
    x = torch.randn(2, 6, 32)
    with torch.no_grad(), MacCounter(model, record=(nn.Linear,)) as c:
        model(x)
    # the layer's fast path: attention 53,760 + feed-forward 2 · 2·6·32·64 = 102,912; head 2·6·32·10
    assert c.by_op == {"transformer_encoder_layer": 102_912, "linear": 2 * 6 * 32 * 10}
    assert c.calls == [Call(model[1], "1", (2, 6, 32), (2, 6, 10))]  # the fast path calls no nn.Linear
    hooks = [m.register_forward_hook(lambda *_: None) for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad(), MacCounter(model) as hooked:  # modules' own hooks turn the fast path off
        model(x)
    for hook in hooks:
        hook.remove()
    assert "transformer_encoder_layer" not in hooked.by_op and hooked.total == c.total


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
