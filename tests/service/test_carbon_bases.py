"""The live books under both carbon accountings: where a zone has an average and a marginal signal stored,
the reconciler books the same energy under each (actual schedule and asap counterfactual), /metrics and
/health report both, and say which basis drove the decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.service.db import upgrade
from gridshift.service.reconciler import Reconciler
from gridshift.service.reconciler.bases import BasisBooks, basis_of_signal
from gridshift.service.store import Principal, Store
from memory_executor import MemoryExecutor

NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(minutes=5)
FLEET = {
    "name": "bases",
    "time_range": {"start": "2023-06-01T00:00:00Z", "end": "2023-06-03T00:00:00Z"},
    "zones": [{"id": "US-CAL-CISO", "carbon_g_per_kwh": 250.0, "price_usd_per_mwh": 80.0},
              {"id": "ZZ", "carbon_g_per_kwh": 300.0, "price_usd_per_mwh": 80.0}],
    "sites": [{"name": "cal", "zone": "US-CAL-CISO", "pue": 1.2, "power_cap_mw": 10.0,
               "pools": [{"accelerator": "H100", "count": 8}]}],
    "workloads": {"jobs": [{"job_id": "unused", "kind": "fine-tuning", "arrival": "2023-06-01T00:00:00Z",
                            "work_acc_h": 1.0}]},
}
MOER, AOER, LCA = 450.0, 240.0, 260.0


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def signals(store: Store, at: datetime) -> None:
    """What the provider clocks store for a zone planned on WattTime's MOER, with Electricity Maps beside."""
    z = "US-CAL-CISO"
    store.upsert_signals([
        {"zone": z, "signal": "moer_g_per_kwh", "at": at, "value": MOER, "source": "watttime"},
        {"zone": z, "signal": "aoer_g_per_kwh", "at": at, "value": AOER, "source": "watttime"},
        {"zone": z, "signal": "carbon_lifecycle_g_per_kwh", "at": at, "value": LCA, "source": "electricitymaps"},
        {"zone": z, "signal": "carbon_g_per_kwh", "at": at, "value": MOER, "source": "watttime/moer_g_per_kwh"}])


def test_both_accountings_are_booked_and_the_driving_basis_is_named(store):
    from fastapi.testclient import TestClient

    from gridshift.service.app import create_app

    now = [NOW]
    signals(store, NOW - timedelta(minutes=5))
    rec = Reconciler(store, MemoryExecutor(), Scenario.model_validate(FLEET), policy=PolicySpec(name="asap"),
                     clock=lambda: now[0])
    store.submit_job(Principal.system(), {"kind": "fine-tuning", "work_acc_h": 400.0, "gang_min": 8, "gang_max": 8})
    rec.tick()
    now[0] = NOW + timedelta(minutes=30)
    rec.tick()
    st = rec.status()
    books = st["carbon_by_basis"]
    assert set(books) == {"US-CAL-CISO"}  # ZZ (no site) has a constant only: nothing to book twice
    cal = books["US-CAL-CISO"]
    assert cal["drives"] == {"basis": "marginal", "signal": "moer_g_per_kwh", "source": "watttime/moer_g_per_kwh"}
    e = cal["marginal"]["energy_mwh"]
    assert e > 0 and e == pytest.approx(cal["average"]["energy_mwh"])
    assert cal["average"]["signal"] == "carbon_lifecycle_g_per_kwh"  # life-cycle first, then direct, then aoer
    assert cal["marginal"]["carbon_t"] == pytest.approx(e * MOER / 1000)
    assert cal["average"]["carbon_t"] == pytest.approx(e * LCA / 1000)
    assert e == pytest.approx(st["energy_mwh"])  # all the work ran there …
    assert st["carbon_t"] == pytest.approx(cal["marginal"]["carbon_t"])  # … and the planner's books are marginal
    assert cal["marginal"]["counterfactual_carbon_t"] == pytest.approx(st["counterfactual"]["energy_mwh"] * MOER / 1000)
    ops = store.create_token("ops", "operator")[1]
    client = TestClient(create_app(store, reconciler=rec))
    text = client.get("/metrics", headers={"Authorization": f"Bearer {ops}"}).text
    assert ('gridshift_carbon_basis_drives{basis="marginal",signal="moer_g_per_kwh",zone="US-CAL-CISO"} 1.0'
            in text)
    assert 'gridshift_carbon_t_by_basis_total{basis="average",schedule="actual",signal="carbon_lifecycle_g_per_kwh"' \
        in text
    h = client.get("/api/v1/health", headers={"Authorization": f"Bearer {ops}"}).json()
    assert h["reconciler"]["carbon_by_basis"]["US-CAL-CISO"]["marginal"]["carbon_t"] == pytest.approx(e * MOER / 1000)


class Pts:
    def __init__(self, rows):
        self.rows = rows

    def signals_between(self, zone, signal, lo, hi):
        from types import SimpleNamespace

        return [SimpleNamespace(at=at, value=v, source=src) for z, s, at, v, src in self.rows
                if z == zone and s == signal and lo <= at < hi]


def test_intervals_without_a_signal_are_left_out_of_that_basis_and_the_zone_basis_names_the_driver():
    from gridshift.model.fleet import Zone

    t0 = datetime(2023, 6, 1, tzinfo=UTC)
    zones = [Zone(id="A", carbon_basis="direct"), Zone(id="B", carbon_g_per_kwh=100.0)]
    bb = BasisBooks(zones, ["A", "B", "A"])
    store = Pts([("A", "carbon_direct_g_per_kwh", t0, 200.0, "gb-carbon-intensity"),
                 ("A", "moer_g_per_kwh", t0 + timedelta(hours=1), 500.0, "watttime")])
    mw = np.array([1.0, 5.0, 2.0])
    bb.step(store, t0, mw, mw * 2, 3600)  # at t0: only the average signal
    bb.step(store, t0 + timedelta(hours=1), mw, mw * 2, 3600)  # the first hour is booked: average only
    bb.step(store, t0 + timedelta(hours=2), mw, mw * 2, 3600)  # the second: both (the direct value still held)
    a = bb.status()["A"]
    assert a["average"] == {"signal": "carbon_direct_g_per_kwh", "carbon_t": pytest.approx(2 * 3 * 200 / 1000),
                            "counterfactual_carbon_t": pytest.approx(2 * 6 * 200 / 1000), "energy_mwh": 6.0}
    assert a["marginal"]["energy_mwh"] == 3.0 and a["marginal"]["carbon_t"] == pytest.approx(3 * 500 / 1000)
    assert a["drives"] == {"basis": "average", "signal": "carbon_g_per_kwh", "source": "registry (direct)"}
    assert "B" not in bb.status()
    assert basis_of_signal("aoer_g_per_kwh") == "average" and basis_of_signal("price_usd_per_mwh") is None
