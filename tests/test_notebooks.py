"""Every notebook in notebooks/ runs top to bottom, in this interpreter, without writing files.

The kernel is ``python3``: jupyter_client starts a kernelspec whose command is ``python`` with
``sys.executable``, so running pytest from the venv runs the notebooks in the venv.
"""

import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 120


def execute(nb, cwd: Path):
    client = nbclient.NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    return client.execute()


def test_there_are_notebooks():
    assert any(path.name == "reproduce_paper.ipynb" for path in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"clear the outputs of {path.name}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs(path, tmp_path):
    repo_before = sorted(p.name for p in (ROOT / "notebooks").iterdir())
    nb = execute(nbformat.read(path, as_version=4), cwd=tmp_path)
    errors = [
        o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"
    ]
    assert errors == []
    images = [
        o
        for cell in nb.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]
    assert images, "the notebook should show its figures"
    assert list(tmp_path.iterdir()) == []
    assert sorted(p.name for p in (ROOT / "notebooks").iterdir()) == repo_before


def test_kernel_is_this_interpreter(tmp_path):
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(
                "import sys, hetcalc.api; print(sys.executable); print(hetcalc.api.__file__)"
            )
        ]
    )
    lines = execute(nb, cwd=tmp_path).cells[0].outputs[0]["text"].split()
    assert Path(lines[0]).resolve() == Path(sys.executable).resolve()
    assert Path(lines[1]).resolve() == ROOT / "hetcalc" / "api.py"
