"""Tracing any nn.Module into a model spec: exact against fvcore and parameters(), and ``hetcalc model --module``."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from hetcalc.cli import cli
from hetcalc.core.analyze import analyze
from hetcalc.core.errors import InvalidInput
from hetcalc.core.plan import Plan
from hetcalc.real.conversion import convert
from hetcalc.real.fvcount import NOT_MACS, count
from hetcalc.real.lhc import MaskedConv2d
from hetcalc.real.load import trace_factory
from hetcalc.real.trace import trace


def fvcore_macs(model, input_size) -> int:
    """fvcore's MACs, its handles of operators that carry none (BatchNorm, LayerNorm, pooling) zeroed."""
    return count(model.eval(), (torch.zeros(1, *input_size),), tuple(NOT_MACS))[0]


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def exact(spec, **options):
    return analyze(spec, convention="exact", **{"variant": "standard", **options})


class Basic(nn.Module):
    def __init__(self, M, N, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(M, N, 3, stride, 1, bias=False), nn.BatchNorm2d(N)
        self.conv2, self.bn2 = nn.Conv2d(N, N, 3, 1, 1, bias=False), nn.BatchNorm2d(N)
        self.downsample = (
            nn.Sequential(nn.Conv2d(M, N, 1, stride, bias=False), nn.BatchNorm2d(N))
            if stride > 1 or M != N
            else None
        )

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNetish(nn.Module):
    def __init__(self, width=8, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layer1 = Basic(width, width, 1)
        self.layer2 = Basic(width, 2 * width, 2)
        self.fc = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.fc(self.layer2(self.layer1(self.stem(x))).mean((2, 3)))


class Depthwise(nn.Module):
    """MobileNetV2-like: expand 1×1, depthwise 3×3 (stride 2), project 1×1; a dilated and a non-square conv."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.expand = nn.Conv2d(8, 32, 1, bias=False)
        self.depthwise = nn.Conv2d(32, 32, 3, 2, 1, groups=32, bias=False)
        self.project = nn.Conv2d(32, 16, 1, bias=False)
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.wide = nn.Conv2d(16, 16, (1, 5), padding=(0, 2), groups=2)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.project(F.relu(self.depthwise(F.relu(self.expand(F.relu(self.stem(x)))))))
        return self.fc(self.wide(self.dilated(x)).mean((2, 3)))


class Attention(nn.Module):
    """Tokens from a patch conv, a learnable position embedding, LayerNorm, and functional matmuls."""

    def __init__(self, dim=16, tokens=16):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 4, 4)
        self.pos = nn.Parameter(torch.zeros(tokens, dim))
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        t = self.norm(self.patch(x).flatten(2).transpose(1, 2) + self.pos)  # (1, 16, dim)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        attention = torch.softmax(q @ k.transpose(1, 2), dim=-1)  # 16·16·dim MACs
        return self.head((attention @ v).mean(1))  # 16·16·dim MACs


@pytest.mark.parametrize("factory, size", [(ResNetish, (3, 16, 16)), (Depthwise, (3, 16, 12))])
def test_traced_counts_equal_fvcore_and_parameters(factory, size):
    spec = trace_factory(factory, size)
    report = exact(spec)
    model = factory()
    assert report.flops == fvcore_macs(model, size)
    assert report.params == params(model)
    assert spec.family is None and not [r for r in report.layers if r["kind"] == "ops"]


def test_resnet_records_in_call_order_and_replaces_like_the_zoo():
    spec = trace_factory(ResNetish, (3, 16, 16))
    report = analyze(spec, variant="hetconv", P=2, convention="exact")
    rows = {r["name"]: r for r in report.layers}
    assert list(rows) == [
        "stem.0",
        "layer1.conv1",
        "layer1.conv2",
        "layer2.conv1",
        "layer2.conv2",
        "layer2.downsample.0",
        "fc",
        "(other parameters)",
    ]
    assert [r["kind"] for r in report.layers] == ["standard"] + ["hetconv"] * 4 + [
        "standard",
        "linear",
        "other",
    ]
    assert (rows["layer2.conv1"]["D_out"], rows["layer2.conv1"]["stride"]) == (8, 2)
    # BatchNorm: 2 parameters per channel, 8 + 8 + 8 + 16 + 16 + 16 channels
    assert rows["(other parameters)"]["params_after"] == 2 * (3 * 8 + 3 * 16)
    # layer1.conv1, 8 → 8 at 16×16 with P=2: 256·8·(4·9 + 4) MACs (Eq. 4)
    assert rows["layer1.conv1"]["flops_after"] == 256 * 8 * 40


def test_grouped_dilated_and_non_square_layers_stay_and_say_why():
    report = analyze(trace_factory(Depthwise, (3, 16, 12)), variant="hetconv", P=2, convention="exact")
    rows = {r["name"]: r for r in report.layers}
    assert {name: rows[name]["note"] for name in ("depthwise", "dilated", "wide")} == {
        "depthwise": "depthwise",
        "dilated": "dilation 2×2",
        "wide": "non-square kernel 1×5",
    }
    assert all(
        not rows[name]["changed"] for name in ("stem", "expand", "depthwise", "project", "dilated", "wide")
    )
    assert (rows["depthwise"]["kind"], rows["depthwise"]["G"]) == ("grouped", 32)
    assert (rows["depthwise"]["D_out"], rows["depthwise"]["W_out"]) == (4, 3)
    assert rows["wide"]["flops_after"] == 4 * 3 * 16 * 8 * 5  # positions · N · M/G · 1·5
    assert report.flops == report.baseline_flops  # nothing here is HetConv-eligible


def test_functional_matmuls_are_in_the_total_and_other_parameters_counted():
    spec = trace_factory(Attention, (3, 16, 16))
    report = exact(spec)
    ops = [r for r in report.layers if r["kind"] == "ops"]  # q·kᵀ and attention·v: 2 · 16·16·16 MACs
    assert [(r["name"], r["flops_after"], r["note"]) for r in ops] == [("Attention", 8192, "matmul 8,192")]
    assert report.flops_by_op == {
        "convolution": 16 * 16 * 3 * 16,
        "linear": 16 * 16 * 48 + 160,
        "matmul": 8192,
    }
    assert not report.notes
    qkv = next(r for r in report.layers if r["name"] == "qkv")
    assert (qkv["D_out"], qkv["flops_after"]) == (16, 16 * 16 * 48)  # one Linear per token
    model = Attention()
    assert report.params == params(model)
    assert report.layers[-1]["params_after"] == 16 * 16 + 2 * 16  # position embedding + LayerNorm
    assert report.flops == sum(report.flops_by_op.values()) == fvcore_macs(model, (3, 16, 16))
    patches = analyze(spec, variant="hetconv", P=2, convention="exact").layers[0]
    assert (patches["name"], patches["note"]) == ("patch", "first convolution (kept, as in the paper)")


def test_meta_build_allocates_nothing():
    spec = trace_factory(
        lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10**6), nn.Linear(10**6, 10**5)), (3, 8, 8)
    )  # 10¹¹ weights: 400 GB if allocated
    assert exact(spec).params == 192 * 10**6 + 10**6 + 10**11 + 10**5


def test_real_layers_and_shared_modules():
    from hetcalc.real.layers import DwPwConv2d, GwPwConv2d, HetConv2d

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.het = HetConv2d(8, 8, 3, 4, bias=True)
            self.sum = HetConv2d(8, 8, 3, 2, impl="grouped_sum")
            self.dw = DwPwConv2d(8, 16, 3, stride=2)
            self.gw = GwPwConv2d(16, 16, 5, 4, mid_channels=8)
            self.shared = nn.Conv2d(16, 16, 3, padding=1)

        def forward(self, x):
            return self.shared(self.shared(self.gw(self.dw(self.sum(self.het(self.stem(x)))))))

    model = Net()
    spec = trace(model, (3, 12, 12))
    report = analyze(spec, variant="hetconv", P=2, convention="exact")
    assert [r["kind"] for r in report.layers] == [
        "standard",
        "hetconv",
        "hetconv_grouped_sum",
        "dwc_pwc",
        "gwc_pwc",
        "hetconv",
        "hetconv",
    ]  # no "(other parameters)" row: every parameter is a recorded layer's
    assert [r["name"] for r in report.layers][-2:] == ["shared", "shared#2"]
    # the shared conv is decided once and replaced in both calls; its parameters are held by its first call
    assert report.plan["layers"][-1] == {"name": "shared", "kind": "hetconv", "P": 2, "impl": "exact"}
    assert (
        report.layers[5]["params_after"] == 16 * (16 * 9 // 2 + 16 - 8) + 16
        and report.layers[6]["params_after"] == 0
    )
    assert report.layers[1]["note"] == "already a HetConv2d"
    assert model.training  # trace restores the mode
    standard = exact(spec)
    assert (standard.flops, standard.params) == (fvcore_macs(model, (3, 12, 12)), params(model))
    converted = convert(model, Plan.from_dict(report.plan))
    assert (report.flops, report.params) == (fvcore_macs(converted, (3, 12, 12)), params(converted))


def test_masked_layers_count_effective_and_name_the_dense_cost():
    torch.manual_seed(0)
    mask = torch.rand(8, 4, 3, 3) > 0.5
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), MaskedConv2d(4, 8, 3, mask=mask))
    report = exact(trace(model, (3, 6, 6)))
    assert report.layers[1]["kind"] == "masked" and report.layers[1]["flops_after"] == 36 * int(mask.sum())
    kept = int(mask.sum())
    assert report.notes == [
        f"1: masked, {36 * kept:,} MACs and {kept + 8} parameters on its kept taps (a sparse "
        f"runtime); a dense runtime (and fvcore) pays {36 * 8 * 4 * 9:,} and holds {8 * 4 * 9 + 8}"
    ]
    assert report.params == params(model) - mask.numel() + int(mask.sum())  # pruned taps are not parameters
    meta = exact(trace_factory(lambda: MaskedConv2d(4, 8, 3, mask=mask), (4, 6, 6)))
    assert meta.flops == 36 * 8 * 4 * 9 and "holds no values on the meta device" in meta.notes[0]


def test_forward_failure_is_one_line():
    one_line = r"^input_size: the model's forward pass fails on a 1×3×9×9 input, in 1 \(Linear on a 1×243 input\): RuntimeError: [^\n]+$"
    with pytest.raises(InvalidInput, match=one_line):
        trace_factory(lambda: nn.Sequential(nn.Flatten(), nn.Linear(10, 2)), (3, 9, 9))


# The command line.

NET = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.convs = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                   nn.Conv2d(width, width, 3, padding=1, groups=width), nn.ReLU(),
                                   nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU())
        self.pos = nn.Parameter(torch.zeros(2 * width))
        self.fc = nn.Linear(2 * width, 10)

    def forward(self, x):
        t = self.convs(x).flatten(2).transpose(1, 2) + self.pos
        return self.fc((t @ t.transpose(1, 2) @ t).mean(1))

def make_net():
    return Net()

SIX = 6

def broken():
    raise ValueError("no weights here\\nsecond line")

def not_a_model():
    return [1, 2]

class Distances(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        t = self.conv(x).flatten(2)
        return torch.cdist(t, t)  # no MAC formula: a partial count

def distances():
    return Distances()

class Picky(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)
        return y[torch.nonzero(y > -1, as_tuple=True)]  # data-dependent: meta has no nonzero

def picky():
    return Picky()

def masked():
    from hetcalc.real.lhc import MaskedConv2d
    mask = torch.zeros(8, 8, 3, 3, dtype=torch.bool)
    mask[:, :, 1, 1] = True  # centre taps only: a 1×1 convolution in a 3×3 bank
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), MaskedConv2d(8, 8, 3, mask=mask, bias=False))
"""


def run(*args):
    return CliRunner().invoke(cli, ["model", *args])


@pytest.fixture
def net_file(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(textwrap.dedent(NET))
    return path


def test_cli_module_json(net_file):
    result = run("--module", f"{net_file}:make_net", "--input-size", "3", "8", "8", "--P", "2", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["model"], report["dataset"], report["input"], report["variant"]) == (
        f"{net_file}:make_net",
        None,
        [3, 8, 8],
        "hetconv",
    )
    assert [r["kind"] for r in report["layers"]] == [
        "standard",
        "grouped",
        "hetconv",
        "linear",
        "ops",
        "other",
    ]
    assert report["layers"][1]["note"] == "depthwise"
    # the two matmuls of t, and the HetConv's 1×1 taps (a bmm): 16 filters · (8 − 8/2) · 4·4 of its 10,240 MACs,
    # its share of the layer's paper-convention FLOPs (standard 18,432 MACs + 256 bias adds, times 10,240/18,432)
    hetconv_1x1 = (18432 + 256) * 10240 / 18432 * 1024 / 10240
    assert report["flops_by_op"]["matmul"] == pytest.approx(2 * 16 * 16 * 16 + hetconv_1x1)
    assert report["params_unused"] == 0
    exact = json.loads(
        run(
            "--module", f"{net_file}:Net", "--input-size", "3", "8", "8", "--json", "--convention", "exact"
        ).output
    )
    namespace = {}
    exec(textwrap.dedent(NET), namespace)
    assert exact["params"] == params(namespace["make_net"]())


def test_cli_module_table(net_file, monkeypatch):
    monkeypatch.chdir(net_file.parent)
    result = run("--module", "net:make_net", "--input-size", "3", "8", "8", "--gwc", "2")
    assert result.exit_code == 0, result.output
    assert "net:make_net (input 3×8×8): GWC+PWC G=2" in result.output
    assert "Left as they are (depthwise): convs.3" in result.output
    flat = " ".join(result.output.split())  # sentences wrap at the output's width (80 piped)
    assert "In the totals, unchanged (operators outside the layers above): Net: matmul 8,192" in flat
    assert "FLOPs by operator: convolution 26.20K, matmul 8.19K, linear 170." in flat
    assert "Warning" not in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--module", "net.py"],
            "--module: expected PKG.MOD:FACTORY or path/to/file.py:FACTORY, got 'net.py'",
        ),
        (
            ["--module", "no_such_package.net:make"],
            "--module: cannot import no_such_package.net: "
            "ModuleNotFoundError: No module named 'no_such_package'",
        ),
        (["--module", "missing.py:make"], "--module: no such file: missing.py"),
        (["--module", "net.py:nothing"], "--module: net.py has no attribute 'nothing'"),
        (
            ["--module", "net.py:SIX"],
            "--module: net.py:SIX is not callable (a int object); "
            "name a function or class that builds the model",
        ),
        (
            ["--module", "net.py:broken", "--input-size", "3", "8", "8"],
            "--module: broken() raised ValueError: no weights here",
        ),
        (
            ["--module", "net.py:not_a_model", "--input-size", "3", "8", "8"],
            "--module: not_a_model() returned a list, not a torch.nn.Module",
        ),
        (
            ["--module", "net.py:make_net", "--input-size", "4", "8", "8"],
            "--input-size: the model's forward pass fails on a 1×4×8×8 input, in convs.0 (Conv2d on a 1×4×8×8 input): "
            "RuntimeError: Invalid channel dimensions",
        ),
        (
            ["--module", "net.py:make_net"],
            "--input-size: is required: give the input as C H W, e.g. --input-size 3 224 224 (the model does not say)",
        ),
        (
            ["vgg16", "--module", "net.py:make_net"],
            "MODEL: give a zoo model NAME or --module PKG.MOD:FACTORY (or path/to/file.py:FACTORY), not both",
        ),
        ([], "MODEL: give a zoo model NAME or --module PKG.MOD:FACTORY (or path/to/file.py:FACTORY)"),
        (
            ["vgg16", "--input-size", "3", "32", "32"],
            "--input-size: applies to --module only; zoo model vgg16 has its own input",
        ),
    ],
)
def test_cli_errors_are_one_line_exit_2(net_file, monkeypatch, args, message):
    monkeypatch.chdir(net_file.parent)
    result = run(*args)
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: {message}"


def test_cli_masked_module_counts_kept_taps_on_cpu(net_file):
    args = [
        "--module",
        f"{net_file}:masked",
        "--input-size",
        "3",
        "4",
        "4",
        "--convention",
        "exact",
        "--json",
    ]
    on_cpu, on_meta = (json.loads(run(*args, *device).output) for device in (["--count-on", "cpu"], []))
    assert (
        on_cpu["layers"][1]["flops_after"] == 16 * 8 * 8
        and on_meta["layers"][1]["flops_after"] == 16 * 8 * 8 * 9
    )
    assert on_cpu["notes"] == [
        "1: masked, 1,024 MACs and 64 parameters on its kept taps (a sparse runtime); "
        "a dense runtime (and fvcore) pays 9,216 and holds 576"
    ]
    assert "--count-on cpu" in on_meta["notes"][0]


class Mixed(nn.Module):
    """A transposed, a dilated and a 1×5 convolution, an einsum, a bmm and a Linear."""

    def __init__(self):
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)  # 8×8 → 16×16
        self.dilated = nn.Conv2d(4, 4, 3, padding=2, dilation=2)
        self.wide = nn.Conv2d(4, 4, (1, 5), padding=(0, 2))
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        t = self.wide(self.dilated(self.up(x))).flatten(2)  # 1×4×256
        t = torch.einsum("bcn,bdn->bcd", t, t)  # 1×4×4
        return self.fc(torch.bmm(t, t).flatten(1))


def test_every_mac_of_a_mixed_net_is_in_the_total_by_hand():
    report = exact(trace_factory(Mixed, (8, 8, 8)))
    transposed = (
        8 * 8 * (8 * 4 * 4 * 4)
    )  # each of the 8×8 input positions scatters through the 8×4×4×4 weights
    dilated, wide = 16 * 16 * 4 * 4 * 9, 16 * 16 * 4 * 4 * 5
    einsum, bmm, linear = 4 * 4 * 256, 4 * 4 * 4, 16 * 16
    assert report.flops == transposed + dilated + wide + einsum + bmm + linear == 94_528
    assert report.flops_by_op == {
        "convolution": transposed + dilated + wide,
        "linear": linear,
        "einsum": einsum,
        "matmul": bmm,
    }
    up = next(r for r in report.layers if r["name"] == "up")
    assert (up["kind"], up["flops_after"], up["note"]) == ("ops", transposed, "convolution 32,768")


class OnlyConv1dAnd3d(nn.Module):
    def __init__(self):
        super().__init__()
        self.volume, self.line = nn.Conv3d(1, 2, 3, padding=1), nn.Conv1d(2, 4, 3, padding=1)

    def forward(self, x):  # 1×C×H×W → 1×1×C×H×W → 1×2×(C·H·W)
        return self.line(self.volume(x.unsqueeze(1)).flatten(2))


def test_a_model_with_nothing_to_replace_is_reported(tmp_path, monkeypatch):
    report = analyze(trace_factory(OnlyConv1dAnd3d, (2, 4, 4)), variant="hetconv", P=4, convention="exact")
    assert report.flops == report.baseline_flops == 32 * 2 * 27 + 32 * 4 * 6 and report.speedup == 1
    assert report.notes == ["nothing to replace: the model has no nn.Conv2d for the hetconv variant"]
    empty = analyze(trace_factory(nn.Identity, (3, 4, 4)), variant="hetconv", P=4, convention="exact")
    assert (empty.flops, empty.params, empty.flops_reduction_pct, empty.speedup) == (0, 0, 0.0, 1.0)


def test_factory_arguments_are_literals_or_strings_never_code():
    from hetcalc.real.load import factory_arguments

    assert factory_arguments(["aux_logits=False", "size=(3, 224, 224)", "model_name=resnet50", "n=10"]) == {
        "aux_logits": False,
        "size": (3, 224, 224),
        "model_name": "resnet50",
        "n": 10,
    }
    assert factory_arguments(["x=__import__('os').system('true')"]) == {
        "x": "__import__('os').system('true')"
    }
    for bad in ("noequals", "1x=2", "=3"):
        with pytest.raises(InvalidInput, match="^args: expected NAME=VALUE"):
            factory_arguments([bad])


def test_a_model_that_says_its_input_size_needs_none():
    class Sized(nn.Sequential):
        pretrained_cfg = {"input_size": (3, 16, 16)}

    spec = trace_factory(lambda: Sized(nn.Conv2d(3, 4, 3)), None)
    assert spec.input == (3, 16, 16)


def test_a_model_meta_cannot_run_is_counted_on_the_cpu_and_says_so():
    class Picky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)

        def forward(self, x):
            y = self.conv(x)
            return y[torch.nonzero(y > -1, as_tuple=True)]  # data-dependent: no meta kernel

    spec = trace_factory(Picky, (3, 8, 8))
    assert spec.fallback.startswith("NotImplementedError") and spec.counted_on == "cpu"
    assert spec.data_dependent == {"aten.nonzero.default": 1}
    report = exact(spec)
    assert report.notes[0].startswith(
        "counted on the CPU: the meta device cannot run it (NotImplementedError"
    )
    assert any(
        note.startswith("counted on this input (1×3×8×8 of zeros): data-dependent") for note in report.notes
    )
    assert report.flops == 64 * 4 * 27


def test_a_model_too_big_for_the_cpu_retry_is_refused_in_one_line(monkeypatch):
    from hetcalc.real import load as tracing

    monkeypatch.setattr(tracing, "_available_memory", lambda: 2**20)  # 1 MiB free
    factory = lambda: nn.Sequential(nn.Linear(64, 4096), nn.Flatten(0))  # noqa: E731 - 1 MiB of weights
    with pytest.raises(
        InvalidInput,
        match=r"^device: the meta device cannot run this model \(.*\), and counting "
        r"it on the CPU would allocate 0\.0 GiB of weights with 0\.0 GiB available$",
    ):
        tracing.trace_factory(lambda: _Unmeta(factory()), (1, 8, 8))


class _Unmeta(nn.Module):
    """Wraps a module with a forward that has no meta kernel (``nonzero``)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.flatten(1)[:, :64])[torch.nonzero(x.flatten()[:1] == 0)]


def test_partial_and_input_dependent_counts_are_data_and_strict_exits_1(net_file):
    args = ["--input-size", "3", "6", "6", "--convention", "exact", "--json"]
    partial = run("--module", f"{net_file}:distances", *args)
    assert partial.exit_code == 0, partial.output
    report = json.loads(partial.stdout)
    assert report["uncounted"] == {"aten._cdist_forward.default": 1} and report["partial"] is True
    assert report["data_dependent"] == {} and report["flops"] == 36 * 4 * 27
    assert any(note.startswith("Warning: operators with no MAC formula") for note in report["notes"])
    strict = run("--module", f"{net_file}:distances", *args, "--strict")
    assert strict.exit_code == 1 and json.loads(strict.stdout) == report
    dependent = json.loads(run("--module", f"{net_file}:picky", *args).stdout)
    assert dependent["data_dependent"] == {"aten.nonzero.default": 1} and dependent["uncounted"] == {}
    assert (dependent["counted_on"], dependent["partial"]) == ("cpu", False)
    assert dependent["fallback"].startswith("NotImplementedError")
    assert run("--module", f"{net_file}:picky", *args, "--strict").exit_code == 1
    assert run("--module", f"{net_file}:make_net", *args, "--strict").exit_code == 0


def test_a_wrong_input_size_is_the_users_error_at_once(monkeypatch):
    """No CPU rebuild for an error that is not meta's: the model is built once, on meta."""
    from hetcalc.real import load

    builds = []
    real_build = load.build
    monkeypatch.setattr(
        load, "build", lambda *args, **options: builds.append(args[1]) or real_build(*args, **options)
    )
    with pytest.raises(InvalidInput, match=r"fails on a 1×4×8×8 input, in 0 \(Conv2d on a 1×4×8×8 input\)"):
        load.trace_factory(lambda: nn.Sequential(nn.Conv2d(3, 8, 3)), (4, 8, 8))
    assert builds == ["meta"]


def test_flops_by_op_names_the_operator_families_that_ran():
    """HetConv2d exact runs its K×K taps as a grouped convolution and its 1×1 taps as a bmm; SDPA is attention."""
    from hetcalc.real.layers import HetConv2d

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.het = HetConv2d(64, 64, 3, 4)

        def forward(self, x):
            t = self.het(x).flatten(2).transpose(1, 2)  # 1 × 64 tokens × 64
            return F.scaled_dot_product_attention(t[None], t[None], t[None])

    report = exact(trace(Net(), (64, 8, 8)))
    assert report.flops_by_op == {
        "convolution": 8 * 8 * 64 * (64 // 4) * 9,  # Eq. 2
        "matmul": 8 * 8 * 64 * (64 - 64 // 4),  # Eq. 3
        "attention": 64 * 64 * (64 + 64),  # QKᵀ and attention·V: L·S·(E + Ev)
    }
