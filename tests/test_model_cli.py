"""``hetcalc model`` and ``hetcalc zoo`` through click's CliRunner."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli

KEYS = {
    "model",
    "dataset",
    "input",
    "variant",
    "P",
    "convention",
    "flops",
    "params",
    "baseline_flops",
    "baseline_params",
    "flops_reduction_pct",
    "params_reduction_pct",
    "speedup",
    "layers",
}
LAYER_KEYS = {
    "name",
    "M",
    "N",
    "K",
    "stride",
    "D_out",
    "flops_before",
    "flops_after",
    "params_before",
    "params_after",
    "kind",
}


def run(*args):
    return CliRunner().invoke(cli, list(args))


def as_json(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_object():
    report = as_json("model", "vgg16", "--P", "4")
    assert KEYS <= set(report) and all(LAYER_KEYS <= set(layer) for layer in report["layers"])
    assert (report["model"], report["dataset"], report["input"], report["variant"], report["P"]) == (
        "vgg16",
        "cifar10",
        [3, 32, 32],
        "hetconv",
        4,
    )
    assert report["convention"] == "paper"
    assert report["flops"] == pytest.approx(105_982_132.67, abs=0.01)
    assert report["baseline_flops"] == 313_740_810
    assert report["flops_reduction_pct"] == pytest.approx(66.22, abs=0.005)
    assert report["speedup"] == pytest.approx(313_740_810 / report["flops"])
    assert len(report["layers"]) == 15 and report["layers"][1]["kind"] == "hetconv"


def test_exact_convention():
    report = as_json("model", "resnet50", "--dataset", "imagenet", "--P", "4", "--convention", "exact")
    assert report["convention"] == "exact" and isinstance(report["flops"], int)
    assert report["baseline_params"] == 25_557_032  # every learnable parameter, BatchNorm included
    downsample = next(layer for layer in report["layers"] if layer["name"] == "layer1.0.downsample.0")
    assert downsample["kind"] == "standard" and downsample["flops_before"] == downsample["flops_after"]


@pytest.mark.parametrize(
    "args,variant",
    [
        (["--gwc", "4"], "gwc_pwc"),
        (["--dwc"], "dwc_pwc"),
        ([], "standard"),
        (["--P", "C"], "hetconv"),
        (["--P", "1", "--se", "8"], "hetconv"),
    ],
)
def test_variants(args, variant):
    report = as_json("model", "vgg16", *args)
    assert report["variant"] == variant
    if variant == "standard":
        assert report["flops"] == report["baseline_flops"] and report["speedup"] == 1
    if "--se" in args:
        assert report["se"] == 8 and report["flops"] == pytest.approx(314_197_074)


def test_per_layer_P():
    Ps = "2,2,4,4,4,8,8,8,8,16,16,16"
    report = as_json("model", "vgg16", "--P", Ps)
    assert report["P"] == [int(p) for p in Ps.split(",")]
    assert [layer["P"] for layer in report["layers"][1:13]] == report["P"]


def test_table_names_its_context():
    out = run("model", "resnet56", "--P", "4").output
    assert "resnet56 (cifar10, input 3×32×32): HetConv P=4" in out
    assert "convention: paper" in out and "total" in out and "speedup" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["nope"],
            "Error: MODEL: unknown model 'nope'; known models: mobilenet, resnet18, resnet34, resnet50, "
            "resnet56, resnet110, vgg16, vgg19",
        ),
        (["vgg16", "--P", "0"], "Error: --P: must be a whole number >= 1, got 0"),
        (
            ["vgg16", "--dataset", "mnist"],
            "Error: --dataset: vgg16 is defined for cifar10 and imagenet, not 'mnist'",
        ),
        (
            ["resnet50", "--dataset", "cifar10"],
            "Error: --dataset: resnet50 is defined for imagenet, not 'cifar10'",
        ),
        (
            ["vgg16", "--P", "4", "--gwc", "4"],
            "Error: --gwc: give one of --P, --gwc, --dwc, --plan, not --P and --gwc",
        ),
        (["vgg16", "--P", "2,4"], "Error: --P: got 2 values for 12 replaceable layers (conv2 … conv13)"),
        (["vgg16", "--gwc", "0"], "Error: --gwc: must be a whole number >= 1, got 0"),
        (
            ["resnet56", "--se", "32"],
            "Error: --se: 32 does not divide the output channels N of layer1.0.conv1 (16); "
            "valid values: 1, 2, 4, 8, 16",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    result = run("model", *args)
    assert result.exit_code == 2
    assert result.output.strip() == message


def test_csv(tmp_path):
    path = tmp_path / "layers.csv"
    assert run("model", "mobilenet", "--P", "8", "--csv", str(path)).exit_code == 0
    import pandas as pd

    frame = pd.read_csv(path)
    assert LAYER_KEYS | {"convention"} <= set(frame.columns) and len(frame) == 15
    assert frame["kind"].tolist()[1:14] == ["hetconv"] * 13 and set(frame["convention"]) == {"paper"}


def test_csv_refuses_a_missing_folder(tmp_path):
    path = tmp_path / "missing" / "layers.csv"
    result = run("model", "vgg16", "--P", "4", "--csv", str(path))
    assert (
        result.exit_code == 2
        and result.output.strip() == f"Error: --csv: folder {path.parent} does not exist"
    )
    assert not path.parent.exists()


def test_zoo_command():
    payload = as_json("zoo")
    names = [m["model"] for m in payload["models"]]
    assert (
        names[:2] == ["mobilenet", "resnet18"] and "resnet110" in names and payload["convention"] == "exact"
    )
    resnet56 = next(m for m in payload["models"] if m["model"] == "resnet56")
    assert resnet56["dataset"] == "cifar10" and resnet56["input"] == [3, 32, 32]
    assert resnet56["flops"] == 125_485_696  # MACs only: conv + fc
    exact = as_json("zoo", "resnet5*")  # exact by default: the real networks' parameter counts
    assert [(m["model"], m["params"]) for m in exact["models"]] == [
        ("resnet50", 25_557_032),
        ("resnet56", 853_018),
    ]
    paper = as_json("zoo", "resnet56", "--convention", "paper")
    assert paper["models"][0]["flops"] == 125_485_706  # MACs + the fc's 10 bias adds (no conv bias)
    assert "hetcalc model zoo" in run("zoo").output


def test_model_command_imports_nothing_heavy():
    code = (
        "import sys; from hetcalc.cli import cli\n"
        "try:\n    cli.main(['model', 'resnet50', '--dataset', 'imagenet', '--P', '4', '--json'])\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in sys.modules if m.split('.')[0] in ('torch', 'pandas', 'matplotlib', 'fvcore')], "
        "file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(result.stdout)["model"] == "resnet50"
    assert result.stderr.strip() == "[]"
