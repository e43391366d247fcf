"""The live service on provider signals: pulls store actuals (and the zone's chosen planning signal) and
append issued forecasts with their issue times for `gridshift forecast backtest --external`; a failing or
stale provider is reported in /health and /metrics and leaves the last good data in place; each provider
runs on its own clock, off the event loop.

Bodies follow the GB Carbon Intensity API's documented shapes (https://carbon-intensity.github.io/api-definitions/):
{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from gridshift.data import http
from gridshift.data.issued_forecasts import read_forecasts
from gridshift.data.providers import ProviderConfig
from gridshift.errors import GridShiftError
from gridshift.service.app import create_app
from gridshift.service.db import upgrade
from gridshift.service.provider_pull import ProviderPuller, load_puller
from gridshift.service.store import Store
from loopback import Loopback, Reply
from polling import wait_for

NOW = datetime(2023, 6, 1, 12, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(http, "_sleep", lambda s: None)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def gb_rows(start: datetime, n: int, base: float, actual: bool = True) -> list[dict]:
    out = []
    for i in range(n):
        t = start + timedelta(minutes=30 * i)
        out.append({"from": t.strftime("%Y-%m-%dT%H:%MZ"), "to": (t + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%MZ"),
                    "intensity": {"forecast": base + i, "actual": base + i if actual else None, "index": "low"}})
    return out


def gb_server(server: Loopback) -> None:
    def route(seen):
        if seen.path.endswith("/fw48h"):
            start = pd.Timestamp(seen.path.split("/")[2]).to_pydatetime()
            return Reply({"data": gb_rows(start, 4, 100.0, actual=False)})
        _, _, frm, to = seen.path.split("/")
        lo, hi = pd.Timestamp(frm).to_pydatetime(), pd.Timestamp(to).to_pydatetime()
        return Reply({"data": gb_rows(lo, int((hi - lo) / timedelta(minutes=30)), 150.0)})

    server.routes = _Prefix("/intensity/", route)


class _Prefix(dict):
    """Routes every path under ``prefix`` to one function."""

    def __init__(self, prefix, fn):
        super().__init__()
        self.prefix, self.fn = prefix, fn

    def get(self, path, default=None):
        return self.fn if path.startswith(self.prefix) else default


def puller(server, tmp_path, **kw) -> ProviderPuller:
    cfg = ProviderConfig("gb-carbon-intensity", base_url=server.url, zones={"GB": "national"},
                         signals=("carbon_direct_g_per_kwh",), **kw)
    return ProviderPuller([cfg], {"GB": ("gb-carbon-intensity", "carbon_direct_g_per_kwh")}, tmp_path / "fc")


def test_pull_stores_actuals_the_planning_signal_and_issued_forecasts(store, tmp_path):
    with Loopback() as server:
        gb_server(server)
        p = puller(server, tmp_path)
        p.pull(store, "gb-carbon-intensity", NOW)
        p.pull(store, "gb-carbon-intensity", NOW)  # the same forecast again is not appended twice
    own = store.signals_between("GB", "carbon_direct_g_per_kwh", NOW - timedelta(hours=7), NOW)
    planning = store.signals_between("GB", "carbon_g_per_kwh", NOW - timedelta(hours=7), NOW)
    assert len(own) == len(planning) == 12  # 06:00 .. 11:30, half-hourly (six hours back, from the hour)
    assert {pt.source for pt in own} == {"gb-carbon-intensity"}
    assert {pt.source for pt in planning} == {"gb-carbon-intensity/carbon_direct_g_per_kwh"}
    f = read_forecasts(tmp_path / "fc" / "gb-carbon-intensity" / "GB" / "carbon_direct_g_per_kwh.csv")
    assert len(f) == 4 and f["issue_time"].notna().all() and list(f["value"]) == [100, 101, 102, 103]
    st = p.status(NOW)[0]
    assert st["stale"] is False and st["last_error"] is None and st["forecasts_stored"] == 4


def test_a_failing_provider_keeps_the_last_good_data_and_turns_stale(store, tmp_path):
    with Loopback() as server:
        gb_server(server)
        p = puller(server, tmp_path, stale_after_s=3600, retries=0)
        p.pull(store, "gb-carbon-intensity", NOW)
        before = store.signals_between("GB", "carbon_g_per_kwh", NOW - timedelta(hours=7), NOW)
        server.routes = {}  # everything 404 now
        later = NOW + timedelta(hours=2)
        assert p.pull(store, "gb-carbon-intensity", later) == 0  # no exception
    st = p.status(later)[0]
    assert st["stale"] is True and "HTTP 404" in st["last_error"] and "zone GB" in st["last_error"]
    assert store.signals_between("GB", "carbon_g_per_kwh", NOW - timedelta(hours=7), NOW) == before


def test_health_and_metrics_say_which_provider_is_stale_and_what_drives_planning(store, tmp_path):
    with Loopback() as server:
        gb_server(server)
        p = puller(server, tmp_path, interval_s=3600)
        ops = store.create_token("ops", "operator")[1]
        with TestClient(create_app(store, providers=p)) as client:  # the clock pulls at once, off the loop
            wait_for(lambda: p.status()[0]["last_ok_at"] is not None, timeout_s=10, what="the first pull")
            h = client.get("/api/v1/health", headers={"Authorization": f"Bearer {ops}"}).json()
            public = client.get("/api/v1/health").json()
            text = client.get("/metrics", headers={"Authorization": f"Bearer {ops}"}).text
    assert h["providers"][0]["zone"] == "GB" and h["providers"][0]["stale"] is False
    assert h["providers"][0]["rows_stored"] > 0
    skill = h["providers"][0]["forecast_skill"]  # one forecast, six hours of history: nothing to score yet
    assert skill["forecasts_scored"] == 0 and skill["preferred"] is False and skill["own_model"] == "blend"
    assert set(public["providers"][0]) == {"provider", "zone", "stale"}
    assert 'gridshift_provider_stale{provider="gb-carbon-intensity",zone="GB"} 0.0' in text
    assert ('gridshift_planning_signal{drives="carbon_g_per_kwh",provider="gb-carbon-intensity",'
            'signal="carbon_direct_g_per_kwh",zone="GB"} 1.0') in text


def test_providers_file(tmp_path):
    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  - name: watttime\n    zones: {CAISO: CAISO_NORTH}\nplanning:\n  CAISO: watttime/moer_g_per_kwh\n")
    p = load_puller(f)
    assert p.planning_signals() == {"CAISO": {"provider": "watttime", "signal": "moer_g_per_kwh",
                                              "drives": "carbon_g_per_kwh"}}
    assert p.forecast_dir == tmp_path / "issued-forecasts"
    f.write_text("providers:\n  - name: watttime\nplanning:\n  CAISO: entsoe/moer_g_per_kwh\n")
    with pytest.raises(GridShiftError, match="names provider 'entsoe', which is not configured"):
        load_puller(f)
    f.write_text("providers:\n  - name: watttime\nplanning:\n  CAISO: watttime/moer_index_pct\n")
    with pytest.raises(GridShiftError, match="planning signal of zone CAISO"):
        load_puller(f)


def test_registry_replay_reads_every_year_and_across_new_year(store):
    """The registry puller reads the years the window touches (2021-2023), not only the default 2023 file."""
    from gridshift.data import load_carbon
    from gridshift.service.signal_pull import pull_registry

    start, end = datetime(2021, 12, 31, 22, tzinfo=UTC), datetime(2022, 1, 1, 2, tzinfo=UTC)
    counts = pull_registry(store, "DE-LU", ["carbon_g_per_kwh"], start, end)
    assert counts == {"carbon_g_per_kwh": 4}
    pts = store.signals_between("DE-LU", "carbon_g_per_kwh", start, end)
    want = pd.concat([load_carbon("DE-LU", years=2021), load_carbon("DE-LU", years=2022)])["carbon_g_per_kwh"]
    assert [p.value for p in pts] == list(want.loc[start:end - timedelta(hours=1)])
    assert pull_registry(store, "DE-LU", ["carbon_g_per_kwh"], datetime(2026, 1, 1, tzinfo=UTC),
                         datetime(2026, 1, 2, tzinfo=UTC)) == {"carbon_g_per_kwh": 0}  # no data that year


def test_serve_with_a_bad_providers_file_is_one_line_exit_2(tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli.main import app

    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  - name: electricitymaps\n    interval_s: -5\n")
    r = CliRunner().invoke(app, ["serve", "--providers", str(f), "--db", f"sqlite:///{tmp_path / 's.db'}"])
    assert r.exit_code == 2
    assert "providers[0]: must be a number > 0" in r.output and "interval_s" in r.output


def test_answers_without_new_data_turn_stale_too(store, tmp_path):
    with Loopback() as server:
        server.routes = _Prefix("/intensity/", lambda seen: Reply({"data": []}))
        p = puller(server, tmp_path, stale_after_s=3600)
        p.pull(store, "gb-carbon-intensity", NOW)
    st = p.status(NOW)[0]
    assert st["last_error"] is None and st["last_ok_at"] is not None  # the provider answered …
    assert st["stale"] is True  # … but with nothing newer than an hour
