"""``hetcalc bench --model/--module`` and ``hetcalc.real.fold``: structure, pairing, exactness, counts (no timing assertions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import hetcalc
from hetcalc.cli import cli
from hetcalc.core.analyze import analyze
from hetcalc.real import bench_model, fvcount
from hetcalc.real.build import build_model
from hetcalc.real.fold import FusedHetConv, inference
from hetcalc.real.load import load_model
from hetcalc.real.trace import trace

TINY = f"{Path(__file__).resolve()}:tiny_net"


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 with BatchNorm and an identity shortcut: the 3×3 sits between two dense convs."""

    def __init__(self, width: int, stride: int = 1):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(4 * width, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, 4 * width, 1, bias=False), nn.BatchNorm2d(4 * width)
        self.stride = stride

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = torch.relu(self.bn2(self.conv2(y)))
        return torch.relu(self.bn3(self.conv3(y)) + x[:, :, :: self.stride, :: self.stride])


def tiny_net(width: int = 8):
    """A small VGG-like network with a bottleneck block: every case the folding handles, on an 8×8 input."""
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, width, 3, padding=1, bias=False),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 4 * width, 3, padding=1, bias=False),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        Bottleneck(width),
        Bottleneck(width, stride=2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, 10),
    )


def randomised(model):
    """``model`` in eval mode with BatchNorm statistics and affine parameters far from the identity."""
    generator = torch.Generator().manual_seed(1)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            for tensor, low, high in (
                (module.running_mean, -1, 1),
                (module.running_var, 0.5, 2),
                (module.weight.data, 0.5, 1.5),
                (module.bias.data, -1, 1),
            ):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * (high - low) + low)
    return model.eval()


def exact_macs(model, size):
    return analyze(trace(model, size), variant="standard", convention="exact").flops


CASES = [("hetconv", impl, P) for impl in ("exact", "fast", "grouped_sum") for P in (2, 4)]
CASES += [("gwc_pwc", None, 2), ("dwc_pwc", None, None), ("standard", None, None)]


def converted(model, variant, impl, value):
    if variant == "standard":
        return model
    if variant == "hetconv":
        return randomised(hetcalc.convert(model, P=value, impl=impl, input_size=(3, 8, 8)))
    return randomised(hetcalc.convert(model, variant=variant, G=value, input_size=(3, 8, 8)))


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
@pytest.mark.parametrize("variant,impl,value", CASES)
def test_inference_computes_the_per_layer_conversion_with_the_cost_models_macs(
    variant, impl, value, channels_last
):
    torch.manual_seed(0)
    model = converted(randomised(tiny_net()), variant, impl, value)
    folded = inference(model, channels_last=channels_last)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
        got = folded(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    macs, _, skipped = fvcount.count(folded, (x[:1],), tuple(fvcount.NOT_MACS))
    assert macs == exact_macs(model, (3, 8, 8))
    assert fvcount.unexplained(skipped) == []
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())  # every BatchNorm folded


@pytest.mark.parametrize("impl,P", [("fast", 4), ("fast", 8), ("grouped_sum", 8), ("exact", 4)])
def test_vgg16_folds_exactly_and_fvcore_counts_the_cost_model(impl, P):
    torch.manual_seed(0)
    model = randomised(hetcalc.convert(randomised(build_model("vgg16")), P, impl=impl))
    folded, report = inference(model, return_report=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            folded(x.contiguous(memory_format=torch.channels_last)), model(x), rtol=1e-4, atol=1e-4
        )
    assert fvcount.count(folded, (x[:1],), tuple(fvcount.NOT_MACS))[0] == exact_macs(model, (3, 32, 32))
    assert len(report.folded) == 13
    if impl == "fast":  # conv1 → conv2 → … → conv13: residue order all the way, one copy at the end
        assert len(report.residue_edges) == 12
        fused = [m for m in folded.modules() if isinstance(m, FusedHetConv)]
        assert not any(m.gather for m in fused) and [m.scatter for m in fused] == [False] * 11 + [True]


def test_residue_order_passes_through_dense_1x1_convs_but_not_across_a_residual_add():
    model = randomised(hetcalc.convert(randomised(tiny_net()), 4, impl="fast", input_size=(3, 8, 8)))
    _, report = inference(model, return_report=True)
    edges = set(report.residue_edges)
    assert {
        "10.conv1 → 10.conv2",
        "10.conv2 → 10.conv3",
        "11.conv1 → 11.conv2",
        "11.conv2 → 11.conv3",
    } <= edges
    assert "0 → 3" in edges and "3 → 7" in edges
    assert not any(edge.startswith("7 →") for edge in edges)  # conv 7's output also feeds the shortcut


def test_standard_and_fused_layers_count_the_same_as_the_cost_model_for_strided_hetconv():
    layer = hetcalc.real.layers.HetConv2d(16, 16, 3, 4, stride=2, impl="fast").eval()
    fused = FusedHetConv(layer).eval()
    x = torch.randn(2, 16, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), layer(x), rtol=1e-4, atol=1e-4)
        channels_last = x.contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(fused(channels_last), layer(x), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def result():
    model, size, name = load_model(module=TINY, input_size=(3, 8, 8))
    spec = trace(model, size, name)
    networks = bench_model.variants(spec, "2,4", ["fast", "exact"], G=2, dwc=True)
    return bench_model.run_model(
        model, size, name, networks, spec=spec, batch=2, threads=1, repeats=2, layer_rounds=2
    )


def test_model_rows_are_paired_and_one_per_variant(result):
    assert {"model", "batch", "threads", "machine", "rows", "layers"} <= set(result)
    assert result["batch"] == 2 and result["threads"] == 1 and result["model"] == TINY
    rows = result["rows"]
    assert [(r["impl"], r["P"], r["G"]) for r in rows] == [
        ("standard", None, None),
        ("fast", 2, None),
        ("exact", 2, None),
        ("fast", 4, None),
        ("exact", 4, None),
        ("gwc_pwc", None, 2),
        ("dwc_pwc", None, None),
    ]
    assert len({r["rounds"] for r in rows}) == 1 and rows[0]["rounds"] >= 2  # every network in every round
    assert rows[0]["speedup"] == 1 and rows[0]["flops_speedup"] == 1
    for r in rows:
        assert {"impl", "P", "flops_speedup", "speedup", "realised_flops", "ms"} <= set(r)
        assert r["ms"] > 0 and r["realised_flops"] == pytest.approx(r["speedup"] / r["flops_speedup"])
    standard = exact_macs(tiny_net(), (3, 8, 8))
    for r in rows[1:]:
        assert r["flops_speedup"] == pytest.approx(standard / r["flops"]) and r["flops_speedup"] > 1


def test_layers_break_each_network_down_to_its_replaced_convolutions_and_the_rest(result):
    replaced = ["3", "7", "10.conv2", "11.conv2"]
    for row in result["rows"][1:]:
        layers = [r for r in result["layers"] if r["variant"] == row["variant"]]
        assert [r["name"] for r in layers] == replaced + ["(kept convolutions)", "(outside convolutions)"]
        for key in ("flops_share_before", "flops_share_after", "time_share_before", "time_share_after"):
            assert sum(r[key] for r in layers) == pytest.approx(1)
        assert sum(r["flops_after"] for r in layers) == row["flops"]
        assert all(r["ms_before"] > 0 and r["ms_after"] > 0 for r in layers[:-1])


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


SMALL = ["bench", "--module", TINY, "--input-size", 3, 8, 8, "--P", 2, "--impl", "fast", "--batch", 1]
SMALL += ["--repeats", 1, "--layer-rounds", 1, "--threads", 1]


def test_cli_json_follows_the_contract_and_folding_is_said():
    result = run(*SMALL, "--fold", "--channels-last", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["fold"] and payload["channels_last"] and payload["threads"] == 1
    assert [(r["impl"], r["P"]) for r in payload["rows"]] == [("standard", None), ("fast", 2)]
    assert {r["variant"] for r in payload["layers"]} == {"fast P=2"}


def test_cli_table_and_plot(tmp_path):
    result = run(*SMALL)
    assert result.exit_code == 0, result.output
    assert "HetConv fast P=2" in result.stdout and "layer by layer" in result.stdout
    data = tmp_path / "bench.json"
    data.write_text(run(*SMALL, "--json").stdout)
    figure = tmp_path / "layers.png"
    plotted = run("plot", "bench", data, "--out", figure)
    assert plotted.exit_code == 0, plotted.output
    assert figure.read_bytes()[:4] == b"\x89PNG"
    wrong = run("plot", "bench", data, "--variant", "fast P=9", "--out", figure)
    assert wrong.exit_code == 2 and "unknown fast P=9" in wrong.output


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "vgg16", "--M", "64"], "--M: applies to the layer bench"),
        (["--model", "vgg16", "--input-size", "3", "8", "8"], "--input-size: applies to --module only"),
        (
            ["--model", "vgg16", "--impl", "hetconv_fast"],
            "--impl: unknown implementation hetconv_fast; known: exact, grouped_sum, fast",
        ),
        (["--fold"], "--fold: applies to --model or --module only"),
    ],
)
def test_cli_errors_name_the_flag(args, message):
    result = run("bench", *args)
    assert result.exit_code == 2 and message in result.output, result.output


def test_plot_bench_refuses_a_layer_bench_file(tmp_path):
    data = tmp_path / "layer.json"
    data.write_text(json.dumps({"rows": []}))
    result = run("plot", "bench", data, "--out", tmp_path / "f.png")
    assert result.exit_code == 2 and "no per-layer rows" in result.output
