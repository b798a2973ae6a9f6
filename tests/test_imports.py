"""Every module imports alone, and no module of the package is on an import cycle.

The cycle check reads the top-level imports of every module under ``src/alphavil`` (not those
inside functions or under ``if TYPE_CHECKING``), with the implicit import of each parent
package (other than the module's own), and looks for strongly connected components.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "alphavil"


def module_names() -> list[str]:
    out = []
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def top_level_imports(module: str, known: set[str]) -> set[str]:
    """alphavil modules that ``module`` imports when it is imported."""
    is_pkg = module not in known or (PKG.parent / module.replace(".", "/") / "__init__.py").exists()
    path = SRC / module.replace(".", "/")
    path = path / "__init__.py" if is_pkg and path.is_dir() else path.with_suffix(".py")
    tree = ast.parse(path.read_text())
    here = module if is_pkg and path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and not _is_type_checking(node.test):
                visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(here.split(".")[: len(here.split(".")) - node.level + 1])
                    base = f"{base}.{node.module}" if node.module else base
                found.add(base)
                found.update(f"{base}.{a.name}" for a in node.names)

    visit(tree.body)
    edges = set()
    for name in found:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c imports a and a.b first
            prefix = ".".join(parts[:i])
            # a module's own packages are imported before it (not an edge back to them)
            if prefix in known and not (module == prefix or module.startswith(prefix + ".")):
                edges.add(prefix)
    return edges


def import_cycles() -> list[list[str]]:
    """Strongly connected components (of more than one module) of the top-level import graph."""
    names = module_names()
    known = set(names)
    graph = {m: top_level_imports(m, known) for m in names}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    sys.setrecursionlimit(10_000)

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in names:
        if m not in index:
            strong(m)
    return out


def test_no_module_is_on_an_import_cycle() -> None:
    assert import_cycles() == []


def test_schema_imports_nothing_from_alphavil() -> None:
    assert top_level_imports("alphavil.schema", set(module_names())) == set()


def test_the_cycle_finder_finds_a_cycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: two modules importing each other are one component."""
    pkg = tmp_path / "alphavil"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from alphavil import b\n")
    (pkg / "b.py").write_text("import alphavil.a\nif TYPE_CHECKING:\n    import alphavil.c\n")
    (pkg / "c.py").write_text("def f():\n    import alphavil.a\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PKG", pkg)
    assert import_cycles() == [["alphavil.a", "alphavil.b"]]


_ALONE = """
import importlib, json, sys
failed = {}
for name in json.loads(sys.argv[1]):
    for key in [k for k in sys.modules if k == "alphavil" or k.startswith("alphavil.")]:
        del sys.modules[key]
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:  # an optional extra that is not installed
        if (err.name or "").split(".")[0] != "alphavil":
            continue
        failed[name] = f"{type(err).__name__}: {err}"
    except Exception as err:
        failed[name] = f"{type(err).__name__}: {err}"
print(json.dumps(failed))
"""


def test_every_module_imports_alone() -> None:
    """Each module imported first, with no other alphavil module loaded (one subprocess; the
    alphavil modules are dropped from ``sys.modules`` before each; third-party ones stay)."""
    names = [m for m in module_names() if not m.endswith(".__main__")]  # that one runs the CLI
    out = subprocess.run(
        [sys.executable, "-c", _ALONE, json.dumps(names)],
        capture_output=True,
        text=True,
        check=True,
        cwd=SRC.parent,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {}
