"""The shape of the tree, checked on every run: the layer contract, no import cycle or package loop, small
modules, only the package's face at its root, and the linter clean. A change that breaks one fails CI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "gridshift"
MAX_MODULE_LINES = 700


def _tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: install GridShift with the 'test' extra")
    return found


def test_layer_contracts_hold():
    """import-linter: layers point one way, the pure core does no I/O (contracts in pyproject.toml)."""
    res = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "2 kept, 0 broken" in res.stdout


def test_no_import_cycle_and_no_package_loop():
    res = subprocess.run([sys.executable, str(REPO / "scripts" / "import_graph.py")], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    assert "package loops: 0" in res.stdout and "file-level import cycles: 0" in res.stdout


def test_modules_are_small():
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_only_the_face_at_the_package_root():
    assert sorted(p.name for p in PACKAGE.glob("*.py")) == ["__init__.py", "errors.py"]


def test_package_faces_hold_no_logic():
    """Every ``__init__.py`` only documents and re-exports: no function or class is defined in one."""
    import ast

    for init in PACKAGE.rglob("__init__.py"):
        tree = ast.parse(init.read_text())
        defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
        assert not defs, f"{init.relative_to(PACKAGE)} defines {defs}"


def test_ruff_is_clean():
    res = subprocess.run([_tool("ruff"), "check", "src", "tests", "benchmarks", "scripts"], cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
