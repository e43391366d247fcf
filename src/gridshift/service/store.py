"""The service's repository: every read and change of the persistent state goes through :class:`Store`.

Each method is one database transaction and returns plain frozen dataclasses, never ORM objects. Job access
is scoped by :class:`Principal`: a tenant sees and changes only its own jobs (another tenant's job is
reported as not found), an operator sees all, the grid role none.

Executor actions follow an intent protocol (``docs/service-state.md``): :meth:`Store.record_dispatch_intent`
changes the job and writes a ``pending`` dispatch row in one transaction, the caller then calls the executor
and :meth:`Store.complete_dispatch`. After a crash, :meth:`Store.pending_dispatches` lists the actions
whose outcome is unknown; each is checked against the executor's report, never re-issued blindly.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from gridshift.model.events import GridEvent
from gridshift.model.service import Service
from gridshift.model.workload import Job
from gridshift.service.db import (
    SQLITE_BUSY_TIMEOUT_S,
    ConflictError,
    DatabaseUnavailable,
    StateError,
    current_revision,
    head_revision,
    make_engine,
    mask_url,
    translate_errors,
)
from gridshift.service.models import (
    DISPATCH_ACTIONS,
    JOB_STATUSES,
    ROLES,
    TERMINAL_STATUSES,
    DispatchRecord,
    GridEventRecord,
    JobEventRecord,
    JobRecord,
    PlanItemRecord,
    PlanRecord,
    ServiceRecord,
    SettingRecord,
    SignalRecord,
    Token,
)

JOBS = JobRecord.__table__
EVENTS = JobEventRecord.__table__
DISPATCHES = DispatchRecord.__table__
TOKENS = Token.__table__
SIGNALS = SignalRecord.__table__
GRID_EVENTS = GridEventRecord.__table__
SERVICES = ServiceRecord.__table__
PLANS = PlanRecord.__table__
PLAN_ITEMS = PlanItemRecord.__table__
SETTINGS = SettingRecord.__table__

TOKEN_PREFIX = "gs"
MAX_LIST_LIMIT = 1000
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
# Status a job must move to with each executor action (None: the action leaves the status as it is).
ACTION_TARGET: dict[str, str | None] = {"start": "running", "resume": "running", "pause": "paused",
                                        "set_power_cap": None}
# Statuses a job must be in for the action.
ACTION_FROM: dict[str, frozenset[str]] = {
    "start": frozenset({"queued", "planned"}),
    "resume": frozenset({"paused"}),
    "pause": frozenset({"running"}),
    "stop": frozenset(JOB_STATUSES),
    "set_power_cap": frozenset({"planned", "running", "paused"}),
}


class NotFound(StateError):
    """No such object, or the principal may not see it."""


class PermissionDenied(StateError):
    """The principal's role may not do this."""


class InvalidSpec(StateError):
    """A submitted job, service or value does not validate."""


class IllegalTransition(ConflictError):
    """The status change (or action) is not allowed from the job's current status."""


class VersionConflict(ConflictError):
    """The job changed since the caller read it (optimistic concurrency)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _utc(t: datetime, what: str) -> datetime:
    if not isinstance(t, datetime):
        raise InvalidSpec(f"{what} must be a datetime, got {type(t).__name__}")
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a token secret (what the tokens table stores)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# --------------------------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class Principal:
    """Who is calling: a role, the tenant for the tenant role, and the token used (None for internal calls)."""

    role: str
    tenant: str | None = None
    token_id: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PermissionDenied(f"unknown role '{self.role}' (expected one of {', '.join(ROLES)})")
        if self.role == "tenant" and not self.tenant:
            raise PermissionDenied("a tenant principal needs a tenant")

    @classmethod
    def system(cls) -> "Principal":
        """The service itself (reconciler, executors): operator rights, no token."""
        return cls("operator", None, None)


@dataclass(frozen=True)
class Placement:
    """Where a job runs: site, accelerator type, gang size and power cap (share of full board power)."""

    site: str
    accelerator: str
    gang: int
    power_cap_frac: float | None = None

    def __post_init__(self) -> None:
        if not self.site or not self.accelerator:
            raise InvalidSpec("a placement needs a site and an accelerator type")
        if int(self.gang) < 1:
            raise InvalidSpec("gang must be >= 1", field="gang")
        if self.power_cap_frac is not None and not (0 < self.power_cap_frac <= 1):
            raise InvalidSpec("power_cap_frac must be in (0, 1]", field="power_cap_frac")


@dataclass(frozen=True)
class JobRow:
    """A job as stored. ``spec`` holds the :class:`~gridshift.model.workload.Job` fields (without
    ``job_id``, ``tenant`` and ``arrival``, which the service sets) and an optional ``command`` (a shell-style
    string). ``attempts`` counts execution attempts started (a failure before any start counts as one).
    ``id`` is the service's UUID; ``client_id`` the client's own id for the job, if it gave one."""

    id: str
    tenant: str
    status: str
    spec: dict[str, Any]
    idempotency_key: str | None
    submitted_at: datetime
    updated_at: datetime
    placement: Placement | None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    failure_reason: str | None
    version: int
    client_id: str | None = None  # the id the client gave the job (unique per tenant), if any

    @property
    def command(self) -> str | None:
        return self.spec.get("command")

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def to_job(self) -> Job:
        """The job as the planner and simulator take it (arrival = submission time)."""
        data = {k: v for k, v in self.spec.items() if k != "command"}
        return Job.model_validate({**data, "job_id": self.id, "tenant": self.tenant, "arrival": self.submitted_at})


@dataclass(frozen=True)
class JobEvent:
    """One entry of a job's history."""

    id: int
    job_id: str
    at: datetime
    from_status: str | None
    to_status: str
    reason: str
    actor: str | None
    detail: dict[str, Any] | None


@dataclass(frozen=True)
class Dispatch:
    """One executor action and its outcome (``pending`` until the executor's answer is recorded).

    ``attempt`` is the execution attempt the action concerns (a start opens attempt 1, 2, …; 0 = none
    started yet); ``job_version`` the job version the action's transaction produced. ``key`` is unique per action: executors use it to name what they start,
    so a retried call can be recognised.
    """

    id: int
    job_id: str
    action: str
    attempt: int
    job_version: int
    args: dict[str, Any] | None
    state: str
    created_at: datetime
    completed_at: datetime | None
    executor_ref: str | None
    error: str | None

    @property
    def key(self) -> str:
        return f"{self.job_id}-a{self.attempt}-v{self.job_version}"


@dataclass(frozen=True)
class TokenInfo:
    """An API token without its secret or hash."""

    id: str
    name: str
    role: str
    tenant: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class SignalPoint:
    """One grid signal value; ``signal`` names the quantity and its unit (``carbon_g_per_kwh``)."""

    zone: str
    signal: str
    at: datetime
    value: float
    source: str = "unknown"


@dataclass(frozen=True)
class GridEventRow:
    """A received grid event; ``revision`` counts the changes the grid sent for the same event id."""

    id: str
    event: GridEvent
    source: str
    status: str
    received_at: datetime
    updated_at: datetime
    revision: int


@dataclass(frozen=True)
class ServiceRow:
    """An inference service: its spec (:class:`~gridshift.model.service.Service` as JSON) and replica
    targets ``{site: {accelerator type: replicas}}``."""

    name: str
    tenant: str
    spec: dict[str, Any]
    replica_targets: dict[str, dict[str, int]]
    updated_at: datetime
    version: int


@dataclass(frozen=True)
class PlanItem:
    """Where and when the plan puts a job, and why (``why``: the policy's explanation)."""

    job_id: str
    site: str | None = None
    accelerator: str | None = None
    gang: int | None = None
    start_at: datetime | None = None
    power_cap_frac: float | None = None
    why: dict[str, Any] | None = None


@dataclass(frozen=True)
class Plan:
    id: int
    created_at: datetime
    policy: str
    horizon_s: float | None
    summary: dict[str, Any]
    items: tuple[PlanItem, ...] = field(default=())


def _job(m: Mapping[str, Any]) -> JobRow:
    placement = None
    if m["site"] is not None:
        placement = Placement(m["site"], m["accelerator"], m["gang"], m["power_cap_frac"])
    return JobRow(id=m["id"], tenant=m["tenant"], status=m["status"], spec=m["spec"],
                  idempotency_key=m["idempotency_key"], submitted_at=m["submitted_at"],
                  updated_at=m["updated_at"], placement=placement, attempts=m["attempts"],
                  max_attempts=m["max_attempts"], next_attempt_at=m["next_attempt_at"],
                  failure_reason=m["failure_reason"], version=m["version"], client_id=m.get("client_id"))


def _dispatch(m: Mapping[str, Any]) -> Dispatch:
    return Dispatch(**{k: m[k] for k in Dispatch.__dataclass_fields__})


def _event(m: Mapping[str, Any]) -> JobEvent:
    return JobEvent(**{k: m[k] for k in JobEvent.__dataclass_fields__})


def _grid_event(m: Mapping[str, Any]) -> GridEventRow:
    return GridEventRow(id=m["id"], event=GridEvent.model_validate(m["body"]), source=m["source"],
                        status=m["status"], received_at=m["received_at"], updated_at=m["updated_at"],
                        revision=m["revision"])


def _service(m: Mapping[str, Any]) -> ServiceRow:
    return ServiceRow(**{k: m[k] for k in ServiceRow.__dataclass_fields__})


def _plan_item(m: Mapping[str, Any]) -> PlanItem:
    return PlanItem(**{k: m[k] for k in PlanItem.__dataclass_fields__})


def _placement_values(p: Placement | Mapping[str, Any] | None) -> dict[str, Any]:
    if p is None:
        return {"site": None, "accelerator": None, "gang": None, "power_cap_frac": None}
    if isinstance(p, Mapping):
        try:
            p = Placement(**p)
        except TypeError as exc:
            raise InvalidSpec(f"placement: {exc}") from None
    return {"site": p.site, "accelerator": p.accelerator, "gang": int(p.gang), "power_cap_frac": p.power_cap_frac}


def _validation_error(what: str, exc: ValidationError) -> InvalidSpec:
    e = exc.errors()[0]
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    loc = ".".join(str(x) for x in e.get("loc", ()))
    return InvalidSpec(f"{what}: {msg}", field=loc or None)


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
    data.pop("tenant", None)
    try:
        job = Job.model_validate({**data, "job_id": "new", "tenant": tenant, "arrival": now})
    except ValidationError as exc:
        raise _validation_error("job spec", exc) from None
    out = job.model_dump(mode="json", exclude={"job_id", "tenant", "arrival"})
    if command is not None:
        out["command"] = command
    return out


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
    return t.astimezone(timezone.utc)


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


# ------------------------------------------------------------------------------------------------- store


class Store:
    """Persistent state of the service. Safe to share between threads; one transaction per method."""

    def __init__(self, url: str | URL | None = None, *, engine: Engine | None = None) -> None:
        self.engine = engine if engine is not None else make_engine(url)
        self.url = mask_url(self.engine.url)
        # SQLite admits one writer at a time; its busy handler makes the others sleep and poll (up to 100 ms
        # a try), which under concurrent submissions gave waits of hundreds of ms. This store's write
        # transactions queue on a lock instead (woken as soon as the writer before them finishes); other
        # processes on the same file still wait through the busy timeout.
        self._write_lock = threading.RLock() if self.engine.dialect.name == "sqlite" else None

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self, readonly: bool = False) -> Iterator[Connection]:
        lock = None if readonly else self._write_lock
        if lock is not None and not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise DatabaseUnavailable(f"database {self.url} unavailable: database is locked (another write "
                                      f"transaction of this service took over {SQLITE_BUSY_TIMEOUT_S:g} s)")
        try:
            with translate_errors(self.engine.url), self.engine.connect() as conn:
                if readonly:
                    conn = conn.execution_options(gridshift_readonly=True)
                with conn.begin():
                    yield conn
        finally:
            if lock is not None:
                lock.release()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def check_schema(self) -> None:
        """Raise :class:`StateError` unless the database is migrated to this package's newest revision."""
        cur, head = current_revision(self.engine), head_revision()
        if cur != head:
            raise StateError(f"database {self.url} is at schema revision {cur or 'none'}, expected {head}; "
                             "run the migrations (gridshift.service.db.upgrade)")

    # ----------------------------------------------------------------------------------------- tokens

    def create_token(self, name: str, role: str, tenant: str | None = None) -> tuple[str, str]:
        """Create an API token; returns (token id, secret). The secret is shown once and stored hashed."""
        if role not in ROLES:
            raise InvalidSpec(f"unknown role '{role}' (expected one of {', '.join(ROLES)})", field="role")
        if (role == "tenant") != bool(tenant):
            raise InvalidSpec("a tenant token needs a tenant; operator and grid tokens have none", field="tenant")
        token_id = secrets.token_hex(6)
        secret = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        with self._tx() as conn:
            conn.execute(insert(TOKENS), {"id": token_id, "name": name, "role": role, "tenant": tenant,
                                          "token_hash": hash_secret(secret), "created_at": utcnow(),
                                          "revoked_at": None})
        return token_id, secret

    def authenticate(self, secret: str) -> Principal | None:
        """The principal of a valid, unrevoked token secret; None otherwise."""
        parts = secret.split("_", 2) if isinstance(secret, str) else []
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
            return None
        with self._tx(readonly=True) as conn:
            row = conn.execute(select(TOKENS).where(TOKENS.c.id == parts[1])).mappings().first()
        if row is None or not hmac.compare_digest(row["token_hash"], hash_secret(secret)):
            return None
        if row["revoked_at"] is not None:
            return None
        return Principal(row["role"], row["tenant"], row["id"])

    def revoke_token(self, token_id: str) -> bool:
        """Revoke a token; False if there is no such unrevoked token."""
        with self._tx() as conn:
            res = conn.execute(update(TOKENS).where(TOKENS.c.id == token_id, TOKENS.c.revoked_at.is_(None))
                               .values(revoked_at=utcnow()))
        return res.rowcount == 1

    def list_tokens(self) -> list[TokenInfo]:
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(TOKENS).order_by(TOKENS.c.created_at, TOKENS.c.id)).mappings().all()
        return [TokenInfo(**{k: r[k] for k in TokenInfo.__dataclass_fields__}) for r in rows]

    # ------------------------------------------------------------------------------------------- jobs

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

    def cancel_job(self, principal: Principal, job_id: str, reason: str = "cancelled") -> JobRow:
        """Cancel a job. A running or paused job also gets a pending ``stop`` dispatch, in the same
        transaction, for the reconciler to carry out. Cancelling a cancelled job returns it unchanged."""
        with self._tx() as conn:
            job = self._select_job(conn, principal, job_id, lock=True)
            if job.status == "cancelled":
                return job
            was_active = job.status in ("running", "paused")
            job = self._change(conn, job, "cancelled", reason, actor=principal.token_id)
            if was_active:
                self._insert_dispatch(conn, job, "stop", {"reason": reason})
            return job

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

    # ------------------------------------------------------------------------------------- dispatches

    def _insert_dispatch(self, conn: Connection, job: JobRow, action: str, args: dict[str, Any] | None) -> Dispatch:
        values = {"job_id": job.id, "action": action, "attempt": job.attempts, "job_version": job.version,
                  "args": args, "state": "pending", "created_at": utcnow(), "completed_at": None,
                  "executor_ref": None, "error": None}
        new_id = conn.execute(insert(DISPATCHES).returning(DISPATCHES.c.id), values).scalar_one()
        return _dispatch({**values, "id": new_id})

    def record_dispatch_intent(self, job_id: str, action: str, *, expect_version: int | None,
                               to_status: str | None = None, reason: str | None = None,
                               placement: Placement | Mapping[str, Any] | None = None,
                               args: dict[str, Any] | None = None, actor: str | None = None) -> tuple[JobRow, Dispatch]:
        """Change the job for an executor action and log the action as ``pending``, in one transaction,
        before the executor is called. Returns (job after the change, dispatch).

        start moves the job to running (``placement`` says where, unless planned) and opens a new attempt
        (``attempts`` + 1); resume moves it to running, pause to paused; stop may move it to ``to_status``
        or leave the status; set_power_cap needs ``args={"power_cap_frac": x}``. Every intent bumps the job
        version, and (job, version) is unique, so a stale or repeated call raises :class:`VersionConflict`
        instead of logging the action twice.
        """
        if action not in DISPATCH_ACTIONS:
            raise InvalidSpec(f"unknown action '{action}' (expected one of {', '.join(DISPATCH_ACTIONS)})",
                              field="action")
        target = ACTION_TARGET.get(action, to_status)
        if action in ACTION_TARGET and to_status not in (None, target):
            raise InvalidSpec(f"action {action} moves a job to {target or 'the same status'}, not {to_status}",
                              field="to_status")
        args = dict(args or {})
        with self._tx() as conn:
            job = self._locked(conn, job_id, expect_version)
            if job.status not in ACTION_FROM[action]:
                raise IllegalTransition(f"job '{job_id}' is {job.status}: cannot {action.replace('_', ' ')}")
            values: dict[str, Any] = {}
            if action == "set_power_cap":
                cap = args.get("power_cap_frac")
                if not isinstance(cap, (int, float)) or not (0 < cap <= 1):
                    raise InvalidSpec("set_power_cap needs args power_cap_frac in (0, 1]", field="power_cap_frac")
                values["power_cap_frac"] = float(cap)
            status = target or job.status
            if target is not None:
                values.update(_transition_values(target, placement))
            elif placement is not None:
                values.update(_placement_values(placement))
            if action == "start":
                if job.placement is None and "site" not in values:
                    raise InvalidSpec(f"starting job '{job_id}' needs a placement", field="placement")
                values["attempts"] = job.attempts + 1  # every start is a new execution attempt
            job = self._change(conn, job, status, reason or action.replace("_", " "), actor=actor, values=values,
                               check=target is not None, detail={"action": action, **({"args": args} if args else {})})
            return job, self._insert_dispatch(conn, job, action, args or None)

    def complete_dispatch(self, dispatch_id: int, *, executor_ref: str | None = None,
                          error: str | None = None) -> Dispatch:
        """Record the executor's answer: done, or failed with ``error``. Repeating the same outcome is a
        no-op; a different outcome for a completed dispatch is a :class:`ConflictError`."""
        state = "failed" if error is not None else "done"
        with self._tx() as conn:
            res = conn.execute(update(DISPATCHES).where(DISPATCHES.c.id == dispatch_id, DISPATCHES.c.state == "pending")
                               .values(state=state, completed_at=utcnow(), executor_ref=executor_ref,
                                       error=None if error is None else " ".join(str(error).split())))
            row = conn.execute(select(DISPATCHES).where(DISPATCHES.c.id == dispatch_id)).mappings().first()
        if row is None:
            raise NotFound(f"no dispatch {dispatch_id}")
        if res.rowcount != 1 and row["state"] != state:
            raise ConflictError(f"dispatch {dispatch_id} is already {row['state']}")
        return _dispatch(row)

    def pending_dispatches(self, job_id: str | None = None) -> list[Dispatch]:
        """Actions logged but not yet confirmed, oldest first."""
        q = select(DISPATCHES).where(DISPATCHES.c.state == "pending")
        if job_id is not None:
            q = q.where(DISPATCHES.c.job_id == job_id)
        with self._tx(readonly=True) as conn:
            return [_dispatch(r) for r in conn.execute(q.order_by(DISPATCHES.c.id)).mappings()]

    def dispatches(self, job_id: str) -> list[Dispatch]:
        """Every action logged for a job, oldest first."""
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(DISPATCHES).where(DISPATCHES.c.job_id == job_id).order_by(DISPATCHES.c.id))
            return [_dispatch(r) for r in rows.mappings()]

    # ---------------------------------------------------------------------------------------- signals

    def _upsert(self, table):  # noqa: ANN001, ANN202
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def upsert_signals(self, rows: Iterable[SignalPoint | Mapping[str, Any]]) -> int:
        """Insert or replace signal values keyed by (zone, signal, at); returns the number of rows given."""
        values = []
        for r in rows:
            m = r.__dict__ if isinstance(r, SignalPoint) else r
            try:
                v = float(m["value"])
                item = {"zone": str(m["zone"]), "signal": str(m["signal"]), "at": _utc(m["at"], "signal time"),
                        "value": v, "source": str(m.get("source", "unknown"))}
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidSpec(f"signal row {len(values)}: {exc!r}") from None
            if not math.isfinite(v):
                raise InvalidSpec(f"signal row {len(values)}: value must be finite", field="value")
            values.append(item)
        if not values:
            return 0
        stmt = self._upsert(SIGNALS)
        stmt = stmt.on_conflict_do_update(index_elements=["zone", "signal", "at"],
                                          set_={"value": stmt.excluded.value, "source": stmt.excluded.source})
        with self._tx() as conn:
            conn.execute(stmt, values)
        return len(values)

    def signals_between(self, zone: str, signal: str, start: datetime, end: datetime) -> list[SignalPoint]:
        """Values with ``start <= at < end``, in time order."""
        q = (select(SIGNALS).where(SIGNALS.c.zone == zone, SIGNALS.c.signal == signal,
                                   SIGNALS.c.at >= _utc(start, "start"), SIGNALS.c.at < _utc(end, "end"))
             .order_by(SIGNALS.c.at))
        with self._tx(readonly=True) as conn:
            return [SignalPoint(r["zone"], r["signal"], r["at"], r["value"], r["source"])
                    for r in conn.execute(q).mappings()]

    # ------------------------------------------------------------------------------------ grid events

    def add_grid_event(self, event: GridEvent, source: str) -> tuple[GridEventRow, bool]:
        """Store a grid event; returns (row, created). The same id again replaces the event if its body
        changed (``revision`` + 1, active again) and is a no-op otherwise."""
        if not isinstance(event, GridEvent):
            try:
                event = GridEvent.model_validate(event)
            except ValidationError as exc:
                raise _validation_error("grid event", exc) from None
        body = event.model_dump(mode="json")
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(select(GRID_EVENTS).where(GRID_EVENTS.c.id == event.id).with_for_update()
                               ).mappings().first()
            if row is None:
                values = {"id": event.id, "body": body, "start_at": event.start, "end_at": event.end,
                          "received_at": now, "updated_at": now, "source": source, "status": "active",
                          "revision": 1}
                conn.execute(insert(GRID_EVENTS), values)
                return _grid_event(values), True
            if row["body"] == body and row["status"] == "active":
                return _grid_event(row), False
            values = {"body": body, "start_at": event.start, "end_at": event.end, "updated_at": now,
                      "source": source, "status": "active", "revision": row["revision"] + 1}
            conn.execute(update(GRID_EVENTS).where(GRID_EVENTS.c.id == event.id).values(**values))
            return _grid_event({**row, **values}), False

    def cancel_grid_event(self, event_id: str) -> GridEventRow:
        with self._tx() as conn:
            res = conn.execute(update(GRID_EVENTS).where(GRID_EVENTS.c.id == event_id)
                               .values(status="cancelled", updated_at=utcnow()))
            if res.rowcount != 1:
                raise NotFound(f"no grid event '{event_id}'")
            return _grid_event(conn.execute(select(GRID_EVENTS).where(GRID_EVENTS.c.id == event_id)).mappings().one())

    def grid_events(self, active_at: datetime | None = None, *, end_after: datetime | None = None,
                    include_cancelled: bool = False) -> list[GridEventRow]:
        """Grid events by start time: those in force at ``active_at`` (start <= t < end), and/or those
        ending after ``end_after`` (in force or upcoming); cancelled ones only if asked."""
        q = select(GRID_EVENTS)
        if not include_cancelled:
            q = q.where(GRID_EVENTS.c.status == "active")
        if active_at is not None:
            t = _utc(active_at, "active_at")
            q = q.where(GRID_EVENTS.c.start_at <= t, GRID_EVENTS.c.end_at > t)
        if end_after is not None:
            q = q.where(GRID_EVENTS.c.end_at > _utc(end_after, "end_after"))
        with self._tx(readonly=True) as conn:
            rows = conn.execute(q.order_by(GRID_EVENTS.c.start_at, GRID_EVENTS.c.id)).mappings()
            return [_grid_event(r) for r in rows]

    # --------------------------------------------------------------------------------------- services

    def _service_scope(self, principal: Principal):  # noqa: ANN202
        if principal.role == "operator":
            return None
        if principal.role == "tenant":
            return SERVICES.c.tenant == principal.tenant
        raise PermissionDenied(f"role '{principal.role}' cannot read or change services")

    def put_service(self, principal: Principal, spec: Mapping[str, Any] | Service,
                    replica_targets: Mapping[str, Mapping[str, int]] | None = None) -> ServiceRow:
        """Create or replace an inference service (a tenant only its own)."""
        data = spec.model_dump(mode="json") if isinstance(spec, Service) else dict(spec)
        if principal.role == "tenant":
            if data.get("tenant") not in (None, principal.tenant):
                raise PermissionDenied(f"tenant '{principal.tenant}' cannot define services for '{data['tenant']}'")
            data["tenant"] = principal.tenant
        elif principal.role != "operator":
            raise PermissionDenied(f"role '{principal.role}' cannot change services")
        try:
            svc = Service.model_validate(data)
        except ValidationError as exc:
            raise _validation_error("service spec", exc) from None
        targets = _clean_targets(replica_targets or {})
        now = utcnow()
        with self._tx() as conn:
            row = conn.execute(select(SERVICES).where(SERVICES.c.name == svc.name).with_for_update()).mappings().first()
            if row is not None and principal.role == "tenant" and row["tenant"] != principal.tenant:
                raise PermissionDenied(f"service '{svc.name}' belongs to another tenant")
            values = {"name": svc.name, "tenant": svc.tenant, "spec": svc.model_dump(mode="json"),
                      "replica_targets": targets if replica_targets is not None or row is None
                      else row["replica_targets"], "updated_at": now,
                      "version": 1 if row is None else row["version"] + 1}
            if row is None:
                conn.execute(insert(SERVICES), values)
            else:
                conn.execute(update(SERVICES).where(SERVICES.c.name == svc.name).values(**values))
            return _service(values)

    def get_service(self, principal: Principal, name: str) -> ServiceRow:
        q = select(SERVICES).where(SERVICES.c.name == name)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx(readonly=True) as conn:
            row = conn.execute(q).mappings().first()
        if row is None:
            raise NotFound(f"no service '{name}'")
        return _service(row)

    def list_services(self, principal: Principal) -> list[ServiceRow]:
        q = select(SERVICES)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx(readonly=True) as conn:
            return [_service(r) for r in conn.execute(q.order_by(SERVICES.c.name)).mappings()]

    def set_replica_targets(self, name: str, targets: Mapping[str, Mapping[str, int]], *,
                            expect_version: int | None = None) -> ServiceRow:
        """Set a service's replica targets ``{site: {accelerator type: replicas}}`` (the reconciler's job)."""
        clean = _clean_targets(targets)
        with self._tx() as conn:
            row = conn.execute(select(SERVICES).where(SERVICES.c.name == name).with_for_update()).mappings().first()
            if row is None:
                raise NotFound(f"no service '{name}'")
            if expect_version is not None and row["version"] != expect_version:
                raise VersionConflict(f"service '{name}' is at version {row['version']}, not {expect_version}")
            values = {"replica_targets": clean, "updated_at": utcnow(), "version": row["version"] + 1}
            conn.execute(update(SERVICES).where(SERVICES.c.name == name).values(**values))
            return _service({**row, **values})

    def delete_service(self, principal: Principal, name: str) -> bool:
        q = delete(SERVICES).where(SERVICES.c.name == name)
        scope = self._service_scope(principal)
        if scope is not None:
            q = q.where(scope)
        with self._tx() as conn:
            return conn.execute(q).rowcount == 1

    # ------------------------------------------------------------------------------------------ plans

    def save_plan(self, policy: str, items: Iterable[PlanItem | Mapping[str, Any]], summary: Mapping[str, Any],
                  *, horizon_s: float | None = None, keep: int | None = 100) -> Plan:
        """Store a new current plan; keeps the newest ``keep`` plans (None = all)."""
        now = utcnow()
        clean: list[PlanItem] = []
        for it in items:
            if isinstance(it, Mapping):
                try:
                    it = PlanItem(**it)
                except TypeError as exc:
                    raise InvalidSpec(f"plan item {len(clean)}: {exc}") from None
            start = None if it.start_at is None else _utc(it.start_at, "plan item start_at")
            clean.append(PlanItem(it.job_id, it.site, it.accelerator, None if it.gang is None else int(it.gang),
                                  start, it.power_cap_frac, it.why))
        with self._tx() as conn:
            plan_id = conn.execute(insert(PLANS).returning(PLANS.c.id),
                                   {"created_at": now, "policy": policy, "horizon_s": horizon_s,
                                    "summary": dict(summary)}).scalar_one()
            if clean:
                conn.execute(insert(PLAN_ITEMS), [{"plan_id": plan_id, **it.__dict__} for it in clean])
            if keep is not None:
                cutoff = conn.execute(select(PLANS.c.id).order_by(PLANS.c.id.desc()).offset(max(keep, 1)).limit(1)
                                      ).scalar()
                if cutoff is not None:
                    conn.execute(delete(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id <= cutoff))
                    conn.execute(delete(PLANS).where(PLANS.c.id <= cutoff))
        return Plan(plan_id, now, policy, horizon_s, dict(summary), tuple(clean))

    # ------------------------------------------------------------------------------------- settings

    def get_setting(self, key: str) -> dict[str, Any] | None:
        """A setting changed at run time (``put_setting``), or None if never set."""
        with self._tx(readonly=True) as conn:
            row = conn.execute(select(SETTINGS.c.value).where(SETTINGS.c.key == key)).first()
        return None if row is None else dict(row[0])

    def put_setting(self, key: str, value: Mapping[str, Any], *, actor: str | None = None) -> None:
        """Store (or replace) a setting, with who changed it and when."""
        now = utcnow()
        doc = {"value": dict(value), "updated_at": now, "updated_by": actor}
        with self._tx() as conn:
            if not conn.execute(update(SETTINGS).where(SETTINGS.c.key == key).values(**doc)).rowcount:
                conn.execute(insert(SETTINGS).values(key=key, **doc))

    def current_plan(self) -> Plan | None:
        """The newest plan with its items, or None."""
        with self._tx(readonly=True) as conn:
            p = conn.execute(select(PLANS).order_by(PLANS.c.id.desc()).limit(1)).mappings().first()
            if p is None:
                return None
            rows = conn.execute(select(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id == p["id"])
                                .order_by(PLAN_ITEMS.c.id)).mappings()
            items = tuple(_plan_item(r) for r in rows)
        return Plan(p["id"], p["created_at"], p["policy"], p["horizon_s"], p["summary"], items)

    def job_plan(self, principal: Principal, job_id: str) -> list[PlanItem]:
        """The current plan's items for one job (where, when and why)."""
        with self._tx(readonly=True) as conn:
            job_id = self._select_job(conn, principal, job_id, lock=False).id
            latest = select(func.max(PLANS.c.id)).scalar_subquery()
            rows = conn.execute(select(PLAN_ITEMS).where(PLAN_ITEMS.c.plan_id == latest, PLAN_ITEMS.c.job_id == job_id)
                                .order_by(PLAN_ITEMS.c.id)).mappings()
            return [_plan_item(r) for r in rows]

    # ---------------------------------------------------------------------------------------- metrics

    def queue_stats(self) -> dict[str, int]:
        """Number of jobs per status (every status listed)."""
        with self._tx(readonly=True) as conn:
            rows = conn.execute(select(JOBS.c.status, func.count()).group_by(JOBS.c.status)).all()
        counts = dict.fromkeys(JOB_STATUSES, 0)
        counts.update({s: int(n) for s, n in rows})
        return counts


def _job_values(job: JobRow) -> dict[str, Any]:
    m = {k: getattr(job, k) for k in JobRow.__dataclass_fields__ if k != "placement"}
    m.update(_placement_values(job.placement))
    return m


def _transition_values(to_status: str, placement: Placement | Mapping[str, Any] | None) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if to_status == "queued":
        values.update(_placement_values(None))
    elif placement is not None:
        values.update(_placement_values(placement))
    if to_status == "running":
        values["next_attempt_at"] = None
    return values


def _clean_targets(targets: Mapping[str, Mapping[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for site, per_type in targets.items():
        if not isinstance(per_type, Mapping):
            raise InvalidSpec(f"replica targets for site '{site}' must map accelerator types to counts")
        out[str(site)] = {}
        for acc, n in per_type.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InvalidSpec(f"replica target {site}/{acc} must be an integer >= 0", field="replica_targets")
            out[str(site)][str(acc)] = n
    return out
