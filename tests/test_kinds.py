"""The kinds registry, walked end to end, and the one eligibility rule that every path shares.

Every kind of ``hetcalc.core.kinds.KINDS`` is checked through every path without a test of its own:
its formula against fvcore's count of its real layer, and (for the kinds a model can be
converted to) ``convert`` ↔ ``trace`` ↔ ``analyze`` ↔ fvcore, and a timed layer of ``bench``.
The agreement property over random models (``convert`` ↔ ``trace`` ↔ ``analyze`` ↔ fvcore, same
layers kept with the same reasons) is ``tests/test_plan.py``.
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

from hetcalc.core import kinds
from hetcalc.core.analyze import analyze
from hetcalc.core.errors import InvalidInput
from hetcalc.core.spec import ConvSpec
from hetcalc.real import bench, verify
from hetcalc.real.conversion import convert
from hetcalc.real.fvcount import NOT_MACS, count
from hetcalc.real.layers import build_layer
from hetcalc.real.trace import trace


def fvcore_macs(model, size) -> int:
    """fvcore's MACs of ``model`` on a 1×C×H×W input, BatchNorm and pooling handles zeroed."""
    return count(model.eval(), (torch.zeros(1, *size),), tuple(NOT_MACS))[0]


def exact(model, size, **variant):
    return analyze(trace(model, size), convention="exact", **{"variant": "standard", **variant})


SHAPES = [(8, 16, 3, 1, 9, False), (16, 8, 5, 2, 12, True), (12, 12, 1, 1, 6, True), (8, 8, 7, 2, 15, False)]


@pytest.mark.parametrize("row,name,impl", verify.realisations())
def test_every_kind_counts_what_its_real_layer_runs(row, name, impl):
    """Each realisation over layer shapes (K ∈ {1, 3, 5, 7}, strides, bias): formula == fvcore, MACs and params."""
    cases = [
        case
        for shape in SHAPES
        for case in verify.layer_cases(*shape, P=4, G=2, mid=None)
        if case.kind == row
    ]
    assert cases, f"no layer shape fits {row}"
    rows = verify.run(cases)
    assert not verify.failures(rows), rows


@pytest.mark.parametrize("name", [name for name in kinds.VARIANTS if name != "standard"])
def test_every_variant_converts_traces_and_counts_alike(name):
    """convert ↔ trace ↔ analyze ↔ fvcore for each kind a model can be converted to."""
    value = {"P": 2, "G": 2, None: None}[kinds.get(name).parameter]
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 2, 1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, padding=2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 10),
    )
    size = (3, 8, 8)
    setting = {kinds.get(name).parameter: value} if value else {}
    converted, report = convert(model, variant=name, **setting, input_size=(3, 8, 8), return_report=True)
    assert report.replaced == ["2", "4"]
    symbolic = exact(model, size, variant=name, **setting)
    traced = exact(converted, size)
    assert [r["kind"] for r in traced.layers[:3]] == ["standard", name, name]
    assert symbolic.flops == traced.flops == fvcore_macs(converted, size)
    assert symbolic.params == traced.params == sum(p.numel() for p in converted.parameters())


@pytest.mark.parametrize("timed", bench.TIMED, ids=lambda timed: timed.name)
def test_every_timed_layer_runs_the_macs_bench_says(timed):
    module = timed.build(8, 8, 3, 2).eval()
    spec = ConvSpec(M=8, N=8, K=3, H=6)
    assert fvcore_macs(module, (8, 6, 6)) == timed.runs(spec, 2).macs
    samples = bench.time_layers({"standard": module}, torch.zeros(1, 8, 6, 6), "cpu", repeats=1, min_time=0)
    assert len(samples["standard"]) == 1


def test_one_rule_everywhere_for_p_dividing_m_but_not_n():
    """HetConv P=8 on 8 → 12: refused by the layer, the formula's check, bench, and skipped by model and convert."""
    spec, reason = (
        ConvSpec(M=8, N=12, K=3),
        "P=8 does not divide the output channels N (12); valid values: 1, 2, 3, 4, 6, 12",
    )
    assert kinds.ineligible(spec, "hetconv", 8) == reason
    for refuse in (
        lambda: kinds.layer_cost(spec, "hetconv", 8),
        lambda: build_layer("hetconv", 8, 12, 3, 8),
        lambda: bench.run(8, 12, 3, 4, 1, [8], ["exact"], repeats=1),
    ):
        with pytest.raises(InvalidInput, match="^P: " + re.escape(reason)):
            refuse()
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 12, 3, padding=1))
    converted, report = convert(model, 8, input_size=(3, 32, 32), return_report=True)
    assert report.skipped[1] == ("1", reason) and report.replaced == []
    symbolic = exact(model, (3, 32, 32), variant="hetconv", P=8)
    assert symbolic.layers[1]["note"] == reason and not symbolic.layers[1]["changed"]
    assert (
        symbolic.flops
        == exact(converted, (3, 32, 32)).flops
        == fvcore_macs(converted, (3, 32, 32))
        == 1_105_920
    )


def test_even_kernels_are_refused_by_hetconv_only():
    spec = ConvSpec(M=8, N=8, K=4)
    assert kinds.ineligible(spec, "hetconv", 2).startswith("even kernel 4×4")
    assert kinds.ineligible(spec, "gwc_pwc", 2) is None and kinds.ineligible(spec, "dwc_pwc") is None
