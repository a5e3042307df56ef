"""The package's shape: no import circles, and the package's own modules imported at the top of a file only.

Which subpackage may import which (the layers) is import-linter's contract in pyproject.toml, run by `make lint`;
`test_layers_contract_holds` runs it too, so `pytest` alone catches an upward import.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = shutil.which("lint-imports") or str(ROOT / ".venv" / "bin" / "lint-imports")


def modules(root: Path) -> dict[str, Path]:
    """Dotted name -> file, for every module of the package `root / "emo_llama"`."""
    out = {}
    for path in (root / "emo_llama").rglob("*.py"):
        parts = list(path.relative_to(root).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def package_imports(tree: ast.AST, known: set[str]) -> list[tuple[str, ast.AST]]:
    """(imported module of the package, import node) for each import statement in `tree`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:  # `from pkg import submodule` imports the submodule; else the longest known prefix
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.append((name, node))
                break
    return found


def circles(root: Path) -> list[list[str]]:
    """Every import chain that leads from a module back to itself (one per edge that closes a circle)."""
    files = modules(root)
    graph = {name: {t for t, _ in package_imports(ast.parse(path.read_text()), set(files))
                    if t != name and not name.startswith(t + ".")}  # a package's own __init__ runs first anyway
             for name, path in files.items()}

    def chain(start: str, goal: str) -> list[str] | None:
        todo, seen = [[start]], {start}
        while todo:
            path = todo.pop()
            if path[-1] == goal:
                return path
            for nxt in sorted(graph[path[-1]] - seen):
                seen.add(nxt)
                todo.append([*path, nxt])
        return None

    return [[a, *found] for a in graph for b in sorted(graph[a]) if (found := chain(b, a))]


def late_imports(root: Path) -> list[str]:
    """Imports of the package's own modules inside a function: each hides a circle or an upward import."""
    files = modules(root)
    late = []
    for path in files.values():
        tree = ast.parse(path.read_text())
        inner = {id(x) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for x in ast.walk(f)}
        late += [f"{path.relative_to(root)}:{node.lineno} imports {target}"
                 for target, node in package_imports(tree, set(files)) if id(node) in inner]
    return late


def test_only_absolute_imports():
    relative = [f"{p.relative_to(ROOT)}:{n.lineno}" for p in modules(ROOT).values()
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.ImportFrom) and n.level]
    assert not relative, relative  # the checks below read absolute names


def test_no_import_circle():
    assert len(modules(ROOT)) > 50  # it found the package
    assert circles(ROOT) == []


def test_own_modules_are_imported_at_the_top():
    assert late_imports(ROOT) == []


def test_the_checks_find_a_circle_and_a_late_import(tmp_path):
    pkg = tmp_path / "emo_llama"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    (pkg / "a" / "x.py").write_text("from emo_llama.b import y\n")
    (pkg / "b.py").write_text("def y():\n    from emo_llama.a.x import z\n")
    assert ["emo_llama.a.x", "emo_llama.b", "emo_llama.a.x"] in circles(tmp_path)
    assert late_imports(tmp_path) == ["emo_llama/b.py:2 imports emo_llama.a.x"]


@pytest.mark.skipif(not Path(LINT_IMPORTS).exists(), reason="import-linter (a dev extra) is not installed")
def test_layers_contract_holds():
    done = subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 kept, 0 broken" in done.stdout
