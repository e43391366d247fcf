"""The live mpc plans on a provider's issued forecast where one is fresh, and on its own model (blend) with
the reason stated where it is stale or missing; the plan record says which forecast drove each decision.

End to end: a loopback server answers in Electricity Maps API v3's documented shapes
(https://static.electricitymaps.com/api/docs/index.html — carbon-intensity/past-range: {zone, data
[{zone, carbonIntensity, datetime, updatedAt, createdAt, emissionFactorType, isEstimated, estimationMethod}]};
carbon-intensity/forecast: {zone, forecast [{carbonIntensity, datetime}], updatedAt}); the provider clock's
pull stores the actuals and keeps the forecast; the reconciler plans a deferrable job. The history is flat,
so blend sees no reason to wait; the provider forecasts a deep dip five hours ahead, and the job's planned
start moves there."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gridshift.data import http
from gridshift.data.providers import ProviderConfig
from gridshift.forecast.issued_overlay import IssuedOverlay, slot_values
from gridshift.forecast.simple import Persistence
from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.service.db import upgrade
from gridshift.service.provider_forecasts import ProviderForecasts
from gridshift.service.provider_pull import ProviderPuller
from gridshift.service.reconciler import Reconciler
from gridshift.service.store import Principal, Store
from loopback import Loopback, Reply
from memory_executor import MemoryExecutor

HOUR = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # jobs are submitted at the real time
NOW = HOUR + timedelta(minutes=10)
ISSUED = HOUR.strftime("%Y-%m-%dT%H:%M:%S.000Z")
DIP_AT = HOUR + timedelta(hours=5)
FLEET = {
    "name": "provider-planning",
    "time_range": {"start": "2023-06-01T00:00:00Z", "end": "2023-06-03T00:00:00Z"},
    "zones": [{"id": "DE-LU", "carbon_g_per_kwh": 300.0, "price_usd_per_mwh": 80.0}],
    "sites": [{"name": "frankfurt", "zone": "DE-LU", "pue": 1.2, "power_cap_mw": 10.0,
               "pools": [{"accelerator": "H100", "count": 8}]}],
    "objective": {"kind": "carbon"},
    "workloads": {"jobs": [{"job_id": "unused", "kind": "fine-tuning", "arrival": "2023-06-01T00:00:00Z",
                            "work_acc_h": 1.0}]},
}
SYSTEM = Principal.system()




@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr(http, "_sleep", lambda s: None)


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def em_server(server: Loopback, updated_at: str) -> None:
    def past_range(seen):
        lo, hi = pd.Timestamp(seen.param("start")), pd.Timestamp(seen.param("end"))
        rows = [{"zone": "DE", "carbonIntensity": 300, "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                 "updatedAt": updated_at, "createdAt": updated_at, "emissionFactorType": "lifecycle",
                 "isEstimated": False, "estimationMethod": None}
                for t in pd.date_range(lo, hi, freq="h", inclusive="left")]
        return Reply({"zone": "DE", "data": rows})

    start = pd.Timestamp(updated_at).floor("h") + pd.Timedelta(hours=1)
    fc = [{"carbonIntensity": 60 if t == pd.Timestamp(DIP_AT) else 320,
           "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z")} for t in pd.date_range(start, periods=24, freq="h")]
    server.routes["/carbon-intensity/past-range"] = past_range
    server.routes["/carbon-intensity/forecast"] = Reply({"zone": "DE", "forecast": fc, "updatedAt": updated_at})


def puller(server: Loopback, tmp_path, use: str = "fresh") -> ProviderPuller:
    cfg = ProviderConfig("electricitymaps", base_url=server.url, api_key="k", zones={"DE-LU": "DE"},
                         signals=("carbon_lifecycle_g_per_kwh",), stale_after_s=7200, min_interval_s=0.0)
    return ProviderPuller([cfg], {"DE-LU": ("electricitymaps", "carbon_lifecycle_g_per_kwh")}, tmp_path / "fc", use)


def plan_once(store: Store, p: ProviderPuller | None, now: datetime) -> tuple[dict, dict]:
    """One reconciler pass of mpc (blend) at ``now`` over a deferrable 1-hour job; (summary, the job's item)."""
    source = ProviderForecasts(p, p.forecast_use).choose if p is not None else None
    rec = Reconciler(store, MemoryExecutor(), Scenario.model_validate(FLEET), policy=PolicySpec(name="mpc"),
                     clock=lambda: now, forecast_source=source, horizon_s=24 * 3600)
    jid = store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 4.0, "gang_min": 4, "gang_max": 4,
                                    "interruptible": False, "deadline": (now + timedelta(hours=12)).isoformat()})[0].id
    summary = rec.tick()
    plan = store.current_plan()
    item = next(it for it in plan.items if it.job_id == jid)
    return {**summary, **plan.summary}, item.why


def test_a_fresh_provider_forecast_moves_the_planned_start_to_its_dip(store, tmp_path):
    with Loopback() as server:
        em_server(server, ISSUED)
        p = puller(server, tmp_path)
        p.pull(store, "electricitymaps", NOW)
    summary, why = plan_once(store, p, NOW)
    rec = summary["forecasts"]["DE-LU"]["carbon_g_per_kwh"]
    assert rec["source"] == "provider" and rec["forecast"] == "electricitymaps/carbon_lifecycle_g_per_kwh"
    assert rec["issue_time"] == HOUR.isoformat() and rec["leads"] > 0 and "fresh" in rec["reason"]
    assert summary["forecasts"]["DE-LU"]["price_usd_per_mwh"]["source"] == "own"
    assert why["forecasts"] == {"DE-LU": "electricitymaps/carbon_lifecycle_g_per_kwh"}
    assert why["action"] == "wait" and why["planned_start_at"] == DIP_AT.isoformat()


def test_a_stale_provider_forecast_falls_back_to_blend_with_the_reason(store, tmp_path):
    with Loopback() as server:
        em_server(server, ISSUED)
        p = puller(server, tmp_path)
        p.pull(store, "electricitymaps", NOW)
    later = NOW + timedelta(hours=3)  # the forecast is 3 h old, stale after 2 h
    summary, why = plan_once(store, p, later)
    rec = summary["forecasts"]["DE-LU"]["carbon_g_per_kwh"]
    assert rec["source"] == "own" and rec["forecast"] == "blend"
    assert f"issued {HOUR:%Y-%m-%dT%H:%MZ}" in rec["reason"] and "stale after 7200 s" in rec["reason"]
    assert why["forecasts"] == {"DE-LU": "blend"}
    assert why.get("planned_start_at") != DIP_AT.isoformat()  # blend on a flat history knows no dip


def test_no_kept_forecast_or_the_rule_off_plans_on_blend(store, tmp_path):
    with Loopback() as server:
        em_server(server, ISSUED)
        p = puller(server, tmp_path, use="off")
        p.pull(store, "electricitymaps", NOW)
    summary, why = plan_once(store, p, NOW)
    assert summary["forecasts"]["DE-LU"]["carbon_g_per_kwh"]["reason"].startswith("provider forecasts are turned off")
    assert why["forecasts"] == {"DE-LU": "blend"} and why.get("planned_start_at") != DIP_AT.isoformat()
    p.forecast_use = "fresh"
    p.forecast_dir = tmp_path / "elsewhere"  # nothing kept there
    summary, _ = plan_once(store, p, NOW)
    assert summary["forecasts"]["DE-LU"]["carbon_g_per_kwh"]["reason"] == "no forecast from electricitymaps kept yet"


def test_preferred_needs_the_rolling_backtest(store, tmp_path):
    with Loopback() as server:
        em_server(server, ISSUED)
        p = puller(server, tmp_path, use="preferred")
        p.pull(store, "electricitymaps", NOW)
    summary, why = plan_once(store, p, NOW)
    rec = summary["forecasts"]["DE-LU"]["carbon_g_per_kwh"]
    assert rec["source"] == "own" and "does not prefer it (0 forecast(s) scored" in rec["reason"]
    assert why.get("planned_start_at") != DIP_AT.isoformat()


def test_overlay_takes_the_newest_forecast_issued_by_the_origin_and_averages_finer_steps():
    t0 = pd.Timestamp("2023-06-01T00:00Z")
    rows = [("2023-06-01T00:00Z", f"2023-06-01T{h:02d}:{m:02d}Z", 100.0 + h) for h in range(1, 4) for m in (0, 30)]
    rows += [("2023-06-01T02:00Z", "2023-06-01T03:00Z", 7.0)]  # issued later: not seen at 00:00
    table = pd.DataFrame(rows, columns=["issue_time", "target_time", "value"])
    fc = IssuedOverlay(Persistence(), {("Z", "carbon_g_per_kwh"): table})
    fc.signal, fc.zones, fc.t0, fc.slot_s = "carbon_g_per_kwh", ("Z", "Y"), t0, 3600
    hist = np.array([[50.0], [40.0]])
    out = fc.predict(hist, 6, t_abs=0, slots_per_h=1)
    assert list(out[0]) == [50.0, 101.0, 102.0, 103.0, 50.0, 50.0]  # leads beyond the forecast: the base's
    assert list(out[1]) == [40.0] * 6 and fc.used[("Z", "carbon_g_per_kwh")]["leads"] == 3
    fc.signal = "price_usd_per_mwh"
    assert list(fc.predict(hist, 3, t_abs=0, slots_per_h=1)[0]) == [50.0] * 3  # another signal: untouched
    fc.signal = "carbon_g_per_kwh"
    assert fc.predict(np.array([[50.0, 50, 50], [1, 1, 1]]), 2, t_abs=2, slots_per_h=1)[0, 1] == 7.0
    hourly = np.array([0, 3600], dtype=np.int64) * 10**9
    starts = np.arange(0, 7200, 900, dtype=np.int64) * 10**9
    assert list(slot_values(hourly, np.array([1.0, 2.0]), 3600 * 10**9, starts, 900 * 10**9)) == [1.0] * 4 + [2.0] * 4


def test_the_app_wires_the_providers_forecasts_into_the_reconciler_and_metrics_report_them(store, tmp_path):
    from fastapi.testclient import TestClient

    from gridshift.service.app import create_app

    with Loopback() as server:
        em_server(server, ISSUED)
        p = puller(server, tmp_path)
        p.pull(store, "electricitymaps", NOW)
    rec = Reconciler(store, MemoryExecutor(), Scenario.model_validate(FLEET), policy=PolicySpec(name="mpc"),
                     clock=lambda: NOW, horizon_s=24 * 3600)
    client = TestClient(create_app(store, reconciler=rec, providers=p))  # no lifespan: the clocks stay off
    assert rec.forecast_source is not None
    store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 4.0, "gang_min": 4, "gang_max": 4,
                              "interruptible": False, "deadline": (NOW + timedelta(hours=12)).isoformat()})
    rec.tick()
    ops = store.create_token("ops", "operator")[1]
    text = client.get("/metrics", headers={"Authorization": f"Bearer {ops}"}).text
    assert ('gridshift_planning_forecast{forecast="electricitymaps/carbon_lifecycle_g_per_kwh",'
            'signal="carbon_g_per_kwh",source="provider",zone="DE-LU"} 1.0') in text
    assert 'gridshift_planning_forecast{forecast="blend",signal="price_usd_per_mwh",source="own",zone="DE-LU"} 1.0' \
        in text
    h = client.get("/api/v1/health", headers={"Authorization": f"Bearer {ops}"}).json()
    assert h["reconciler"]["forecasts"]["DE-LU"]["carbon_g_per_kwh"]["source"] == "provider"
