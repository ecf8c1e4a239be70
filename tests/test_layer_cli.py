"""``hetcalc layer`` through click's CliRunner: parse --json, check errors."""

import json

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_layer_json_rows():
    result = run("layer", "--M", "256", "--N", "256", "--K", "3", "--P", "8", "--D", "56", "--json")
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    rows = {r["kind"]: r for r in payload["rows"]}
    assert list(rows) == ["standard", "hetconv", "dwc_pwc", "gwc_pwc"]
    standard = 56 * 56 * 256 * 256 * 9
    assert rows["standard"]["flops"] == standard
    assert rows["hetconv"]["flops"] == 56 * 56 * 256 * (256 * 9 // 8 + 256 - 32)
    assert rows["hetconv"]["reduction"] == pytest.approx(1 / 8 + (7 / 8) / 9)
    assert rows["hetconv"]["speedup"] == pytest.approx(4.5)
    assert rows["dwc_pwc"]["flops"] == 56 * 56 * (256 * 9 + 256 * 256)
    assert rows["gwc_pwc"]["flops"] == 56 * 56 * (256 * 32 * 9 + 256 * 256)
    assert [rows[k]["latency"] for k in rows] == [0, 0, 1, 1]
    assert all(isinstance(rows[k][key], int) for k in rows for key in ("flops", "params", "latency"))
    assert payload["cheapest"] == "dwc_pwc"


def test_layer_without_D_is_per_output_position():
    result = run("layer", "--M", "64", "--N", "64", "--P", "4")
    assert result.exit_code == 0
    assert "per output position" in result.stdout
    assert "multiply-accumulates" in result.stdout


def test_layer_D_in_stride_padding_and_bias():
    payload = json.loads(
        run(
            "layer",
            "--M",
            "16",
            "--N",
            "32",
            "--K",
            "3",
            "--P",
            "2",
            "--D-in",
            "32",
            "--stride",
            "2",
            "--bias",
            "--json",
        ).stdout
    )
    assert payload["layer"]["D_out"] == 16
    standard = payload["rows"][0]
    assert standard["flops"] == 16 * 16 * 16 * 32 * 9 + 16 * 16 * 32
    assert standard["params"] == 32 * 16 * 9 + 32


def test_G_defaults_to_P_and_can_differ():
    payload = json.loads(run("layer", "--M", "64", "--N", "64", "--P", "4", "--gwc", "8", "--json").stdout)
    assert payload["rows"][3]["flops"] == 64 * 8 * 9 + 64 * 64


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--M", "256", "--N", "256", "--P", "3"], "--P: P=3 does not divide"),
        (["--M", "256", "--N", "256", "--P", "0"], "--P: must be a whole number >= 1"),
        (["--M", "256", "--N", "256", "--P", "512"], "--P: P=512 does not divide"),
        (["--M", "256", "--N", "256", "--gwc", "5"], "--gwc: G=5 does not divide"),
        (["--M", "-4", "--N", "256"], "--M: must be a whole number >= 1"),
        (["--M", "64", "--N", "64", "--K", "0"], "--K: must be a whole number >= 1"),
        (["--M", "64", "--N", "64", "--D", "4", "--D-in", "8"], "not both"),
        (["--M", "64", "--N", "64", "--padding", "1"], "--padding: needs --D-in"),
        (["--M", "x", "--N", "64"], "'x' is not a valid integer"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, fragment):
    result = run("layer", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
