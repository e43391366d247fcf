"""Packaging promises: old import paths keep working for one release (with a warning naming the new one),
and a feature whose optional dependency is missing says in one line which extra to install."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import gridshift
from gridshift.compat import MOVED
from gridshift.errors import GridShiftError, MissingExtraError, require


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_import_path_serves_the_new_module_and_warns(old):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        mod = importlib.import_module(old)
    new = MOVED[old]
    assert mod is importlib.import_module(new)
    assert any(issubclass(w.category, DeprecationWarning) and new in str(w.message) for w in seen)


def test_old_from_import_still_gives_the_same_objects():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from gridshift.assemble import assemble as old_assemble  # noqa: PLC0415
        from gridshift.sim.world import World as OldWorld  # noqa: PLC0415
    from gridshift.world.arrays import World
    from gridshift.world.build import assemble

    assert old_assemble is assemble and OldWorld is World


def test_missing_extra_is_one_line_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lightgbm", None)  # makes `import lightgbm` fail
    with pytest.raises(MissingExtraError) as e:
        require("lightgbm", "forecast", "the 'lightgbm' forecaster")
    msg = str(e.value)
    assert isinstance(e.value, GridShiftError) and "\n" not in msg
    assert "gridshift[forecast]" in msg and "lightgbm" in msg


def test_require_returns_the_module_when_installed():
    assert require("numpy", "core", "arrays").__name__ == "numpy"


def test_cli_without_openleadr_exits_2_with_one_line(tmp_path):
    code = ("import sys; sys.modules['openleadr'] = None; sys.argv = ['gridshift', 'ven', '--vtn-url', "
            "'http://127.0.0.1:9/OpenADR2/Simple/2.0b', '--ven-name', 'a', '--site', 'a', '--load-mw', '1']; "
            "from gridshift.cli import main; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "gridshift[openadr]" in lines[0], res.stderr


def test_public_face_is_small():
    assert set(gridshift.__all__) == {"GridShiftError", "Scenario", "Decision", "Observation", "Policy", "register",
                                      "load_scenario", "parse_scenario", "simulate", "PolicyRun", "__version__"}


@pytest.mark.parametrize(("blocked", "argv", "extra"), [
    ("uvicorn", ["serve", "--fleet", "tests/scenarios/small.yaml"], "service"),
    ("sqlalchemy", ["token", "list"], "service"),
    ("lightgbm", ["forecast", "backtest", "--zone", "DE-LU", "--horizon", "24h", "--model", "gbm", "--out", "{tmp}/fc"], "forecast"),
])
def test_commands_without_their_extra_exit_2_with_one_line(tmp_path, blocked, argv, extra):
    repo = Path(__file__).resolve().parents[1]
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = (f"import sys; sys.modules[{blocked!r}] = None; sys.argv = ['gridshift', *{argv!r}]; "
            "from gridshift.cli import main; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=repo,
                         env={**os.environ, "GRIDSHIFT_STATE_DIR": str(tmp_path)})
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1 and f"gridshift[{extra}]" in lines[0], res.stderr[-2000:]


HEAVY = ("fastapi", "starlette", "sqlalchemy", "alembic", "uvicorn", "prometheus_client", "psycopg", "statsforecast",
         "lightgbm", "ray", "openleadr")


def test_the_core_runs_without_any_extra(tmp_path):
    """With every optional stack unimportable, the simulator, the planners (mpc with the default forecaster)
    and the report still run: the core depends on none of them."""
    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "out"
    code = (f"import sys; [sys.modules.__setitem__(m, None) for m in {HEAVY!r}]; "
            f"sys.argv = ['gridshift', 'simulate', 'tests/scenarios/small.yaml', '--policy', 'asap', "
            f"'--policy', 'mpc', '--out', {str(out)!r}, '--quiet']; from gridshift.cli import main; main()")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=repo)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "metrics.json").exists() and (out / "report.html").exists()
