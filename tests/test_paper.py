"""Table 1 of the paper (VGG-16 on CIFAR-10): the published numbers, as published in Singh et al. (CVPR 2019)."""

import json
import math

import pytest
from click.testing import CliRunner

from hetcalc.cli import cli
from hetcalc.core.paper import TOLERANCE, row_options, table1, table1_frame

# row: (FLOPs M, FLOPs reduced %, params M, params reduced %) as published; None where the paper has "—".
PUBLISHED = {
    "VGG-16_P1": (313.74, None, 15.00, None),
    "VGG-16_P2": (175.23, 44.15, 8.45, 43.68),
    "VGG-16_P4": (105.98, 66.22, 5.17, 65.45),
    "VGG-16_P8": (71.35, 77.26, 3.54, 76.40),
    "VGG-16_P16": (54.04, 82.78, 2.72, 81.86),
    "VGG-16_P32": (45.38, 85.54, 2.31, 84.58),
    "VGG-16_P64": (41.05, 86.92, 2.11, 85.95),
    "VGG-16_GWC4_PWC": (107.67, 65.68, 5.42, None),
    "VGG-16_DWC_PWC": (38.53, 87.72, 1.97, None),
    "VGG-16_PC": (38.18, 87.83, 1.93, None),
    "VGG-16_P1_SE": (314.19, None, 15.22, None),
    "VGG-16_P4_SE": (106.42, 66.08, 5.41, 64.48),
    "VGG-16_P32_SE": (45.82, 85.39, 2.54, 83.28),
}
# The paper convention's FLOPs for P1 … P64, worked out by hand: conv MACs + bias adds + FC, every
# replaced layer scaled by Eq. 5 (the lead's analysis); the paper prints them truncated.
HETCONV_FLOPS_M = {
    1: 313.74081,
    2: 175.235025,
    4: 105.982133,
    8: 71.355686,
    16: 54.042463,
    32: 45.385852,
    64: 41.057546,
}
FLOPS_REPRODUCE = {f"VGG-16_P{p}" for p in HETCONV_FLOPS_M} | {"VGG-16_P1_SE"}
PARAMS_REPRODUCE = {f"VGG-16_P{p}" for p in (2, 4, 8, 16, 32, 64)} | {"VGG-16_PC"}

ROWS = {r["row"]: r for r in table1()}


def test_every_published_row_is_there_with_its_numbers():
    assert list(ROWS) == list(PUBLISHED)
    for name, values in PUBLISHED.items():
        published = tuple(
            ROWS[name][f"published_{c}"]
            for c in ("flops", "flops_reduction_pct", "params", "params_reduction_pct")
        )
        assert published == values


@pytest.mark.parametrize("P,expected", sorted(HETCONV_FLOPS_M.items()))
def test_hetconv_flops_match_the_hand_analysis_and_the_paper_truncates(P, expected):
    ours = ROWS[f"VGG-16_P{P}"]["flops"]
    assert ours == pytest.approx(expected, abs=5e-7)
    assert math.floor(ours * 100) / 100 == pytest.approx(PUBLISHED[f"VGG-16_P{P}"][0])


@pytest.mark.parametrize("name", PUBLISHED)
def test_each_value_is_flagged_by_the_one_tolerance(name):
    row = ROWS[name]
    for column, published in zip(
        ("flops", "flops_reduction_pct", "params", "params_reduction_pct"), PUBLISHED[name]
    ):
        if published is None:
            assert row[f"{column}_ok"] is None
            continue
        assert row[f"delta_{column}"] == pytest.approx(row[column] - published)
        assert row[f"{column}_ok"] == (abs(row[column] - published) <= TOLERANCE + 1e-9)
    assert row["reproduces"] == all(
        row[f"{c}_ok"] is not False
        for c in ("flops", "flops_reduction_pct", "params", "params_reduction_pct")
    )


def test_which_rows_reproduce():
    assert {n for n, r in ROWS.items() if r["flops_ok"]} == FLOPS_REPRODUCE
    assert {n for n, r in ROWS.items() if r["params_ok"]} == PARAMS_REPRODUCE
    # FLOPs reductions reproduce wherever FLOPs do, and for the SE rows too
    assert {n for n, r in ROWS.items() if r["flops_reduction_pct_ok"]} == (
        {f"VGG-16_P{p}" for p in (2, 4, 8, 16, 32, 64)} | {"VGG-16_P4_SE", "VGG-16_P32_SE"}
    )


def test_rows_that_do_not_reproduce_say_so_and_why():
    for name in set(PUBLISHED) - FLOPS_REPRODUCE:
        assert not ROWS[name]["reproduces"] and "FLOPs" in ROWS[name]["note"]
    assert "BatchNorm" in ROWS["VGG-16_P1"]["note"]
    assert "P ≈ 32.08 by Eq. 5" in ROWS["VGG-16_P32_SE"]["note"]
    assert "reduction R ≈ 15.2" in ROWS["VGG-16_P1_SE"]["note"]  # the published SE params imply R ≈ 16, not 8
    assert ROWS["VGG-16_P2"]["note"] == "off: params reduction"


def test_row_names_follow_the_papers_naming():
    assert row_options("VGG-16_P4_SE") == {"variant": "hetconv", "P": 4, "se": 8}
    assert row_options("VGG-16_PC") == {"variant": "hetconv", "P": "C", "se": None}
    assert row_options("VGG-16_GWC4_PWC") == {"variant": "gwc_pwc", "G": 4}
    assert row_options("VGG-16_DWC_PWC") == {"variant": "dwc_pwc"}


def test_exact_convention_and_frame():
    exact = {r["row"]: r for r in table1("exact")}
    assert exact["VGG-16_P1"]["flops"] == pytest.approx(313.463808)  # MACs only
    assert exact["VGG-16_P1"]["params"] == pytest.approx(14.991946)  # with BatchNorm
    frame = table1_frame()
    assert len(frame) == 13 and {"row", "flops", "published_flops", "reproduces", "note"} <= set(
        frame.columns
    )


def test_cli_table1():
    result = CliRunner().invoke(cli, ["paper", "table1", "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.output)
    assert payload["convention"] == "paper" and payload["tolerance"] == TOLERANCE
    assert [r["row"] for r in payload["rows"]] == list(PUBLISHED)
    text = CliRunner().invoke(cli, ["paper", "table1"]).output
    assert "convention: paper" in text and "Reproduced: FLOPs 8/13" in text and "VGG-16_PC:" in text
