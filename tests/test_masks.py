"""LHC masks: the kinds as masks count exactly as their formulas; files load or fail cleanly."""

import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from hetcalc.cli import cli
from hetcalc.core import cost
from hetcalc.core.masks import MaskLayer, kind_mask, topology
from hetcalc.core.spec import ConvSpec


@st.composite
def layer(draw):
    P = draw(st.sampled_from([1, 2, 3, 4, 8]))
    M = P * draw(st.integers(1, 6))
    N = P * draw(st.integers(1, 6))
    return M, N, draw(st.sampled_from([1, 3, 5, 7])), P, draw(st.integers(1, 20))


@settings(max_examples=80, deadline=None)
@given(layer())
def test_kind_masks_count_as_their_formulas(params):
    M, N, K, P, D = params
    spec = ConvSpec(M=M, N=N, K=K, H=D)
    count = lambda kind, **kw: MaskLayer(kind, kind_mask(kind, M, N, K, **kw), D).report()  # noqa: E731
    for kind, formula, kw in [
        ("standard", cost.standard(spec), {}),
        ("hetconv", cost.hetconv(spec, P), {"P": P}),
        ("gwc", cost.grouped(spec, P), {"P": P}),
    ]:
        report = count(kind, **kw)
        assert (report["flops"], report["params"]) == (formula.flops, formula.params), kind
    depthwise = MaskLayer("dwc", kind_mask("dwc", M, M, K), D).report()
    assert depthwise["flops"] == cost.grouped(spec.with_(N=M), M).flops == D * D * M * K * K


def test_hetconv_mask_is_shifted():
    mask = kind_mask("hetconv", 8, 8, 3, 4)
    for n in range(8):
        for c in range(8):
            expected = np.ones((3, 3), bool) if (c - n) % 4 == 0 else np.pad([[True]], 1)
            assert (mask[n, c] == expected).all()
    assert topology(mask) == {"full": 16, "centre_only": 48, "empty": 0, "other": 0}


def test_topology_counts_other_shapes():
    mask = np.zeros((1, 3, 3, 3), bool)
    mask[0, 0] = True
    mask[0, 1, 0, 0] = mask[0, 1, 2, 2] = True
    assert topology(mask) == {"full": 1, "centre_only": 0, "empty": 1, "other": 1}


def run(*args):
    return CliRunner().invoke(cli, ["mask", *map(str, args)], catch_exceptions=False)


def test_cli_npy_totals(tmp_path):
    path = tmp_path / "het.npy"
    np.save(path, kind_mask("hetconv", 16, 32, 3, 4))
    payload = json.loads(run(path, "--D", "7", "--json").stdout)
    # 32 filters · (16/4 · 9 + 16 − 4) kept taps; 7·7 positions
    assert payload["params"] == 32 * (4 * 9 + 12) == 1536
    assert payload["flops"] == 49 * 1536
    assert payload["dense_flops"] == 49 * 32 * 16 * 9


def test_cli_pt_state_dict_with_output_sizes(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "lhc.pt"
    torch.save(
        {
            "conv1.mask": torch.tensor(kind_mask("standard", 3, 8, 3)),
            "conv1.weight": torch.zeros(8, 3, 3, 3),
            "conv2.mask": torch.tensor(kind_mask("hetconv", 8, 8, 3, 2)),
            "output_sizes": {"conv1": 16, "conv2": 8},
        },
        path,
    )
    payload = json.loads(run(path, "--json").stdout)
    assert [layer["name"] for layer in payload["layers"]] == ["conv1", "conv2"]
    assert payload["flops"] == 256 * 8 * 27 + 64 * 8 * (4 * 9 + 4)


@pytest.mark.parametrize(
    "content, fragment",
    [
        (np.zeros((3, 3), bool), "rank 2"),
        (np.full((2, 2, 3, 3), 0.5), "values other than 0/1"),
        (np.ones((2, 2, 3, 1), bool), "non-square"),
    ],
)
def test_cli_bad_masks(tmp_path, content, fragment):
    path = tmp_path / "m.npy"
    np.save(path, content)
    result = run(path, "--D", "4")
    assert result.exit_code == 2 and fragment in result.stderr and result.stderr.count("\n") == 1


def test_cli_bad_files(tmp_path):
    assert "no such file" in run(tmp_path / "missing.npy", "--D", "2").stderr
    (tmp_path / "m.txt").write_text("x")
    assert "expected a .npy or .pt" in run(tmp_path / "m.txt").stderr
    (tmp_path / "garbage.npy").write_bytes(b"not numpy")
    assert run(tmp_path / "garbage.npy", "--D", "2").exit_code == 2
    np.save(tmp_path / "ok.npy", np.ones((1, 1, 1, 1), bool))
    assert "no output size" in run(tmp_path / "ok.npy").stderr


def test_cli_pt_without_masks(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(2, 2, 3, 3)}, path)
    result = run(path, "--D", "4")
    assert result.exit_code == 2 and "holds no masks" in result.stderr
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert run(tmp_path / "junk.pt", "--D", "4").exit_code == 2
