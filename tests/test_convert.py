"""``hetcalc.convert``: real layers in place of eligible convolutions, counted three ways to the integer.

For a converted model, fvcore's trace = the traced spec of the converted model (exact, as it is)
= the traced spec of the original under the same variant (exact). Parameters likewise.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import hetcalc
from hetcalc.core.analyze import analyze
from hetcalc.core.errors import InvalidInput
from hetcalc.real.conversion import convert, convert_dwc, convert_gwc
from hetcalc.real.fvcount import count
from hetcalc.real.layers import DwPwConv2d, GwPwConv2d, HetConv2d
from hetcalc.real.trace import trace


def fvcore(model, size) -> tuple[int, int]:
    """(MACs, parameters) by fvcore and torch; BatchNorm's per-element arithmetic is not a MAC."""
    macs, by_operator, _ = count(model.eval(), (torch.zeros(1, *size),))
    return macs - by_operator.get("batch_norm", 0), sum(p.numel() for p in model.parameters())


def counted(model, size, **variant) -> tuple[int, int]:
    report = analyze(trace(model, size), convention="exact", **{"variant": "standard", **variant})
    return report.flops, report.params


class Block(nn.Module):
    def __init__(self, M, N, stride, bias):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(M, N, 3, stride, 1, bias=bias), nn.BatchNorm2d(N)
        self.conv2, self.bn2 = nn.Conv2d(N, N, 3, 1, 1, bias=bias), nn.BatchNorm2d(N)
        self.downsample = nn.Conv2d(M, N, 1, stride, bias=False) if stride > 1 or M != N else nn.Identity()

    def forward(self, x):
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + self.downsample(x))


class Small(nn.Module):
    """A stem, two residual blocks (one with a 1×1 downsample), a depthwise conv, a classifier."""

    def __init__(self, width=8, widen=2, stride=2, bias=False):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=bias)
        self.block1 = Block(width, width, 1, bias)
        self.block2 = Block(width, widen * width, stride, bias)
        self.depthwise = nn.Conv2d(widen * width, widen * width, 3, padding=1, groups=widen * width)
        self.fc = nn.Linear(widen * width, 10)

    def forward(self, x):
        return self.fc(self.depthwise(self.block2(self.block1(self.stem(x)))).mean((2, 3)))


SIZE = (3, 12, 12)


@pytest.mark.parametrize(
    "variant, convert_it, options",
    [
        ("hetconv", lambda m: convert(m, P=4, input_size=SIZE), {"P": 4}),
        (
            "hetconv",
            lambda m: convert(m, 2, impl="grouped_sum", input_size=SIZE),
            {"P": 2, "impl": "grouped_sum"},
        ),
        ("gwc_pwc", lambda m: convert_gwc(m, 2, input_size=SIZE), {"G": 2}),
        ("dwc_pwc", lambda m: convert_dwc(m, input_size=SIZE), {}),
    ],
)
def test_fvcore_equals_traced_equals_symbolic(variant, convert_it, options):
    model = Small(bias=True)
    converted = convert_it(model)
    traced = fvcore(converted, SIZE)
    assert traced == counted(converted, SIZE)
    assert traced == counted(model, SIZE, variant=variant, **options)
    assert converted(torch.zeros(2, *SIZE)).shape == model(torch.zeros(2, *SIZE)).shape == (2, 10)


def test_report_lists_replaced_and_skipped_layers():
    model = Small()
    converted, report = convert(model, 4, input_size=SIZE, return_report=True)
    assert report.replaced == ["block1.conv1", "block1.conv2", "block2.conv1", "block2.conv2"]
    assert report.skipped == [
        ("stem", "first convolution (kept, as in the paper)"),
        ("block2.downsample", "1×1 kernel: nothing to replace"),
        ("depthwise", "depthwise"),
    ]
    assert isinstance(converted.block2.conv1, HetConv2d) and converted.block2.conv1.stride == 2
    assert type(model.block2.conv1) is nn.Conv2d  # the original is untouched
    kinds = [r["kind"] for r in analyze(trace(converted, SIZE), variant="standard").layers]
    assert kinds[:6] == ["standard", "hetconv", "hetconv", "hetconv", "hetconv", "standard"]


def test_ineligible_convolutions_are_kept_with_reasons():
    model = nn.Sequential(
        nn.Conv2d(3, 6, 3),
        nn.Conv2d(6, 8, 3),
        nn.Conv2d(8, 8, 3, dilation=2),
        nn.Conv2d(8, 8, 2),
        nn.Conv2d(8, 8, (3, 1)),
        nn.Conv2d(8, 8, 3, padding=1, padding_mode="reflect"),
        nn.Conv2d(8, 12, 3, padding="same"),
    )
    converted, report = convert(model, 4, input_size=(3, 16, 16), return_report=True, keep_first=False)
    assert report.skipped == [
        ("0", "P=4 does not divide the input channels M (3); valid values: 1, 3"),
        ("1", "P=4 does not divide the input channels M (6); valid values: 1, 2, 3, 6"),
        ("2", "dilation 2×2"),
        ("3", "even kernel 2×2: HetConv's 1×1 kernels are the centre taps of its K×K kernels"),
        ("4", "non-square kernel 3×1"),
        ("5", "padding_mode 'reflect'"),
    ]
    assert report.replaced == ["6"] and converted[6].padding == 1
    _, gwc = convert_gwc(model, 3, input_size=(3, 16, 16), return_report=True)
    assert (
        gwc.replaced == ["1"]
        and ("6", "G=3 does not divide the input channels M (8); valid values: 1, 2, 4, 8") in gwc.skipped
    )


def test_keeps_dtype_shares_shared_modules_and_does_not_enter_hetcalc_layers():
    shared = nn.Conv2d(8, 8, 3, padding=1)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), shared, nn.Sequential(shared), DwPwConv2d(8, 8, 3), GwPwConv2d(8, 8, 3, 1)
    ).double()
    converted, report = convert(model, 2, input_size=(3, 10, 10), return_report=True)
    assert converted[1] is converted[2][0] and isinstance(converted[1], HetConv2d)
    assert converted[1].weight.dtype == torch.float64
    assert report.replaced == ["1"] and type(converted[4].groupwise) is nn.Conv2d


def test_bad_arguments():
    with pytest.raises(InvalidInput, match="^P: the hetconv variant needs P"):
        convert(Small(), input_size=SIZE)
    with pytest.raises(
        InvalidInput, match="^variant: must be one of standard, hetconv, dwc_pwc, gwc_pwc, got 'lhc'"
    ):
        convert(Small(), 2, variant="lhc", input_size=SIZE)
    with pytest.raises(
        InvalidInput, match="^input_size: convert traces the model to decide its layers in call order"
    ):
        convert(Small(), P=2)


def test_hetcalc_convert_is_lazy():
    code = "import sys, hetcalc; print([m for m in sys.modules if m.split('.')[0] == 'torch'])"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        == "[]\n"
    )
    assert (hetcalc.convert, hetcalc.convert_gwc, hetcalc.convert_dwc) == (convert, convert_gwc, convert_dwc)


@settings(max_examples=6, deadline=None)
@given(
    P=st.sampled_from([1, 2, 4]),
    width=st.sampled_from([4, 8]),
    widen=st.sampled_from([1, 2]),
    stride=st.sampled_from([1, 2]),
    bias=st.booleans(),
    side=st.integers(5, 9),
)
def test_property_hetconv_counts_agree(P, width, widen, stride, bias, side):
    model, size = Small(width, widen, stride, bias), (3, side, side + 1)
    converted = convert(model, P=P, input_size=size)
    assert fvcore(converted, size) == counted(converted, size) == counted(model, size, variant="hetconv", P=P)
