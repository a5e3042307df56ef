"""Notebook 04 runs headless on mini (papermill), and stops with the loader's clear error on a missing dataset."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

pytestmark = [pytest.mark.notebook, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_instruction_data.ipynb"


def _run(out: Path, **params) -> nbformat.NotebookNode:
    import papermill
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    papermill.execute_notebook(str(NOTEBOOK), str(out), parameters=params, kernel_name="python3", cwd=str(ROOT),
                               progress_bar=False)
    return nbformat.read(out, as_version=4)


def test_04_runs_on_mini(tmp_path):
    nb = _run(tmp_path / "04.ipynb", run_sanity_check=False, n_videos=2)
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "shared 0" in text  # train and test identities do not overlap
    assert "My choice is: " in text and "records round-tripped" in text
    assert "unparseable 1" in text


def test_04_missing_dataset_names_what_and_where(tmp_path):
    import papermill
    with pytest.raises(papermill.PapermillExecutionError) as err:
        _run(tmp_path / "04.ipynb", dataset="rafdb", data_root=str(tmp_path / "no_rafdb"))
    assert "list_patition_label.txt" in str(err.value) and "no_rafdb" in str(err.value)
