"""The command line: simulate, demo, schema, data; bad input gives one line and exit code 2, and a failed
run leaves no half-written output."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data import registry
from worldkit import external_refs

HERE = Path(__file__).parents[1]
SMALL = HERE / "scenarios" / "small.yaml"
runner = CliRunner()

REQUIRED = {"energy_mwh", "carbon_t", "cost_usd", "jobs_completed", "deadline_miss_frac", "avg_jct_h",
            "slo_attainment", "peak_power_mw", "cap_violation_mwh", "plan_time_s"}


def _write(tmp_path, doc) -> Path:
    p = tmp_path / "scenario.yaml"
    p.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return p


def _small():
    return yaml.safe_load(SMALL.read_text())


def _bad(tmp_path, doc, *extra):
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", str(_write(tmp_path, doc)), "--out", str(out), "-q", *extra])
    assert res.exit_code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, res.stderr
    assert not out.exists()
    return lines[0]


def test_simulate_small_scenario(tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", str(SMALL), "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["scenario"]["name"] == "small"
    assert set(doc["policies"]) == {"asap", "threshold"}
    for m in doc["policies"].values():
        assert REQUIRED <= set(m)
        assert m["energy_mwh"] > 0 and m["carbon_t"] > 0
        assert 0 <= m["slo_attainment"] <= 1
    assert external_refs((out / "report.html").read_text()) == []
    for png in ("site_power.png", "cumulative_carbon.png", "jct_cdf.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert any((out / "timeseries").rglob("*.parquet"))
    umask = __import__("os").umask(0o022)
    __import__("os").umask(umask)
    assert (out / "metrics.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask
    # the threshold policy emits less carbon per MWh than asap on the same work
    a, t = doc["policies"]["asap"], doc["policies"]["threshold"]
    assert t["avg_carbon_g_per_kwh"] < a["avg_carbon_g_per_kwh"]


def test_policy_option_selects_policies(tmp_path):
    out = tmp_path / "o"
    res = runner.invoke(app, ["simulate", str(SMALL), "--policy", "asap", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert set(json.loads((out / "metrics.json").read_text())["policies"]) == {"asap"}


def test_malformed_yaml(tmp_path):
    line = _bad(tmp_path, "name: x\nsites: [a, b\nzones: {")
    assert "scenario.yaml" in line and "malformed YAML" in line and re.search(r": line \d+", line)


def test_unknown_accelerator(tmp_path):
    d = _small()
    d["sites"][0]["pools"][0]["accelerator"] = "H900"
    line = _bad(tmp_path, d)
    assert "scenario.yaml" in line and "sites[0].pools[0].accelerator" in line and "H900" in line


def test_unknown_zone(tmp_path):
    d = _small()
    d["zones"][0]["id"] = "XX-NOPE"
    d["sites"][0]["zone"] = "XX-NOPE"
    line = _bad(tmp_path, d)
    assert "zones[0].id" in line and "XX-NOPE" in line


def test_negative_and_nan_values(tmp_path):
    d = _small()
    d["sites"][1]["power_cap_mw"] = -3
    line = _bad(tmp_path, d)
    assert "sites[1].power_cap_mw" in line and re.search(r": line \d+", line)
    d = _small()
    d["sites"][0]["pue"] = float("nan")
    assert "sites[0].pue" in _bad(tmp_path, d)
    d = _small()
    d["sites"][0]["pools"][0]["count"] = -1
    assert "sites[0].pools[0].count" in _bad(tmp_path, d)


def test_time_range_outside_data(tmp_path):
    d = _small()
    d["time_range"] = {"start": "2024-03-01T00:00:00Z", "end": "2024-03-08T00:00:00Z"}
    line = _bad(tmp_path, d)
    assert "time_range is outside" in line and "zones[0]" in line


def test_zone_without_price_needs_constant(tmp_path):
    d = _small()
    del d["zones"][1]["price_usd_per_mwh"]
    assert "zones[1].price_usd_per_mwh" in _bad(tmp_path, d)


def test_unknown_policy(tmp_path):
    assert "unknown policy 'nope'" in _bad(tmp_path, _small(), "--policy", "nope")


def test_missing_data_file(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(registry, "data_dirs", lambda: [empty])
    monkeypatch.setenv("GRIDSHIFT_OFFLINE", "1")
    from gridshift.data import _cache  # loaders cache parsed files; a fresh lookup must fail
    monkeypatch.setattr(_cache, "source_path", _cache.source_path)
    line = _bad(tmp_path, _small())
    assert "GRIDSHIFT_DATA_DIR" in line


def test_failed_run_keeps_previous_output(tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["simulate", str(SMALL), "--out", str(out), "-q", "-p", "asap"]).exit_code == 0
    before = (out / "metrics.json").read_bytes()
    d = _small()
    d["sites"][0]["pools"][0]["accelerator"] = "H900"
    res = runner.invoke(app, ["simulate", str(_write(tmp_path, d)), "--out", str(out), "-q"])
    assert res.exit_code == 2
    assert (out / "metrics.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_schema_prints_json_schema():
    res = runner.invoke(app, ["schema"])
    assert res.exit_code == 0
    schema = json.loads(res.stdout)
    assert schema["title"] == "Scenario"
    assert "power_cap_mw" in json.dumps(schema)
    assert runner.invoke(app, ["schema", "nope"]).exit_code == 2


def test_data_commands():
    res = runner.invoke(app, ["data", "path", "carbon/GB"])
    assert res.exit_code == 0 and res.stdout.strip().endswith("GB_2023_hourly.csv")
    assert runner.invoke(app, ["data", "verify", "carbon/GB"]).exit_code == 0
    res = runner.invoke(app, ["data", "path", "carbon/NOPE"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "carbon/GB" in runner.invoke(app, ["data", "list"]).stdout


@pytest.mark.slow
def test_demo_end_to_end_reduced(tmp_path):
    """The installed console script runs the bundled demo at reduced size."""
    out = tmp_path / "demo"
    exe = Path(sys.executable).with_name("gridshift")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "gridshift.cli"]
    proc = subprocess.run([*cmd, "demo", "--jobs", "300", "--days", "7", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["scenario"]["batch_jobs"] == 300
    assert len(doc["scenario"]["sites"]) >= 4 and len(doc["scenario"]["accelerator_types"]) >= 2
    assert doc["scenario"]["services"] == ["chat"]
    for m in doc["policies"].values():
        assert REQUIRED <= set(m)
        assert m["jobs_completed"] > 0


def test_explain_a_job(tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["simulate", str(SMALL), "--out", str(out), "-q", "-p", "asap", "-p", "mpc"]).exit_code == 0
    import pandas as pd

    jobs = pd.read_parquet(out / "timeseries" / "mpc" / "jobs.parquet")
    ran = jobs[jobs["first_start"].notna()].iloc[0]
    res = runner.invoke(app, ["explain", str(out), "--job", ran["job_id"]])
    assert res.exit_code == 0, res.output
    text = res.stdout
    assert "under 'asap'" in text and "under 'mpc'" in text
    assert "where:" in text and "why:" in text and "g/kWh" in text
    res = runner.invoke(app, ["explain", str(out), "--job", "no-such-job"])
    assert res.exit_code == 2 and "no job 'no-such-job'" in res.stderr


def test_infeasible_cap_is_named_not_a_solver_code(tmp_path):
    d = _small()
    d["sites"][0]["power_cap_mw"] = [
        {"start": "2023-06-05T00:00:00Z", "power_cap_mw": 0.2},
        {"start": "2023-06-06T12:00:00Z", "power_cap_mw": 0.01},  # below the site's idle and host load
        {"start": "2023-06-06T15:00:00Z", "power_cap_mw": 0.2},
    ]
    out = tmp_path / "out"
    res = runner.invoke(app, ["simulate", str(_write(tmp_path, d)), "--out", str(out), "-p", "mpc"])
    assert res.exit_code == 0, res.output
    warnings = json.loads((out / "metrics.json").read_text())["policies"]["mpc"]["plan_warnings"]
    assert any("site 'frankfurt'" in w and "power cap cannot be met" in w and "2023-06-06 12:00" in w
               and "2023-06-06 14:00" in w for w in warnings), warnings
    assert "warning (mpc): site 'frankfurt'" in res.stderr


def test_version():
    from gridshift import __version__

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.stdout.strip() == f"gridshift {__version__}"


@pytest.mark.parametrize(("option", "value"), [("--jobs", "0"), ("--jobs", "-5"), ("--days", "0")])
def test_demo_refuses_non_positive_sizes_in_one_line(tmp_path, option, value):
    r = runner.invoke(app, ["demo", option, value, "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert len(r.stderr.strip().splitlines()) == 1 and option.lstrip("-") in r.stderr
    assert not (tmp_path / "out").exists()


def test_bad_out_is_refused_before_any_work(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    r = runner.invoke(app, ["simulate", str(SMALL), "--out", str(a_file)])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "not a directory" in r.stderr and "slots" not in r.stderr  # no policy ran
    r = runner.invoke(app, ["simulate", str(SMALL), "--out", "/proc/gridshift/out"])
    assert r.exit_code == 2 and "cannot create the output directory" in r.stderr and "slots" not in r.stderr
    assert a_file.read_text() == "x" and not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_unknown_policy_on_the_command_line_is_blamed_on_the_option(tmp_path):
    r = runner.invoke(app, ["simulate", str(SMALL), "--policy", "nope", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "'--policy'" in r.stderr and "nope" in r.stderr and str(SMALL) not in r.stderr
    assert not (tmp_path / "o").exists()


def test_piped_tables_keep_whole_numbers():
    """Through a pipe (no terminal), a table is neither cut nor wrapped: every figure stays whole on its row."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "gridshift.cli", "catalog"], capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "COLUMNS": "80"})
    assert res.returncode == 0, res.stderr
    h100 = [ln for ln in res.stdout.splitlines() if "│ H100 " in ln]
    assert len(h100) == 1 and "1979.0" in h100[0] and "…" not in res.stdout


@pytest.mark.parametrize("years", ["2021,2023", "twenty", ","])
def test_forecast_backtest_bad_years_is_one_line_exit_2(tmp_path, years):
    res = runner.invoke(app, ["forecast", "backtest", "--zone", "DE-LU", "--years", years,
                              "--out", str(tmp_path / "bt")])
    assert res.exit_code == 2, res.output
    assert "--years" in res.output and not (tmp_path / "bt").exists()
