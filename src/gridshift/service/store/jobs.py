"""Jobs: submission (validated against :class:`~gridshift.model.workload.Job`), scoped reads, paginated
lists, status changes with their history, and failed attempts with back-off."""

from __future__ import annotations

import base64
import functools
import json
import re
import shlex
import uuid
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, and_, func, insert, or_, select, update

from gridshift.model.workload import Job
from gridshift.service.db import ConflictError, translate_errors
from gridshift.service.store.base import (
    EVENTS,
    JOBS,
    IllegalTransition,
    InvalidSpec,
    NotFound,
    PermissionDenied,
    StoreBase,
    VersionConflict,
    _utc,
    _validation_error,
    utcnow,
)
from gridshift.service.store.rows import (
    JobEvent,
    JobRow,
    Placement,
    Principal,
    _event,
    _job,
    _job_values,
    _transition_values,
)
from gridshift.service.tables import JOB_STATUSES

MAX_LIST_LIMIT = 1000
MAX_ACTIVE_READ = 5000  # running and paused jobs one overview reads at most
DEFAULT_MAX_ATTEMPTS = 3

# Allowed status changes (planned -> planned re-places a job under a new plan).
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"planned", "running", "cancelled", "failed"}),
    "planned": frozenset({"queued", "planned", "running", "cancelled", "failed"}),
    "running": frozenset({"paused", "succeeded", "failed", "cancelled", "queued"}),
    "paused": frozenset({"running", "queued", "planned", "cancelled", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}


def clean_job_spec(spec: Mapping[str, Any], tenant: str, now: datetime) -> dict[str, Any]:
    """Validate a submitted job against :class:`~gridshift.model.workload.Job` and return the stored spec."""
    if not isinstance(spec, Mapping):
        raise InvalidSpec(f"job spec must be an object, got {type(spec).__name__}")
    data = dict(spec)
    for name in ("job_id", "arrival"):
        if name in data:
            raise InvalidSpec("job spec: set by the service, leave it out", field=name)
    data.pop("id", None)  # the client's id: checked by client_job_id
    if data.get("deadline") is not None:
        data["deadline"] = aware_utc(data["deadline"], "deadline")
    command = data.pop("command", None)
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise InvalidSpec("job spec: command must be a non-empty string", field="command")
    if command is not None:
        check_command(command)
    data.pop("tenant", None)
    try:
        job = Job.model_validate({**data, "job_id": "new", "tenant": tenant, "arrival": now})
    except ValidationError as exc:
        raise _validation_error("job spec", exc) from None
    out = job.model_dump(mode="json", exclude={"job_id", "tenant", "arrival"})
    if command is not None:
        out["command"] = command
    return out


def check_command(command: str) -> list[str]:
    """The command's argv as the executor will split it (shell-style), else InvalidSpec naming ``command``:
    a command that cannot be parsed is refused when it is submitted, not when it is started."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise InvalidSpec(f"job spec: command cannot be parsed as shell words: {exc}", field="command") from None
    if not argv or not argv[0]:
        raise InvalidSpec("job spec: command names no program", field="command")
    return argv


def aware_utc(value: Any, field: str) -> Any:
    """``value`` (a datetime or an ISO 8601 string) as a timezone-aware UTC datetime. A time without a zone
    is refused (InvalidSpec naming ``field``): the deadline of a job is an instant, not a wall-clock time.
    Anything else is passed on for the model to refuse."""
    t = value
    if isinstance(value, str):
        try:
            t = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if not isinstance(t, datetime):
        return value
    if t.tzinfo is None or t.utcoffset() is None:
        raise InvalidSpec(f"job spec: {field} must be timezone-aware UTC: give it with 'Z' or an offset, "
                          f"e.g. {t.replace(microsecond=0).isoformat()}Z", field=field)
    return t.astimezone(UTC)


CLIENT_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def client_job_id(spec: Mapping[str, Any]) -> str | None:
    """The client's own id in a submission (``spec["id"]``), checked; None if it gave none."""
    value = spec.get("id")
    if value is None:
        return None
    if not isinstance(value, str) or not CLIENT_JOB_ID.fullmatch(value):
        raise InvalidSpec("job spec: id must be 1 to 128 characters: letters, digits and . _ : - (starting with a "
                          "letter or digit)", field="id")
    return value


def _encode_cursor(at: datetime, job_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([at.isoformat(), job_id]).encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return _utc(datetime.fromisoformat(at), "cursor"), str(job_id)
    except (ValueError, TypeError) as exc:
        raise InvalidSpec(f"invalid cursor: {exc}", field="cursor") from None


_JOB_COLUMNS = ("id", "tenant", "status", "spec", "idempotency_key", "submitted_at", "updated_at", "site",
                "accelerator", "gang", "power_cap_frac", "attempts", "max_attempts", "next_attempt_at",
                "failure_reason", "version", "client_id")
_EVENT_COLUMNS = ("job_id", "at", "from_status", "to_status", "reason", "actor", "detail")


@functools.cache
def _submit_statement():  # noqa: ANN202
    """``WITH ev AS (INSERT INTO job_events …) INSERT INTO jobs …``: a job and its first event in one
    statement (PostgreSQL; the event's foreign key is checked at the end of the statement). Parameters:
    ``j_<column>`` for the job, ``e_<column>`` for the event (no parameter may be named like a column)."""
    from sqlalchemy import bindparam

    ev = insert(EVENTS).values({c: bindparam(f"e_{c}", type_=EVENTS.c[c].type) for c in _EVENT_COLUMNS})
    return (insert(JOBS).values({c: bindparam(f"j_{c}", type_=JOBS.c[c].type) for c in _JOB_COLUMNS})
            .add_cte(ev.cte("first_event")))


class JobStore(StoreBase):
    """Jobs, scoped by :class:`Principal`: a tenant sees and changes only its own."""

    @staticmethod
    def _scope(principal: Principal):  # noqa: ANN205
        if principal.role == "operator":
            return None
        if principal.role == "tenant":
            return JOBS.c.tenant == principal.tenant
        raise PermissionDenied(f"role '{principal.role}' cannot read or change jobs")

    def _select_job(self, conn: Connection, principal: Principal, job_id: str, *, lock: bool,
                    by_client_id: bool = True) -> JobRow:
        """The job with id ``job_id`` the principal may see; failing that (``by_client_id``), the one with
        that client id: the tenant's own, or for an operator the only one (ConflictError if tenants share
        it)."""
        scope = self._scope(principal)
        for column in (JOBS.c.id, JOBS.c.client_id):
            q = select(JOBS).where(column == job_id)
            if scope is not None:
                q = q.where(scope)
            if lock:
                q = q.with_for_update()
            rows = conn.execute(q.limit(2)).mappings().all()
            if len(rows) == 1:
                return _job(rows[0])
            if len(rows) > 1:
                tenants = ", ".join(sorted(r["tenant"] for r in rows))
                raise ConflictError(f"job id '{job_id}' is used by several tenants ({tenants}); use the job's "
                                    "UUID or a tenant token")
            if not by_client_id or not CLIENT_JOB_ID.fullmatch(job_id):
                break
        raise NotFound(f"no job '{job_id}'")

    def submit_job(self, principal: Principal, spec: Mapping[str, Any], idempotency_key: str | None = None,
                   *, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> tuple[JobRow, bool]:
        """Queue a job; returns (job, created). Resubmitting with an idempotency key the tenant already used
        returns the first job and ``created=False`` (also when submissions race)."""
        if not isinstance(spec, Mapping):
            raise InvalidSpec(f"job spec must be an object, got {type(spec).__name__}")
        if principal.role == "tenant":
            tenant = principal.tenant
            if spec.get("tenant") not in (None, tenant):
                raise PermissionDenied(f"tenant '{tenant}' cannot submit jobs for tenant '{spec.get('tenant')}'")
        elif principal.role == "operator":
            tenant = str(spec.get("tenant") or "default")
        else:
            raise PermissionDenied(f"role '{principal.role}' cannot submit jobs")
        if idempotency_key is not None and not (0 < len(idempotency_key) <= 200):
            raise InvalidSpec("idempotency key must be 1 to 200 characters", field="idempotency_key")
        if max_attempts < 1:
            raise InvalidSpec("max_attempts must be >= 1", field="max_attempts")
        client_id = client_job_id(spec)
        now = utcnow()
        values = {"id": str(uuid.uuid4()), "tenant": tenant, "status": "queued",
                  "spec": clean_job_spec(spec, tenant, now), "idempotency_key": idempotency_key,
                  "submitted_at": now, "updated_at": now, "site": None, "accelerator": None, "gang": None,
                  "power_cap_frac": None, "attempts": 0, "max_attempts": max_attempts, "next_attempt_at": None,
                  "failure_reason": None, "version": 1, "client_id": client_id}
        event = {"job_id": values["id"], "at": now, "from_status": None, "to_status": "queued",
                 "reason": "submitted", "actor": principal.token_id, "detail": None}
        try:
            if self.engine.dialect.name == "postgresql":
                # One statement (the job and its first event), one round trip, atomic on its own: no BEGIN
                # and COMMIT round trips around two INSERTs.
                with translate_errors(self.engine.url), self.engine.connect() as conn:
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                    conn.execute(_submit_statement(), {**{f"j_{k}": v for k, v in values.items()},
                                                       **{f"e_{k}": v for k, v in event.items()}})
            else:
                with self._tx() as conn:
                    conn.execute(insert(JOBS), values)
                    conn.execute(insert(EVENTS), event)
        except ConflictError:
            # Which unique key was hit: the idempotency key (the first job is the answer) or the client id.
            with self._tx(readonly=True) as conn:
                if idempotency_key is not None:
                    row = conn.execute(select(JOBS).where(JOBS.c.tenant == tenant, JOBS.c.idempotency_key
                                                          == idempotency_key)).mappings().first()
                    if row is not None:
                        return _job(row), False
                if client_id is not None:
                    row = conn.execute(select(JOBS).where(JOBS.c.tenant == tenant, JOBS.c.client_id
                                                          == client_id)).mappings().first()
                    if row is not None:
                        raise ConflictError(f"tenant '{tenant}' already has a job with id '{client_id}' (job "
                                            f"{row['id']}, {row['status']}); choose another id, or resubmit "
                                            "with the first submission's Idempotency-Key", field="id") from None
            raise
        return _job(values), True

    def get_job(self, principal: Principal, job_id: str) -> JobRow:
        with self._tx(readonly=True) as conn:
            return self._select_job(conn, principal, job_id, lock=False)

    def list_jobs(self, principal: Principal, status: str | Collection[str] | None = None, limit: int = 100,
                  cursor: str | None = None, *, tenant: str | None = None) -> tuple[list[JobRow], str | None]:
        """Jobs the principal may see, oldest submission first, only ``tenant``'s if given (a tenant may
        name only itself); returns (page, cursor of the next page)."""
        limit = max(1, min(int(limit), MAX_LIST_LIMIT))
        q = select(JOBS)
        scope = self._scope(principal)
        if scope is not None:
            q = q.where(scope)
        if tenant is not None:
            if principal.role == "tenant" and tenant != principal.tenant:
                raise PermissionDenied(f"tenant '{principal.tenant}' can list only its own jobs")
            q = q.where(JOBS.c.tenant == tenant)
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            bad = [s for s in statuses if s not in JOB_STATUSES]
            if bad:
                raise InvalidSpec(f"unknown status '{bad[0]}'", field="status")
            q = q.where(JOBS.c.status.in_(statuses))
        if cursor:
            at, last_id = _decode_cursor(cursor)
            q = q.where(or_(JOBS.c.submitted_at > at, and_(JOBS.c.submitted_at == at, JOBS.c.id > last_id)))
        q = q.order_by(JOBS.c.submitted_at, JOBS.c.id).limit(limit + 1)
        with self._tx(readonly=True) as conn:
            rows = [_job(r) for r in conn.execute(q).mappings()]
        more = len(rows) > limit
        rows = rows[:limit]
        return rows, (_encode_cursor(rows[-1].submitted_at, rows[-1].id) if more else None)

    def job_history(self, principal: Principal, job_id: str) -> list[JobEvent]:
        with self._tx(readonly=True) as conn:
            job_id = self._select_job(conn, principal, job_id, lock=False).id
            rows = conn.execute(select(EVENTS).where(EVENTS.c.job_id == job_id).order_by(EVENTS.c.id)).mappings()
            return [_event(r) for r in rows]

    def _change(self, conn: Connection, job: JobRow, to_status: str, reason: str, *, actor: str | None,
                detail: dict[str, Any] | None = None, values: dict[str, Any] | None = None,
                check: bool = True) -> JobRow:
        """Move ``job`` (read under lock) to ``to_status``, bump its version and log the change."""
        if to_status not in JOB_STATUSES:
            raise InvalidSpec(f"unknown status '{to_status}'", field="status")
        if check and to_status not in TRANSITIONS[job.status]:
            raise IllegalTransition(f"job '{job.id}' cannot go from {job.status} to {to_status}")
        now = utcnow()
        new = {"status": to_status, "updated_at": now, "version": job.version + 1, **(values or {})}
        res = conn.execute(update(JOBS).where(JOBS.c.id == job.id, JOBS.c.version == job.version).values(**new))
        if res.rowcount != 1:
            raise VersionConflict(f"job '{job.id}' changed while being updated; read it again")
        conn.execute(insert(EVENTS), {"job_id": job.id, "at": now, "from_status": job.status, "to_status": to_status,
                                      "reason": reason, "actor": actor, "detail": detail})
        m = {**_job_values(job), **new}
        return _job(m)

    def _locked(self, conn: Connection, job_id: str, expect_version: int | None) -> JobRow:
        job = self._select_job(conn, Principal.system(), job_id, lock=True, by_client_id=False)
        if expect_version is not None and job.version != expect_version:
            raise VersionConflict(f"job '{job_id}' is at version {job.version}, not {expect_version}; read it again")
        return job

    def transition(self, job_id: str, to_status: str, reason: str, *, expect_version: int | None,
                   placement: Placement | Mapping[str, Any] | None = None, detail: dict[str, Any] | None = None,
                   actor: str | None = None) -> JobRow:
        """Change a job's status (see ``TRANSITIONS``); ``expect_version`` (None = any) guards against lost
        updates. ``placement`` sets where the job runs; moving back to queued clears it."""
        with self._tx() as conn:
            job = self._locked(conn, job_id, expect_version)
            values = _transition_values(to_status, placement)
            return self._change(conn, job, to_status, reason, actor=actor, detail=detail, values=values)

    def mark_attempt_failed(self, job_id: str, error: str, backoff_s: float = 30.0, *,
                            max_backoff_s: float = 3600.0, expect_version: int | None = None,
                            actor: str | None = None, retry: bool = True) -> bool:
        """Record that the job's current attempt failed. Returns True if the job will be retried: it goes
        back to queued with ``next_attempt_at`` = now + ``backoff_s`` × 2^(attempt − 1) (at most
        ``max_backoff_s``); after ``max_attempts`` attempts, or at once with ``retry=False`` (an error no
        retry can fix), it is failed, with the reason."""
        error = " ".join(str(error).split()) or "unknown error"
        with self._tx() as conn:
            job = self._locked(conn, job_id, expect_version)
            if job.terminal:
                raise IllegalTransition(f"job '{job_id}' is already {job.status}")
            attempt = max(job.attempts, 1)  # a failure before the first start counts as one attempt
            if retry and attempt < job.max_attempts:
                delay_s = min(backoff_s * 2.0 ** (attempt - 1), max_backoff_s)
                retry_at = utcnow() + timedelta(seconds=delay_s)
                values = {**_transition_values("queued", None), "attempts": attempt, "next_attempt_at": retry_at,
                          "failure_reason": error}
                self._change(conn, job, "queued", f"attempt {attempt} of {job.max_attempts} failed: {error}",
                             actor=actor, values=values, check=False,
                             detail={"retry_at": retry_at.isoformat(), "backoff_s": delay_s})
                return True
            reason = f"failed after {attempt} attempt{'s' if attempt > 1 else ''}: {error}"
            self._change(conn, job, "failed", reason, actor=actor, check=False,
                         values={"attempts": attempt, "next_attempt_at": None, "failure_reason": reason})
            return False

    def queue_stats(self, principal: Principal | None = None) -> dict[str, int]:
        """Number of jobs per status (every status listed), counted in the database; only the principal's
        jobs if given (a tenant: its own)."""
        q = select(JOBS.c.status, func.count()).group_by(JOBS.c.status)
        scope = None if principal is None else self._scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx(readonly=True) as conn:
            rows = conn.execute(q).all()
        counts = dict.fromkeys(JOB_STATUSES, 0)
        counts.update({s: int(n) for s, n in rows})
        return counts

    def job_overview(self, principal: Principal, *, newest: int = 25, active: int = 500,
                     ids: Collection[str] = ()) -> tuple[dict[str, int], list[JobRow], list[JobRow], list[JobRow]]:
        """What a dashboard shows, bounded whatever the number of jobs: (counts per status, the ``newest``
        submissions newest first, at most ``active`` running or paused jobs, the jobs ``ids`` the principal
        may see). Four queries, whatever the number of jobs."""
        scope = self._scope(principal)
        base = select(JOBS) if scope is None else select(JOBS).where(scope)
        counts = self.queue_stats(principal)
        newest_q = base.order_by(JOBS.c.submitted_at.desc(), JOBS.c.id.desc()).limit(max(0, min(newest, 1000)))
        # sorted here, not by the database: so it reads them by status (an index), not a tenant's every job in order
        active_q = base.where(JOBS.c.status.in_(("running", "paused"))).limit(MAX_ACTIVE_READ)
        with self._tx(readonly=True) as conn:
            top = [_job(r) for r in conn.execute(newest_q).mappings()]
            live = sorted((_job(r) for r in conn.execute(active_q).mappings()),
                          key=lambda j: (j.submitted_at, j.id))[:max(0, min(active, MAX_ACTIVE_READ))]
            picked = [_job(r) for r in conn.execute(base.where(JOBS.c.id.in_(list(ids)[:100]))).mappings()] \
                if ids else []
        return counts, top, live, picked
