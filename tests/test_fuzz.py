"""CLI fuzz: random option values and garbage never crash a command (issue: no traceback, ever).

Each example invokes one command with options drawn from its own vocabulary, values drawn from
plausible and hostile ones alike, and asserts: no unhandled exception (catch_exceptions=False),
an exit code in {0, 1, 2}, and valid JSON on stdout whenever ``--json`` succeeded.
"""

import json
import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hetcalc.cli import cli

VALID = st.sampled_from(["1", "2", "3", "4", "8", "16", "32", "64", "256"])
HOSTILE = st.sampled_from(
    [
        "0",
        "7",
        "56",
        "-1",
        "-8",
        "1.5",
        "1e3",
        "abc",
        "",
        " ",
        "NaN",
        "inf",
        "99999999999999999999",
        "C",
        "2,4",
        "0x10",
    ]
)
NUMBERS = st.one_of(VALID, VALID, HOSTILE)  # mostly plausible, so that commands also get to succeed
MODELS = st.sampled_from(["vgg16", "vgg19", "resnet18", "resnet56", "mobilenet", "nope", "", "../x", "*"])
DATASETS = st.sampled_from(["cifar10", "imagenet", "mnist", ""])
CONVENTIONS = st.sampled_from(["paper", "exact", "nope"])
GARBAGE = st.text(min_size=0, max_size=12)

# command → (its argv prefix, {option: value strategy}) ; flags map to None.
COMMANDS = {
    "layer": (
        ["layer"],
        {
            "--M": NUMBERS,
            "--N": NUMBERS,
            "--K": NUMBERS,
            "--P": NUMBERS,
            "--gwc": NUMBERS,
            "--D": NUMBERS,
            "--D-in": NUMBERS,
            "--stride": NUMBERS,
            "--padding": NUMBERS,
            "--bias": None,
            "--grouped-sum": None,
        },
    ),
    "model": (
        ["model"],
        {
            "--P": NUMBERS,
            "--gwc": NUMBERS,
            "--dwc": None,
            "--se": NUMBERS,
            "--dataset": DATASETS,
            "--convention": CONVENTIONS,
        },
    ),
    "zoo": (["zoo"], {"--convention": CONVENTIONS}),
    "paper": (["paper", "table1"], {"--convention": CONVENTIONS}),
    "plot speedup": (
        ["plot", "speedup"],
        {"--K": NUMBERS, "--P-max": NUMBERS, "--M": NUMBERS, "--out": None},
    ),
    "plot model": (
        ["plot", "model"],
        {"--P": NUMBERS, "--gwc": NUMBERS, "--dwc": None, "--dataset": DATASETS, "--out": None},
    ),
    "mask": (["mask"], {"--D": NUMBERS, "--bias": None}),
    "model --module": (["model"], {"--module": None, "--input-size": None, "--P": NUMBERS, "--dwc": None}),
}
MODULE_SPECS = [
    "net.py:make",
    "net.py:boom",
    "net.py:nothing",
    "net.py:number",
    "missing.py:make",
    "nocolon",
    "no_such_package.mod:make",
    "os:getcwd",
    ":",
    "net.py:",
]


@st.composite
def invocation(draw, tmp):
    name = draw(st.sampled_from(sorted(COMMANDS)))
    prefix, options = COMMANDS[name]
    argv = list(prefix)
    if name in ("model", "plot model"):
        argv.append(draw(st.one_of(MODELS, MODELS, GARBAGE)))
    if name == "layer":
        argv += ["--M", draw(NUMBERS), "--N", draw(NUMBERS)]
    if name == "mask":
        argv.append(
            draw(
                st.sampled_from(
                    [os.path.join(tmp, f) for f in ("ok.npy", "bad.npy", "text.npy", "missing.npy")]
                )
            )
        )
    for option in draw(st.lists(st.sampled_from(sorted(options)), max_size=5)):
        argv.append(option)
        if option == "--module":
            argv.append(
                draw(st.sampled_from([os.path.join(tmp, m) if ".py" in m else m for m in MODULE_SPECS]))
            )
        elif option == "--input-size":
            argv += [draw(st.one_of(VALID, HOSTILE)) for _ in range(draw(st.sampled_from([3, 3, 3, 2])))]
        elif option == "--out":
            argv.append(
                draw(
                    st.sampled_from(
                        [
                            os.path.join(tmp, f)
                            for f in ("f.png", "f.svg", "f.pdf", "f.txt", "f", "no/such/dir/f.png")
                        ]
                    )
                )
            )
        elif options[option] is not None:
            argv.append(draw(st.one_of(options[option], options[option], options[option], GARBAGE)))
    if draw(st.booleans()):
        argv.append("--json")
    if draw(st.integers(0, 19)) == 0:  # now and then, pure garbage anywhere
        argv.insert(draw(st.integers(0, len(argv))), draw(GARBAGE))
    return argv


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    np.save(tmp / "ok.npy", np.ones((4, 4, 3, 3), bool))
    np.save(tmp / "bad.npy", np.arange(6.0))
    (tmp / "text.npy").write_text("not an array")
    (tmp / "net.py").write_text(
        "from torch import nn\n"
        "def make():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3), nn.Flatten())\n"
        "def boom():\n    raise RuntimeError('boom')\n"
        "number = 3\n"
        "def nothing():\n    return None\n"
    )
    return str(tmp)


def test_cli_never_crashes(files):
    @settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(invocation(files))
    def check(argv):
        result = CliRunner().invoke(cli, argv, catch_exceptions=False)
        assert result.exit_code in (0, 1, 2), (argv, result.output)
        if result.exit_code == 2:
            assert "Traceback" not in result.output, argv
            assert result.stderr.strip().count("\n") == 0, (argv, result.stderr)  # one line
        if "--json" in argv and result.exit_code == 0 and "--help" not in argv:
            json.loads(result.stdout)

    check()


powers = st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 256])


@settings(max_examples=100, deadline=None)
@given(powers, powers, st.sampled_from([1, 3, 5, 7]), powers, st.integers(1, 64), st.booleans())
def test_valid_layer_json_always_succeeds(M, N, K, P, D, bias):
    P = min(P, M, N)  # the one eligibility rule: P divides M and N (powers of two: P <= both)
    argv = ["layer", "--M", M, "--N", N, "--K", K, "--P", P, "--D", D, "--json"] + (
        ["--bias"] if bias else []
    )
    result = CliRunner().invoke(cli, list(map(str, argv)), catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert [row["kind"] for row in json.loads(result.stdout)["rows"]] == [
        "standard",
        "hetconv",
        "dwc_pwc",
        "gwc_pwc",
    ]


@settings(max_examples=30, deadline=None)
@given(
    st.sampled_from(
        ["vgg16", "vgg19", "resnet56", "resnet110", "mobilenet", "resnet18", "resnet34", "resnet50"]
    ),
    st.sampled_from([["--P", "1"], ["--P", "2"], ["--P", "4"], ["--P", "C"], ["--gwc", "2"], ["--dwc"], []]),
    st.sampled_from(["paper", "exact"]),
)
def test_valid_model_json_always_succeeds(name, variant, convention):
    result = CliRunner().invoke(
        cli, ["model", name, *variant, "--convention", convention, "--json"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert payload["model"] == name and payload["convention"] == convention
