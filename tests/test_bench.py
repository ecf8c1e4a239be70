"""``hetcalc bench``: structure, JSON and validation on a tiny layer (no timing assertions)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.plot import measured_series
from hetcalc.real import bench

TINY = [
    "--M",
    "8",
    "--N",
    "8",
    "--K",
    "3",
    "--D",
    "6",
    "--batch",
    "1",
    "--P",
    "2,4",
    "--repeats",
    "2",
    "--device",
    "cpu",
]


def run(*args):
    return CliRunner().invoke(cli, ["bench", *args])


def test_json_has_one_row_per_impl_and_p_with_the_standard_reference():
    result = run(*TINY, "--threads", "1", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["device"] == "cpu" and payload["threads"] == 1
    assert set(payload["machine"]) == {"cpu", "cores", "torch", "cuda"}
    rows = payload["rows"]
    names = [impl.name for impl in bench.TIMED]
    assert [(r["P"], r["impl"]) for r in rows] == [(P, name) for P in (2, 4) for name in names]
    assert {"exact", "fast", "grouped_sum"} <= {r["impl"] for r in rows}
    for r in rows:
        assert isinstance(r["impl"], str) and isinstance(r["P"], int)
        assert r["ms"] > 0 and r["speedup"] > 0 and r["rounds"] >= 2
        assert (
            r["realised_theory"] > 0 and r["theory"] >= 1
        )  # the theory's values: test_theory_is_each_…_own_formula
    standard = [r for r in rows if r["impl"] == "standard"]
    assert len(standard) == 2 and all(r["speedup"] == 1 and r["theory"] == 1 for r in standard)


def test_theory_is_each_implementations_own_formula():
    rows = {(r["impl"], r["P"]): r for r in bench.run(8, 8, 3, 6, 1, [4], repeats=1, device="cpu")["rows"]}
    eq5 = 1 / (1 / 4 + (1 - 1 / 4) / 9)  # Eq. 9 of Eq. 5
    grouped_sum = 1 / (1 / 4 + 1 / 9)
    assert rows["exact", 4]["theory"] == pytest.approx(eq5)
    assert rows["fast", 4]["theory"] == pytest.approx(eq5)
    assert rows["fast", 4]["flops_speedup"] == pytest.approx(grouped_sum)  # what it runs
    assert rows["grouped_sum", 4]["theory"] == pytest.approx(grouped_sum)
    assert rows["gwc_pwc", 4]["theory"] == pytest.approx(grouped_sum)  # Eq. 11, G = P, mid = M = N
    assert rows["dwc_pwc", 4]["theory"] == pytest.approx(1 / (1 / 8 + 1 / 9))  # Eq. 7
    assert rows["masked", 4]["theory"] == pytest.approx(eq5)  # the mask's kept taps
    assert rows["masked", 4]["flops_speedup"] == 1  # a dense runtime runs every tap


def test_impl_subset_always_times_the_reference_and_restores_threads():
    import torch

    before = torch.get_num_threads()
    result = bench.run(8, 8, 3, 6, 1, [2], impls=["fast"], threads=1, repeats=1, device="cpu")
    assert [r["impl"] for r in result["rows"]] == ["standard", "fast"]
    assert torch.get_num_threads() == before


def test_table_names_the_machine_threads_and_the_theory():
    result = run(*TINY, "--impl", "fast,masked")
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert f"{bench.machine()['cpu']} ({bench.machine()['cores']} cores)" in text and "threads, torch" in text
    assert "HetConv fast" in text and "masked dense conv" in text and "realises about 1×" in text
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_json_overlays_on_figure5(tmp_path):
    result = run(*TINY, "--json")
    path = tmp_path / "bench.json"
    path.write_text(result.stdout)
    plot = CliRunner().invoke(cli, ["plot", "speedup", "--measured", str(path), "--json"])
    assert plot.exit_code == 0, plot.output
    series = [s for s in json.loads(plot.stdout)["series"] if s["kind"] == "measured"]
    assert {s["impl"] for s in series} == {impl.name for impl in bench.TIMED} - {"standard"}
    assert all(s["P"] == [2, 4] for s in series)


def test_gpu_rows_form_their_own_series():
    rows = [
        {"impl": "fast", "P": 4, "speedup": 2.0, "device": "cpu"},
        {"impl": "fast", "P": 4, "speedup": 9.0, "device": "cuda"},
    ]
    assert [(s["impl"], s["speedup"]) for s in measured_series({"rows": rows})] == [
        ("fast", [2.0]),
        ("fast (cuda)", [9.0]),
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--P", "3"], "--P: P=3 does not divide the input channels M (8); valid values: 1, 2, 4, 8"),
        (
            ["--P", "4", "--N", "6"],
            "--P: P=4 does not divide the output channels N (6); valid values: 1, 2, 3, 6",
        ),
        (["--P", "2,x"], "--P: expected comma-separated whole numbers, e.g. 2,4,8; got 'x'"),
        (["--P", ""], "--P: expected comma-separated whole numbers, e.g. 2,4,8; got ''"),
        (["--P", "0"], "--P: must be a whole number >= 1, got 0"),
        (["--K", "4"], "--K: even kernel 4×4: HetConv's 1×1 kernels are the centre taps"),
        (["--M", "0"], "--M: must be a whole number >= 1, got 0"),
        (["--threads", "0"], "--threads: must be a whole number >= 1, got 0"),
        (["--repeats", "0"], "--repeats: must be a whole number >= 1, got 0"),
        (["--min-time", "-1"], "--min-time: must be >= 0 seconds"),
        (["--impl", "fastest"], "--impl: unknown implementation fastest; known: standard, exact"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, message):
    base = [
        "--M",
        "8",
        "--N",
        "8",
        "--D",
        "6",
        "--batch",
        "1",
        "--P",
        "2,4",
        "--repeats",
        "1",
        "--device",
        "cpu",
    ]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"Error: {message}") and result.stderr.count("\n") == 1
    assert result.stdout == ""


def test_cli_module_does_not_import_torch_until_it_runs():
    code = "import sys, hetcalc.cli.bench; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_refuses_a_layer_too_large_to_allocate():
    from click.testing import CliRunner

    from hetcalc.cli import cli

    result = CliRunner().invoke(
        cli, ["bench", "--M", "100000", "--N", "100000", "--P", "2"], catch_exceptions=False
    )
    assert result.exit_code == 2 and "GiB of tensors" in result.stderr and result.stderr.count("\n") == 1


def test_channels_last_times_every_layer_in_nhwc_memory():
    result = run(*TINY, "--channels-last", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["layer"]["channels_last"] is True
    assert {r["impl"] for r in payload["rows"]} == {impl.name for impl in bench.TIMED}
    title = " ".join(run(*TINY, "--channels-last", "--impl", "fast").stdout.split())
    assert "6×6, channels last:" in title
