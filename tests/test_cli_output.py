"""What a user sees: tables that fit every width, `hetcalc table`, exports, sweeps, words that match the numbers."""

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.core.paper import TABLE1, TOLERANCE
from hetcalc.render import SIGNIFICANT, exported, si

WIDTHS = (80, 100, 120, 200)
TINY_BENCH = [
    "--M",
    "4",
    "--N",
    "4",
    "--D",
    "4",
    "--batch",
    "1",
    "--P",
    "2,4",
    "--repeats",
    "1",
    "--device",
    "cpu",
]


def run(*args, env=None):
    return CliRunner().invoke(cli, [str(a) for a in args], env=env)


def payload(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def mask_file(tmp_path_factory):
    from hetcalc.core.masks import kind_mask

    path = tmp_path_factory.mktemp("masks") / "hetconv.npy"
    np.save(path, kind_mask("hetconv", 16, 16, 3, 4))
    return path


@pytest.fixture(scope="module")
def verify_rows():
    """One real run of ``verify --quick``'s checks, replayed at every width (no need to trace 8 times)."""
    from hetcalc.real import verify as checks

    cases = [*checks.layer_grid(quick=True), *checks.model_cases(quick=True)]
    return checks.run(cases, progress=lambda it: it)


COMMANDS = {
    "layer": [
        "layer",
        "--M",
        "64",
        "--N",
        "128",
        "--K",
        "3",
        "--P",
        "2,4,8,16,32",
        "--D",
        "32",
        "--grouped-sum",
    ],
    "model zoo": ["model", "vgg16", "--P", "32"],
    "model resnet50": ["model", "resnet50", "--dataset", "imagenet", "--P", "4"],
    "model mobilenet": ["model", "mobilenet", "--P", "4"],
    "zoo": ["zoo"],
    "paper table1": ["paper", "table1"],
    "verify": ["verify", "--quick"],
    "mask": ["mask", None, "--D", "28"],
    "bench": ["bench", *TINY_BENCH],
    "bench model": ["bench", "--model", "vgg16", "--P", "2,4", "--impl", "fast,exact", "--gwc", "2", "--dwc"],
    "table": ["table", "vgg16", "P1", "P4", "PC", "GWC4_PWC", "DWC_PWC", "P4_SE", "P32_SE"],
    "latency": ["latency", "vgg16", "--P", "8"],
    "search": ["search", "vgg16", "--constraint", "flops>=P4", "--gwc", "2", "--dwc"],
    "layer train": ["layer", "--M", "64", "--N", "128", "--P", "2,4,8", "--D", "32", "--train", "--first"],
    "model train": ["model", "vgg16", "--gwc", "4", "--train", "--batch", "8", "--optimizer", "adam"],
    "table train": ["table", "vgg16", "P1", "DWC_PWC", "--train", "--batch", "2"],
    "zoo train": ["zoo", "vgg*", "--train", "--batch", "2"],
}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
DATA = Path(__file__).resolve().parent / "data"
STORED = {
    "bench": ("hetcalc.real.bench.run", "bench_layer.json"),
    "bench model": ("hetcalc.cli.bench.bench_model", "bench_model.json"),
    "latency": ("hetcalc.real.latency.run_latency", "latency.json"),
    "search": ("hetcalc.real.latency.run_search", "search.json"),
}
"""Timing commands render a stored result of a real run (tests/data, written by the same command with --json)."""


class _Empty:
    """A latency table with nothing in it, that is never written."""

    rebuilt, path = "", None


@pytest.mark.parametrize("terminal", [False, True], ids=["piped", "terminal"])
@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", COMMANDS)
def test_every_table_fits(command, width, terminal, mask_file, verify_rows, monkeypatch):
    """No line wider than the terminal and nothing cut short with '…', piped (COLUMNS) or on a terminal."""
    if command == "verify":
        monkeypatch.setattr("hetcalc.real.verify.run", lambda cases, progress: verify_rows)
    if command in STORED:  # rendering is tested, not timing: the stored result of a real run
        function, file = STORED[command]
        stored = json.loads((DATA / file).read_text())
        if command == "search":  # run_search returns the JSON and the plan
            from hetcalc.core.plan import Plan

            stored = (stored, Plan.from_dict(stored["plan"]))
        if command in ("latency", "search"):  # the model is loaded and traced, not timed
            monkeypatch.setattr("hetcalc.real.latency.Table.load", lambda folder=None: _Empty())
        monkeypatch.setattr(function, lambda *args, **options: stored)
    args = [str(mask_file) if a is None else a for a in COMMANDS[command]]
    env = {"COLUMNS": str(width), "TTY_COMPATIBLE": "1" if terminal else "0", "TTY_INTERACTIVE": "0"}
    result = run(*args, env=env)
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.stdout)
    assert "…" not in text
    widest = max(len(line) for line in text.splitlines())
    assert widest <= width, f"{command}: a line of {widest} columns at {width}"


def test_piped_output_is_80_columns_without_COLUMNS(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = run("model", "vgg16", "--P", "32", env={"TTY_COMPATIBLE": "0"})
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert "37.81M" in result.stdout and "layer" in result.stdout


def test_layer_names_fold_on_dots_when_narrow():
    from rich.console import Console

    from hetcalc.render import Column, fitted

    names = ["layer4.2.downsample.0", "features.denseblock4.denselayer16.conv2"]
    table = fitted(
        "t", [Column("layer", "left", fold=True), Column("FLOPs")], [[n, "1.00M"] for n in names], width=30
    )
    out = Console(width=30, record=True)
    out.print(table)
    text = out.export_text()
    cells = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│")]
    assert cells == ["layer4.2.", "downsample.0", "features.", "denseblock4.", "denselayer16.conv2"]
    assert max(len(line) for line in text.splitlines()) <= 30 and "…" not in text


# hetcalc table


def table1_rows():
    return {row.split("_", 1)[1]: (flops, params) for row, flops, _, params, _ in TABLE1}


def test_table_reproduces_table1_hetconv_rows_and_equals_model_json():
    data = payload("table", "vgg16", "--format", "json")
    assert set(data) == {"model", "input_size", "convention", "unit", "batch", "train", "rows"}
    assert (data["model"], data["input_size"], data["convention"]) == ("vgg16", [3, 32, 32], "paper")
    assert (data["batch"], data["train"]) == (1, False)
    assert [r["variant"] for r in data["rows"]] == ["P1", "P2", "P4", "P8", "P16", "P32", "P64"]
    published = table1_rows()
    for row in data["rows"]:
        assert set(row) == {"variant", "flops", "params", "flops_reduction_pct", "params_reduction_pct"}
        assert abs(row["flops"] / 1e6 - published[row["variant"]][0]) <= TOLERANCE + 1e-9
        model = payload("model", "vgg16", "--P", row["variant"][1:], "--json")
        assert (row["flops"], row["params"]) == (model["flops"], model["params"])
        if row["variant"] != "P1":
            assert row["flops_reduction_pct"] == model["flops_reduction_pct"]
            assert row["params_reduction_pct"] == model["params_reduction_pct"]
            assert abs(row["params"] / 1e6 - published[row["variant"]][1]) <= TOLERANCE + 1e-9
    assert data["rows"][0]["flops_reduction_pct"] is None


@pytest.mark.parametrize(
    "variant,flags",
    [
        ("PC", ["--P", "C"]),
        ("GWC4_PWC", ["--gwc", "4"]),
        ("DWC_PWC", ["--dwc"]),
        ("P4_SE", ["--P", "4", "--se", "8"]),
    ],
)
def test_table_variants_equal_model(variant, flags):
    row = payload("table", "vgg16", "P1", variant, "--format", "json")["rows"][1]
    model = payload("model", "vgg16", *flags, "--json")
    assert (row["flops"], row["params"], row["flops_reduction_pct"]) == (
        model["flops"],
        model["params"],
        model["flops_reduction_pct"],
    )


def test_table_markdown():
    text = run("table", "vgg16", "--format", "markdown").stdout
    lines = text.strip().splitlines()
    assert lines[2] == "| Variant | FLOPs (M) | FLOPs reduced | Params (M) | Params reduced |"
    assert lines[3] == "|:---|---:|---:|---:|---:|"
    assert lines[4] == "| P1 | 313.74 | — | 14.98 | — |"
    assert "| P32 | 45.39 | 85.53% | 2.31 | 84.56% |" in lines
    assert "convention: paper" in lines[0] and "input 3×32×32" in lines[0]


def test_table_latex_structure():
    text = run("table", "vgg16", "P1", "P4_SE", "GWC4_PWC", "--format", "latex").stdout
    for token in ("\\begin{table}", "\\begin{tabular}{lrrrr}", "\\toprule", "\\midrule", "\\bottomrule"):
        assert text.count(token) == 1, token
    assert text.index("\\toprule") < text.index("\\midrule") < text.index("\\bottomrule")
    caption = re.search(r"\\caption\{(.*)\}\n", text)[1]
    for part in ("vgg16", "cifar10", "3$\\times$32$\\times$32", "Convention: paper", "multiply-accumulates"):
        assert part in caption
    assert "P4\\_SE & 106.44 & 66.07\\% & 5.63 & 62.42\\% \\\\" in text
    body = text.split("\\midrule")[1].split("\\bottomrule")[0].strip().splitlines()
    assert len(body) == 3 and all(line.count("&") == 4 and line.endswith("\\\\") for line in body)
    assert "_" not in text.replace("\\_", "")  # every underscore escaped


def test_table_csv_and_rich():
    rows = list(csv.DictReader(io.StringIO(run("table", "vgg16", "--format", "csv").stdout)))
    assert rows[0] == {
        "variant": "P1",
        "flops": "313740810",
        "params": "14982474",
        "flops_reduction_pct": "",
        "params_reduction_pct": "",
    }
    assert rows[6]["flops"] == "41057546"  # P64: a whole count stays an integer
    text = run("table", "vgg16").stdout
    assert (
        "vgg16 (cifar10, input 3×32×32): Table 1" in text and "313.74" in text and "convention: paper" in text
    )


def test_table_module(tmp_path, monkeypatch):
    (tmp_path / "tiny.py").write_text(
        "from torch import nn\n"
        "def make():\n"
        "    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))\n"
    )
    monkeypatch.chdir(tmp_path)
    data = payload(
        "table", "--module", "tiny:make", "--input-size", "3", "8", "8", "P2", "P4", "--format", "json"
    )
    assert data["model"] == "tiny:make" and data["input_size"] == [3, 8, 8]
    model = payload("model", "--module", "tiny:make", "--input-size", "3", "8", "8", "--P", "4", "--json")
    assert data["rows"][1]["flops"] == model["flops"] and data["rows"][1]["params"] == model["params"]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["vgg16", "P3x"],
            "Error: VARIANT: 'P3x' is not in the paper's naming: P<n>, PC, P<n>_SE, GWC<n>_PWC or DWC_PWC",
        ),
        (
            ["vgg16", "--csv", "out.xlsx"],
            "Error: --csv: writes CSV: give a file ending in .csv (or - for stdout), got 'out.xlsx'",
        ),
        (
            ["vgg16", "--format", "pdf"],
            "Error: Invalid value for '--format': 'pdf' is not one of 'rich', 'markdown', 'latex', 'csv', 'json'. (see 'cli table --help')",
        ),
    ],
)
def test_table_errors(args, message):
    result = run("table", *args)
    assert result.exit_code == 2 and result.output.strip() == message


# Exports


def test_exported_precision():
    from fractions import Fraction

    assert exported(Fraction(15522630, 3)) == 5174210
    assert exported(Fraction(15521630, 3)) == 5173876.66667 and SIGNIFICANT == 12
    assert exported(3.0) == 3.0 and exported(7) == 7 and exported(None) is None
    assert exported(0.1 + 0.2) == 0.3


def test_json_has_no_float_noise():
    report = payload("model", "vgg16", "--P", "4", "--json")
    assert report["params"] == 5173876.66667 and report["baseline_flops"] == 313740810
    for layer in report["layers"]:
        for key in ("flops_after", "params_after"):
            value = layer[key]
            assert isinstance(value, int) or len(repr(value).replace(".", "").lstrip("0")) <= SIGNIFICANT


@pytest.mark.parametrize(
    "args",
    [
        ["layer", "--M", "64", "--N", "64", "--P", "2,4"],
        ["model", "vgg16", "--P", "4"],
        ["zoo"],
        ["paper", "table1"],
        ["table", "vgg16"],
        ["mask", None, "--D", "7"],
        ["bench", *TINY_BENCH],
    ],
)
def test_csv_on_every_table_command(args, tmp_path, mask_file):
    args = [str(mask_file) if a is None else a for a in args]
    path = tmp_path / "out.csv"
    result = run(*args, "--csv", path)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(path.open()))
    integers = {"flops", "params", "macs", "adds", "M", "N", "K", "P", "G", "D_out", "latency", "kept_taps"}
    assert rows and not any(re.fullmatch(r"-?\d+\.0", r[k]) for r in rows for k in integers & set(r))
    stdout = run(*args, "--csv", "-")
    assert list(csv.DictReader(io.StringIO(stdout.stdout)))[-1].keys() == rows[-1].keys()
    bad = run(*args, "--csv", tmp_path / "out.xlsx")
    assert bad.exit_code == 2 and bad.output.strip().startswith(
        "Error: --csv: writes CSV: give a file ending in .csv"
    )
    assert not (tmp_path / "out.xlsx").exists()


def test_model_csv_integer_columns(tmp_path):
    path = tmp_path / "layers.csv"
    assert run("model", "vgg16", "--P", "4", "--csv", path).exit_code == 0
    rows = list(csv.DictReader(path.open()))
    assert rows[0]["K"] == "3" and rows[-1]["K"] == "" and re.fullmatch(r"\d+", rows[0]["flops_after"])
    assert (
        rows[1]["params_after"] == "12309.3333333"
    )  # paper convention: a scaled count, 12 significant digits


# Sweeps on one layer


def test_layer_sweep_rows():
    data = payload(
        "layer", "--M", "256", "--N", "256", "--K", "3", "--P", "2,4,8,16,32", "--D", "56", "--json"
    )
    kinds = [(r["kind"], r["P"], r["G"]) for r in data["rows"]]
    assert kinds == [("standard", None, None)] + [("hetconv", p, None) for p in (2, 4, 8, 16, 32)] + [
        ("dwc_pwc", None, None)
    ] + [("gwc_pwc", None, g) for g in (2, 4, 8, 16, 32)]
    single = payload("layer", "--M", "256", "--N", "256", "--K", "3", "--P", "8", "--D", "56", "--json")
    assert data["rows"][3] == single["rows"][1]
    assert data["layer"]["P"] == [2, 4, 8, 16, 32] and single["layer"]["P"] == 8
    assert len(data["comparisons"]) == 6  # Eq. 12 for each P = G, and Eq. 8
    text = run("layer", "--M", "256", "--N", "256", "--P", "2,4", "--gwc", "4,8").stdout
    assert "HetConv P=2" in text and "HetConv P=4" in text and "GWC+PWC G=8" in text
    assert "Eq. 12: HetConv P=4 < GWC+PWC G=4" in text and "P=2 < GWC" not in text


def test_layer_sweep_errors():
    result = run("layer", "--M", "64", "--N", "64", "--P", "2,x")
    assert result.exit_code == 2
    assert (
        result.output.strip()
        == "Error: --P: expected comma-separated whole numbers, e.g. 4 or 2,4,8; got 'x'"
    )


# Words that match the numbers


def test_verdicts_compare_what_the_table_shows():
    data = payload("layer", "--M", "64", "--N", "128", "--K", "3", "--P", "4", "--D", "32", "--json")
    rows = {r["kind"]: r for r in data["rows"]}
    eq12, eq8 = data["comparisons"]
    assert (eq12["left"], eq12["right"]) == (rows["hetconv"]["reduction"], rows["gwc_pwc"]["reduction"])
    assert eq12["holds"] is False and "M = N" in eq12["note"]
    assert eq8["right"] == rows["dwc_pwc"]["reduction"] and eq8["note"] == "Eq. 8 takes N = M; here N=128"
    mixed = payload("layer", "--M", "64", "--N", "64", "--P", "8", "--gwc", "4", "--json")
    eq12 = mixed["comparisons"][0]
    assert (
        eq12["claim"] == "HetConv P=8 < GWC+PWC G=4" and eq12["note"] == "Eq. 12 takes P = G; here P=8, G=4"
    )
    assert eq12["left"] == mixed["rows"][1]["reduction"] and eq12["right"] == mixed["rows"][3]["reduction"]
    text = " ".join(run("layer", "--M", "64", "--N", "64", "--P", "8", "--gwc", "4").stdout.split())
    assert (
        "Eq. 12: HetConv P=8 < GWC+PWC G=4: 0.2222 vs 0.3611 of standard — holds (Eq. 12 takes P = G" in text
    )


def test_more_not_negative_fewer():
    text = " ".join(run("model", "mobilenet", "--P", "4").stdout.split())
    assert "186.95 % more" in text and "-186.95" not in text
    assert "% fewer" in " ".join(run("model", "vgg16", "--P", "4").stdout.split())


def test_zoo_empty_match_is_one_line():
    result = run("zoo", "nomatch*", env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert result.stdout == (
        "No zoo model matches 'nomatch*'; known models: mobilenet, resnet18, resnet34, resnet50, resnet56, "
        "resnet110, vgg16, vgg19.\n"
    )


@pytest.mark.parametrize("extra", [[], ["--D", "8"]])
def test_stride_needs_an_input_size(extra):
    result = run("layer", "--M", "64", "--N", "64", "--stride", "2", *extra)
    assert result.exit_code == 2
    assert result.output.strip() == (
        "Error: --stride: needs --D-in (the input size it strides over; --D is the output size)"
    )


def test_si_engineering_notation():
    assert si(899999999982000013312) == "900.00e18"
    assert si(10**15) == "1.00e15" and si(999 * 10**12) == "999.00T" and si(1234567) == "1.23M"
    assert si(12) == "12" and si(0.5) == "0.5"
    text = run("layer", "--M", "100000", "--N", "100000", "--K", "99", "--P", "1", "--D", "1000").stdout
    assert "e1" in text and "…" not in text


# No traceback without torch


HIDE_TORCH = (
    "import sys\n"
    "for name in ('torch', 'fvcore'):\n"
    "    sys.modules[name] = None  # as if not installed: import raises ImportError\n"
    "from hetcalc.cli import cli\n"
    "cli.main(sys.argv[1:])\n"
)


@pytest.mark.parametrize(
    "args,what",
    [
        (["verify", "--quick"], "hetcalc verify needs torch"),
        (["bench"], "hetcalc bench needs torch"),
        (["model", "--module", "x:y", "--input-size", "3", "8", "8"], "--module needs torch"),
        (["table", "--module", "x:y", "--input-size", "3", "8", "8"], "--module needs torch"),
        (["mask", "masks.pt"], "hetcalc mask FILE.pt needs torch"),
    ],
)
def test_without_torch_one_line_exit_2(args, what):
    result = subprocess.run([sys.executable, "-c", HIDE_TORCH, *args], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: {what}, which is not installed: pip install 'hetcalc[torch]'\n"
    assert result.stdout == ""


def test_slow_commands_show_status_only_when_interactive(monkeypatch):
    from hetcalc.cli import working

    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("TTY_INTERACTIVE", "1")
    assert type(working("tracing")).__name__ == "Status"
    monkeypatch.setenv("TTY_INTERACTIVE", "0")
    assert type(working("tracing")).__name__ == "nullcontext"
    piped = run("bench", *TINY_BENCH, "--json", env={"TTY_COMPATIBLE": "0"})
    assert piped.exit_code == 0 and piped.stderr == ""


# README


def test_readme_python_snippet_runs(tmp_path, monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("HETCALC_CACHE", str(tmp_path))  # its latency table, not the user's
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("## Python API", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    namespace = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert (
        namespace["report"].flops > 0
        and namespace["small"] is not None
        and namespace["conversion"].replaced
        and namespace["frame"].attrs["flops"] == analyze_flops(namespace["plan"])
        and namespace["found"].plan.replaced()
    )


def analyze_flops(plan) -> int:
    from hetcalc.core.analyze import analyze
    from hetcalc.real.load import load_model
    from hetcalc.real.trace import trace

    model, size, name = load_model("vgg16")
    return analyze(trace(model, size, name), variant="hetconv", P=8, convention="exact").flops


def test_shell_completion():
    result = subprocess.run(
        [sys.executable, "-c", "from hetcalc.cli import main; main()"],
        env={**__import__("os").environ, "_HETCALC_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "_hetcalc_completion" in result.stdout
