"""A marginal signal as a scenario zone's carbon: `gridshift signals fetch` writes WattTime's MOER (from a
loopback server in WattTime v3's documented shape, https://docs.watttime.org: {"data": [{"point_time",
"value"}], "meta": {"units": "lbs_co2_per_mwh", …}}) to a file; a zone with `carbon_basis: marginal` and
`carbon_file` plans and accounts on it, and the run's notes say which signal it was."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from gridshift.cli.main import app
from gridshift.data import http
from gridshift.data.issued_forecasts import read_forecasts
from gridshift.data.scenario import load_scenario, parse_scenario
from gridshift.data.signal_csv import read_signal_csv
from gridshift.errors import DataError, ScenarioError
from gridshift.world.build import assemble
from loopback import Loopback, Reply

SMALL = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"
LB = 0.45359237


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(http, "_sleep", lambda s: None)


def moer_body(seen):
    lo, hi = pd.Timestamp(seen.param("start")), pd.Timestamp(seen.param("end"))
    times = pd.date_range(lo, hi, freq="5min", inclusive="left")
    vals = 800 + 200 * np.sin(np.arange(len(times)) / 12 * np.pi / 12)
    return Reply({"data": [{"point_time": t.isoformat(), "value": float(v)} for t, v in zip(times, vals)],
                  "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh",
                           "data_point_period_seconds": 300, "model": {"date": "2023-03-01"}}})


def test_fetch_then_plan_on_a_marginal_signal(tmp_path, monkeypatch):
    monkeypatch.setenv("WATTTIME_USER", "alice")
    monkeypatch.setenv("WATTTIME_PASSWORD", "pw")
    with Loopback() as server:
        server.routes["/login"] = Reply({"token": "t"})
        server.routes["/v3/historical"] = moer_body
        server.routes["/v3/forecast/historical"] = lambda seen: Reply({
            "data": [{"generated_at": seen.param("start"), "forecast": [{"point_time": seen.param("start"),
                                                                          "value": 1000.0}]}],
            "meta": {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh",
                     "data_point_period_seconds": 300, "model": {"date": "2023-03-01"}}})
        r = CliRunner().invoke(app, ["signals", "fetch", "--provider", "watttime", "--zone", "CAISO_NORTH",
                                     "--start", "2023-05-29T00:00:00Z", "--end", "2023-06-13T00:00:00Z",
                                     "--signal", "moer_g_per_kwh", "--out", str(tmp_path / "sig"),
                                     "--base-url", server.url, "--past-forecasts"])
    assert r.exit_code == 0, r.output
    past = read_forecasts(tmp_path / "sig" / "moer_g_per_kwh.past-forecasts.csv")
    assert len(past) == 15 and past["issue_time"].nunique() == 15  # one a day, for --external backtests
    s = read_signal_csv(tmp_path / "sig" / "moer_g_per_kwh.csv")
    assert s.name == "moer_g_per_kwh" and len(s) == 15 * 24  # 5-minute values averaged to the hour
    assert s.iloc[0] == pytest.approx(np.mean(800 + 200 * np.sin(np.arange(12) / 12 * np.pi / 12)) * LB)

    doc = yaml.safe_load(SMALL.read_text())
    doc["zones"][0].update(carbon_basis="marginal", carbon_file="sig/moer_g_per_kwh.csv")
    doc["workloads"]["generate"]["count"] = 20
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    asm = assemble(load_scenario(tmp_path / "s.yaml"))
    hours = pd.date_range("2023-06-05", periods=7 * 24, freq="h", tz="UTC")
    L = asm.signals.lookback_slots
    assert np.allclose(asm.signals.carbon_g_per_kwh[0, L:], s.reindex(hours).to_numpy())
    assert any("DE-LU: marginal signal 'moer_g_per_kwh'" in n for n in asm.notes)


def test_marginal_needs_a_file_and_bad_files_are_one_line(tmp_path):
    doc = yaml.safe_load(SMALL.read_text())
    doc["zones"][0]["carbon_basis"] = "marginal"
    with pytest.raises(ScenarioError, match="marginal' needs a carbon_file"):
        parse_scenario(yaml.safe_dump(doc))
    f = tmp_path / "m.csv"
    f.write_text("time,moer_g_per_kwh\n2023-06-05T00:00:00Z,400\n2023-06-05T01:00:00Z,-3\n")
    with pytest.raises(DataError, match=r"m.csv: line 3: field 'moer_g_per_kwh': -3 is outside"):
        read_signal_csv(f)
    f.write_text("time,price_usd_per_mwh\n2023-06-05T00:00:00Z,40\n")
    with pytest.raises(DataError, match="must be a carbon intensity"):
        read_signal_csv(f)
    f.write_text("time,moer_g_per_kwh\n2023-06-05T00:00:00Z,400\n2023-06-06T00:00:00Z,410\n")
    doc["zones"][0]["carbon_file"] = "m.csv"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError, match=r"zones\[0\].carbon_file.*outside the carbon file of zone 'DE-LU'"):
        assemble(load_scenario(tmp_path / "s.yaml"))


def test_a_run_reports_its_carbon_under_every_basis(tmp_path):
    """The same decisions accounted under life-cycle, direct and marginal intensity; the zone's own basis
    matches the engine's carbon exactly, and the metrics say which signal each zone planned on."""
    from gridshift.model.scenario import PolicySpec
    from gridshift.sim.runner import metrics_doc, run_policies

    doc = yaml.safe_load(SMALL.read_text())
    doc["workloads"]["generate"]["count"] = 20
    doc["workloads"]["services"] = []
    hours = pd.date_range("2023-05-29", "2023-06-13", freq="h", tz="UTC", inclusive="left")
    (tmp_path / "m.csv").write_text("time,moer_g_per_kwh\n" + "".join(
        f"{t.strftime('%Y-%m-%dT%H:%M:%SZ')},{700 + 50 * np.sin(i / 4):.3f}\n" for i, t in enumerate(hours)))
    doc["zones"][0].update(carbon_basis="marginal", carbon_file="m.csv")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    asm = assemble(load_scenario(tmp_path / "s.yaml"))
    assert set(asm.carbon_bases) == {"as_planned", "lca", "direct"}  # GB has no marginal signal
    run = run_policies(asm, [PolicySpec(name="asap")], nominal_reference=False)[0]
    m = metrics_doc(asm, [run])
    assert m["carbon_signal"] == {"DE-LU": "marginal", "GB": "lca"}
    by = m["carbon_t_by_basis"]["asap"]
    assert by["as_planned"] == pytest.approx(run.site_timeseries["carbon_t"].sum(), rel=1e-9)  # the engine's
    assert by["direct"] < by["lca"] and by["as_planned"] > by["lca"]  # MOER ~700 g/kWh in DE-LU vs its average
