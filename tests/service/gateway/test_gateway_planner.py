"""The gateway and the planner: the services' replica targets say which backends take requests per site
(the others stand by), and the demand the gateway observes per model and caller region is stored and
planned with by the reconciler."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors.local import LocalExecutor
from gridshift.service.gateway.accounting import Accounting, UsageRecord
from gridshift.service.gateway.backends import Registry
from gridshift.service.gateway.config import parse_gateway_config
from gridshift.service.gateway.grid import replica_targets
from gridshift.service.gateway.routing import GridView, pick_backend, plan_route
from gridshift.service.reconciler import Reconciler
from gridshift.service.reconciler.demand import forecast_demand, planning_fleet, with_observed_demand
from gridshift.service.reconciler.world import build_world
from gridshift.service.store import Principal, Store
from pgserver import pg_server  # noqa: F401  (session fixture)

SYSTEM = Principal.system()
T0 = datetime(2023, 6, 6, 9, tzinfo=UTC)  # inside the bundled 2023 grid data
FLEET = {
    "name": "fleet",
    "time_range": {"start": "2023-06-05T00:00:00Z", "end": "2023-06-07T00:00:00Z"},
    "zones": [{"id": "DE-LU"}, {"id": "GB", "price_usd_per_mwh": 110}],
    "sites": [{"name": "frankfurt", "zone": "DE-LU", "region": "europe-west3", "pue": 1.2, "power_cap_mw": 0.5,
               "pools": [{"accelerator": "H100", "count": 16}]},
              {"name": "london", "zone": "GB", "region": "europe-west2", "pue": 1.3, "power_cap_mw": 0.5,
               "pools": [{"accelerator": "A100", "count": 16}]}],
    "workloads": {"services": [{"name": "m", "latency_slo_ms": 50,
                                "profiles": {"H100": {"requests_per_s_per_accelerator": 2.0,
                                                      "power_w_per_accelerator": 600},
                                             "A100": {"requests_per_s_per_accelerator": 1.0,
                                                      "power_w_per_accelerator": 350}},
                                "demand": {"trace": "azure-llm/code",
                                           "peak_requests_per_s": {"europe-west3": 5.0, "europe-west2": 2.0}}}]},
}


def registry() -> Registry:
    sites = [{"name": "a", "zone": "ZA", "carbon_g_per_kwh": 100,
              "backends": [{"id": "a1", "url": "http://x:1", "accelerator": "H100", "models": ["m"]}]},
             {"name": "b", "zone": "ZB", "carbon_g_per_kwh": 500,
              "backends": [{"id": f"b{i}", "url": f"http://x:{i + 2}", "accelerator": "H100", "models": ["m"]}
                           for i in (1, 2, 3)]}]
    reg = Registry(parse_gateway_config({"sites": sites}))
    for b in reg.backends():
        b.healthy = True
    return reg


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}" if request.param == "sqlite" else \
        request.getfixturevalue("pg_server").create_database()
    upgrade(url)
    with Store(url) as s:
        yield s


def test_replica_targets_put_backends_on_standby_and_filter_sites():
    reg, c = registry(), parse_gateway_config({})
    slo = c.slo["interactive"]
    plan = plan_route(reg, GridView(), "m", "interactive", slo, region=None, residency=None, now=0)
    assert plan.order == ["a", "b"]  # no targets: every backend and site in use
    grid = GridView(targets={"m": {"b": {"H100": 2}}})
    plan = plan_route(reg, grid, "m", "interactive", slo, region=None, residency=None, now=0)
    by = {s.site: s for s in plan.sites}
    assert plan.order == ["b"] and by["a"].excluded_by == "replicas" and "none for this site" in by["a"].reason
    # two of b's three backends are active (b1, b2 in id order), b3 stands by however idle it is
    reg.find("b1").inflight, reg.find("b2").inflight = 40, 30
    rng, t = random.Random(0), grid.targets["m"]
    assert {pick_backend(reg.sites["b"], "m", 0, set(), rng, t).id for _ in range(30)} == {"b2"}
    assert "b3" in {pick_backend(reg.sites["b"], "m", 0, set(), rng).id for _ in range(30)}  # without targets
    reg.find("b1").healthy = False  # a dead active backend: the standby takes its place
    assert {pick_backend(reg.sites["b"], "m", 0, {"b2"}, rng, t).id for _ in range(10)} == {"b3"}
    grid.targets = {"m": {"a": {"A100": 3}, "b": {"H100": 1}}}  # a's target is for a type it does not have
    plan = plan_route(reg, grid, "m", "interactive", slo, region=None, residency=None, now=0)
    assert {s.site: s.excluded_by for s in plan.sites} == {"a": "replicas", "b": None}


def test_gateway_reads_the_services_replica_targets(store):
    spec = {"name": "m", "latency_slo_ms": 80.0, "profiles": {"H100": {"requests_per_s_per_accelerator": 20.0,
                                                                       "power_w_per_accelerator": 700.0}},
            "demand": {"peak_requests_per_s": {"europe-west3": 1.0}}}
    store.put_service(SYSTEM, spec)
    store.put_service(SYSTEM, {**spec, "name": "not-a-model"}, {"a": {"H100": 1}})
    assert replica_targets(store, {"m"}) == {}  # m has no targets yet: all backends stay in use
    store.set_replica_targets("m", {"a": {"H100": 0}, "b": {"H100": 2}})
    assert replica_targets(store, {"m"}) == {"m": {"a": {"H100": 0}, "b": {"H100": 2}}}


def _usage(at: datetime, region: str | None, slo: str = "interactive") -> UsageRecord:
    return UsageRecord(at, "t", "m", "a", "a1", "H100", slo, "chat", "ok", 10, 20, 1.0, 0.1, 0.0, 5.0, 0, region)


def test_observed_demand_is_stored_per_minute_and_region(store):
    acc = Accounting(store.engine, CollectorRegistry())
    base = T0 - timedelta(minutes=30)
    for i in range(3):
        acc.record(_usage(base + timedelta(seconds=10 * i), "europe-west3"))
    acc.flush()
    for i in range(6):  # the next minute is busier, written in two flushes (the upsert adds)
        acc.record(_usage(base + timedelta(minutes=1, seconds=i), "europe-west3", "offline" if i % 2 else "interactive"))
        if i == 2:
            acc.flush()
    acc.record(_usage(base, None))
    acc.flush()
    got = store.observed_demand(T0 - timedelta(hours=1), T0)
    assert got == {"m": {"europe-west3": pytest.approx(6 / 60), "unknown": pytest.approx(1 / 60)}}
    assert store.observed_demand(T0, T0 + timedelta(hours=1)) == {}


def test_the_planner_plans_services_at_the_observed_demand(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    fleet = Scenario.model_validate(FLEET)
    with Store(url) as store:
        acc = Accounting(store.engine, CollectorRegistry())
        for i in range(30):  # 30 requests in one minute from europe-west3: 0.5 requests/s
            acc.record(_usage(T0 - timedelta(minutes=5, seconds=-i), "europe-west3"))
        acc.record(_usage(T0 - timedelta(minutes=5), "asia-east1"))  # a region the service does not list
        acc.flush()
        observed = store.observed_demand(T0 - timedelta(hours=24), T0)
        planned, used = with_observed_demand(fleet, observed)
        assert used == {"m": {"europe-west3": pytest.approx(0.5)}}
        before, _, _ = build_world(fleet, [], T0, 3600, 6)
        after, _, _ = build_world(planned, [], T0, 3600, 6)
        d0, d1 = before.services.demand_rps, after.services.demand_rps
        assert d1[0, 0] == pytest.approx(d0[0, 0] * 0.5 / 5.0)  # europe-west3 scaled to what was seen
        assert d1[0, 1] == pytest.approx(d0[0, 1])  # europe-west2: nothing seen, the fleet file's figure
        ex = LocalExecutor(tmp_path / "ex", sim_wall_s_per_run_h=0.05)
        store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 2, "gang_min": 1, "gang_max": 1})
        store.put_service(SYSTEM, FLEET["workloads"]["services"][0])  # the stored service the gateway reads
        rec = Reconciler(store, ex, fleet, policy="asap", clock=lambda: T0, horizon_s=6 * 3600)
        rec.tick()
        assert rec.status()["observed_demand"] == {"m": {"europe-west3": pytest.approx(0.5)}}
        # the pass's replicas are the stored service's replica targets, which the gateway reads
        targets = store.get_service(SYSTEM, "m").replica_targets
        assert targets == rec.status()["replica_targets"]["m"] and targets
        dem = after.services.demand_rps[0, :, 0] * 1.1  # requests/s per region in the first slot, + headroom
        h100 = targets.get("frankfurt", {}).get("H100", 0)  # europe-west3's nearest site, 2 requests/s each
        assert h100 == int(np.ceil(dem[0] / 2.0 - 1e-9))
        assert sum(n * (2.0 if t == "H100" else 1.0) for per in targets.values() for t, n in per.items()) >= dem.sum()
        assert replica_targets(store, {"m"}) == {"m": targets}
        for st in ex.report():
            if not st.finished:
                ex.stop(st.job_id)


def _daily(days: int, busy_hour: int) -> list[tuple[datetime, int]]:
    """One minute per hour over ``days`` days before T0: 6 requests (0.1/s), 66 (1.1/s) at ``busy_hour``."""
    start = T0 - timedelta(days=days)
    return [(start + timedelta(hours=h, minutes=7), 66 if (start + timedelta(hours=h)).hour == busy_hour else 6)
            for h in range(days * 24)]


def test_a_demand_forecaster_turns_the_observed_series_into_the_peak_ahead():
    series = {"m": {"europe-west3": _daily(3, busy_hour=14), "europe-west2": _daily(0, 0) + [
        (T0 - timedelta(minutes=30), 12), (T0 - timedelta(minutes=20), 30)]}}
    ahead = forecast_demand(series, T0, horizon_h=6)  # 09:00: the busy hour 14:00 is within 6 hours
    assert ahead["m"]["europe-west3"] == pytest.approx(1.1)
    assert ahead["m"]["europe-west2"] == pytest.approx(0.5)  # 30 minutes seen: the busiest minute, no forecast
    # within 3 hours the daily forecaster expects only the quiet hours, though the last 24 h saw 1.1/s
    assert forecast_demand(series, T0, horizon_h=3)["m"]["europe-west3"] == pytest.approx(0.1)


def test_the_planner_plans_with_the_forecast_of_the_stored_series(store):
    from gridshift.service.gateway.accounting import DEMAND

    rows = [{"window_start": at, "model": "m", "region": "europe-west3", "slo_class": "interactive",
             "requests": n, "prompt_tokens": 0, "completion_tokens": 0} for at, n in _daily(2, busy_hour=10)]
    with store.engine.begin() as conn:
        conn.execute(DEMAND.insert(), rows)
    got = store.observed_demand_minutes(T0 - timedelta(days=7), T0)
    assert [n for _, n in got["m"]["europe-west3"]] == [n for _, n in _daily(2, busy_hour=10)]
    assert got["m"]["europe-west3"][0][0] == rows[0]["window_start"]
    fleet = Scenario.model_validate(FLEET)
    planned, used = planning_fleet(store, fleet, T0, horizon_h=6)
    assert used == {"m": {"europe-west3": pytest.approx(1.1)}}
    assert planned.workloads.services[0].demand.peak_requests_per_s == {"europe-west3": pytest.approx(1.1),
                                                                         "europe-west2": 2.0}
    _, used = planning_fleet(store, fleet, T0 + timedelta(hours=2), horizon_h=6)  # 10:00 passed: quiet ahead
    assert used == {"m": {"europe-west3": pytest.approx(0.1)}}

