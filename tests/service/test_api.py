"""The HTTP API (gridshift.service.app) on SQLite and on a throwaway PostgreSQL server, through FastAPI's
TestClient: jobs, idempotency, tenants, roles on every route, limits, errors, metrics, health, the database
going away, and a schemathesis run over the OpenAPI spec."""

from __future__ import annotations

import itertools
import logging
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gridshift.model.scenario import PolicySpec
from gridshift.service.app import ApiSettings, create_app, fleet_from_sites
from gridshift.service.db import head_revision, make_engine, upgrade
from gridshift.service.reconciler import check_live_policy
from gridshift.service.store import PlanItem, Principal, Store
from pgserver import PgServer, free_port, pg_server  # noqa: F401  (session fixture)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

API = "/api/v1"
FLEET = {"sites": [
    {"name": "frankfurt", "zone": "DE-LU", "pue": 1.2, "power_cap_mw": 0.2,
     "pools": [{"accelerator": "H100", "count": 96}]},
    {"name": "london", "zone": "GB", "pue": 1.3, "power_cap_mw": 0.2,
     "pools": [{"accelerator": "A100", "count": 128}]},
]}
JOB = {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 1, "gang_max": 4, "tier": 2,
       "command": "python train.py --epochs 1"}
SERVICE = {"latency_slo_ms": 30, "profiles": {"H100": {"requests_per_s_per_accelerator": 1.8,
                                                       "power_w_per_accelerator": 500}},
           "demand": {"trace": "azure-llm/code", "peak_requests_per_s": {"europe-west3": 20}}}
FAST = ApiSettings(rate_per_s=10_000, burst=10_000, auth_failure_rate_per_s=10_000, auth_failure_burst=10_000)
_ids = itertools.count()


class Recorder:
    """A reconciler stand-in that records what it is told and reports a fixed status."""

    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.policy_spec = PolicySpec(name="asap")

    def notify(self, reason: str) -> None:
        self.reasons.append(reason)

    def set_policy(self, spec: PolicySpec, *, actor: str | None = None) -> PolicySpec:
        self.policy_spec = check_live_policy(spec)  # the reconciler's own check
        self.reasons.append(f"policy changed to {spec.key}")
        return spec

    def status(self) -> dict:
        return {"state": "running", "site_power_mw": {"frankfurt": 0.12, "london": 0.05}, "plan_seconds": 0.25,
                "carbon_t_total": 1.5, "cost_usd": 420.0,
                "counterfactual": {"policy": "asap", "energy_mwh": 9.0, "carbon_t": 2.25, "cost_usd": 450.0}}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("pg_server").create_database()
    upgrade(url)
    return url


@pytest.fixture
def store(db_url):
    with Store(db_url) as s:
        yield s


class Env:
    """A running app with tokens for every role (``none``: no token)."""

    def __init__(self, store: Store, client: TestClient, reconciler: Recorder | None = None) -> None:
        self.store, self.client, self.reconciler = store, client, reconciler
        self.secrets = {"operator": store.create_token("ops", "operator")[1],
                        "tenant": store.create_token("alice ci", "tenant", "alice")[1],
                        "bob": store.create_token("bob ci", "tenant", "bob")[1],
                        "grid": store.create_token("utility", "grid")[1]}

    def h(self, who: str) -> dict[str, str]:
        return {} if who == "none" else {"Authorization": f"Bearer {self.secrets[who]}"}

    def call(self, method: str, path: str, who: str, **kw):
        return self.client.request(method, path, headers={**self.h(who), **kw.pop("headers", {})}, **kw)

    # fresh objects, so that routes that change or delete something always have one
    def job(self, tenant: str = "alice") -> str:
        return self.store.submit_job(Principal("tenant", tenant), JOB)[0].id

    def service(self, tenant: str = "alice") -> str:
        name = f"svc-{next(_ids)}"
        self.store.put_service(Principal("tenant", tenant), {**SERVICE, "name": name})
        return name

    def event(self) -> str:
        eid = f"ev-{next(_ids)}"
        self.store.add_grid_event(event_body(eid), "test")
        return eid

    def token(self) -> str:
        return self.store.create_token("temp", "grid")[0]


def event_body(eid: str, **kw) -> dict:
    return {"id": eid, "kind": "limit", "sites": ["frankfurt"], "start": "2030-01-01T10:00:00Z",
            "end": "2030-01-01T12:00:00Z", "limit_mw": 0.1, **kw}


@pytest.fixture
def env(store):
    rec = Recorder()
    with TestClient(create_app(store, fleet=FLEET, reconciler=rec, settings=FAST)) as client:
        yield Env(store, client, rec)


# ------------------------------------------------------------------------------------------------ jobs


def test_submit_get_list_history_cancel(env):
    r = env.call("POST", f"{API}/jobs", "tenant", json=JOB)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["tenant"] == "alice" and job["status"] == "queued" and job["command"] == JOB["command"]
    assert job["spec"]["work_acc_h"] == 8.0 and job["submitted_at"].endswith("Z")
    assert r.headers["location"] == f"{API}/jobs/{job['id']}"
    assert env.reconciler.reasons == ["job submitted"]

    got = env.call("GET", f"{API}/jobs/{job['id']}", "tenant").json()
    assert got["id"] == job["id"] and got["version"] == 1
    assert [j["id"] for j in env.call("GET", f"{API}/jobs", "tenant").json()["items"]] == [job["id"]]

    r = env.call("POST", f"{API}/jobs/{job['id']}/cancel", "tenant", json={"reason": "not needed"})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert env.reconciler.reasons[-1] == "job cancelled"
    hist = env.call("GET", f"{API}/jobs/{job['id']}/history", "tenant").json()
    assert [(e["from_status"], e["to_status"], e["reason"]) for e in hist] == [
        (None, "queued", "submitted"), ("queued", "cancelled", "not needed")]
    # cancelling again is a no-op; a finished job cannot be cancelled
    assert env.call("POST", f"{API}/jobs/{job['id']}/cancel", "tenant").json()["status"] == "cancelled"
    other = env.job()
    env.store.transition(other, "running", "start", expect_version=None, placement={"site": "frankfurt",
                         "accelerator": "H100", "gang": 2})
    env.store.transition(other, "succeeded", "done", expect_version=None)
    r = env.call("POST", f"{API}/jobs/{other}/cancel", "tenant")
    assert r.status_code == 409 and "succeeded" in r.json()["detail"]
    assert env.call("GET", f"{API}/jobs", "tenant", params={"status": "succeeded"}).json()["items"][0]["id"] == other


def test_operator_submits_for_a_tenant_and_lists_all(env):
    r = env.call("POST", f"{API}/jobs", "operator", json={**JOB, "tenant": "carol"})
    assert r.status_code == 201 and r.json()["tenant"] == "carol"
    env.job("alice")
    tenants = {j["tenant"] for j in env.call("GET", f"{API}/jobs", "operator").json()["items"]}
    assert tenants == {"alice", "carol"}
    r = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "tenant": "carol"})
    assert r.status_code == 403 and "carol" in r.json()["detail"]


def test_idempotency_key_returns_the_first_job(env):
    key = {"Idempotency-Key": "run-42"}
    first = env.call("POST", f"{API}/jobs", "tenant", json=JOB, headers=key)
    again = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "work_acc_h": 99.0}, headers=key)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.json()["spec"]["work_acc_h"] == 8.0
    assert env.reconciler.reasons == ["job submitted"]
    # keys are per tenant
    bob = env.call("POST", f"{API}/jobs", "bob", json=JOB, headers=key)
    assert bob.status_code == 201 and bob.json()["id"] != first.json()["id"]
    assert len(env.call("GET", f"{API}/jobs", "tenant").json()["items"]) == 1
    r = env.call("POST", f"{API}/jobs", "tenant", json=JOB, headers={"Idempotency-Key": "x" * 201})
    assert r.status_code == 422 and r.json()["field"] == "Idempotency-Key"


def test_client_job_ids(env):
    """A job may carry the client's own id: unique per tenant (409 otherwise), usable in the job's routes by
    its tenant, and by an operator when only one tenant uses it."""
    r = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "id": "train-42"})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["client_id"] == "train-42" and job["id"] != "train-42"
    assert r.headers["location"] == f"{API}/jobs/{job['id']}"
    got = env.call("GET", f"{API}/jobs/train-42", "tenant")
    assert got.status_code == 200 and got.json()["id"] == job["id"]
    assert env.call("GET", f"{API}/jobs/train-42/history", "tenant").json()[0]["job_id"] == job["id"]
    assert env.call("GET", f"{API}/jobs/train-42/plan", "tenant").json() == {"job_id": job["id"], "items": []}
    r = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "id": "train-42", "work_acc_h": 2.0})
    assert r.status_code == 409 and r.json()["field"] == "id"
    assert "tenant 'alice' already has a job with id 'train-42'" in r.json()["detail"], r.json()
    assert env.reconciler.reasons == ["job submitted"]
    # an operator reaches it by that id while it is alice's alone; bob may use it too
    assert env.call("GET", f"{API}/jobs/train-42", "operator").json()["id"] == job["id"]
    assert env.call("GET", f"{API}/jobs/train-42", "bob").status_code == 404
    bobs = env.call("POST", f"{API}/jobs", "bob", json={**JOB, "id": "train-42"})
    assert bobs.status_code == 201 and bobs.json()["client_id"] == "train-42"
    assert env.call("GET", f"{API}/jobs/train-42", "bob").json()["id"] == bobs.json()["id"]
    r = env.call("GET", f"{API}/jobs/train-42", "operator")
    assert r.status_code == 409 and "several tenants" in r.json()["detail"]
    assert env.call("POST", f"{API}/jobs/train-42/cancel", "tenant").json()["status"] == "cancelled"
    assert env.call("GET", f"{API}/jobs/{bobs.json()['id']}", "bob").json()["status"] == "queued"
    # with the first submission's Idempotency-Key, a resubmission is the first job, not a conflict
    key = {"Idempotency-Key": "run-7"}
    first = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "id": "run-7"}, headers=key)
    again = env.call("POST", f"{API}/jobs", "tenant", json={**JOB, "id": "run-7"}, headers=key)
    assert (first.status_code, again.status_code) == (201, 200) and again.json()["id"] == first.json()["id"]
    assert env.call("POST", f"{API}/jobs", "tenant", json=JOB).json()["client_id"] is None


def test_operator_lists_jobs_by_tenant(env):
    alice = [env.job("alice") for _ in range(3)]
    bob = env.job("bob")
    r = env.call("GET", f"{API}/jobs", "operator", params={"tenant": "alice", "limit": 2})
    page = r.json()
    assert r.status_code == 200 and [j["id"] for j in page["items"]] == alice[:2]
    r = env.call("GET", f"{API}/jobs", "operator", params={"tenant": "alice", "cursor": page["next_cursor"]})
    assert [j["id"] for j in r.json()["items"]] == alice[2:] and r.json()["next_cursor"] is None
    assert [j["id"] for j in env.call("GET", f"{API}/jobs", "operator", params={"tenant": "bob"}).json()["items"]] \
        == [bob]
    assert env.call("GET", f"{API}/jobs", "tenant", params={"tenant": "alice"}).json()["items"][0]["id"] == alice[0]
    r = env.call("GET", f"{API}/jobs", "tenant", params={"tenant": "bob"})
    assert r.status_code == 403 and "only its own" in r.json()["detail"]
    r = env.call("GET", f"{API}/jobs", "operator", params={"tenant": "a/b"})
    assert r.status_code == 422 and r.json()["field"] == "tenant"


def test_list_pagination(env):
    ids = [env.job() for _ in range(5)]
    seen, cursor = [], None
    while True:
        page = env.call("GET", f"{API}/jobs", "tenant", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200
        seen += [j["id"] for j in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    r = env.call("GET", f"{API}/jobs", "tenant", params={"cursor": "bm90LWpzb24"})
    assert r.status_code == 422 and r.json()["field"] == "cursor"
    r = env.call("GET", f"{API}/jobs", "tenant", params={"status": "lost"})
    assert r.status_code == 422 and r.json()["field"] == "status.0"


def test_tenant_isolation(env):
    a_job = env.job("alice")
    a_svc = env.service("alice")
    env.job("bob")
    for path in (f"/jobs/{a_job}", f"/jobs/{a_job}/history", f"/jobs/{a_job}/plan"):
        r = env.call("GET", API + path, "bob")
        assert r.status_code == 404, path
        assert r.json()["detail"] == f"no job '{a_job}'"
    assert env.call("POST", f"{API}/jobs/{a_job}/cancel", "bob").status_code == 404
    assert env.store.get_job(Principal.system(), a_job).status == "queued"
    assert {j["tenant"] for j in env.call("GET", f"{API}/jobs", "bob").json()["items"]} == {"bob"}
    assert env.call("GET", f"{API}/services/{a_svc}", "bob").status_code == 404
    assert env.call("DELETE", f"{API}/services/{a_svc}", "bob").status_code == 404
    assert env.call("GET", f"{API}/services", "bob").json() == []
    assert env.call("PUT", f"{API}/services/{a_svc}", "bob", json=SERVICE).status_code == 403
    assert env.store.get_service(Principal.system(), a_svc).tenant == "alice"


@pytest.mark.parametrize("body, field, words", [
    ({**JOB, "work_acc_h": -1}, "work_acc_h", "greater than 0"),
    ({**JOB, "work_acc_h": "lots"}, "work_acc_h", "valid number"),
    ({**JOB, "gpus": 8}, "gpus", "unknown field"),
    ({**JOB, "job_id": "mine"}, "job_id", "set by the service"),
    ({**JOB, "arrival": "2030-01-01T00:00:00Z"}, "arrival", "set by the service"),
    ({**JOB, "kind": "training"}, "kind", "pre-training"),
    ({"work_acc_h": 1}, "kind", "Field required"),
    ({**JOB, "tier": 7}, "tier", "less than or equal to 3"),
    ({**JOB, "gang_min": 4, "gang_max": 2}, None, "gang_max must be >= gang_min"),
    ({**JOB, "deadline": "2001-01-01T00:00:00Z"}, None, "deadline must be after arrival"),
    ({**JOB, "deadline": "2030-01-01T00:00:00"}, "deadline", "must be timezone-aware UTC"),
    ({**JOB, "id": "has space"}, "id", "should match pattern"),
    ({**JOB, "command": "rm\x00"}, "command", "NUL"),
    ({**JOB, "throughput": {"H100": -1}}, None, "throughput for 'H100'"),
])
def test_bad_job_is_422_naming_the_field(env, body, field, words):
    r = env.call("POST", f"{API}/jobs", "tenant", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    if field:
        assert f"'{field}'" in r.json()["detail"]
    assert env.store.list_jobs(Principal.system())[0] == []  # nothing written


def test_bad_bodies_and_ids(env):
    r = env.call("POST", f"{API}/jobs", "tenant", content=b'{"kind": ', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("request body is not valid JSON")
    r = env.call("POST", f"{API}/jobs", "tenant")
    assert r.status_code == 422 and r.json()["detail"] == "request body is required"
    r = env.call("GET", f"{API}/jobs/not%20a%20uuid", "tenant")
    assert r.status_code == 422 and r.json()["field"] == "job_id"
    r = env.call("GET", f"{API}/jobs/{uuid.uuid4()}", "tenant")
    assert r.status_code == 404
    assert env.call("GET", f"{API}/nowhere", "tenant").status_code == 404


# ---------------------------------------------------------------------------------------------- roles


def _routes(env: Env):
    """Every route × role (none, tenant, operator, grid) → expected status."""
    def R(none, tenant, operator, grid):  # noqa: N802
        return {"none": none, "tenant": tenant, "operator": operator, "grid": grid}

    all_ok = R(200, 200, 200, 200)
    start = "2023-03-01T00:00:00Z"
    signals = {"rows": [{"zone": "DE-LU", "signal": "carbon_g_per_kwh", "time": start, "value": 310.0}]}
    pull = {"zone": "DE-LU", "start": start, "end": "2023-03-02T00:00:00Z"}
    q = f"zone=DE-LU&signal=carbon_g_per_kwh&start={start}&end=2023-03-02T00:00:00Z"
    return [
        ("GET", "/api/v1/health", None, all_ok),
        ("GET", "/api/v1/fleet", None, R(401, 403, 200, 403)),
        ("GET", "/api/v1/sites", None, R(401, 403, 200, 403)),
        ("GET", "/api/v1/power", None, R(401, 403, 200, 200)),
        ("POST", "/api/v1/jobs", JOB, R(401, 201, 201, 403)),
        ("GET", "/api/v1/jobs", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/queue", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/jobs/{job_id}", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/jobs/{job_id}/history", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/jobs/{job_id}/plan", None, R(401, 200, 200, 403)),
        ("POST", "/api/v1/jobs/{job_id}/cancel", {"reason": "test"}, R(401, 200, 200, 403)),
        ("GET", "/api/v1/services", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/services/{name}", None, R(401, 200, 200, 403)),
        ("PUT", "/api/v1/services/{name}", SERVICE, R(401, 200, 200, 403)),
        ("DELETE", "/api/v1/services/{name}", None, R(401, 204, 204, 403)),
        ("PUT", "/api/v1/services/{name}/replicas", {"replica_targets": {"frankfurt": {"H100": 4}}},
         R(401, 403, 200, 403)),
        ("GET", "/api/v1/gateway/usage", None, R(401, 200, 200, 403)),
        ("GET", "/api/v1/plan", None, R(401, 403, 200, 403)),
        ("GET", "/api/v1/policy", None, R(401, 403, 200, 403)),
        ("PUT", "/api/v1/policy", {"name": "threshold"}, R(401, 403, 200, 403)),
        ("POST", "/api/v1/signals", signals, R(401, 403, 200, 200)),
        ("GET", "/api/v1/signals?" + q, None, R(401, 403, 200, 403)),
        ("POST", "/api/v1/signals/pull", pull, R(401, 403, 200, 403)),
        ("POST", "/api/v1/events", lambda: event_body(f"new-{next(_ids)}"), R(401, 403, 201, 201)),
        ("GET", "/api/v1/events", None, R(401, 403, 200, 200)),
        ("DELETE", "/api/v1/events/{event_id}", None, R(401, 403, 200, 200)),
        ("POST", "/api/v1/tokens", {"name": "ci", "role": "grid"}, R(401, 403, 201, 403)),
        ("GET", "/api/v1/tokens", None, R(401, 403, 200, 403)),
        ("DELETE", "/api/v1/tokens/{token_id}", None, R(401, 403, 204, 403)),
        ("GET", "/api/v1/settings/tenant-commands", None, R(401, 200, 200, 403)),
        ("PUT", "/api/v1/settings/tenant-commands", {"mode": "allowed"}, R(401, 403, 200, 403)),
        ("GET", "/api/v1/settings/job-templates", None, R(401, 200, 200, 403)),
        ("PUT", "/api/v1/settings/job-templates", {"templates": {"train": ["python3", "train.py"]}},
         R(401, 403, 200, 403)),
        ("GET", "/metrics", None, R(401, 403, 200, 200)),
        ("GET", f"/emissions/bylocations?location=DE-LU&time={start}", None, R(401, 200, 200, 200)),
        ("GET", f"/emissions/bylocations/best?location=DE-LU&time={start}", None, R(401, 200, 200, 200)),
        ("GET", "/emissions/forecasts/current?location=DE-LU", None, R(401, 400, 400, 400)),
        ("GET", f"/emissions/average-carbon-intensity?location=DE-LU&startTime={start}&endTime=2023-03-01T00:30:00Z",
         None, R(401, 200, 200, 200)),
        ("GET", f"/emissions/bylocation?location=DE-LU&time={start}", None, R(401, 200, 200, 200)),
        ("POST", "/emissions/forecasts/batch", [{"location": "DE-LU", "requestedAt": start}], R(401, 400, 400, 400)),
        ("POST", "/emissions/average-carbon-intensity/batch",
         [{"location": "DE-LU", "startTime": start, "endTime": "2023-03-01T00:30:00Z"}], R(401, 200, 200, 200)),
        ("GET", "/", None, all_ok),
    ]


def test_role_checks_on_every_route(env):
    env.store.save_plan("test", [PlanItem(env.job(), "frankfurt", "H100", 2, None, None, {"reason": "clean"})], {})
    table = _routes(env)
    routes = {(m.upper(), p) for p, ops in env.client.get("/openapi.json").json()["paths"].items() for m in ops}
    routes.add(("GET", "/"))  # the dashboard, not in the spec
    assert routes == {(m, p.split("?")[0]) for m, p, _, _ in table}, "every route is in the table"
    fresh = {"{job_id}": env.job, "{name}": env.service, "{event_id}": env.event, "{token_id}": env.token}
    failures = []
    for (method, path, body, expected), who in itertools.product(table, ("none", "tenant", "operator", "grid")):
        for key, make in fresh.items():
            if key in path:
                path = path.replace(key, make())
        kw = {} if body is None else {"json": body() if callable(body) else body}
        r = env.call(method, path, who, **kw)
        if r.status_code != expected[who]:
            failures.append(f"{method} {path} as {who}: {r.status_code} (expected {expected[who]}) {r.text[:200]}")
        if r.status_code in (401, 403):
            assert r.json()["detail"], r.text
        if r.status_code == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
    assert not failures, "\n".join(failures)


def test_401_without_or_with_a_bad_token(env, caplog):
    secret = env.secrets["tenant"]
    revoked_id = secret.split("_")[1]
    caplog.set_level(logging.WARNING, logger="gridshift.auth")
    cases = [({}, "no Authorization header"),
             ({"Authorization": f"Basic {secret}"}, "not 'Bearer <token>'"),
             ({"Authorization": "Bearer gs_nope_nope"}, "unknown or revoked"),
             ({"Authorization": f"Bearer {secret}x"}, "unknown or revoked")]
    for headers, words in cases:
        r = env.client.get(f"{API}/jobs", headers=headers)
        assert r.status_code == 401 and words in r.json()["detail"]
        assert r.headers["www-authenticate"].startswith('Bearer realm="gridshift"')
    assert env.call("GET", f"{API}/jobs", "tenant").status_code == 200
    assert env.call("DELETE", f"{API}/tokens/{revoked_id}", "operator").status_code == 204
    r = env.call("GET", f"{API}/jobs", "tenant")
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "gridshift.auth"]
    assert len(logged) == 5 and all("authentication failed" in m for m in logged)
    assert any(revoked_id in m for m in logged)
    assert not any(secret.split("_", 2)[2] in m for m in logged), "the secret is never logged"


def test_tokens_made_through_the_api_work(env):
    r = env.call("POST", f"{API}/tokens", "operator", json={"name": "carol ci", "role": "tenant", "tenant": "carol"})
    assert r.status_code == 201
    secret = r.json()["secret"]
    assert secret.startswith("gs_") and "secret" not in env.call("GET", f"{API}/tokens", "operator").json()[0]
    r = env.client.post(f"{API}/jobs", json=JOB, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 201 and r.json()["tenant"] == "carol"
    r = env.call("POST", f"{API}/tokens", "operator", json={"name": "x", "role": "tenant"})
    assert r.status_code == 422 and r.json()["field"] == "tenant"
    assert env.call("DELETE", f"{API}/tokens/abc123", "operator").status_code == 404


# --------------------------------------------------------------------------------------------- limits


def test_413_for_an_oversized_body(store):
    app = create_app(store, settings=ApiSettings(max_body_bytes=2048, rate_per_s=1000, burst=1000))
    with TestClient(app) as client:
        env = Env(store, client)
        big = {**JOB, "command": "x" * 4000}
        r = env.call("POST", f"{API}/jobs", "tenant", json=big)
        assert r.status_code == 413 and "2048 bytes" in r.json()["detail"]

        def chunks():
            for _ in range(8):
                yield b" " * 512
        r = env.call("POST", f"{API}/jobs", "tenant", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.json()["field"] == "body"
        assert env.call("POST", f"{API}/jobs", "tenant", json=JOB).status_code == 201
        assert store.queue_stats()["queued"] == 1


def test_429_after_the_burst(store):
    app = create_app(store, settings=ApiSettings(rate_per_s=0.001, burst=3))
    with TestClient(app) as client:
        env = Env(store, client)
        codes = [env.call("GET", f"{API}/jobs", "tenant").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        r = env.call("GET", f"{API}/jobs", "tenant")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "rate limit" in r.json()["detail"]
        assert env.call("GET", f"{API}/jobs", "bob").status_code == 200, "buckets are per token"


def test_repeated_auth_failures_get_429(store):
    app = create_app(store, settings=ApiSettings(auth_failure_rate_per_s=0.001, auth_failure_burst=2))
    with TestClient(app) as client:
        codes = [client.get(f"{API}/jobs", headers={"Authorization": "Bearer gs_a_b"}).status_code for _ in range(3)]
        assert codes == [401, 401, 429]


# -------------------------------------------------------------------------------------- services, plan


def test_services_and_replicas(env):
    r = env.call("PUT", f"{API}/services/chat", "tenant", json=SERVICE)
    assert r.status_code == 201 and r.json()["tenant"] == "alice" and r.json()["replica_targets"] == {}
    r = env.call("PUT", f"{API}/services/chat", "tenant", json={**SERVICE, "latency_slo_ms": 40})
    assert r.status_code == 200 and r.json()["version"] == 2 and r.json()["spec"]["latency_slo_ms"] == 40
    r = env.call("PUT", f"{API}/services/chat", "tenant", json={**SERVICE, "name": "other"})
    assert r.status_code == 422 and r.json()["field"] == "name"
    r = env.call("PUT", f"{API}/services/chat", "tenant", json={**SERVICE, "latency_slo_ms": -1})
    assert r.status_code == 422 and r.json()["field"] == "latency_slo_ms"
    r = env.call("PUT", f"{API}/services/chat/replicas", "operator",
                 json={"replica_targets": {"frankfurt": {"H100": 6}}, "expect_version": 2})
    assert r.status_code == 200 and r.json()["replica_targets"] == {"frankfurt": {"H100": 6}}
    r = env.call("PUT", f"{API}/services/chat/replicas", "operator",
                 json={"replica_targets": {"frankfurt": {"H100": 1}}, "expect_version": 2})
    assert r.status_code == 409
    r = env.call("PUT", f"{API}/services/chat/replicas", "operator", json={"replica_targets": {"a": {"H100": -1}}})
    assert r.status_code == 422 and r.json()["field"] == "replica_targets.a.H100"
    # an operator replacing the spec keeps the owner
    r = env.call("PUT", f"{API}/services/chat", "operator", json=SERVICE)
    assert r.json()["tenant"] == "alice" and r.json()["replica_targets"] == {"frankfurt": {"H100": 6}}
    assert [s["name"] for s in env.call("GET", f"{API}/services", "tenant").json()] == ["chat"]
    assert env.call("DELETE", f"{API}/services/chat", "tenant").status_code == 204
    assert env.call("GET", f"{API}/services/chat", "tenant").status_code == 404
    assert env.call("PUT", f"{API}/services/nope/replicas", "operator",
                    json={"replica_targets": {}}).status_code == 404


def test_plan_and_why(env):
    assert env.call("GET", f"{API}/plan", "operator").status_code == 404
    a, b = env.job(), env.job("bob")
    start = datetime(2030, 1, 1, 2, tzinfo=UTC)
    env.store.save_plan("carbon-lp", [
        PlanItem(a, "frankfurt", "H100", 4, start, 0.8, {"reason": "lowest carbon window", "carbon_g_per_kwh": 120}),
        PlanItem(b, "london", "A100", 2, None, None, {"reason": "deadline"}),
    ], {"plan_time_s": 0.4}, horizon_s=86400)
    plan = env.call("GET", f"{API}/plan", "operator").json()
    assert plan["policy"] == "carbon-lp" and [i["job_id"] for i in plan["items"]] == [a, b]
    mine = env.call("GET", f"{API}/jobs/{a}/plan", "tenant").json()
    assert mine["items"][0]["why"]["reason"] == "lowest carbon window"
    assert mine["items"][0]["start_at"] == "2030-01-01T02:00:00Z"


def test_power_from_the_plan_without_a_reconciler(store):
    a = store.submit_job(Principal("tenant", "alice"), JOB)[0].id
    store.save_plan("p", [PlanItem(a, "frankfurt", "H100", 10, None, 0.5, None)], {})
    with TestClient(create_app(store, fleet=FLEET, settings=FAST)) as client:
        env = Env(store, client)
        p = env.call("GET", f"{API}/power", "grid").json()
    assert p["source"] == "plan" and p["site_power_mw"]["london"] == 0.0
    assert 0.003 < p["site_power_mw"]["frankfurt"] < 0.02  # 10 × (700 W × 0.5 + host) × PUE 1.2
    assert p["total_power_mw"] == pytest.approx(sum(p["site_power_mw"].values()))


# --------------------------------------------------------------------------------------- grid signals


def test_signals_push_and_pull(env):
    rows = [{"zone": "DE-LU", "signal": "carbon_g_per_kwh", "time": f"2030-01-01T0{h}:00:00Z", "value": 300.0 + h}
            for h in range(3)]
    r = env.call("POST", f"{API}/signals", "grid", json={"rows": rows})
    assert r.status_code == 200 and r.json() == {"rows": 3}
    assert env.reconciler.reasons == ["signals"]
    got = env.call("GET", f"{API}/signals", "operator", params={"zone": "DE-LU", "signal": "carbon_g_per_kwh",
                   "start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}).json()
    assert [s["value"] for s in got] == [300.0, 301.0, 302.0] and got[0]["time"] == "2030-01-01T00:00:00Z"
    bad = [{**rows[0], "value": "hot"}]
    r = env.call("POST", f"{API}/signals", "grid", json={"rows": bad})
    assert r.status_code == 422 and r.json()["field"] == "rows.0.value"

    # one day of DE-LU 2023 replayed one (non-leap) year later
    r = env.call("POST", f"{API}/signals/pull", "operator", json={
        "zone": "DE-LU", "signals": ["carbon_g_per_kwh", "price_usd_per_mwh"], "start": "2024-01-01T00:00:00Z",
        "end": "2024-01-02T00:00:00Z", "shift_s": 365 * 86400})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == {"carbon_g_per_kwh": 24, "price_usd_per_mwh": 24}
    pts = env.store.signals_between("DE-LU", "price_usd_per_mwh", datetime(2024, 1, 1, tzinfo=UTC),
                                    datetime(2024, 1, 2, tzinfo=UTC))
    assert len(pts) == 24 and pts[0].source == "registry:price/DE-LU"
    r = env.call("POST", f"{API}/signals/pull", "operator", json={"zone": "XX", "start": "2023-01-01T00:00:00Z",
                                                                   "end": "2023-01-02T00:00:00Z"})
    assert r.status_code == 422 and "unknown dataset 'carbon/XX'" in r.json()["detail"]
    r = env.call("POST", f"{API}/signals/pull", "operator", json={"zone": "GB", "start": "2023-01-02T00:00:00Z",
                                                                   "end": "2023-01-01T00:00:00Z"})
    assert r.status_code == 422 and r.json()["field"] == "end"


def test_signals_pulled_from_a_csv_file(store, tmp_path):
    from gridshift.data.registry import find

    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "de.csv").write_bytes(find("carbon/DE-LU").read_bytes())
    (tmp_path / "secret.csv").write_text("not for the API")
    body = {"zone": "DE-LU", "start": "2023-05-01T00:00:00Z", "end": "2023-05-01T06:00:00Z", "file": "de.csv"}
    with TestClient(create_app(store, settings=FAST)) as client:
        env = Env(store, client)
        r = env.call("POST", f"{API}/signals/pull", "operator", json=body)
        assert r.status_code == 422 and "not enabled" in r.json()["detail"] and r.json()["field"] == "file"
    settings = ApiSettings(rate_per_s=1000, burst=1000, signal_files_dir=str(tmp_path / "files"))
    with TestClient(create_app(store, settings=settings)) as client:
        env = Env(store, client)
        r = env.call("POST", f"{API}/signals/pull", "operator", json=body)
        assert r.status_code == 200 and r.json()["rows"] == {"carbon_g_per_kwh": 6}, r.text
        for name in ("../secret.csv", "files/../../secret.csv", "missing.csv"):
            r = env.call("POST", f"{API}/signals/pull", "operator", json={**body, "file": name})
            assert r.status_code == 422 and r.json()["field"] == "file", name
        r = env.call("POST", f"{API}/signals/pull", "operator",
                     json={**body, "signals": ["carbon_g_per_kwh", "price_usd_per_mwh"]})
        assert r.status_code == 422 and r.json()["field"] == "signals"
    pts = store.signals_between("DE-LU", "carbon_g_per_kwh", datetime(2023, 5, 1, tzinfo=UTC),
                                datetime(2023, 5, 2, tzinfo=UTC))
    assert len(pts) == 6 and pts[0].source == "file:de.csv"


def test_signals_pulled_on_a_clock(store):
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    shift_s = (now - datetime(2023, 6, 1, tzinfo=UTC)).total_seconds()  # replay June 2023 as now
    settings = ApiSettings(pull_interval_s=3600, pull_zones=("DE-LU",), pull_horizon_s=6 * 3600, pull_shift_s=shift_s)
    window = (now - timedelta(hours=2), now + timedelta(hours=7))
    with TestClient(create_app(store, settings=settings)):
        give_up = time.monotonic() + 120
        while not store.signals_between("DE-LU", "carbon_g_per_kwh", *window) and time.monotonic() < give_up:
            time.sleep(0.1)
    pts = store.signals_between("DE-LU", "carbon_g_per_kwh", *window)
    assert 6 <= len(pts) <= 8 and pts[0].source == "registry:carbon/DE-LU"
    from gridshift.data.grid import load_carbon

    assert pts[0].value == load_carbon("DE-LU").loc[pts[0].at - timedelta(seconds=shift_s), "carbon_g_per_kwh"]


def test_one_pull_window_synchronously(store):
    """What ``gridshift serve`` runs before the reconciler's first pass: every zone and signal pulled now, a
    zone the registry does not know reported and skipped."""
    from gridshift.service.signal_pull import pull_window

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    shift_s = (now - datetime(2023, 6, 1, tzinfo=UTC)).total_seconds()
    settings = ApiSettings(pull_interval_s=3600, pull_zones=("NOWHERE", "DE-LU"), pull_horizon_s=6 * 3600,
                           pull_shift_s=shift_s, pull_signals=("carbon_g_per_kwh", "price_usd_per_mwh"))
    warned = []
    stored = pull_window(store, settings, now, lambda kind, zone, signal, *a: warned.append((kind, zone, signal)))
    window = (now - timedelta(hours=1), now + timedelta(hours=6))
    carbon = store.signals_between("DE-LU", "carbon_g_per_kwh", *window)
    price = store.signals_between("DE-LU", "price_usd_per_mwh", *window)
    assert len(carbon) == 7 and len(price) == 7 and stored == 14
    assert {z for _, z, _ in warned} == {"NOWHERE"} and len(warned) == 2


# --------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize("change, words", [
    ({"end": "2030-01-01T09:00:00Z"}, "end must be after start"),
    ({"limit_mw": None}, "needs exactly one of limit_mw"),
    ({"kind": "brownout"}, "field 'kind'"),
    ({"limit_mw": -1}, "field 'limit_mw'"),
    ({"cut_frac": 0.2, "limit_mw": None}, "baseline_mw"),
    ({"zone": "DE-LU"}, "exactly one of 'sites' or 'zone'"),
    ({"id": "a/b"}, "field 'id'"),
    ({"color": "red"}, "field 'color': unknown field"),
])
def test_event_validation_errors_are_422(env, change, words):
    r = env.call("POST", f"{API}/events", "grid", json={k: v for k, v in event_body("e1", **change).items()})
    assert r.status_code == 422 and words in r.json()["detail"], r.json()
    assert env.store.grid_events(include_cancelled=True) == []


def test_events_round_trip(env):
    body = event_body("dr-7")
    r = env.call("POST", f"{API}/events", "grid", json=body)
    assert r.status_code == 201 and r.json()["revision"] == 1 and r.json()["source"].startswith("api:grid:")
    assert env.call("POST", f"{API}/events", "grid", json=body).json()["revision"] == 1
    r = env.call("POST", f"{API}/events", "operator", json={**body, "limit_mw": 0.05})
    assert r.status_code == 200 and r.json()["revision"] == 2 and r.json()["event"]["limit_mw"] == 0.05
    listed = env.call("GET", f"{API}/events", "grid", params={"active_at": "2030-01-01T11:00:00Z"}).json()
    assert [e["id"] for e in listed] == ["dr-7"]
    assert env.call("GET", f"{API}/events", "grid", params={"active_at": "2030-01-01T13:00:00Z"}).json() == []
    r = env.call("DELETE", f"{API}/events/dr-7", "grid")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert env.call("GET", f"{API}/events", "grid").json() == []
    assert env.call("DELETE", f"{API}/events/nope", "grid").status_code == 404
    assert env.reconciler.reasons.count("grid event") == 3


# --------------------------------------------------------------------------------- metrics and health


def test_metrics(env):
    env.job()
    env.call("GET", f"{API}/jobs", "tenant")
    text = env.call("GET", "/metrics", "operator").text
    for line in ('gridshift_site_power_mw{site="frankfurt"} 0.12', 'gridshift_queue_jobs{status="queued"} 1.0',
                 "gridshift_plan_seconds 0.25", "gridshift_carbon_t_total 1.5", "gridshift_database_up 1.0",
                 "gridshift_cost_usd_total 420.0", 'gridshift_counterfactual_carbon_t_total{policy="asap"} 2.25',
                 'gridshift_counterfactual_cost_usd_total{policy="asap"} 450.0',
                 'gridshift_counterfactual_energy_mwh_total{policy="asap"} 9.0',
                 'gridshift_http_requests_total{method="GET",route="/api/v1/jobs",status="200"} 1.0',
                 'gridshift_http_request_seconds_count{method="GET",route="/api/v1/jobs"} 1.0'):
        assert line in text, line


def test_metrics_without_a_reconciler_read_the_store(store):
    a = store.submit_job(Principal("tenant", "alice"), JOB)[0].id
    store.save_plan("p", [PlanItem(a, "london", "A100", 8, None, None, None)], {"plan_time_s": 2.5})
    with TestClient(create_app(store, fleet=FLEET, settings=ApiSettings(public_metrics=True))) as client:
        text = client.get("/metrics").text
    assert "gridshift_plan_seconds 2.5" in text and 'gridshift_site_power_mw{site="london"}' in text
    assert "gridshift_cost_usd_total" not in text and "counterfactual" not in text  # nothing reports them
    assert 'gridshift_site_power_mw{site="london"} 0.0\n' not in text


def test_health_reports_the_database(env, db_url):
    r = env.client.get(f"{API}/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["database"]["reachable"] and h["database"]["revision"] == head_revision()
    assert h["database"]["backend"] == db_url.split(":")[0].split("+")[0]
    assert h["reconciler"] == {"state": "running"}, "without a token: whether it runs, not the details"
    full = env.call("GET", f"{API}/health", "operator").json()["reconciler"]
    assert full["site_power_mw"] == {"frankfurt": 0.12, "london": 0.05}
    assert env.call("GET", f"{API}/health", "tenant").json()["reconciler"] == {"state": "running"}


def test_database_down_gives_503_and_recovers(request, db_url, tmp_path):
    if db_url.startswith("sqlite"):
        # an unreachable database: nothing listens on the port
        with Store(f"postgresql://postgres@127.0.0.1:{free_port()}/gone?connect_timeout=2") as gone:
            with TestClient(create_app(gone, settings=FAST)) as client:
                r = client.get(f"{API}/health")
                assert r.status_code == 503 and r.json()["status"] == "unavailable"
                assert r.json()["database"]["error"] == "database unreachable or not migrated"
                r = client.get(f"{API}/jobs", headers={"Authorization": "Bearer gs_abc_def"})
                assert r.status_code == 503 and r.headers["retry-after"] == "5"
                # the caller is not told where the database is (URL, user, host, port): the log is
                assert r.json()["detail"] == "database unavailable; retry later"
                assert "127.0.0.1" not in r.text and "postgres" not in r.text
        return
    server = request.getfixturevalue("pg_server")
    if not isinstance(server, PgServer):
        pytest.skip("an external PostgreSQL server cannot be stopped by the tests")
    with Store(db_url) as store, TestClient(create_app(store, settings=FAST)) as client:
        env = Env(store, client)
        job = env.job()
        assert env.call("GET", f"{API}/jobs/{job}", "tenant").status_code == 200
        server.stop()
        try:
            for method, path, kw in (("GET", f"/jobs/{job}", {}), ("POST", "/jobs", {"json": JOB}),
                                     ("GET", "/jobs", {})):
                r = env.call(method, API + path, "tenant", **kw)
                assert r.status_code == 503, r.text
                assert "unavailable" in r.json()["detail"] and r.headers["retry-after"] == "5"
            h = client.get(f"{API}/health")
            assert h.status_code == 503 and not h.json()["database"]["reachable"]
        finally:
            server.start()
        assert client.get(f"{API}/health").status_code == 200
        assert env.call("GET", f"{API}/jobs/{job}", "tenant").status_code == 200
        assert env.call("POST", f"{API}/jobs", "tenant", json=JOB).status_code == 201


def test_exhausted_connection_pool_gives_503(db_url):
    """Every pooled connection busy for longer than the pool timeout: the store's DatabaseUnavailable, a 503
    with Retry-After (not a 500); the next request after one is returned succeeds."""
    store = Store(engine=make_engine(db_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2))
    try:
        with TestClient(create_app(store, settings=FAST)) as client:
            env = Env(store, client)
            job = env.job()
            held = store.engine.connect()
            try:
                for method, path, kw in (("GET", f"/jobs/{job}", {}), ("POST", "/jobs", {"json": JOB})):
                    r = env.call(method, API + path, "operator", **kw)
                    assert r.status_code == 503, r.text
                    assert "busy: no connection free in the pool" in r.json()["detail"]
                    assert r.headers["retry-after"] == "5"
                assert client.get(f"{API}/health").status_code == 503
            finally:
                held.close()
            assert env.call("GET", f"{API}/jobs/{job}", "operator").status_code == 200
    finally:
        store.close()


# ---------------------------------------------------------------------------------------- CLI, fleet


def test_fleet_from_a_scenario(store):
    from gridshift.data.scenario import load_scenario

    sc = load_scenario(Path(__file__).parents[1] / "scenarios" / "small.yaml")
    fleet = fleet_from_sites(sc.sites, sc.zones)
    with TestClient(create_app(store, fleet=fleet, settings=FAST)) as client:
        env = Env(store, client)
        f = env.call("GET", f"{API}/fleet", "operator").json()
    assert [s["name"] for s in f["sites"]] == ["frankfurt", "london"]
    assert f["accelerators"] == {"H100": 96, "A100": 128} and f["zones"][1]["id"] == "GB"


def test_serve_command_runs_the_api(tmp_path):
    port = free_port()
    cmd = [sys.executable, "-m", "gridshift.cli", "serve", "--port", str(port), "--db",
           f"sqlite:///{tmp_path / 'serve.db'}", "--create-operator-token", "--no-access-log", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "operator token" not in line and proc.poll() is None:
            line = proc.stderr.readline()
        secret = line.strip().rsplit(" ", 1)[-1]
        assert secret.startswith("gs_"), line
        base, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {secret}"}
        give_up = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"{base}{API}/health", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < give_up, "the server did not start"
                time.sleep(0.2)
        assert health.status_code == 200 and health.json()["database"]["revision"] == head_revision()
        r = httpx.post(f"{base}{API}/jobs", json={**JOB, "tenant": "alice"}, headers=auth)
        assert r.status_code == 201 and r.json()["tenant"] == "alice"
        assert "GridShift" in httpx.get(base + "/").text
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


def test_token_command(tmp_path):
    import typer
    from typer.testing import CliRunner

    from gridshift.cli import serve as cli_serve

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    app = typer.Typer()
    cli_serve.register(app)
    res = CliRunner().invoke(app, ["token", "create", "--role", "tenant", "--tenant", "alice", "--db", url])
    assert res.exit_code == 0, res.output
    secret = res.output.strip()
    with Store(url) as store:
        assert store.authenticate(secret) == Principal("tenant", "alice", secret.split("_")[1])
    res = CliRunner().invoke(app, ["token", "create", "--role", "tenant", "--db", url])
    assert res.exit_code == 2 and "tenant" in res.output


# ---------------------------------------------------------------------------------------- schemathesis

import schemathesis  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import response_schema_conformance  # noqa: E402


@pytest.fixture
def fuzz_env(db_url):
    rec = Recorder()
    with Store(db_url) as store, TestClient(create_app(store, fleet=FLEET, reconciler=rec, settings=FAST)) as client:
        env = Env(store, client, rec)
        env.job()
        env.service()
        env.event()
        yield env


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_openapi_no_server_errors_and_conforming_responses(fuzz_env, mode):
    """Every operation, as an operator: never a 5xx, and every answer matches the documented schema."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_env.client.app)
    headers = fuzz_env.h("operator")
    failures = []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=25, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance])

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid (an operation without inputs)
            continue
        except Exception as exc:  # noqa: BLE001 (collect every operation's failure, then report)
            failures.append(f"{op.label}: {exc}")
    assert not failures, "\n\n".join(failures)


def test_policy_routes_without_a_reconciler(store):
    with TestClient(create_app(store, fleet=FLEET, settings=FAST)) as client:
        env = Env(store, client)
        r = env.call("GET", f"{API}/policy", "operator")
        assert r.status_code == 404 and "reconciler" in r.json()["detail"]
        assert env.call("PUT", f"{API}/policy", "operator", json={"name": "asap"}).status_code == 404
        # the body is checked before anything else: unknown fields and bad names are 422
        r = env.call("PUT", f"{API}/policy", "operator", json={"name": "asap", "horizon": 3})
        assert r.status_code == 422


def test_serve_refuses_a_bad_policy_before_writing_anything(tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli import app

    db = tmp_path / "state.db"
    fleet = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"
    for args, field in ((["--policy", "oracle"], "policy"), (["--policy", "mpc", "--policy-param", "nope"],
                                                              "policy-param"),
                        (["--policy", "threshold", "--policy-param", "bogus=1"], "params")):
        res = CliRunner().invoke(app, ["serve", "--db", f"sqlite:///{db}", "--fleet", str(fleet), *args])
        assert res.exit_code == 2, res.output
        assert field in res.output and len(res.output.strip().splitlines()) == 1, res.output
        assert not db.exists(), "nothing is written before the options are checked"


def test_serve_starts_with_the_flag_else_the_stored_policy(store):
    from gridshift.cli.serve import _initial_policy, _policy_spec
    from gridshift.data.scenario import load_scenario

    scenario = load_scenario(Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml")
    assert _initial_policy(store, None, scenario) == PolicySpec(name="asap")  # nothing stored
    given = _policy_spec("mpc", ["forecast=persistence", "epoch_h=2"], scenario)
    assert given.params == {"forecast": "persistence", "epoch_h": 2}
    assert _initial_policy(store, given, scenario) == given
    assert _initial_policy(store, None, scenario) == given, "a restart without --policy keeps the last one"
    store.put_setting("policy", {"name": "oracle", "params": {}})  # not usable live: planning goes on with asap
    assert _initial_policy(store, None, scenario) == PolicySpec(name="asap")


def test_db_upgrade_command_and_the_hint_that_names_it(tmp_path):
    from typer.testing import CliRunner

    from gridshift.cli import app

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    runner = CliRunner()
    r = runner.invoke(app, ["token", "create", "--role", "operator", "--db", url])
    assert r.exit_code == 2 and "gridshift db upgrade" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = runner.invoke(app, ["db", "upgrade", "--db", url])
    assert r.exit_code == 0 and head_revision() in r.stdout
    r = runner.invoke(app, ["token", "create", "--role", "operator", "--db", url])
    assert r.exit_code == 0 and r.stdout.strip().startswith("gs_")


def test_create_operator_token_only_when_none_is_active(tmp_path):
    from gridshift.cli.serve import ensure_operator_token

    url = f"sqlite:///{tmp_path / 'ops.db'}"
    upgrade(url)
    with Store(url) as store:
        first = ensure_operator_token(store)
        assert first is not None and first[1].startswith("gs_")
        assert ensure_operator_token(store) is None  # a restart makes no second token
        assert store.revoke_token(first[0])
        again = ensure_operator_token(store)  # revoked: the next start makes a new one
        assert again is not None and again[0] != first[0]
        assert [t.role for t in store.list_tokens()] == ["operator", "operator"]
