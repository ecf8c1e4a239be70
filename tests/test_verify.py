"""``hetcalc verify`` and its parts: rows, failures, fvcore's skipped operators, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import torch
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.core import cost, kinds
from hetcalc.core.spec import ConvSpec
from hetcalc.real import operators, verify
from hetcalc.real.counter import rule
from hetcalc.real.fvcount import FREE_OPS, NOT_MACS, count, unexplained
from hetcalc.real.layers import HetConv2d

KINDS = {
    row for row, _, _ in verify.realisations()
}  # every kind of hetcalc.core.kinds, and HetConv impl="fast"


def test_verify_module_worked_example():
    # 3 → 4, 3×3, 5×5 output: 25 positions · 4 filters · 27 taps = 2700 MACs; 108 weights + 4 biases.
    row = verify.verify_module(
        "standard",
        {"M": 3},
        torch.nn.Conv2d(3, 4, 3, padding=1, bias=True),
        (1, 3, 5, 5),
        cost.Cost(macs=2700, adds=100, params=112),
    )
    assert (row["fvcore_flops"], row["fvcore_params"], row["match"]) == (2700, 112, True)
    assert row["ignored_ops"] == {} and row["unexplained_ops"] == []


def test_a_mismatch_is_a_failure():
    spec = ConvSpec(M=8, N=8, K=3, H=8)
    wrong = verify.Case(
        "hetconv", {}, lambda: HetConv2d(8, 8, 3, 4), (1, 8, 8, 8), cost.hetconv_grouped_sum(spec, 4)
    )
    right = verify.Case("hetconv", {}, lambda: HetConv2d(8, 8, 3, 4), (1, 8, 8, 8), cost.hetconv(spec, 4))
    rows = verify.run([wrong, right])
    assert [r["match"] for r in rows] == [False, True]
    assert verify.failures(rows) == rows[:1]


class Distances(torch.nn.Module):
    def forward(self, x):
        return torch.cdist(torch.relu(x), x) * 2  # pairwise distances: products summed, no formula


def test_a_skipped_operator_that_may_carry_macs_is_surfaced_and_fails_the_row():
    _, _, ignored = count(Distances(), (torch.zeros(1, 4, 3),))
    assert ignored == {"aten::relu": 1, "aten::cdist": 1, "aten::mul": 1}
    assert unexplained(ignored) == ["aten::cdist"]  # an element-wise multiply is no MAC
    row = verify.verify_module("other", {}, Distances(), (1, 4, 3), cost.Cost(0))
    assert row["match"] and verify.failures([row]) == [row]


def test_fvcores_lists_are_derived_from_the_one_table_and_agree_with_the_counter():
    from fvcore.nn.jit_analysis import _IGNORED_OPS

    assert set(_IGNORED_OPS) <= set(FREE_OPS)  # what fvcore skips silently is explained
    # element-wise multiplies, means and average pooling sum no product over a contracted dimension
    assert {"aten::mul", "aten::div", "aten::sigmoid", "aten::mean", "aten::avg_pool2d"} <= set(FREE_OPS)
    assert not {"aten::mm", "aten::_convolution", "aten::linear", "aten::einsum", "aten::cdist"} & set(
        FREE_OPS
    )
    assert list(NOT_MACS) == [  # fvcore 0.1.5's default handles of operators that carry no MAC
        "aten::batch_norm",
        "aten::group_norm",
        "aten::layer_norm",
        "aten::instance_norm",
        "aten::upsample_nearest2d",
        "aten::upsample_bilinear2d",
        "aten::adaptive_avg_pool2d",
        "aten::grid_sampler",
    ]
    assert all(NOT_MACS[op] == FREE_OPS[op] == operators.NONE[op[6:]] for op in NOT_MACS)
    for name in operators.aten_names():
        assert (f"aten::{name}" in FREE_OPS) == (operators.carries(name) == "none"), name
    for name, why in operators.NONE.items():
        assert FREE_OPS[f"aten::{name}"] == why
    dispatcher = set(torch._C._dispatch_get_all_op_names())  # TorchScript's scalar overloads never run
    for op in FREE_OPS:
        packet = getattr(torch.ops.aten, op.removeprefix("aten::"))
        for overload in (getattr(packet, name) for name in packet.overloads()):
            if overload.name() in dispatcher:
                assert rule(overload) in ("decompose", "data", "none"), overload


def test_grid_covers_every_kind_both_strides_bias_and_kernel_sizes():
    cases = list(verify.layer_grid())
    assert {c.kind for c in cases} == KINDS
    assert {c.config["K"] for c in cases} == {1, 3, 5, 7}
    assert {(c.config["stride"], c.config["bias"]) for c in cases} == {
        (1, False),
        (1, True),
        (2, False),
        (2, True),
    }
    assert {c.config["P"] for c in cases if c.kind == "hetconv"} == {2, 4, 8}
    quick = list(verify.layer_grid(quick=True))
    assert len(quick) >= 40 and {c.kind for c in quick} == KINDS


def test_realisations_cover_the_kinds_registry_and_fast():
    assert KINDS == set(kinds.KINDS) | {"hetconv_fast"}


def test_cli_verify_json_all_rows_match():
    """The quick grid and three models (the full grid is the registry walk of tests/test_kinds.py)."""
    result = CliRunner().invoke(cli, ["verify", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    rows = payload["rows"]
    assert len(rows) >= 40 and {r["kind"] for r in rows} == KINDS
    assert all(r["match"] and not r["unexplained_ops"] for r in rows) and payload["failures"] == 0
    assert all(
        isinstance(r[key], int)
        for r in rows
        for key in ("symbolic_flops", "fvcore_flops", "symbolic_params", "fvcore_params")
    )
    assert "bias additions" in payload["unit"]
    assert set(payload["ignored_reasons"]) >= {"aten::add", "aten::unfold"}
    models = [r for r in rows if "model" in r["config"]]
    assert {r["config"]["model"] for r in models} == {"resnet56", "vgg16"}
    assert {r["kind"] for r in models} == {"standard", "hetconv"}
    assert all(r["uncounted_handles"] == list(NOT_MACS) for r in models)
    assert set(payload["zeroed_handles"]) == set(models[0]["uncounted_handles"])


def test_cli_verify_table_and_exit_1_on_mismatch(monkeypatch):
    result = CliRunner().invoke(cli, ["verify", "--quick", "--no-models"])
    assert result.exit_code == 0, result.output
    assert (
        f"All {8 * len(KINDS)} rows match" in result.stdout
        and "fvcore counts no bias additions" in result.stdout
    )

    spec = ConvSpec(M=4, N=4, K=3, H=4)
    bad = verify.Case("hetconv", {"P": 2}, lambda: HetConv2d(4, 4, 3, 2), (1, 4, 4, 4), cost.standard(spec))
    monkeypatch.setattr(verify, "layer_grid", lambda quick=False: iter([bad]))
    result = CliRunner().invoke(cli, ["verify", "--no-models"])
    assert result.exit_code == 1
    assert "1 of 1 rows fail" in result.stdout


def test_torch_is_not_imported_by_the_symbolic_core_or_the_cli():
    code = (
        "import sys, hetcalc, hetcalc.core.cost, hetcalc.cli, hetcalc.cli.verify; "
        "assert 'torch' not in sys.modules and 'fvcore' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_help_says_how_many_rows_quick_checks():
    """The --quick help's counts are the grid's: 56 layers (7 realisations × 8 shapes) and 3 models."""
    from hetcalc.real import verify as checks

    text = " ".join(CliRunner().invoke(cli, ["verify", "--help"]).output.split())
    layers = len(list(checks.layer_grid(quick=True)))
    models = len(list(checks.model_cases(quick=True)))
    assert f"({layers} layers:" in text and (layers, models) == (56, 3) and "three models" in text
