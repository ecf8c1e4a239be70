"""House style: ``ruff format`` and ``ruff check`` (configured in pyproject.toml) pass on the package, tests and benchmarks."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["hetcalc", "tests", "benchmarks"]


@pytest.mark.parametrize("command", [["format", "--check"], ["check"]])
def test_ruff(command):
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' installs it)")
    result = subprocess.run([ruff, *command, *PATHS], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
