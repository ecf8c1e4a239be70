"""``hetcalc latency`` and ``hetcalc search``: the table, its cache, predictions as data, plans that every path reads.

No assertion is on a time: timings run (tiny networks, one round) so that the structure, the cache
and the exact counts beside the predictions can be checked. Prediction accuracy is measured by
``benchmarks/latency_accuracy.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.core.analyze import analyze
from hetcalc.core.plan import Plan, derive
from hetcalc.core.zoo import get_model
from hetcalc.real import latency as L
from hetcalc.real.conversion import convert
from hetcalc.real.load import load_model
from hetcalc.real.trace import trace

TINY = f"{Path(__file__).resolve().parent / 'test_bench_model.py'}:tiny_net"
FAST = ["--batch", "1", "--threads", "1", "--repeats", "1"]


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny():
    model, size, name = load_model(module=TINY, input_size=(3, 8, 8))
    return model, trace(model, size, name)


CONDITIONS = L.Conditions(batch=1, threads=1)


def test_a_prediction_is_data_and_a_second_one_times_nothing(tiny, tmp_path, monkeypatch):
    model, spec = tiny
    table = L.Table.load(tmp_path)
    plan = derive(spec, "hetconv", 2, impl="grouped_sum")
    prediction = L.predict(model, spec, plan, CONDITIONS, table, repeats=1)
    priced = [layer.name for layer in L.priced(spec)]
    assert [r["name"] for r in prediction.layers] == priced == ["0", "3", "7", "10.conv2", "11.conv2"]
    counted = analyze(spec, plan=plan, convention="exact")
    assert (prediction.flops, prediction.standard_flops, prediction.params) == (
        counted.flops,
        counted.baseline_flops,
        counted.params,
    )
    rows = {r["name"]: r for r in counted.layers}
    assert all(r["flops"] == rows[r["name"]]["flops_after"] for r in prediction.layers)
    assert prediction.predicted_ms == pytest.approx(
        prediction.outside_ms + sum(r["ms"] for r in prediction.layers)
    )
    payload = L.to_dict(prediction)
    assert (
        payload["prediction"].startswith("predicted, this machine (")
        and "1 threads, torch" in payload["prediction"]
    )
    assert set(payload) >= {
        "model",
        "batch",
        "threads",
        "predicted_ms",
        "standard_ms",
        "predicted_speedup",
        "flops_speedup",
        "layers",
    }
    assert set(payload["layers"][0]) >= {"name", "kind", "P", "G", "flops", "ms", "spread"}
    # the table is on disk: a second prediction, in a fresh process's view of it, times nothing
    monkeypatch.setattr(L, "time_layers", lambda *a, **k: pytest.fail("timed again"))
    monkeypatch.setattr(L, "clocked", lambda *a, **k: pytest.fail("timed again"))
    again = L.predict(model, spec, plan, CONDITIONS, L.Table.load(tmp_path), repeats=1)
    assert again.predicted_ms == prediction.predicted_ms


@pytest.mark.parametrize(
    "case,why",
    [
        ("not json", "unreadable (JSONDecodeError)"),
        ("another format", "written in another format"),
        ("another machine", "written for another machine or torch version"),
        ("malformed entries", "holds malformed entries"),
    ],
)
def test_a_stale_or_corrupt_table_is_rebuilt_never_trusted(tmp_path, case, why):
    header = {"format": L.FORMAT, "version": L.VERSION, "machine": L._machine_key()}
    content = {
        "not json": "{not json",
        "another format": json.dumps({**header, "version": L.VERSION + 1, "entries": {}}),
        "another machine": json.dumps(
            {**header, "machine": {**header["machine"], "cpu": "elsewhere"}, "entries": {}}
        ),
        "malformed entries": json.dumps({**header, "entries": {"x": {"ms": "fast"}}}),
    }[case]
    path = L.Table.load(tmp_path).path
    path.write_text(content)
    table = L.Table.load(tmp_path)
    assert table.entries == {} and table.rebuilt == f"{path}: {why}; rebuilt"
    path.write_text(json.dumps({**header, "entries": {"x": {"ms": 1.5, "ratio": 1.0, "spread": 0.0}}}))
    assert L.Table.load(tmp_path).entries == {
        "x": {"ms": 1.5, "ratio": 1.0, "spread": 0.0}
    }  # a sound one is read


def test_the_search_space_adds_up_and_its_plan_is_what_every_path_builds(tiny, tmp_path):
    from hetcalc.core.search import plan_totals, search

    model, spec = tiny
    table = L.Table.load(tmp_path)
    found = L.space(model, spec, CONDITIONS, table, (2, 4), (2,), True, "grouped_sum", False, 1)
    assert found.names == ["0", "3", "7", "10.conv2", "11.conv2"]  # the first convolution searched too
    standard = analyze(spec, variant="standard", convention="exact")
    assert (found.standard.flops, found.standard.params) == (standard.flops, standard.params)
    titles = [[o.choice.title() for o in options] for options in found.layers]
    assert titles[0] == ["kept", "DWC+PWC"]  # 3 input channels: neither P nor G of 2 or 4 divides them
    assert titles[1] == [
        "kept",
        "HetConv P=2 (grouped_sum)",
        "HetConv P=4 (grouped_sum)",
        "GWC+PWC G=2",
        "DWC+PWC",
    ]
    result = search(found.layers, found.base, "latency", ["flops>=P4"], found.references)
    plan = L.plan_of(spec, found, result.chosen.picks, keep_first=False)
    counted = analyze(spec, plan=plan, convention="exact")
    assert (counted.flops, counted.params) == (result.chosen.flops, result.chosen.params)
    assert counted.flops >= found.references["P4"].flops
    picks_of_P4 = [
        next(i for i, o in enumerate(options) if o.choice.P == 4) if len(options) > 2 else 0
        for options in found.layers
    ]
    assert plan_totals(found.layers, found.base, tuple(picks_of_P4)) == found.references["P4"]
    converted = convert(model, Plan.from_json(plan.to_json()))
    assert (
        analyze(trace(converted, spec.input), variant="standard", convention="exact").flops == counted.flops
    )


def test_cli_latency_json_and_table(tmp_path):
    result = run(
        "latency", "--module", TINY, "--input-size", 3, 8, 8, "--P", 2, *FAST, "--cache", tmp_path, "--json"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["measured"]["ms"] > 0 and "error_pct" in payload["measured"]
    assert payload["plan"]["layers"][1] == {"name": "3", "kind": "hetconv", "P": 2, "impl": "grouped_sum"}
    text = run(
        "latency",
        "--module",
        TINY,
        "--input-size",
        3,
        8,
        8,
        "--P",
        2,
        *FAST,
        "--cache",
        tmp_path,
        "--no-check",
    )
    assert text.exit_code == 0 and "predicted, this machine" in text.stdout and "Measured" not in text.stdout


def test_cli_search_writes_a_plan_that_model_latency_bench_and_convert_read(tmp_path):
    plan_file = tmp_path / "plan.json"
    args = ["search", "--module", TINY, "--input-size", 3, 8, 8, "--P", "2,4", *FAST, "--cache", tmp_path]
    result = run(*args, "--constraint", "flops>=P4", "--out", plan_file, "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert {u["name"] for u in payload["uniform"]} == {"standard", "P2", "P4"} and payload["front"]
    assert payload["chosen"]["flops"] >= next(u["flops"] for u in payload["uniform"] if u["name"] == "P4")
    measured = payload["chosen"]["measured"]  # the chosen plan timed in the same run, beside its prediction
    assert measured["ms"] > 0 and measured["error_pct"] == pytest.approx(
        100 * (payload["chosen"]["ms"] / measured["ms"] - 1)
    )
    counted = json.loads(
        run(
            "model",
            "--module",
            TINY,
            "--input-size",
            3,
            8,
            8,
            "--plan",
            plan_file,
            "--convention",
            "exact",
            "--json",
        ).stdout
    )
    assert (counted["flops"], counted["params"]) == (payload["chosen"]["flops"], payload["chosen"]["params"])
    assert counted["plan"] == json.loads(plan_file.read_text()) == payload["plan"]
    predicted = run(
        "latency",
        "--module",
        TINY,
        "--input-size",
        3,
        8,
        8,
        "--plan",
        plan_file,
        *FAST,
        "--cache",
        tmp_path,
        "--no-check",
        "--json",
    )
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["flops"] == payload["chosen"]["flops"]
    bench = run(
        "bench",
        "--module",
        TINY,
        "--input-size",
        3,
        8,
        8,
        "--plan",
        plan_file,
        "--batch",
        1,
        "--repeats",
        1,
        "--layer-rounds",
        1,
        "--json",
    )
    assert bench.exit_code == 0, bench.output
    assert [r["variant"] for r in json.loads(bench.stdout)["rows"]] == ["standard", "plan"]
    figure = tmp_path / "front.png"
    (tmp_path / "front.json").write_text(result.stdout)
    (tmp_path / "measured.json").write_text(bench.stdout)
    plotted = run(
        "plot", "pareto", tmp_path / "front.json", "--measured", tmp_path / "measured.json", "--out", figure
    )
    assert plotted.exit_code == 0 and figure.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "args,message",
    [
        (["--constraint", "speed>=P4"], "--constraint: unknown quantity 'speed'"),
        (["--constraint", "flops>=P64"], "--constraint: unknown reference 'P64'"),
        (["--constraint", "flops>=10G"], "--constraint: no plan meets flops>=10G; the closest keeps"),
        (["--P", "3,5"], "--P: no P, G or DWC fits any replaceable layer of this model: nothing to search"),
    ],
)
def test_cli_search_bad_input_is_one_line_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "plan.json"
    base = [
        "search",
        "--module",
        TINY,
        "--input-size",
        3,
        8,
        8,
        "--P",
        "2,4",
        *FAST,
        "--cache",
        tmp_path,
        "--out",
        out,
    ]
    result = run(*base, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and not out.exists()


def test_a_plan_for_another_model_is_refused_in_one_line(tmp_path):
    plan = tmp_path / "vgg.json"
    plan.write_text(derive(get_model("vgg16"), "hetconv", 4).to_json())
    result = run(
        "latency", "--module", TINY, "--input-size", 3, 8, 8, "--plan", plan, *FAST, "--cache", tmp_path
    )
    assert result.exit_code == 2 and "--plan: layer 'conv1' is not a convolution of" in result.output
