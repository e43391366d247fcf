"""The service state layer (gridshift.service.store) on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, inspect, select, text

from gridshift.errors import GridShiftError
from gridshift.model.events import GridEvent
from gridshift.model.workload import Job
from gridshift.service.db import (
    ConflictError,
    DatabaseUnavailable,
    StateError,
    current_revision,
    downgrade,
    head_revision,
    make_engine,
    upgrade,
)
from gridshift.service.store import (
    DISPATCHES,
    TOKENS,
    IllegalTransition,
    InvalidSpec,
    NotFound,
    PermissionDenied,
    Placement,
    PlanItem,
    Principal,
    SignalPoint,
    Store,
    VersionConflict,
    hash_secret,
)
from gridshift.service.tables import Base
from pgserver import PgServer, free_port, pg_server  # noqa: F401  (session fixture)

APP_TABLES = {"tokens", "jobs", "job_events", "dispatches", "signals", "grid_events", "services", "plans", "settings",
              "plan_items"}
SPEC = {"kind": "fine-tuning", "work_acc_h": 8.0, "gang_min": 1, "gang_max": 4, "tier": 2,
        "command": "python train.py --epochs 1"}
OPERATOR = Principal.system()
ALICE = Principal("tenant", "alice", None)
BOB = Principal("tenant", "bob", None)
PLACE = Placement("site-a", "H100", 2)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path) -> str:
    """URL of an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_server").create_database()


@pytest.fixture
def db_url(empty_url) -> str:
    upgrade(empty_url)
    return empty_url


@pytest.fixture
def store(db_url):
    with Store(db_url) as s:
        yield s


def _planned_then_started(store: Store, principal: Principal = ALICE, **kw):
    job, _ = store.submit_job(principal, SPEC, **kw)
    job = store.transition(job.id, "planned", "plan 1", expect_version=job.version, placement=PLACE)
    return store.record_dispatch_intent(job.id, "start", expect_version=job.version)


# ------------------------------------------------------------------------------------------- migrations


def test_migrations_up_down_up(empty_url):
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == head_revision()
        assert APP_TABLES <= set(inspect(engine).get_table_names())
        Store(engine=engine).check_schema()

        from alembic.autogenerate import compare_metadata
        from alembic.migration import MigrationContext

        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata) == []

        downgrade(empty_url, "base")
        assert current_revision(engine) is None
        assert not APP_TABLES & set(inspect(engine).get_table_names())

        upgrade(empty_url)
        assert current_revision(engine) == head_revision()
        with Store(engine=engine) as store:
            job, created = store.submit_job(ALICE, SPEC)
            assert created and store.get_job(ALICE, job.id).status == "queued"
    finally:
        engine.dispose()


def test_client_id_migration_down_and_up_keeps_the_jobs(empty_url):
    upgrade(empty_url)
    with Store(empty_url) as store:
        plain, _ = store.submit_job(ALICE, SPEC)
        named, _ = store.submit_job(ALICE, {**SPEC, "id": "train-1"})
    downgrade(empty_url, "0001")
    engine = make_engine(empty_url)
    try:
        assert current_revision(engine) == "0001"
        assert "client_id" not in {c["name"] for c in inspect(engine).get_columns("jobs")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM jobs")).scalar() == 2
    finally:
        engine.dispose()
    upgrade(empty_url)
    with Store(empty_url) as store:
        store.check_schema()
        assert store.get_job(ALICE, named.id).client_id is None  # the column's values went with it
        assert store.get_job(ALICE, plain.id).status == "queued"
        again, created = store.submit_job(ALICE, {**SPEC, "id": "train-1"})
        assert created and again.client_id == "train-1"
        with pytest.raises(ConflictError):
            store.submit_job(ALICE, {**SPEC, "id": "train-1"})


def test_unmigrated_database_is_a_clear_error(empty_url):
    with Store(empty_url) as store:
        with pytest.raises(StateError, match="no GridShift schema"):
            store.queue_stats()
        with pytest.raises(StateError, match="schema revision none"):
            store.check_schema()


def test_sqlite_runs_in_wal_mode(tmp_path):
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


# ------------------------------------------------------------------------------------------------- jobs


def test_submit_get_and_history(store):
    job, created = store.submit_job(ALICE, SPEC)
    assert created and job.status == "queued" and job.tenant == "alice" and job.version == 1
    got = store.get_job(ALICE, job.id)
    assert got == job
    assert got.submitted_at.tzinfo == UTC
    assert got.command == SPEC["command"]
    sim_job = got.to_job()
    assert isinstance(sim_job, Job)
    assert (sim_job.job_id, sim_job.tenant, sim_job.work_acc_h, sim_job.gang_max, sim_job.tier) == (
        job.id, "alice", 8.0, 4, 2)
    assert sim_job.arrival == job.submitted_at
    history = store.job_history(ALICE, job.id)
    assert [(e.from_status, e.to_status, e.reason) for e in history] == [(None, "queued", "submitted")]


def test_invalid_specs_are_refused(store):
    with pytest.raises(InvalidSpec, match="work_acc_h"):
        store.submit_job(ALICE, {**SPEC, "work_acc_h": -1})
    with pytest.raises(InvalidSpec, match="arrival"):
        store.submit_job(ALICE, {**SPEC, "arrival": "2030-01-01T00:00:00Z"})
    with pytest.raises(InvalidSpec, match="deadline must be after arrival"):
        store.submit_job(ALICE, {**SPEC, "deadline": "2001-01-01T00:00:00Z"})
    with pytest.raises(PermissionDenied):
        store.submit_job(Principal("grid"), SPEC)
    with pytest.raises(PermissionDenied):
        store.submit_job(ALICE, {**SPEC, "tenant": "bob"})
    assert store.queue_stats()["queued"] == 0


def test_idempotency_key_returns_first_job(store):
    first, created = store.submit_job(ALICE, SPEC, idempotency_key="k1")
    again, created_again = store.submit_job(ALICE, {**SPEC, "work_acc_h": 99.0}, idempotency_key="k1")
    assert created and not created_again
    assert again == first
    other, other_created = store.submit_job(BOB, SPEC, idempotency_key="k1")  # keys are per tenant
    assert other_created and other.id != first.id
    a, _ = store.submit_job(ALICE, SPEC)
    b, _ = store.submit_job(ALICE, SPEC)
    assert a.id != b.id
    assert store.queue_stats()["queued"] == 4


def test_concurrent_submissions_with_one_key_make_one_job(store):
    n = 8
    barrier = threading.Barrier(n)
    results, errors = [], []

    def submit() -> None:
        barrier.wait()
        try:
            results.append(store.submit_job(ALICE, SPEC, idempotency_key="same"))
        except Exception as exc:  # noqa: BLE001 (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    jobs, _ = store.list_jobs(OPERATOR)
    assert len(jobs) == 1


def test_tenant_isolation(store):
    job, _ = store.submit_job(ALICE, SPEC)
    for call in (lambda: store.get_job(BOB, job.id), lambda: store.cancel_job(BOB, job.id),
                 lambda: store.job_history(BOB, job.id), lambda: store.job_plan(BOB, job.id)):
        with pytest.raises(NotFound):
            call()
    assert store.list_jobs(BOB) == ([], None)
    assert store.get_job(ALICE, job.id).status == "queued"  # bob's cancel changed nothing
    bob_job, _ = store.submit_job(BOB, SPEC)
    assert {j.id for j in store.list_jobs(OPERATOR)[0]} == {job.id, bob_job.id}
    assert [j.id for j in store.list_jobs(ALICE)[0]] == [job.id]
    assert store.get_job(OPERATOR, job.id).id == job.id
    with pytest.raises(PermissionDenied):
        store.list_jobs(Principal("grid"))
    with pytest.raises(PermissionDenied):
        store.get_job(Principal("grid"), job.id)
    operator_job, _ = store.submit_job(OPERATOR, {**SPEC, "tenant": "bob"})
    assert operator_job.tenant == "bob"
    assert store.get_job(BOB, operator_job.id).id == operator_job.id


def test_list_jobs_pages_and_filters(store):
    ids = [store.submit_job(ALICE, SPEC)[0].id for _ in range(5)]
    store.transition(ids[0], "planned", "plan", expect_version=1, placement=PLACE)
    seen, cursor, pages = [], None, 0
    while True:
        page, cursor = store.list_jobs(ALICE, limit=2, cursor=cursor)
        seen += [j.id for j in page]
        pages += 1
        if cursor is None:
            break
    assert seen == ids and pages == 3
    assert [j.id for j in store.list_jobs(ALICE, status="planned")[0]] == [ids[0]]
    assert len(store.list_jobs(ALICE, status=["queued", "planned"])[0]) == 5
    with pytest.raises(InvalidSpec):
        store.list_jobs(ALICE, status="bogus")
    with pytest.raises(InvalidSpec):
        store.list_jobs(ALICE, cursor="not-a-cursor")


def test_deadlines_must_be_timezone_aware(store):
    for naive in ("2030-01-01T00:00:00", datetime(2030, 1, 1)):
        with pytest.raises(InvalidSpec, match="deadline must be timezone-aware UTC") as exc_info:
            store.submit_job(ALICE, {**SPEC, "deadline": naive})
        assert exc_info.value.field == "deadline"
    job, _ = store.submit_job(ALICE, {**SPEC, "deadline": "2030-01-01T02:00:00+02:00"})
    assert job.spec["deadline"] == "2030-01-01T00:00:00Z"  # an offset is fine; it is stored as UTC
    job, _ = store.submit_job(ALICE, {**SPEC, "deadline": datetime(2030, 1, 1, 5, tzinfo=UTC)})
    assert store.get_job(ALICE, job.id).to_job().deadline == datetime(2030, 1, 1, 5, tzinfo=UTC)
    with pytest.raises(InvalidSpec, match="deadline"):
        store.submit_job(ALICE, {**SPEC, "deadline": "next tuesday"})
    assert store.queue_stats()["queued"] == 2


def test_client_job_ids_are_unique_per_tenant(store):
    job, created = store.submit_job(ALICE, {**SPEC, "id": "train-42"})
    assert created and job.client_id == "train-42" and job.id != "train-42"
    assert "id" not in job.spec
    assert store.get_job(ALICE, job.id) == job
    # a tenant names its job by its own id on every job call
    assert store.get_job(ALICE, "train-42") == job
    assert [e.to_status for e in store.job_history(ALICE, "train-42")] == ["queued"]
    assert store.job_plan(ALICE, "train-42") == []
    with pytest.raises(ConflictError, match="tenant 'alice' already has a job with id 'train-42'") as exc_info:
        store.submit_job(ALICE, {**SPEC, "id": "train-42", "work_acc_h": 2.0})
    assert exc_info.value.field == "id" and job.id in str(exc_info.value)
    # the same Idempotency-Key is a resubmission, not a conflict
    keyed, _ = store.submit_job(ALICE, {**SPEC, "id": "keyed"}, idempotency_key="k")
    again, created = store.submit_job(ALICE, {**SPEC, "id": "keyed"}, idempotency_key="k")
    assert again == keyed and not created
    with pytest.raises(ConflictError, match="id 'keyed'"):
        store.submit_job(ALICE, {**SPEC, "id": "keyed"}, idempotency_key="other")
    # another tenant may use the same id; neither sees the other's job by it
    bobs, created = store.submit_job(BOB, {**SPEC, "id": "train-42"})
    assert created and bobs.id != job.id
    assert store.get_job(BOB, "train-42").id == bobs.id and store.get_job(ALICE, "train-42").id == job.id
    # an operator finds a job by a client id only one tenant uses
    assert store.get_job(OPERATOR, "keyed").id == keyed.id
    with pytest.raises(ConflictError, match="used by several tenants"):
        store.get_job(OPERATOR, "train-42")
    with pytest.raises(NotFound):
        store.get_job(ALICE, "no-such-id")
    # the intent protocol takes only the service's ids
    with pytest.raises(NotFound):
        store.transition("keyed", "planned", "plan", expect_version=1, placement=PLACE)
    assert store.cancel_job(ALICE, "train-42").status == "cancelled"
    assert store.get_job(BOB, "train-42").status == "queued"
    for bad in ("", "has space", "-leading-dash", "x" * 129, "a/b", 42):
        with pytest.raises(InvalidSpec) as exc_info:
            store.submit_job(ALICE, {**SPEC, "id": bad})
        assert exc_info.value.field == "id"
    assert (store.queue_stats()["queued"], store.queue_stats()["cancelled"]) == (2, 1)  # nothing else was written


def test_list_jobs_by_tenant(store):
    alice = [store.submit_job(ALICE, SPEC)[0].id for _ in range(3)]
    bob = [store.submit_job(BOB, SPEC)[0].id for _ in range(2)]
    store.submit_job(OPERATOR, {**SPEC, "tenant": "carol"})
    assert [j.id for j in store.list_jobs(OPERATOR, tenant="alice")[0]] == alice
    assert [j.id for j in store.list_jobs(OPERATOR, tenant="bob", status="queued")[0]] == bob
    assert store.list_jobs(OPERATOR, tenant="nobody") == ([], None)
    seen, cursor = [], None
    while True:
        page, cursor = store.list_jobs(OPERATOR, tenant="alice", limit=2, cursor=cursor)
        seen += [j.id for j in page]
        if cursor is None:
            break
    assert seen == alice
    assert [j.id for j in store.list_jobs(ALICE, tenant="alice")[0]] == alice
    with pytest.raises(PermissionDenied, match="only its own"):
        store.list_jobs(ALICE, tenant="bob")


def test_pool_timeout_is_database_unavailable(db_url):
    store = Store(engine=make_engine(db_url, pool_size=1, max_overflow=0, pool_timeout_s=0.2))
    try:
        job, _ = store.submit_job(ALICE, SPEC)
        held = store.engine.connect()  # the pool's only connection
        try:
            with pytest.raises(DatabaseUnavailable, match="busy: no connection free in the pool") as exc_info:
                store.get_job(ALICE, job.id)
            assert "\n" not in str(exc_info.value)
        finally:
            held.close()
        assert store.get_job(ALICE, job.id) == job
    finally:
        store.close()


def test_pool_keeps_its_connections(db_url):
    """The default pool holds 15 connections and keeps them: no connection is opened per burst."""
    store = Store(db_url)
    try:
        assert (store.engine.pool.size(), store.engine.pool._max_overflow) == (15, 0)
        opened = []
        from sqlalchemy import event

        event.listen(store.engine, "connect", lambda *a: opened.append(1))
        barrier = threading.Barrier(8)

        def burst(i: int) -> None:
            barrier.wait()
            for k in range(5):
                store.submit_job(ALICE, SPEC, f"burst-{i}-{k}")

        for _ in range(2):
            threads = [threading.Thread(target=burst, args=(i,)) for i in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            barrier.reset()
        assert len(opened) <= 8
        assert len(store.list_jobs(ALICE, limit=1000)[0]) == 8 * 5
    finally:
        store.close()


def test_failed_write_releases_the_write_lock(store):
    """A write transaction that fails (here a conflict) leaves the next writer free to go."""
    job, _ = store.submit_job(ALICE, {**SPEC, "id": "once"})
    with pytest.raises(ConflictError):
        store.submit_job(ALICE, {**SPEC, "id": "once"})
    done = []
    t = threading.Thread(target=lambda: done.append(store.submit_job(ALICE, SPEC)[1]))
    t.start()
    t.join(10)
    assert done == [True]


def test_postgres_connections_closed_by_the_server_are_replaced(pg_server):  # noqa: F811 (the fixture)
    """A pooled connection the server closed (a terminated backend) is pinged and replaced before use (the
    ping's round trip is skipped only while the connection's socket is quiet)."""
    db_url = pg_server.create_database()
    upgrade(db_url)
    store = Store(engine=make_engine(db_url, pool_size=2, max_overflow=0))
    try:
        first, _ = store.submit_job(ALICE, SPEC, "before")
        others = "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        admin = make_engine(db_url, pool_size=1)
        try:
            with admin.connect() as conn:
                conn.execute(text(f"SELECT pg_terminate_backend(pid) {others}"))
                deadline = time.monotonic() + 10
                while conn.execute(text(f"SELECT count(*) {others}")).scalar() and time.monotonic() < deadline:
                    time.sleep(0.05)  # until the backends have exited (and closed their sockets)
                    conn.rollback()
        finally:
            admin.dispose()
        second, created = store.submit_job(ALICE, SPEC, "after")
        assert created and store.get_job(ALICE, second.id).status == "queued"
        assert [(e.to_status, e.reason) for e in store.job_history(ALICE, second.id)] == [("queued", "submitted")]
    finally:
        store.close()


def test_settings_are_stored_and_replaced(store):
    assert store.get_setting("policy") is None
    store.put_setting("policy", {"name": "mpc", "params": {"forecast": "persistence"}}, actor="token abc")
    assert store.get_setting("policy") == {"name": "mpc", "params": {"forecast": "persistence"}}
    store.put_setting("policy", {"name": "threshold", "params": {}})
    assert store.get_setting("policy") == {"name": "threshold", "params": {}}
    assert store.get_setting("other") is None



def test_first_writes_of_a_setting_do_not_race(db_url):
    """Several stores writing the same new keys at once: every write succeeds (one upsert, no update-then-insert
    race on the first write) and each key holds one writer's value."""
    stores = [Store(db_url) for _ in range(4)]
    keys = [f"key{i}" for i in range(15)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def write(n: int, s: Store) -> None:
        try:
            for k in keys:
                barrier.wait(timeout=60)
                s.put_setting(k, {"writer": n}, actor=f"writer {n}")
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(n, s)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        for k in keys:
            assert stores[0].get_setting(k)["writer"] in range(len(stores))
        stores[1].put_setting(keys[0], {"writer": "last"})  # an existing key: replaced (the conflict path)
        assert stores[2].get_setting(keys[0]) == {"writer": "last"}
    finally:
        for s in stores:
            s.close()

def test_cancel(store):
    queued, _ = store.submit_job(ALICE, SPEC)
    cancelled = store.cancel_job(ALICE, queued.id, "no longer needed")
    assert cancelled.status == "cancelled" and store.pending_dispatches(queued.id) == []
    assert store.cancel_job(ALICE, queued.id) == cancelled  # cancelling twice is a no-op

    running, _ = _planned_then_started(store)
    store.complete_dispatch(store.pending_dispatches(running.id)[0].id, executor_ref="pid:1")
    store.cancel_job(ALICE, running.id)
    (stop,) = store.pending_dispatches(running.id)
    assert stop.action == "stop" and stop.args == {"reason": "cancelled"}

    done, _ = _planned_then_started(store)
    done = store.transition(done.id, "succeeded", "exit 0", expect_version=done.version)
    with pytest.raises(IllegalTransition, match="from succeeded to cancelled"):
        store.cancel_job(ALICE, done.id)


def test_transitions_and_versions(store):
    job, _ = store.submit_job(ALICE, SPEC)
    with pytest.raises(IllegalTransition, match="cannot go from queued to paused"):
        store.transition(job.id, "paused", "x", expect_version=job.version)
    with pytest.raises(InvalidSpec, match="unknown status"):
        store.transition(job.id, "sleeping", "x", expect_version=job.version)
    planned = store.transition(job.id, "planned", "plan 7", expect_version=job.version, placement=PLACE,
                               detail={"plan_id": 7})
    assert planned.version == job.version + 1 and planned.placement == PLACE
    with pytest.raises(VersionConflict, match="version"):
        store.transition(job.id, "running", "stale", expect_version=job.version)
    running = store.transition(job.id, "running", "go", expect_version=planned.version)
    assert running.placement == PLACE  # kept from the plan
    done = store.transition(job.id, "succeeded", "exit 0", expect_version=running.version)
    for to in ("running", "queued", "cancelled"):
        with pytest.raises(IllegalTransition):
            store.transition(job.id, to, "again", expect_version=done.version)
    assert store.get_job(ALICE, job.id) == done
    history = store.job_history(ALICE, job.id)
    assert [e.to_status for e in history] == ["queued", "planned", "running", "succeeded"]
    assert history[1].detail == {"plan_id": 7}
    assert all(e.at.tzinfo == UTC for e in history)
    with pytest.raises(NotFound):
        store.transition("no-such-job", "planned", "x", expect_version=None)


def test_actions_need_the_right_status(store):
    job, _ = store.submit_job(ALICE, SPEC)
    with pytest.raises(InvalidSpec, match="needs a placement"):
        store.record_dispatch_intent(job.id, "start", expect_version=job.version)
    with pytest.raises(IllegalTransition, match="cannot pause"):
        store.record_dispatch_intent(job.id, "pause", expect_version=job.version)
    job, start = store.record_dispatch_intent(job.id, "start", expect_version=job.version, placement=PLACE)
    assert job.status == "running" and start.attempt == 1 and start.job_version == job.version
    with pytest.raises(InvalidSpec, match="power_cap_frac"):
        store.record_dispatch_intent(job.id, "set_power_cap", expect_version=job.version)
    job, cap = store.record_dispatch_intent(job.id, "set_power_cap", expect_version=job.version,
                                            args={"power_cap_frac": 0.7}, reason="grid event e1")
    assert job.status == "running" and job.placement.power_cap_frac == 0.7 and cap.args == {"power_cap_frac": 0.7}
    job, pause = store.record_dispatch_intent(job.id, "pause", expect_version=job.version)
    job, resume = store.record_dispatch_intent(job.id, "resume", expect_version=job.version,
                                               placement=Placement("site-b", "H100", 2))
    assert job.status == "running" and job.placement.site == "site-b"
    # Preempted without a checkpoint and started again: a new attempt, so the executor starts it anew.
    job, stop = store.record_dispatch_intent(job.id, "stop", expect_version=job.version, to_status="queued")
    assert job.status == "queued" and job.placement is None and stop.attempt == 1
    job, restart = store.record_dispatch_intent(job.id, "start", expect_version=job.version, placement=PLACE)
    assert restart.attempt == 2 and job.attempts == 2
    assert [(d.action, d.attempt) for d in store.dispatches(job.id)] == [
        ("start", 1), ("set_power_cap", 1), ("pause", 1), ("resume", 1), ("stop", 1), ("start", 2)]
    assert len({d.key for d in store.dispatches(job.id)}) == 6
    assert [e.reason for e in store.job_history(ALICE, job.id)][2:5] == ["grid event e1", "pause", "resume"]


# ------------------------------------------------------------------------------------ dispatch intents


def test_dispatch_intents_survive_a_restart(db_url):
    with Store(db_url) as first:
        job, intent = _planned_then_started(first)
        assert intent.state == "pending" and intent.action == "start"
    # A new process (same database): the intent is still pending, once.
    with Store(db_url) as second:
        (pending,) = second.pending_dispatches()
        assert pending == intent
        assert second.get_job(OPERATOR, job.id).status == "running"
        with pytest.raises(VersionConflict):  # a stale reconciler cannot log the start again
            second.record_dispatch_intent(job.id, "start", expect_version=job.version - 1)
        with pytest.raises(IllegalTransition):  # nor can a fresh one: the job is already running
            second.record_dispatch_intent(job.id, "start", expect_version=job.version)
        done = second.complete_dispatch(pending.id, executor_ref="pid:4242")
        assert done.state == "done" and done.executor_ref == "pid:4242" and done.completed_at is not None
        assert second.complete_dispatch(pending.id, executor_ref="pid:4242") == done  # same answer: no-op
        with pytest.raises(ConflictError):
            second.complete_dispatch(pending.id, error="late failure")
        assert second.pending_dispatches() == []
        assert [d.action for d in second.dispatches(job.id)] == ["start"]
        # The database itself refuses a second row for the same job version or a second start of attempt 1.
        for version in (intent.job_version, intent.job_version + 100):
            with second.engine.begin() as conn, pytest.raises(Exception) as exc_info:
                conn.execute(insert(DISPATCHES), {"job_id": job.id, "action": "start", "attempt": 1,
                                                  "job_version": version, "state": "pending",
                                                  "created_at": datetime.now(UTC)})
            assert "unique" in str(exc_info.value).lower()


CRASH_SCRIPT = textwrap.dedent("""
    import json, os, signal, sys
    from gridshift.service.store import Placement, Principal, Store
    store = Store(sys.argv[1])
    tenant = Principal("tenant", "alice", None)
    job, _ = store.submit_job(tenant, {"kind": "pre-training", "work_acc_h": 100.0}, idempotency_key="crash-1")
    job = store.transition(job.id, "planned", "plan", expect_version=job.version,
                           placement=Placement("site-a", "H100", 8))
    job, intent = store.record_dispatch_intent(job.id, "start", expect_version=job.version)
    print(json.dumps({"job": job.id, "dispatch": intent.id}), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # dies between the intent and the executor call
""")


def test_kill_9_between_intent_and_executor(db_url):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", CRASH_SCRIPT, db_url], capture_output=True, text=True, env=env)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ids = json.loads(proc.stdout.strip().splitlines()[-1])
    with Store(db_url) as store:
        job = store.get_job(OPERATOR, ids["job"])
        assert job.status == "running"  # not lost
        (pending,) = store.pending_dispatches()
        assert (pending.id, pending.job_id, pending.action, pending.attempt) == (ids["dispatch"], job.id, "start", 1)
        again, created = store.submit_job(ALICE, {"kind": "pre-training", "work_acc_h": 100.0},
                                          idempotency_key="crash-1")
        assert not created and again.id == job.id
        # Recovery: the executor reports it never saw the key, so the same intent is carried out once.
        store.complete_dispatch(pending.id, executor_ref=f"local:{pending.key}")
        assert store.pending_dispatches() == [] and len(store.dispatches(job.id)) == 1


def test_retry_with_backoff_then_failed(store):
    job, _ = store.submit_job(ALICE, SPEC, max_attempts=3)
    delays = []
    for attempt in (1, 2):
        job, intent = store.record_dispatch_intent(job.id, "start", expect_version=job.version, placement=PLACE)
        assert intent.attempt == attempt
        assert store.mark_attempt_failed(job.id, f"exit code {attempt}\nstack", backoff_s=30.0) is True
        job = store.get_job(ALICE, job.id)
        assert job.status == "queued" and job.attempts == attempt and job.placement is None
        assert job.failure_reason == f"exit code {attempt} stack"
        assert job.next_attempt_at is not None and job.next_attempt_at > job.submitted_at
        delays.append(store.job_history(ALICE, job.id)[-1].detail["backoff_s"])
    assert delays == [30.0, 60.0]
    job, intent = store.record_dispatch_intent(job.id, "start", expect_version=job.version, placement=PLACE)
    assert intent.attempt == 3
    assert store.mark_attempt_failed(job.id, "out of memory", backoff_s=30.0) is False
    job = store.get_job(ALICE, job.id)
    assert job.status == "failed" and job.attempts == 3 and job.next_attempt_at is None
    assert job.failure_reason == "failed after 3 attempts: out of memory"
    assert store.job_history(ALICE, job.id)[-1].reason == job.failure_reason
    with pytest.raises(IllegalTransition):
        store.mark_attempt_failed(job.id, "again")


# ----------------------------------------------------------------------------------------------- tokens


def test_tokens_are_stored_hashed(store):
    token_id, secret = store.create_token("alice ci", "tenant", "alice")
    op_id, op_secret = store.create_token("ops", "operator")
    assert secret.startswith("gs_") and secret != op_secret
    assert store.authenticate(secret) == Principal("tenant", "alice", token_id)
    assert store.authenticate(op_secret) == Principal("operator", None, op_id)
    with store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(TOKENS)).mappings()]
    dump = json.dumps(rows, default=str)
    assert secret not in dump and secret.split("_", 2)[2] not in dump
    assert {r["token_hash"] for r in rows} == {hash_secret(secret), hash_secret(op_secret)}
    assert store.authenticate(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert store.authenticate("gs_nosuchid_xxx") is None and store.authenticate("garbage") is None
    assert store.revoke_token(token_id) is True and store.revoke_token(token_id) is False
    assert store.authenticate(secret) is None
    assert {t.id for t in store.list_tokens()} == {token_id, op_id}
    with pytest.raises(InvalidSpec):
        store.create_token("no tenant", "tenant")
    with pytest.raises(InvalidSpec):
        store.create_token("bad role", "admin")


# ---------------------------------------------------------------------------------- signals and events


def test_signals_upsert(store):
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [SignalPoint("DE", "carbon_g_per_kwh", t0 + timedelta(hours=h), 300.0 + h, "electricitymaps")
            for h in range(3)]
    assert store.upsert_signals(rows) == 3
    cet = timezone(timedelta(hours=1))
    store.upsert_signals([{"zone": "DE", "signal": "carbon_g_per_kwh", "at": (t0 + timedelta(hours=1)).astimezone(cet),
                           "value": 111.0, "source": "revised"},
                          {"zone": "DE", "signal": "carbon_g_per_kwh", "at": datetime(2030, 1, 1, 3),  # naive = UTC
                           "value": 303.0, "source": "electricitymaps"}])
    got = store.signals_between("DE", "carbon_g_per_kwh", t0, t0 + timedelta(hours=4))
    assert [(p.at, p.value, p.source) for p in got] == [
        (t0, 300.0, "electricitymaps"), (t0 + timedelta(hours=1), 111.0, "revised"),
        (t0 + timedelta(hours=2), 302.0, "electricitymaps"), (t0 + timedelta(hours=3), 303.0, "electricitymaps")]
    assert all(p.at.tzinfo == UTC for p in got)
    assert store.signals_between("DE", "carbon_g_per_kwh", t0 + timedelta(hours=1), t0 + timedelta(hours=2))[0].value == 111
    assert store.signals_between("FR", "carbon_g_per_kwh", t0, t0 + timedelta(hours=4)) == []
    with pytest.raises(InvalidSpec):
        store.upsert_signals([{"zone": "DE", "signal": "x", "at": t0, "value": float("nan")}])


def test_grid_events(store):
    t0 = datetime(2030, 6, 1, 12, tzinfo=UTC)
    ev = GridEvent(id="e1", kind="limit", sites=["site-a"], start=t0, end=t0 + timedelta(hours=2), limit_mw=5.0)
    row, created = store.add_grid_event(ev, "openadr:vtn-1")
    assert created and row.event == ev and row.revision == 1 and row.status == "active"
    row, created = store.add_grid_event(ev, "openadr:vtn-1")
    assert not created and row.revision == 1
    changed = ev.model_copy(update={"limit_mw": 3.0})
    row, created = store.add_grid_event(changed, "openadr:vtn-1")
    assert not created and row.revision == 2 and row.event.limit_mw == 3.0
    later = GridEvent(id="e2", kind="carbon", zone="DE", start=t0 + timedelta(hours=5), end=t0 + timedelta(hours=6),
                      carbon_g_per_kwh=500.0)
    store.add_grid_event(later, "operator")
    assert [r.id for r in store.grid_events(active_at=t0 + timedelta(hours=1))] == ["e1"]
    assert [r.id for r in store.grid_events(active_at=t0 + timedelta(hours=2))] == []
    assert [r.id for r in store.grid_events(end_after=t0 + timedelta(hours=3))] == ["e2"]
    assert [r.id for r in store.grid_events()] == ["e1", "e2"]
    assert store.cancel_grid_event("e1").status == "cancelled"
    assert [r.id for r in store.grid_events(active_at=t0 + timedelta(hours=1))] == []
    assert [r.id for r in store.grid_events(include_cancelled=True)] == ["e1", "e2"]
    with pytest.raises(NotFound):
        store.cancel_grid_event("nope")


# -------------------------------------------------------------------------------------- plans, services


def test_plans(store):
    a, _ = store.submit_job(ALICE, SPEC)
    b, _ = store.submit_job(BOB, SPEC)
    t = datetime(2030, 1, 1, 6, tzinfo=UTC)
    store.save_plan("greedy", [PlanItem(a.id, "site-a", "H100", 2, t, 1.0, {"reason": "old"})], {"n": 1})
    plan = store.save_plan("lp", [PlanItem(a.id, "site-b", "H100", 4, t, 0.8, {"reason": "low carbon at 06:00"}),
                                  {"job_id": b.id, "why": {"reason": "waits for capacity"}}],
                           {"objective": 12.5}, horizon_s=86400.0)
    current = store.current_plan()
    assert current == plan and current.policy == "lp" and current.horizon_s == 86400.0
    (item,) = store.job_plan(ALICE, a.id)
    assert item.site == "site-b" and item.why == {"reason": "low carbon at 06:00"} and item.start_at == t
    with pytest.raises(NotFound):
        store.job_plan(ALICE, b.id)
    for i in range(4):
        store.save_plan("lp", [], {"i": i}, keep=2)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM plans")).scalar() == 2
        assert conn.execute(text("SELECT count(*) FROM plan_items")).scalar() == 0
    assert store.current_plan().summary == {"i": 3}


def test_services(store):
    spec = {"name": "chat", "latency_slo_ms": 80.0,
            "profiles": {"H100": {"requests_per_s_per_accelerator": 20.0, "power_w_per_accelerator": 700.0}},
            "demand": {"peak_requests_per_s": {"us-west2": 100.0}}}
    row = store.put_service(ALICE, spec, {"site-a": {"H100": 3}})
    assert row.tenant == "alice" and row.replica_targets == {"site-a": {"H100": 3}} and row.version == 1
    with pytest.raises(NotFound):
        store.get_service(BOB, "chat")
    with pytest.raises(PermissionDenied):
        store.put_service(BOB, spec)
    assert [s.name for s in store.list_services(OPERATOR)] == ["chat"] and store.list_services(BOB) == []
    row = store.set_replica_targets("chat", {"site-a": {"H100": 1}, "site-b": {"H100": 2}}, expect_version=1)
    assert row.version == 2 and store.get_service(ALICE, "chat").replica_targets["site-b"] == {"H100": 2}
    with pytest.raises(VersionConflict):
        store.set_replica_targets("chat", {}, expect_version=1)
    with pytest.raises(InvalidSpec):
        store.set_replica_targets("chat", {"site-a": {"H100": -1}})
    with pytest.raises(InvalidSpec, match="latency_slo_ms"):
        store.put_service(ALICE, {**spec, "latency_slo_ms": 0})
    assert store.delete_service(BOB, "chat") is False and store.delete_service(ALICE, "chat") is True


def test_queue_stats(store):
    for _ in range(3):
        store.submit_job(ALICE, SPEC)
    job, _ = _planned_then_started(store)
    store.cancel_job(ALICE, store.list_jobs(ALICE, status="queued")[0][0].id)
    stats = store.queue_stats()
    assert stats == {"queued": 2, "planned": 0, "running": 1, "paused": 0, "succeeded": 0, "failed": 0,
                     "cancelled": 1}


# ------------------------------------------------------------------------------------------ reliability


def _closed_port() -> int:
    port = free_port()
    with socket.socket() as s:  # nothing listens there once free_port() closed it
        assert s.connect_ex(("127.0.0.1", port)) != 0
    return port


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_unreachable_database_is_one_clear_line(backend, tmp_path):
    if backend == "sqlite":
        url, shown = f"sqlite:///{tmp_path}/missing-dir/state.db", "missing-dir/state.db"
    else:
        port = _closed_port()
        url, shown = f"postgresql://gs:s3cret@127.0.0.1:{port}/gridshift", f"gs:***@127.0.0.1:{port}/gridshift"
    for call in (lambda: Store(url).queue_stats(), lambda: upgrade(url)):
        with pytest.raises(DatabaseUnavailable) as exc_info:
            call()
        message = str(exc_info.value)
        assert isinstance(exc_info.value, GridShiftError)
        assert "\n" not in message and "s3cret" not in message and shown in message
        assert ("unable to open" if backend == "sqlite" else "refused") in message.lower()


def test_database_goes_away_and_returns(request):
    server = request.getfixturevalue("pg_server")
    if not isinstance(server, PgServer):
        pytest.skip("needs the throwaway server (it is stopped and started)")
    url = server.create_database()
    upgrade(url)
    with Store(url) as store:
        job, _ = store.submit_job(ALICE, SPEC)
        server.stop()
        try:
            with pytest.raises(DatabaseUnavailable) as exc_info:
                store.get_job(ALICE, job.id)
            assert "\n" not in str(exc_info.value) and "unavailable" in str(exc_info.value)
        finally:
            server.start()
        assert store.get_job(ALICE, job.id) == job  # pooled connections were replaced
