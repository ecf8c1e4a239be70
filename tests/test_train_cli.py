"""``--train`` through click's CliRunner: layer, model (zoo and --module), table in every format, plot intensity."""

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli

DATA = Path(__file__).resolve().parent / "data"
NET = (
    "from torch import nn\n"
    "def make():\n"
    "    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 8, 3, padding=1),\n"
    "                         nn.Flatten(), nn.Linear(8 * 6 * 6, 10))\n"
    "class Heads(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.body, self.main, self.aux = nn.Conv2d(3, 4, 1), nn.Linear(144, 10), nn.Linear(144, 2)\n"
    "    def forward(self, x):\n"
    "        y = self.body(x).flatten(1)\n"
    "        return {'main': self.main(y), 'aux': self.aux(y)}\n"
    "def nothing():\n"
    "    return nn.ReLU()\n"
)


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def payload(*args):
    result = run(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def net(tmp_path, monkeypatch):
    (tmp_path / "net.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    return "net.py"


def test_layer_train_by_hand():
    # 8 → 8, 3×3, D_o = 4, batch 2: standard 2·16·8·8·9 = 18,432 forward; backward twice that, or once as the first
    # layer (its weights' gradient only). HetConv P = 2: 2·16·8·(4·9 + 4) = 10,240
    data = payload("layer", "--M", 8, "--N", 8, "--D", 4, "--P", 2, "--train", "--batch", 2)
    rows = {r["kind"]: r for r in data["rows"]}
    assert (rows["standard"]["forward_flops"], rows["standard"]["backward_flops"]) == (18_432, 36_864)
    assert rows["standard"]["flops"] == 55_296 and rows["hetconv"]["flops"] == 3 * 10_240
    first = payload("layer", "--M", 8, "--N", 8, "--D", 4, "--P", 2, "--train", "--first", "--batch", 2)
    first = {r["kind"]: r for r in first["rows"]}
    assert first["standard"]["backward_flops"] == 18_432
    # DWC+PWC as the first layer: depthwise 2·16·8·9 = 2,304 (weights); pointwise 2·16·8·8 = 2,048, twice
    assert first["dwc_pwc"]["backward_flops"] == 2_304 + 2 * 2_048
    # bytes: 2 inputs of 8·16 and 2 outputs of 8·16, 576 weights, 4 bytes each; intensity = MACs / bytes
    assert rows["standard"]["bytes"] == 4 * (2 * 128 + 2 * 128 + 576)
    assert rows["standard"]["intensity"] == pytest.approx(18_432 / 4_352)
    assert data["layer"]["batch"] == 2 and data["layer"]["train"] is True


def test_model_train_json_per_layer_and_total():
    data = payload(
        "model", "vgg16", "--P", "4", "--train", "--batch", 4, "--optimizer", "adam", "--convention", "exact"
    )
    assert (data["train"], data["batch"], data["optimizer"], data["dtype"]) == (True, 4, "adam", "float32")
    assert data["flops"] == data["forward_flops"] + data["backward_flops"]
    for row in data["layers"]:
        assert row["flops"] == row["flops_after"] == row["forward_flops"] + row["backward_flops"]
    assert [r["input_grad"] for r in data["layers"][:2]] == [False, True]
    assert data["memory"]["total"] == sum(v for k, v in data["memory"].items() if k != "total")
    assert data["saved_bytes"] == data["memory"]["activations"] > 0
    forward = payload("model", "vgg16", "--P", "4", "--batch", 4, "--convention", "exact")
    assert forward["flops"] == data["forward_flops"] and forward["backward_flops"] is None
    assert forward["activations"] == 4 * payload("model", "vgg16", "--P", "4")["activations"]


def module_step(factory, *flags):
    """``hetcalc model --module net.py:FACTORY`` on 3×6×6, a training step counted exactly, as JSON."""
    size = ("--input-size", 3, 6, 6)
    return payload(
        "model", "--module", f"net.py:{factory}", *size, "--train", "--convention", "exact", *flags
    )


def test_model_train_module_by_hand(net):
    # the conv–ReLU–conv–linear net at batch 2 on 3×6×6 (tests/test_train.py): 34,272 forward, 60,768 backward
    data = module_step("make", "--batch", 2)
    assert (data["forward_flops"], data["backward_flops"]) == (34_272, 60_768)
    frozen = module_step("make", "--batch", 2, "--frozen", "0")
    assert frozen["backward_flops"] == 20_736 + 2 * 5_760 and frozen["frozen"] == ["0"]
    converted = module_step("make", "--batch", 2, "--P", "2")
    assert converted["memory"] and converted["saved_bytes"] != data["saved_bytes"]


def test_model_train_loss_of_a_named_output(net):
    # body 36·4·3 = 432 (weights only); main 144·10 = 1,440 both gradients; aux none with --loss main
    both, main = module_step("Heads"), module_step("Heads", "--loss", "main")
    assert both["backward_flops"] == 432 + 2 * 1_440 + 2 * 288
    assert main["backward_flops"] == 432 + 2 * 1_440 and main["loss"] == "main"
    assert main["memory"]["grads"] == both["memory"]["grads"] - 4 * (144 * 2 + 2)  # aux gets no gradient


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["model", "vgg16", "--train", "--frozen", "conv99"],
            "Error: --frozen: 'conv99' names no layer of vgg16",
        ),
        (["model", "vgg16", "--frozen", "conv1"], "Error: --frozen: applies to a training step: add --train"),
        (
            ["model", "vgg16", "--optimizer", "adam"],
            "Error: --optimizer: applies to a training step: add --train",
        ),
        (["model", "vgg16", "--train", "--loss", "x"], "Error: --loss: applies to --module only"),
        (
            ["model", "vgg16", "--train", "--dtype", "float64"],
            "Error: Invalid value for '--dtype': 'float64'",
        ),
        (
            ["model", "vgg16", "--train", "--optimizer", "lamb"],
            "Error: Invalid value for '--optimizer': 'lamb'",
        ),
        (["model", "vgg16", "--train", "--batch", "0"], "Error: --batch: must be a whole number >= 1, got 0"),
        (
            ["model", "--module", "net.py:nothing", "--input-size", 3, 6, 6, "--train"],
            "Error: --train: net.py:nothing has no parameters: nothing to train",
        ),
        (
            ["model", "--module", "net.py:Heads", "--input-size", 3, 6, 6, "--train", "--loss", "logits"],
            "Error: --loss: the model has no output named 'logits'; its outputs: main, aux",
        ),
        (
            ["model", "--module", "net.py:make", "--input-size", 3, 6, 6, "--train", "--frozen", "*"],
            "Error: --frozen: freezes every parameter of the model",
        ),
        (["layer", "--M", 8, "--N", 8, "--first"], "Error: --first: applies to a training step: add --train"),
        (["table", "vgg16", "--train", "--frozen", "fc9"], "Error: --frozen: 'fc9' names no layer of vgg16"),
    ],
)
def test_bad_input_is_one_line_exit_2(net, args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert result.output.startswith(message) and result.output.count("\n") == 1


def test_table_train_in_every_format():
    assert payload("table", "vgg16", "P1", "--train")["batch"] == 128  # a training step's default batch
    data = payload("table", "vgg16", "P1", "P4", "DWC_PWC", "--train", "--batch", 8)
    assert (data["train"], data["batch"], data["dtype"], data["optimizer"]) == (True, 8, "float32", "sgd")
    model = payload("model", "vgg16", "--P", "4", "--train", "--batch", 8)
    p4 = data["rows"][1]
    assert (p4["flops"], p4["forward_flops"], p4["memory"]) == (
        model["flops"],
        model["forward_flops"],
        model["memory"]["total"],
    )
    assert p4["memory_reduction_pct"] == pytest.approx(100 * (1 - p4["memory"] / data["rows"][0]["memory"]))
    some = ("table", "vgg16", "P1", "P4", "--train", "--batch", 8, "--format")
    rows = list(csv.DictReader(io.StringIO(run(*some, "csv").stdout)))
    assert rows[1]["flops"] == str(p4["flops"]) and rows[1]["memory"] == str(p4["memory"])
    lines = run(*some, "markdown").stdout.strip().splitlines()
    assert "for a training step at batch 8 (float32, sgd)" in lines[0]
    assert lines[2] == (
        "| Variant | Step FLOPs (G) | FLOPs reduced | Params (M) | Params reduced | Memory (MB) | Memory reduced |"
    )
    assert lines[3] == "|:---|---:|---:|---:|---:|---:|---:|"
    latex = run(*some, "latex").stdout
    assert "\\begin{tabular}{lrrrrrr}" in latex and "a training step at batch 8" in latex
    body = latex.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 2 and all(line.count("&") == 6 for line in body)
    text = run(*some, "rich").stdout
    assert "Table 1 for a training step at batch 8" in text and "memory" in text


def test_zoo_train_columns_are_the_models():
    data = payload("zoo", "vgg*", "--train", "--batch", 2)
    assert (data["train"], data["batch"], data["optimizer"]) == (True, 2, "sgd")
    for row in data["models"]:
        model = payload("model", row["model"], "--train", "--batch", 2, "--convention", "exact")
        assert (row["flops"], row["backward_flops"]) == (model["flops"], model["backward_flops"])
        assert row["memory"] == model["memory"]["total"] and row["saved_bytes"] == model["saved_bytes"]
    assert payload("zoo", "vgg16", "--train")["batch"] == 128


def test_the_api_measures_a_zoo_models_step():
    from hetcalc import api

    report = api.analyze("resnet56", variant="standard", train=True, batch=2, optimizer="momentum")
    assert report.memory["optimizer"] == report.memory["grads"] > 0 and report.saved_bytes > 0


def test_plot_intensity(tmp_path):
    file = DATA / "bench_model.json"
    result = run("plot", "intensity", file, "--variant", "fast P=2", "--json", "--out", tmp_path / "i.png")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    (series,) = data["series"]
    bench = json.loads(file.read_text())
    layers = {r["name"]: r for r in bench["layers"] if r["variant"] == "fast P=2"}
    for point in series["points"]:
        layer = layers[point["name"]]
        assert point["macs"] == layer["flops_after"] * bench["batch"]  # the same layers the bench counted
        assert point["realised"] == pytest.approx(
            layer["speedup"] / (layer["flops_before"] / layer["flops_after"])
        )
        assert point["intensity"] == pytest.approx(point["macs"] / point["bytes"])
    assert {p["name"] for p in series["points"]} == {"3", "7", "10.conv2", "11.conv2"}
    # layer "3": 8 → 8, 3×3 at 8×8, fast P=2: reads 8·64, writes 8·64, weights 8·(4·9 + 8) = 352, 4 bytes each
    three = next(p for p in series["points"] if p["name"] == "3")
    assert three["bytes"] == 4 * (8 * 64 + 8 * 64 + 352)
    assert (tmp_path / "i.png").stat().st_size > 0
    bad = run("plot", "intensity", file, "--variant", "nope", "--json")
    assert bad.exit_code == 2 and bad.output.startswith(
        "Error: --variant: unknown nope; in the file: fast P=2"
    )
    assert re.match(
        r"Error: FILE: .* is not the JSON",
        run("plot", "intensity", DATA / "bench_layer.json", "--json").output,
    )
