"""Electricity Maps' power breakdown as per-fuel signals, against a loopback server serving the documented
power-breakdown objects (tests/support/em_breakdown.py cites the page): produced and consumed MW per fuel,
import and export totals, shares; times UTC; a ``null`` is a gap, never a zero; an unknown fuel is one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from em_breakdown import FUELS, breakdown
from gridshift.cli.main import app
from gridshift.data import http
from gridshift.data.providers import ProviderConfig, ProviderError, make_provider, parse_configs
from gridshift.data.providers.electricitymaps import DEFAULT
from loopback import Loopback, Reply

T0, T3 = datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 1, 3, tzinfo=UTC)


def at(h: int) -> str:
    return f"2023-06-01T{h:02d}:00:00.000Z"


@pytest.fixture(autouse=True)
def waits(monkeypatch):
    monkeypatch.setattr(http, "_sleep", lambda s: None)


@pytest.fixture
def server():
    with Loopback() as s:
        yield s


def em(server, **kw):
    return make_provider(ProviderConfig("electricitymaps", base_url=server.url, api_key="k", min_interval_s=0.0,
                                        **kw))


def values(batch, signal):
    rows = batch.rows[batch.rows["signal"] == signal]
    return dict(zip(rows["at"], rows["value"]))


def test_fuel_signals_from_past_range_in_mw_at_utc_hours(server):
    server.routes["/power-breakdown/past-range"] = Reply({"zone": "DE", "data": [breakdown(at(h), h) for h in range(3)]})
    want = ["generation_wind_mw", "consumption_gas_mw", "import_total_mw", "export_total_mw", "generation_total_mw",
            "generation_hydro_discharge_mw", "renewable_frac"]
    b = em(server, zones={"DE-LU": "DE"}).actuals("DE-LU", T0, T3, want)
    assert server.paths() == ["/power-breakdown/past-range"]  # one request for all breakdown signals
    assert server.seen[0].param("zone") == "DE" and server.seen[0].param("start") == "2023-06-01T00:00:00Z"
    hours = [pd.Timestamp(at(h)) for h in range(3)]
    assert all(str(t.tz) == "UTC" for t in b.rows["at"]) and sorted(set(b.rows["at"])) == hours
    assert values(b, "generation_wind_mw") == {hours[h]: 20000 + 100 * h for h in range(3)}  # MW as given
    assert values(b, "consumption_gas_mw") == {hours[h]: 5600 + h for h in range(3)}
    assert values(b, "import_total_mw") == {hours[h]: 1500 + h for h in range(3)}
    assert values(b, "export_total_mw") == {hours[h]: 2700 + h for h in range(3)}
    assert values(b, "generation_total_mw") == {hours[h]: 52000 + h for h in range(3)}
    assert values(b, "renewable_frac") == pytest.approx({t: 0.55 for t in hours})  # percent -> fraction
    # storage is a net figure: charging (negative discharge) is kept, not dropped as a bad value
    assert values(b, "generation_hydro_discharge_mw") == {hours[0]: 400, hours[1]: 100, hours[2]: -200}
    assert b.problems == []


def test_nulls_are_gaps_never_zeros(server):
    rows = [breakdown(at(0), 0), breakdown(at(1), 1, production={"wind": None}, powerImportTotal=None),
            breakdown(at(2), 2)]
    server.routes["/power-breakdown/past-range"] = Reply({"zone": "DE", "data": rows})
    b = em(server).actuals("DE", T0, T3, ["generation_wind_mw", "import_total_mw", "generation_nuclear_mw",
                                          "consumption_nuclear_mw"])
    wind = values(b, "generation_wind_mw")
    assert sorted(wind) == [pd.Timestamp(at(0)), pd.Timestamp(at(2))] and 0 not in wind.values()
    assert pd.Timestamp(at(1)) not in values(b, "import_total_mw")
    assert values(b, "generation_nuclear_mw") == {}  # null in every hour: no series, not a series of zeros
    assert len(values(b, "consumption_nuclear_mw")) == 3  # the same fuel consumed (imported) is there
    text = "\n".join(b.problems)
    assert "5 row(s) dropped: value missing" in text  # 2 nulls in hour 1 + nuclear production in 3 hours
    assert "generation_wind_mw: 1 of 3 slot(s) missing (first 2023-06-01T01:00Z); not filled" in text
    assert "import_total_mw: 1 of 3 slot(s) missing" in text


def test_every_documented_fuel_is_a_signal_both_ways(server):
    server.routes["/power-breakdown/latest"] = Reply(breakdown(at(5), production={"nuclear": 100, "battery discharge": 7}))
    names = [f"{kind}_{f.replace(' ', '_')}_mw" for kind in ("generation", "consumption") for f in FUELS]
    b = em(server).latest("DE", names)
    got = dict(zip(b.rows["signal"], b.rows["value"]))
    assert got["generation_battery_discharge_mw"] == 7 and got["consumption_battery_discharge_mw"] == 0
    assert got["generation_nuclear_mw"] == 100 and got["consumption_hydro_discharge_mw"] == 390
    assert "generation_geothermal_mw" not in got and got["consumption_geothermal_mw"] == 0  # null vs a real 0
    assert len(got) == 2 * len(FUELS) - 1 and (b.rows["at"] == pd.Timestamp("2023-06-01T05:00Z")).all()


def test_history_endpoint_keeps_the_range_asked_for(server):
    server.routes["/power-breakdown/history"] = Reply({"zone": "DE", "history": [breakdown(at(h), h) for h in range(6)]})
    b = em(server, options={"history": True}).actuals("DE", datetime(2023, 6, 1, 2, tzinfo=UTC),
                                                      datetime(2023, 6, 1, 4, tzinfo=UTC), ["generation_solar_mw"])
    assert server.paths() == ["/power-breakdown/history"] and server.seen[0].param("zone") == "DE"
    assert values(b, "generation_solar_mw") == {pd.Timestamp(at(2)): 8100, pd.Timestamp(at(3)): 8150}
    assert b.problems == []


def test_an_unknown_fuel_is_one_line_before_any_request(server):
    with pytest.raises(ProviderError) as e:
        em(server).actuals("DE", T0, T3, ["generation_uranium_mw"])
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("electricitymaps: unknown fuel 'uranium' in signal generation_uranium_mw")
    assert "hydro_discharge" in msg and server.seen == []
    with pytest.raises(ProviderError, match="unknown fuel 'coal_gas'"):
        parse_configs({"providers": [{"name": "electricitymaps", "signals": ["consumption_coal_gas_mw"]}]}, "p.yaml")


def test_fuel_signals_are_pulled_by_name_only(server):
    p = em(server)
    assert p.chosen(None, forecast=False) == list(DEFAULT)  # a config naming no signals pulls the five as before
    cfg = parse_configs({"providers": [{"name": "electricitymaps", "signals": ["generation_wind_mw"]}]}, "p.yaml")[0]
    assert make_provider(cfg).chosen(None, forecast=False) == ["generation_wind_mw"]
    assert p.chosen(["generation_wind_mw", "carbon_direct_g_per_kwh"], forecast=True) == ["carbon_direct_g_per_kwh"]


def test_cli_fetch_writes_a_fuel_signal_and_refuses_an_unknown_fuel(server, tmp_path, monkeypatch):
    monkeypatch.setenv("ELECTRICITYMAPS_API_KEY", "k")
    server.routes["/power-breakdown/past-range"] = Reply({"zone": "DE", "data": [breakdown(at(h), h) for h in range(3)]})
    args = ["signals", "fetch", "--provider", "electricitymaps", "--zone", "DE", "--start", "2023-06-01T00:00:00Z",
            "--end", "2023-06-01T03:00:00Z", "--out", str(tmp_path), "--base-url", server.url]
    r = CliRunner().invoke(app, [*args, "--signal", "generation_wind_mw"])
    assert r.exit_code == 0, r.output
    s = pd.read_csv(tmp_path / "generation_wind_mw.csv")
    assert list(s.columns) == ["time", "generation_wind_mw"] and list(s["generation_wind_mw"]) == [20000, 20100, 20200]
    assert list(s["time"]) == ["2023-06-01T00:00:00Z", "2023-06-01T01:00:00Z", "2023-06-01T02:00:00Z"]
    r = CliRunner().invoke(app, [*args, "--signal", "generation_uranium_mw"])
    assert r.exit_code == 2 and "unknown fuel 'uranium'" in r.output
