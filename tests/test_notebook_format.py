"""Notebook conventions: committed with outputs of a clean run, one typed parameters cell, thin.

Refresh a notebook with `.venv/bin/python scripts/refresh_notebook.py notebooks/NN_name.ipynb`.
"""

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
TYPED_PARAMETER = re.compile(r"^[a-z_][a-z0-9_]*: [A-Za-z_][\w\[\], .|]* = .+  # \S.*$")


def test_there_are_notebooks():
    assert any(p.name.startswith("01_") for p in NOTEBOOKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_from_a_clean_run(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert set(nb.metadata) <= {"kernelspec", "language_info"}, "stray notebook metadata"
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code_cells] == list(range(1, len(code_cells) + 1)), (
        "execution counts must be 1..N from one clean run")
    for cell in nb.cells:
        assert set(cell.metadata) <= {"tags"}, f"stray cell metadata {dict(cell.metadata)}"
        assert "injected-parameters" not in cell.metadata.get("tags", [])
        for out in cell.get("outputs", []):
            assert out.output_type != "error", f"{path.name}: a cell raised"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_typed_commented_parameters_cell_first(path):
    nb = nbformat.read(path, as_version=4)
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [c for c in code_cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code_cells[0]
    lines = [ln for ln in tagged[0].source.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines, "empty parameters cell"
    for line in lines:
        assert TYPED_PARAMETER.match(line), f"{path.name}: parameter not typed and commented: {line!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_stay_thin(path):
    """Logic lives in emo_llama/: no function or class definitions in notebooks."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not re.search(r"^(def|class) ", cell.source, re.M), f"{path.name}: move this into the package"
