"""The LHC masked layer: dense vs effective cost, fvcore's view of it, masks round-tripped through ``hetcalc mask``."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.core import cost
from hetcalc.core.masks import kind_mask
from hetcalc.core.spec import ConvSpec
from hetcalc.real.fvcount import count, unexplained
from hetcalc.real.lhc import MaskedConv2d, export_masks


def random_mask(shape, seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)) > 0.6


def test_costs_by_hand():
    layer = MaskedConv2d(4, 8, 3, mask=torch.as_tensor(kind_mask("hetconv", 4, 8, 3, P=2)), bias=True)
    costs = layer.costs(5)
    spec = ConvSpec(M=4, N=8, K=3, H=5, bias=True)
    assert costs["effective"] == cost.hetconv(spec, 2)  # the HetConv mask counts as Eqs. 2–4
    assert costs["dense"] == cost.standard(spec) == cost.Cost(25 * 8 * 36, 25 * 8, 8 * 36 + 8)


@pytest.mark.parametrize("groups", [1, 2])
def test_fvcore_pays_the_dense_bank_and_reports_the_mask_multiply(groups):
    layer = MaskedConv2d(4, 8, 3, mask=random_mask((8, 4 // groups, 3, 3)), stride=2, groups=groups).eval()
    macs, _, skipped = count(layer, (torch.zeros(1, 4, 9, 9),))
    assert macs == layer.costs(5)["dense"].macs == 25 * 8 * (4 // groups) * 9
    assert layer.costs(5)["effective"].macs == 25 * int(layer.binary_mask().sum()) < macs
    assert skipped == {"aten::to": 1, "aten::mul": 1}  # weight · mask: reported, not hidden
    assert unexplained(skipped) == []  # an element-wise multiply, no MAC


def test_output_equals_conv_with_masked_weight():
    layer = MaskedConv2d(3, 6, 3, mask=random_mask((6, 3, 3, 3)), bias=True, padding=0)
    x = torch.randn(2, 3, 7, 7)
    expected = F.conv2d(x, layer.weight * layer.mask, layer.bias)
    torch.testing.assert_close(layer(x), expected)
    learnable = MaskedConv2d(3, 6, 3, mask=layer.mask, learnable=True)
    torch.testing.assert_close(
        learnable(x), F.conv2d(x, learnable.weight * layer.mask, learnable.bias, padding=1)
    )


def test_fixed_mask_gives_pruned_taps_no_gradient():
    layer = MaskedConv2d(3, 4, 3, mask=random_mask((4, 3, 3, 3)))
    layer(torch.randn(1, 3, 6, 6)).sum().backward()
    assert not layer.weight.grad[~layer.mask].any() and layer.weight.grad[layer.mask].abs().sum() > 0


def test_learnable_mask_learns_straight_through():
    torch.manual_seed(0)
    layer = MaskedConv2d(3, 4, 3, mask=random_mask((4, 3, 3, 3)), learnable=True)
    before = layer.binary_mask().clone()
    layer(torch.randn(2, 3, 6, 6)).pow(2).sum().backward()
    assert layer.mask_scores.grad is not None and layer.mask_scores.grad.abs().sum() > 0
    torch.optim.SGD([layer.mask_scores], lr=100.0).step()
    assert not torch.equal(layer.binary_mask(), before)


def test_export_masks_round_trips_through_hetcalc_mask(tmp_path):
    model = torch.nn.Sequential(
        MaskedConv2d(3, 8, 3, mask=random_mask((8, 3, 3, 3), 1)),
        torch.nn.ReLU(),
        MaskedConv2d(8, 8, 3, mask=random_mask((8, 8, 3, 3), 2), learnable=True),
    )
    path = tmp_path / "masks.pt"
    torch.save(export_masks(model), path)
    result = CliRunner().invoke(
        cli, ["mask", str(path), "--D", "6", "--bias", "--json"]
    )  # nn.Conv2d: bias by default
    assert result.exit_code == 0, result.output
    counted = json.loads(result.output)
    effective = [model[0].costs(6)["effective"], model[2].costs(6)["effective"]]
    assert [layer["name"] for layer in counted["layers"]] == ["0", "2"]
    assert [layer["flops"] for layer in counted["layers"]] == [c.flops for c in effective]
    assert counted["flops"] == sum(c.flops for c in effective)
    assert counted["dense_flops"] == sum(m.costs(6)["dense"].flops for m in (model[0], model[2]))
