"""Re-run notebooks from a clean kernel and save them with their outputs, minus stray metadata.

    .venv/bin/python scripts/refresh_notebook.py notebooks/01_face_cropping.ipynb [-p name value ...]

The repo's convention (checked by tests/test_notebook_format.py): notebooks are committed with the
outputs of a clean top-to-bottom run, execution counts 1..N, and only `tags` in cell metadata.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nbformat
import papermill
import yaml

KEEP_NOTEBOOK_METADATA = ("kernelspec", "language_info")
# The kernel `make setup` installs (Makefile: ipykernel install --name python3 --display-name ...): JupyterLab
# rewrites a differing display name on open and marks the notebook modified.
KERNELSPEC = {"display_name": "Python 3 (emo-llama)", "language": "python", "name": "python3"}


def _without_machine_paths(output):
    """A library's warning printed to stderr names this machine's venv ("/.../site-packages/x.py:12: Warning...",
    then the source line): drop those two lines; an output left empty goes."""
    if output.get("output_type") != "stream" or output.get("name") != "stderr":
        return output
    lines, kept, skip_next = output["text"].splitlines(keepends=True), [], False
    for line in lines:
        if "site-packages/" in line:
            skip_next = True
            continue
        if skip_next and line.startswith("  "):
            skip_next = False
            continue
        skip_next = False
        kept.append(line)
    output["text"] = "".join(kept)
    return output if kept else None


def clean(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb.metadata = {k: nb.metadata[k] for k in KEEP_NOTEBOOK_METADATA if k in nb.metadata}
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    cells = []
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags:
            continue  # refresh runs use the notebook's own defaults
        cell.metadata = {"tags": tags} if tags else {}
        cell.pop("id", None)
        if cell.cell_type == "code":
            cell.outputs = [o for o in map(_without_machine_paths, cell.outputs) if o is not None]
        cells.append(cell)
    nb.cells = cells
    count = 0
    for cell in nb.cells:
        if cell.cell_type == "code":
            count += 1
            cell.execution_count = count
            for out in cell.outputs:
                if "execution_count" in out:
                    out["execution_count"] = count
                out.pop("metadata", None) if out.get("output_type") == "stream" else None
    nb.nbformat_minor = 4  # no cell ids
    return nb


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a papermill parameter (its value read as YAML, as papermill -p does); the committed "
                             "notebook keeps its own parameters cell, so say in its text which values made the outputs")
    args = parser.parse_args()
    parameters = {name: yaml.safe_load(value) for name, value in args.parameter}
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in args.notebooks:
        print(f"running {path} ...", flush=True)
        papermill.execute_notebook(str(path), str(path), parameters=parameters, kernel_name="python3",
                                   progress_bar=False)
        nb = clean(nbformat.read(path, as_version=4))
        nbformat.write(nb, path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
