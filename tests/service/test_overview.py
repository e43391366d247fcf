"""``GET /api/v1/queue``: what the dashboard polls, counted and limited in the database — right past the
5,000 jobs the dashboard once fetched page by page, the newest job always shown, a tenant's own only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from gridshift.service.db import upgrade
from gridshift.service.store import Principal, Store
from gridshift.service.store.base import JOBS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
API = "/api/v1"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "paused", "planned")


def bulk_jobs(store: Store, n: int, tenants=("alice", "bob")) -> list[dict]:
    """``n`` jobs written in one statement, one second apart, statuses and tenants in turn."""
    rows = [{"id": str(uuid.UUID(int=i + 1)), "tenant": tenants[i % len(tenants)], "status": STATUSES[i % 7],
             "spec": {"kind": "fine-tuning", "work_acc_h": 1.0}, "idempotency_key": None,
             "submitted_at": T0 + timedelta(seconds=i), "updated_at": T0 + timedelta(seconds=i),
             "site": "site-a" if STATUSES[i % 7] in ("running", "paused") else None,
             "accelerator": "H100" if STATUSES[i % 7] in ("running", "paused") else None,
             "gang": 1 if STATUSES[i % 7] in ("running", "paused") else None, "power_cap_frac": None,
             "attempts": 0, "max_attempts": 3, "next_attempt_at": None, "failure_reason": None, "version": 1,
             "client_id": None} for i in range(n)]
    with store.engine.begin() as c:
        c.execute(insert(JOBS), rows)
    return rows


@pytest.fixture
def api(tmp_path):
    from fastapi.testclient import TestClient

    from gridshift.service.app import ApiSettings, create_app

    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    fast = ApiSettings(rate_per_s=10_000, burst=10_000, auth_failure_rate_per_s=10_000, auth_failure_burst=10_000)
    with Store(url) as store, TestClient(create_app(store, settings=fast)) as client:
        yield store, client


def call(client, secret: str, **params):
    r = client.get(f"{API}/queue", params=params, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_counts_newest_and_active_past_five_thousand_jobs(api):
    store, client = api
    rows = bulk_jobs(store, 7_007)
    ops = store.create_token("ops", "operator")[1]
    q = call(client, ops, newest=10, active=50)
    assert q["total"] == 7_007 and q["counts"] == {s: 1_001 for s in STATUSES}
    assert [j["id"] for j in q["newest"]] == [r["id"] for r in rows[::-1][:10]]  # the newest job is first
    assert len(q["active"]) == 50 and q["active_truncated"]
    assert {j["status"] for j in q["active"]} == {"running", "paused"}
    assert [j["id"] for j in q["active"]] == sorted((j["id"] for j in q["active"]),
                                                    key=lambda i: int(uuid.UUID(i)))  # oldest first


def test_a_tenant_counts_and_sees_only_its_own(api):
    store, client = api
    rows = bulk_jobs(store, 70)
    alice = store.create_token("a", "tenant", "alice")[1]
    q = call(client, alice, ids=[rows[0]["id"], rows[1]["id"]])  # rows[1] is bob's
    assert q["total"] == 35 and sum(q["counts"].values()) == 35
    assert {j["tenant"] for j in q["newest"] + q["active"] + q["picked"]} == {"alice"}
    assert [j["id"] for j in q["picked"]] == [rows[0]["id"]]
    assert store.queue_stats(Principal("tenant", "alice"))["queued"] == 5
    assert store.queue_stats()["queued"] == 10


def test_bad_parameters_are_422(api):
    store, client = api
    ops = {"Authorization": f"Bearer {store.create_token('ops', 'operator')[1]}"}
    for params, field in (({"newest": 1001}, "newest"), ({"active": -1}, "active"), ({"ids": "a b"}, "ids.0")):
        r = client.get(f"{API}/queue", params=params, headers=ops)
        assert r.status_code == 422 and field in r.text, r.text
