"""The kernel-side package: one module per concern, importable on its own, no import cycle."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import sparkbook.notebook

PACKAGE = "sparkbook.notebook"
ROOT = Path(sparkbook.notebook.__file__).parent
MODULES = sorted(
    PACKAGE if p.name == "__init__.py" else f"{PACKAGE}.{p.stem}" for p in ROOT.glob("*.py")
)


def _imports(module: str) -> set[str]:
    """Modules of the package that ``module`` imports, at top level or inside functions."""
    path = ROOT / "__init__.py" if module == PACKAGE else ROOT / f"{module.rsplit('.', 1)[1]}.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from sparkbook.notebook import startup` imports the submodule startup.
            targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in MODULES else node.module for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != module)
    # Every submodule's parent package runs first; that is not an edge of the module's own.
    found.discard(PACKAGE)
    return found


def test_each_concern_has_its_own_module() -> None:
    for name in ("args", "configure", "tables", "errors", "magics", "startup", "viz"):
        assert f"{PACKAGE}.{name}" in MODULES


def test_no_import_cycle() -> None:
    graph = {m: _imports(m) for m in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for m in MODULES:
        if m not in state:
            visit(m, [m])
    assert "sparkbook.notebook.magics" not in graph["sparkbook.notebook.startup"]


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module: str) -> None:
    out = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
