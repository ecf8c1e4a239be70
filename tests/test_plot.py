"""``hetcalc plot`` and the plotting API: Figure 5's numbers, files, figures, errors."""

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hetcalc import api, plot
from hetcalc.cli import cli
from hetcalc.render import exported_tree


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# The formulas, written out here rather than taken from hetcalc.core.cost.
def het_speedup(P, K):
    return 1 / (1 / P + (1 - 1 / P) / K**2)  # Eq. 9 of Eq. 5


def gwc_speedup(G, K):
    return 1 / (1 / G + 1 / K**2)  # Eq. 9 of Eq. 11


def dwc_speedup(N, K):
    return 1 / (1 / N + 1 / K**2)  # Eq. 9 of Eq. 7


def by_kind(series, K):
    return {s["kind"]: s for s in series if s.get("K") == K}


@pytest.mark.parametrize("K", [3, 5])
def test_series_are_eq9_of_eqs_5_7_11(K):
    series = by_kind(plot.speedup_series(K=[3, 5], P_max=64, M=256), K)
    assert set(series) == {"hetconv", "gwc_pwc", "dwc_pwc"}
    for s in series.values():
        assert s["P"] == list(range(1, 65))
    assert series["hetconv"]["speedup"] == pytest.approx([het_speedup(p, K) for p in range(1, 65)], rel=1e-12)
    assert series["gwc_pwc"]["speedup"] == pytest.approx([gwc_speedup(g, K) for g in range(1, 65)], rel=1e-12)
    assert series["dwc_pwc"]["speedup"] == pytest.approx([dwc_speedup(256, K)] * 64, rel=1e-12)
    assert series["hetconv"]["limit"] == K**2
    assert series["hetconv"]["speedup"][0] == 1.0


def test_paper_points_for_3x3():
    speedups = dict(zip(*[by_kind(plot.speedup_series(), 3)["hetconv"][key] for key in ("P", "speedup")]))
    assert [round(speedups[p], 4) for p in (1, 2, 4, 8, 16, 32, 64)] == [1.0, 1.8, 3.0, 4.5, 6.0, 7.2, 8.0]


def test_json_is_the_plotted_data():
    result = run("plot", "speedup", "--K", "3,5", "--K", "7", "--P-max", "16", "--M", "128", "--json")
    assert result.exit_code == 0 and result.stderr == ""
    series = json.loads(result.stdout)["series"]
    assert [(s["kind"], s["K"]) for s in series] == [
        (kind, K) for K in (3, 5, 7) for kind in ("hetconv", "gwc_pwc", "dwc_pwc")
    ]
    dwc = by_kind(series, 7)["dwc_pwc"]
    assert dwc["M"] == dwc["N"] == 128 and dwc["speedup"][0] == pytest.approx(dwc_speedup(128, 7))
    assert by_kind(series, 5)["gwc_pwc"]["G"] == list(range(1, 17))
    # JSON states non-integral numbers with render.SIGNIFICANT digits (render.exported)
    assert series == exported_tree(plot.speedup_series([3, 5, 7], 16, 128))


MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF"}


@pytest.mark.parametrize("fmt", ["png", "svg", "pdf"])
def test_writes_the_format_the_extension_names(tmp_path, fmt):
    out = tmp_path / f"figure5.{fmt}"
    result = run("plot", "speedup", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    data = out.read_bytes()
    assert len(data) > 10_000
    if fmt == "svg":
        assert data.lstrip().startswith((b"<?xml", b"<svg")) and b"</svg>" in data[-100:]
    else:
        assert data.startswith(MAGIC[fmt])
    assert f"Wrote {out}" in result.stdout


def test_json_and_out_together_keep_stdout_pure(tmp_path):
    out = tmp_path / "f.PNG"
    result = run("plot", "speedup", "--json", "--out", str(out))
    assert json.loads(result.stdout)["series"] and out.read_bytes().startswith(MAGIC["png"])
    assert "Wrote" in result.stderr


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--out", "figure5.txt"], "--out: cannot tell the format of 'figure5.txt'"),
        (["--out", "figure5"], "use a .png, .svg or .pdf file"),
        (["--out", "missing/figure5.png"], "--out: folder"),
        ([], "--out: give a .png, .svg or .pdf file"),
        (
            ["--out", "f.png", "--K", "3,x"],
            "--K: expected comma-separated whole numbers, e.g. 3,5,7; got 'x'",
        ),
        (["--out", "f.png", "--K", "0"], "--K: must be a whole number >= 1"),
        (["--out", "f.png", "--P-max", "0"], "--P-max: must be a whole number >= 1"),
        (["--out", "f.png", "--P-max", "100000"], "--P-max: must be at most 65536"),
        (["--out", "f.png", "--M", "-1"], "--M: must be a whole number >= 1"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, args, fragment):
    monkeypatch.chdir(tmp_path)
    result = run("plot", "speedup", *args)
    assert result.exit_code == 2
    assert fragment in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def bench_rows():
    return {
        "rows": [
            {"impl": "standard", "P": 1, "ms": 2.0, "speedup": 1.0, "theory": 1.0},
            {"impl": "standard", "P": 4, "ms": 2.0, "speedup": 1.0, "theory": 1.0},
            {"impl": "masked", "P": 4, "ms": 1.6, "speedup": 1.25, "theory": 3.0},
            {"impl": "split", "P": 4, "ms": 0.9, "speedup": 2.2, "theory": 3.0},
            {"impl": "split", "P": 8, "ms": 0.6, "speedup": 3.3, "theory": 4.5},
        ]
    }


def test_measured_points_are_overlaid(tmp_path):
    measured = tmp_path / "bench.json"
    measured.write_text(json.dumps(bench_rows()))
    result = run("plot", "speedup", "--measured", str(measured), "--json", "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 0, result.stderr
    points = [s for s in json.loads(result.stdout)["series"] if s["kind"] == "measured"]
    assert points == [
        {"kind": "measured", "impl": "masked", "P": [4], "speedup": [1.25]},
        {"kind": "measured", "impl": "split", "P": [4, 8], "speedup": [2.2, 3.3]},
    ]
    fig = api.figure5(measured=str(measured))
    ax = fig.axes[0]
    assert [c.get_offsets().tolist() for c in ax.collections] == [[[4, 1.25]], [[4, 2.2], [8, 3.3]]]
    assert {"measured: masked", "measured: split"} <= {t.get_text() for t in ax.get_legend().get_texts()}


@pytest.mark.parametrize(
    "content, fragment",
    [
        (None, "no such file"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", 'expected a JSON object {"rows"'),
        ('{"rows": {}}', 'expected a JSON object {"rows"'),
        ('{"rows": [3]}', "rows[0] is not an object"),
        ('{"rows": [{"P": 4, "speedup": 2}]}', "rows[0].impl must be a non-empty string"),
        ('{"rows": [{"impl": "x", "P": 0, "speedup": 2}]}', "rows[0].P must be a whole number >= 1"),
        ('{"rows": [{"impl": "x", "P": 2.5, "speedup": 2}]}', "rows[0].P must be a whole number >= 1"),
        ('{"rows": [{"impl": "x", "P": 2, "speedup": -1}]}', "rows[0].speedup must be a positive number"),
        ('{"rows": [{"impl": "x", "P": 2, "speedup": "fast"}]}', "rows[0].speedup must be a positive number"),
    ],
)
def test_malformed_measured_file_is_one_line_exit_2(tmp_path, content, fragment):
    measured = tmp_path / "bench.json"
    if content is not None:
        measured.write_text(content)
    result = run("plot", "speedup", "--measured", str(measured), "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: --measured: ") and fragment in result.stderr
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "f.png").exists()


def line_by_label(ax, fragment):
    return next(line for line in ax.get_lines() if fragment in line.get_label())


def test_figure5_axes_scale_labels_and_data():
    fig = api.figure5(K=3, P_max=64, M=256)
    (ax,) = fig.axes
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    assert list(ax.get_xticks()) == [1, 2, 4, 8, 16, 32, 64]
    assert ax.get_xlabel().startswith("P") and "log₂" in ax.get_xlabel()
    assert ax.get_ylabel().startswith("Speedup")
    assert "Figure 5" in ax.get_title()
    het = line_by_label(ax, "HetConv")
    assert list(het.get_xdata()) == list(range(1, 65))
    assert list(het.get_ydata()) == pytest.approx([het_speedup(p, 3) for p in range(1, 65)])
    gwc = line_by_label(ax, "GWC+PWC")
    assert list(gwc.get_ydata()) == pytest.approx([gwc_speedup(g, 3) for g in range(1, 65)])
    assert list(line_by_label(ax, "DWC+PWC").get_ydata()) == pytest.approx([dwc_speedup(256, 3)] * 64)
    asymptote = [line for line in ax.get_lines() if set(line.get_ydata()) == {9}]
    assert len(asymptote) == 1 and asymptote[0].get_linestyle() == "--"
    assert any("asymptote K² = 9" in t.get_text() for t in ax.texts)
    assert len(ax.get_legend().get_texts()) == 3


def test_several_K_share_one_figure():
    fig = api.figure5(K=[3, 5, 7], P_max=256)
    ax = fig.axes[0]
    assert {t.get_text().split("  ")[0] for t in ax.texts if "asymptote" in t.get_text()} == {
        "asymptote K² = 9",
        "asymptote K² = 25",
        "asymptote K² = 49",
    }
    assert [t.get_text().split("  ")[0] for t in fig.legends[0].get_texts()][-3:] == [
        "K = 3",
        "K = 5",
        "K = 7",
    ]


def test_speedup_curve_is_long_form():
    curve = api.speedup_curve(K=[3, 5], P_max=8)
    assert list(curve.columns) == ["kind", "K", "P", "speedup"]
    assert len(curve) == 2 * 3 * 8
    het = curve[(curve.kind == "hetconv") & (curve.K == 5)]
    assert list(het.speedup) == pytest.approx([het_speedup(p, 5) for p in range(1, 9)])


def test_layer_report_frame():
    df = api.layer_report(M=256, N=256, K=3, P=8, D=56)
    assert list(df.kind) == ["standard", "hetconv", "dwc_pwc", "gwc_pwc"]
    assert df.set_index("kind").loc["hetconv", "speedup"] == pytest.approx(4.5)
    assert df.set_index("kind").loc["standard", "flops"] == 56 * 56 * 256 * 256 * 9


def layers_frame():
    import pandas as pd

    return pd.DataFrame(
        {
            "name": ["conv1", "conv2", "conv3", "fc"],
            "flops_before": [1_769_472, 37_748_736, 18_874_368, 5120],
            "flops_after": [1_769_472, 10_616_832, 5_308_416, 5120],
        }
    )


def test_model_figure_from_a_layers_frame():
    fig = plot.model_figure(layers_frame())
    flops, reduced = fig.axes
    assert flops.get_yscale() == "log"
    heights = [round(p.get_height()) for p in flops.patches]
    assert heights == list(layers_frame().flops_before) + list(layers_frame().flops_after)
    assert [round(p.get_height(), 2) for p in reduced.patches] == [0, 71.88, 71.88, 0]
    assert [t.get_text() for t in reduced.texts] == ["72", "72"]
    assert [t.get_text() for t in reduced.get_xticklabels()] == ["conv1", "conv2", "conv3", "fc"]
    assert "58.40M → 17.70M FLOPs (69.69% fewer)" in flops.get_title()


def test_plot_model_cli_writes_the_figure_and_its_data(tmp_path):
    out = tmp_path / "vgg.svg"
    result = run("plot", "model", "vgg16", "--P", "4", "--out", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == "vgg16" and payload["P"] == 4 and len(payload["layers"]) == 15
    assert b"HetConv P=4" in out.read_bytes()
    fig = api.model_figure(api.analyze("vgg16", P=8))
    assert fig.axes[0].get_legend().get_texts()[1].get_text() == "HetConv P=8"
    assert fig.axes[0].get_title().startswith("vgg16: per-layer FLOPs, standard vs HetConv P=8")


def test_plot_model_bad_input_writes_nothing(tmp_path):
    result = run("plot", "model", "vgg16", "--P", "4", "--out", str(tmp_path / "f.jpg"))
    assert result.exit_code == 2 and "--out: cannot tell the format" in result.stderr
    result = run("plot", "model", "vgg16", "--gwc", "4", "--dwc", "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 2 and "give one of --P, --gwc, --dwc" in result.stderr
    result = run("plot", "model", "vgg16", "--out", str(tmp_path / "f.png"))
    assert result.exit_code == 2 and "--P: give --P, --gwc, --dwc or --plan" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_matplotlib_is_lazy_and_pyplot_unused():
    code = (
        "import sys, hetcalc.cli, hetcalc.core.cost, hetcalc.plot, hetcalc.api\n"
        "assert 'matplotlib' not in sys.modules and 'pandas' not in sys.modules\n"
        "hetcalc.api.figure5(K=[3, 5])\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_plot_model_with_the_zoo(tmp_path):
    analyze = pytest.importorskip("hetcalc.core.analyze").analyze
    out = tmp_path / "vgg16.png"
    result = run("plot", "model", "vgg16", "--P", "4", "--json", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert out.read_bytes().startswith(MAGIC["png"])
    report = analyze("vgg16", P=4)
    assert json.loads(result.stdout)["layers"] == exported_tree(report.layers)
    flops, reduced = api.model_figure("vgg16", P=4).axes
    assert [p.get_height() for p in flops.patches] == pytest.approx(
        [r["flops_before"] for r in report.layers] + [r["flops_after"] for r in report.layers]
    )
    assert "vgg16: per-layer FLOPs, standard vs HetConv P=4" in flops.get_title()
    assert f"({report.flops_reduction_pct:.2f}% fewer)" in flops.get_title()
    for args, label in (
        (["--P", "C"], "HetConv P = M per layer (PC)"),
        (["--gwc", "4"], "GWC+PWC G=4"),
        (["--dwc"], "DWC+PWC"),
        (["--P", "4", "--se", "8"], "HetConv P=4 + SE R=8"),
    ):
        payload = json.loads(run("plot", "model", "vgg16", *args, "--json").stdout)
        figure = plot.model_figure(
            analyze("vgg16", variant=payload["variant"], P=payload["P"], G=payload["G"], se=payload["se"])
        )
        assert figure.axes[0].get_legend().get_texts()[1].get_text() == label
