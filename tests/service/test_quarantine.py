"""No job or grid event stops planning for everyone: what the API cannot plan is refused where it enters
(commands that do not parse, events and signals for sites and zones the fleet lacks), and what reaches the
database anyway is quarantined by the reconciler — by per-item checks, then by bisection — with its reason
shown to its owner, while every other job is planned in the same pass."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from gridshift.model.events import GridEvent
from gridshift.model.scenario import Scenario
from gridshift.service.db import upgrade
from gridshift.service.executors.base import ExecStatus, Executor, JobLaunch
from gridshift.service.reconciler import Reconciler
from gridshift.service.reconciler import loop as loop_module
from gridshift.service.reconciler.isolate import find_culprits
from gridshift.service.store import Principal, Store
from gridshift.service.store.base import GRID_EVENTS, JOBS
from reconciler_proc import FLEET

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SYSTEM = Principal.system()
API = "/api/v1"


class MemoryExecutor(Executor):
    """Starts nothing: remembers what it was told (enough for the reconciler's passes)."""

    name = "memory"

    def __init__(self) -> None:
        self.jobs: dict[str, ExecStatus] = {}

    def start(self, launch: JobLaunch) -> str:
        self.jobs[launch.job_id] = ExecStatus(launch.job_id, "running", ref=launch.job_id, attempt=launch.attempt)
        return launch.job_id

    def _set(self, job_id: str, state: str, reason: str | None = None) -> ExecStatus:
        old = self.jobs.get(job_id) or ExecStatus(job_id, "unknown")
        self.jobs[job_id] = ExecStatus(job_id, state, reason=reason, ref=job_id, attempt=old.attempt)
        return self.jobs[job_id]

    def pause(self, job_id: str) -> ExecStatus:
        return self._set(job_id, "paused")

    def resume(self, job_id: str, placement=None) -> ExecStatus:
        return self._set(job_id, "running")

    def stop(self, job_id: str) -> ExecStatus:
        return self._set(job_id, "failed", "stopped on request")

    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        return self.jobs[job_id]

    def report(self) -> list[ExecStatus]:
        return list(self.jobs.values())

    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        return [self.status(r) for r in refs]

    def recover(self) -> list[ExecStatus]:
        return self.report()


@pytest.fixture
def store(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def reconciler(store: Store, policy: str = "asap") -> Reconciler:
    return Reconciler(store, MemoryExecutor(), Scenario.model_validate(FLEET), policy=policy)


def submit(store: Store, **kw) -> str:
    return store.submit_job(SYSTEM, {"kind": "fine-tuning", "work_acc_h": 1.0, **kw})[0].id


def write_spec(store: Store, job_id: str, spec) -> None:
    """Change a stored job around every check, as a bug, a manual edit or an old version might."""
    with store.engine.begin() as c:
        c.execute(update(JOBS).where(JOBS.c.id == job_id).values(spec=spec))


def write_event(store: Store, body: dict, eid: str = "raw") -> None:
    now = datetime.now(UTC)
    with store.engine.begin() as c:
        c.execute(insert(GRID_EVENTS), {"id": eid, "body": body, "start_at": now, "end_at": now + timedelta(hours=2),
                                        "received_at": now, "updated_at": now, "source": "test", "status": "active",
                                        "revision": 1})


def status(store: Store, job_id: str) -> tuple[str, str | None]:
    j = store.get_job(SYSTEM, job_id)
    return j.status, j.failure_reason


# ----------------------------------------------------------------------------------- the pure search

def test_find_culprits_bisects_to_the_items_planning_fails_with():
    calls = []

    def plan(items):
        calls.append(len(items))
        if 13 in items or (40 in items and 41 in items):
            raise ValueError(f"cannot plan {sorted(items)[:3]}")
        return sum(items)

    result, found = find_culprits(list(range(100)), plan)
    assert [c for c, _ in found] == [13, 41]  # 41 only fails beside 40: the later of the pair goes
    assert result == sum(range(100)) - 13 - 41
    assert all(isinstance(e, ValueError) for _, e in found)
    assert len(calls) < 30  # bisection, not one attempt per item
    assert find_culprits([1, 2], lambda items: "fine") == ("fine", [])


def test_find_culprits_blames_no_item_when_planning_fails_without_any():
    def plan(items):
        raise RuntimeError("no carbon signal")

    with pytest.raises(RuntimeError, match="no carbon signal"):
        find_culprits([1, 2, 3], plan)


def test_find_culprits_stops_after_max_culprits():
    with pytest.raises(ValueError):
        find_culprits(list(range(20)), lambda items: (_ for _ in ()).throw(ValueError("odd")) if any(
            i % 2 for i in items) else "ok", max_culprits=3)


# ------------------------------------------------------------------------------------------ the API

@pytest.fixture
def client(store):
    from fastapi.testclient import TestClient

    from gridshift.service.app import ApiSettings, create_app

    fast = ApiSettings(rate_per_s=10_000, burst=10_000, auth_failure_rate_per_s=10_000, auth_failure_burst=10_000)
    with TestClient(create_app(store, fleet={"sites": FLEET["sites"], "zones": FLEET["zones"]}, settings=fast)) as c:
        c.headers["Authorization"] = f"Bearer {store.create_token('ops', 'operator')[1]}"
        yield c


EVENT = {"id": "ev", "kind": "limit", "sites": ["site-a"], "start": "2030-01-01T10:00:00Z",
         "end": "2030-01-01T12:00:00Z", "limit_mw": 1.0}


@pytest.mark.parametrize("path, body, field, words", [
    ("/jobs", {"kind": "fine-tuning", "work_acc_h": 1.0, "command": "echo 'oops"}, "command", "No closing quotation"),
    ("/jobs", {"kind": "fine-tuning", "work_acc_h": 1.0, "command": "''"}, "command", "names no program"),
    ("/jobs", {"kind": "fine-tuning", "work_acc_h": 1.0, "throughput": {"H100": 1.0, "A100": 0.5}}, "throughput.A100",
     "unknown accelerator type 'A100'"),
    ("/events", {**EVENT, "sites": ["site-a", "atlantis"]}, "sites.1", "unknown site 'atlantis'"),
    ("/events", {**EVENT, "sites": None, "zone": "QQ", "kind": "price", "price_usd_per_mwh": 90.0,
                 "limit_mw": None}, "zone", "unknown zone 'QQ'"),
    ("/signals", {"rows": [{"zone": "ZZ", "signal": "carbon_g_per_kwh", "time": "2030-01-01T00:00:00Z",
                            "value": 1.0},
                           {"zone": "Invented", "signal": "carbon_g_per_kwh", "time": "2030-01-01T00:00:00Z",
                            "value": 1.0}]}, "rows.1.zone", "unknown zone 'Invented'"),
])
def test_what_cannot_be_planned_is_refused_at_submission(store, client, path, body, field, words):
    r = client.post(f"{API}{path}", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and words in r.json()["detail"], r.json()
    assert store.list_jobs(SYSTEM)[0] == [] and store.grid_events(include_cancelled=True) == []
    assert store.signals_between("ZZ", "carbon_g_per_kwh", datetime(2029, 1, 1, tzinfo=UTC),
                                 datetime(2031, 1, 1, tzinfo=UTC)) == []


def test_a_rejected_event_is_shown_with_its_reason_and_a_new_revision_is_tried_again(store, client):
    now = datetime.now(UTC)
    good = submit(store)
    body = {**EVENT, "id": "dr-1", "start": (now + timedelta(minutes=30)).isoformat(),
            "end": (now + timedelta(hours=2)).isoformat()}
    assert client.post(f"{API}/events", json=body).status_code == 201
    rec = reconciler(store)
    real = loop_module.build_world

    def build_world(fleet, jobs, t0, slot_s, n_slots, events=(), *a, **kw):
        if any(e.limit_mw == 1.0 for e in events):
            raise OverflowError("this revision cannot be planned")
        return real(fleet, jobs, t0, slot_s, n_slots, events, *a, **kw)

    loop_module.build_world = build_world
    try:
        assert rec.tick()["actions"] == {"start": 1}
        (ev,) = client.get(f"{API}/events").json()
        assert ev["status"] == "rejected" and "OverflowError: this revision cannot be planned" in ev["rejected_reason"]
        assert rec.status()["last_quarantined"][0]["id"] == "dr-1" and rec.status()["quarantined"] == 1
        assert status(store, good)[0] == "running"
        r = client.post(f"{API}/events", json={**body, "limit_mw": 2.0})  # a changed body: revision 2
        assert r.status_code == 200 and r.json()["status"] == "active" and r.json()["revision"] == 2
        rec.tick()
        assert client.get(f"{API}/events").json()[0]["status"] == "active"  # planned with this time
    finally:
        loop_module.build_world = real


# ------------------------------------------------------------------------------------ the reconciler

@pytest.mark.parametrize("spec", [
    {"kind": "fine-tuning", "work_acc_h": 1.0, "gang_max": 2**31},
    {"kind": "fine-tuning", "work_acc_h": 1.0, "priority": 2**63},
    {"kind": "fine-tuning", "work_acc_h": 1e308},
    {"kind": "fine-tuning", "work_acc_h": 1e-320},
    {"kind": "fine-tuning", "work_acc_h": 1.0, "deadline": "9999-12-31T00:00:00Z"},
    {"kind": "warp-drive", "work_acc_h": 1.0},
    "not an object",
])
def test_a_bad_stored_job_is_quarantined_and_the_others_planned_in_the_same_pass(store, spec):
    good, bad = submit(store), submit(store)
    write_spec(store, bad, spec)
    rec = reconciler(store)
    summary = rec.tick()  # raised before: every tenant's planning stopped
    assert summary["actions"] == {"start": 1} and status(store, good)[0] == "running"
    st, reason = status(store, bad)
    assert st == "failed" and reason.startswith("quarantined: the stored job is not a valid job")
    history = store.job_history(SYSTEM, bad)
    assert history[-1].detail == {"quarantined": True} and history[-1].to_status == "failed"
    assert rec.status()["quarantined"] == 1 and rec.status()["last_error"] is None


def test_a_bad_stored_event_is_quarantined_and_planning_goes_on(store):
    good = submit(store)
    write_event(store, {"id": "raw", "kind": "limit", "sites": ["site-a"], "limit_mw": -5,
                        "start": "0001-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}, "raw")
    t = datetime.now(UTC)
    write_event(store, GridEvent(id="elsewhere", kind="limit", sites=["atlantis"], start=t,
                                 end=t + timedelta(hours=2), limit_mw=0.0).model_dump(mode="json"), "elsewhere")
    rec = reconciler(store)
    assert rec.tick()["actions"] == {"start": 1} and status(store, good)[0] == "running"
    got = {q["id"]: q["reason"] for q in rec.status()["last_quarantined"]}
    assert "not a valid event" in got["raw"] and "unknown site 'atlantis'" in got["elsewhere"]
    assert rec.tick()["plan"] in ("kept", "solved") and rec.status()["quarantined"] == 2  # not again


def test_bisection_finds_a_job_that_passes_every_check_but_fails_planning(store, monkeypatch):
    jobs = [submit(store, work_acc_h=float(i + 1)) for i in range(9)]
    poison = jobs[5]
    real = loop_module.build_world

    def build_world(fleet, jobs_, *a, **kw):
        if any(j.job_id == poison for j in jobs_):
            raise IndexError("index 2147483648 is out of bounds")
        return real(fleet, jobs_, *a, **kw)

    monkeypatch.setattr(loop_module, "build_world", build_world)
    rec = reconciler(store)
    summary = rec.tick()
    assert summary["actions"] == {"start": 8}
    st, reason = status(store, poison)
    assert st == "failed" and reason == ("quarantined: planning failed with it: IndexError: index 2147483648 is "
                                         "out of bounds")
    assert all(status(store, j)[0] == "running" for j in jobs if j != poison)


def test_a_running_job_that_breaks_planning_is_quarantined_and_stopped(store, monkeypatch):
    a, b = submit(store), submit(store)
    rec = reconciler(store)
    rec.tick()
    assert status(store, a)[0] == status(store, b)[0] == "running"
    real = loop_module.build_world
    monkeypatch.setattr(loop_module, "build_world", lambda fleet, jobs_, *x, **kw: (
        (_ for _ in ()).throw(ValueError("bad")) if any(j.job_id == a for j in jobs_) else real(fleet, jobs_, *x, **kw)))
    rec.notify("test")
    rec.tick()
    assert status(store, a) == ("failed", "quarantined: planning failed with it: ValueError: bad")
    assert [d.action for d in store.pending_dispatches(a)] == ["stop"]
    rec.tick()  # carries out the stop
    assert rec.executor.status(a).state == "failed" and rec.executor.status(b).state == "running"


def test_a_failure_of_the_service_itself_quarantines_nothing(store, monkeypatch):
    ids = [submit(store) for _ in range(3)]
    monkeypatch.setattr(loop_module, "build_world", lambda *a, **kw: (_ for _ in ()).throw(RuntimeError("no data")))
    rec = reconciler(store)
    with pytest.raises(RuntimeError, match="no data"):
        rec.tick()
    assert all(status(store, j) == ("queued", None) for j in ids)
    assert rec.status()["quarantined"] == 0 and "no data" in rec.status()["last_error"]


# ------------------------------------------------------------------------------------------- fuzzing

ODD = st.one_of(st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63), 10**30, 1e308, 1e-320, 5e-324, -0.0, math.inf,
                                 math.nan, "", "x" * 300, "\u202e", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z",
                                 None, True, [], {}, {"H100": 1e308}, {"": 0.0}]),
                st.integers(), st.floats(), st.text(max_size=20))
FIELDS = ["kind", "work_acc_h", "gang_min", "gang_max", "priority", "deadline", "throughput", "tier",
          "checkpoint_overhead_s", "restart_overhead_s", "data_move_gb", "interruptible", "migratable", "command",
          "unknown_field"]
VALID_ODD = st.fixed_dictionaries({}, optional={
    "work_acc_h": st.sampled_from([1e-6, 1e-3, 1e6, 1e10]),
    "gang_min": st.sampled_from([1, 16, 17, 10**6]),
    "gang_max": st.sampled_from([16, 17, 10**6]),
    "priority": st.sampled_from([-(10**9), 0, 10**9]),
    "deadline": st.sampled_from(["2099-12-31T23:00:00Z", "2026-01-01T00:00:00+14:00"]),
    "throughput": st.sampled_from([{"H100": 1e-9}, {"H100": 1000.0}, {"A100": 1.0}, {}]),
    "tier": st.integers(0, 3),
    "checkpoint_overhead_s": st.sampled_from([0.0, 7 * 86400.0]),
    "data_move_gb": st.sampled_from([0.0, 1e9]),
    "interruptible": st.booleans(),
    "kind": st.sampled_from(["pre-training", "fine-tuning", "batch-inference"]),
})


@pytest.fixture(scope="module")
def fuzz_store(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'state.db'}"
    upgrade(url)
    with Store(url) as s:
        yield s


def _planning_goes_on(store: Store, odd_ids: list[str], policy: str = "asap") -> None:
    """A pass with the odd rows beside a plain job: it does not fail, the plain job is in the plan (started
    or waiting, as the policy and the grid events decide), every odd row is planned or quarantined."""
    canary = submit(store, tenant="canary", priority=10**9)
    rec = reconciler(store, policy)
    try:
        rec.tick()  # must not raise
        assert rec.status()["last_error"] is None
        assert canary in {it.job_id for it in store.current_plan().items}
        for jid in odd_ids:  # planned (or waiting), or quarantined with the reason
            st_, reason = status(store, jid)
            assert st_ in ("queued", "planned", "running") or reason.startswith("quarantined: "), (st_, reason)
    finally:
        for j in store.list_jobs(SYSTEM, status=["queued", "planned", "running", "paused"], limit=1000)[0]:
            store.cancel_job(SYSTEM, j.id, "next case")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(rows=st.lists(st.dictionaries(st.sampled_from(FIELDS), ODD, max_size=4), min_size=1, max_size=3))
def test_random_rows_in_the_database_never_stop_planning_for_the_others(fuzz_store, rows):
    ids = []
    for patch in rows:
        jid = submit(fuzz_store)
        base = fuzz_store.get_job(SYSTEM, jid).spec
        try:
            write_spec(fuzz_store, jid, {**base, **patch})
        except (ValueError, TypeError, OverflowError):  # not storable as JSON (NaN is, as text): skip the row
            continue
        ids.append(jid)
    _planning_goes_on(fuzz_store, ids)


ODD_EVENT = st.fixed_dictionaries({
    "kind": st.sampled_from(["limit", "cut", "emergency", "price", "carbon"]),
    "start_s": st.sampled_from([-86400 * 30, -3600, 0, 1, 1800, 86400 * 365]),
    "length_s": st.sampled_from([1, 60, 3600, 86400 * 366]),
    "notice_s": st.sampled_from([0.0, 366 * 86400.0]),
    "value": st.sampled_from([0.0, 1e-9, 1.0, 1e5]),
    "zone": st.booleans(),
})


def odd_event(i: int, e: dict) -> GridEvent:
    now = datetime.now(UTC)
    start = now + timedelta(seconds=e["start_s"])
    body = {"id": f"odd-{i}", "kind": e["kind"], "start": start, "end": start + timedelta(seconds=e["length_s"]),
            "notice_s": e["notice_s"], **({"zone": "ZZ"} if e["zone"] else {"sites": ["site-a"]})}
    if e["kind"] == "limit":
        body["limit_mw"] = e["value"]
    elif e["kind"] in ("cut", "emergency"):
        body.update(cut_mw=max(e["value"], 1e-6), baseline_mw=1e5)
        if e["kind"] == "emergency":
            body["respond_within_s"] = 1.0
    elif e["kind"] == "price":
        body["price_usd_per_mwh"] = -1e6 if e["value"] == 0 else 1e6
    else:
        body["carbon_g_per_kwh"] = e["value"] * 0.1
    return GridEvent.model_validate(body)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(specs=st.lists(VALID_ODD, min_size=1, max_size=4), events=st.lists(ODD_EVENT, max_size=2),
       policy=st.sampled_from(["asap", "threshold", "mpc"]))
def test_random_valid_but_odd_jobs_and_events_never_stop_planning_for_the_others(fuzz_store, specs, events, policy):
    for e in fuzz_store.grid_events():
        fuzz_store.cancel_grid_event(e.id)
    for i, e in enumerate(events):
        try:
            fuzz_store.add_grid_event(odd_event(i, e), source="fuzz")
        except ValueError:  # refused by the event's own checks: allowed
            pass
    ids = []
    for spec in specs:
        spec = {"kind": "fine-tuning", "work_acc_h": 1.0, **spec}
        spec["gang_max"] = max(spec.get("gang_max", 1), spec.get("gang_min", 1))
        try:
            ids.append(fuzz_store.submit_job(SYSTEM, spec)[0].id)
        except Exception as e:  # noqa: BLE001 (refused at submission: that is allowed, with a field)
            assert type(e).__name__ == "InvalidSpec", e
    _planning_goes_on(fuzz_store, ids, policy)
