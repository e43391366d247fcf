"""The service's database tables: one SQLAlchemy 2 declarative class per table (the schema the Alembic
migrations create; these are tables, not domain models).

Every time is stored in UTC and read back as an aware ``datetime`` (:class:`UTCDateTime`); JSON columns are
``JSONB`` on PostgreSQL. Statuses and roles are short strings guarded by CHECK constraints, so adding a value
is a plain migration on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from gridshift.model.time import as_utc

ROLES = ("tenant", "operator", "grid")
JOB_STATUSES = ("queued", "planned", "running", "paused", "succeeded", "failed", "cancelled")
TERMINAL_STATUSES = ("succeeded", "failed", "cancelled")
DISPATCH_ACTIONS = ("start", "pause", "resume", "stop", "set_power_cap")
DISPATCH_STATES = ("pending", "done", "failed")
GRID_EVENT_STATUSES = ("active", "cancelled")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and returned timezone-aware (naive input is taken as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        value = as_utc(value)
        # SQLite has no time zones: store naive UTC text, which sorts in time order.
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")
# Auto-increment 64-bit keys (SQLite only auto-increments INTEGER PRIMARY KEY).
BigID = BigInteger().with_variant(Integer(), "sqlite")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class Token(Base):
    """An API token. Only the SHA-256 hex digest of the secret is stored."""

    __tablename__ = "tokens"
    __table_args__ = (
        CheckConstraint(_in("role", ROLES), name="role"),
        CheckConstraint("role != 'tenant' OR tenant IS NOT NULL", name="tenant_role_has_tenant"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    tenant: Mapped[str | None] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class JobRecord(Base):
    """A submitted batch job, its status and where it runs (``site`` … ``power_cap_frac``, set when placed).
    ``id`` is the service's UUID; ``client_id`` the id the client gave it, if any (unique per tenant)."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("status", JOB_STATUSES), name="status"),
        CheckConstraint("attempts >= 0 AND max_attempts >= 1", name="attempts"),
        UniqueConstraint("tenant", "idempotency_key"),
        Index(None, "tenant", "submitted_at", "id"),
        Index(None, "status", "submitted_at"),
        Index(None, "tenant", "status"),  # a tenant's jobs per status (the dashboard's counts)
        Index(None, "submitted_at", "id"),  # the newest jobs of all tenants
        # the client's own job ids, unique per tenant (leading column: found by id alone too)
        Index("uq_jobs_client_id_tenant", "client_id", "tenant", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    site: Mapped[str | None] = mapped_column(String(200))
    accelerator: Mapped[str | None] = mapped_column(String(200))
    gang: Mapped[int | None] = mapped_column(Integer)
    power_cap_frac: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    next_attempt_at: Mapped[datetime | None]
    failure_reason: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    client_id: Mapped[str | None] = mapped_column(String(128))


class JobEventRecord(Base):
    """One entry of a job's history: a status change (or an action at the same status) and why."""

    __tablename__ = "job_events"
    __table_args__ = (Index(None, "job_id", "id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(32))
    detail: Mapped[dict[str, Any] | None]


class DispatchRecord(Base):
    """Intent log: one row per executor action, written before the executor is called.

    ``job_version`` is the job version the intent's transaction produced; (job_id, job_version) is unique,
    so one job state change yields at most one executor action, and (job_id, attempt) is unique among
    ``start`` actions, so each execution attempt is started at most once.
    """

    __tablename__ = "dispatches"
    __table_args__ = (
        CheckConstraint(_in("action", DISPATCH_ACTIONS), name="action"),
        CheckConstraint(_in("state", DISPATCH_STATES), name="state"),
        UniqueConstraint("job_id", "job_version"),
        Index("uq_dispatches_start_job_id_attempt", "job_id", "attempt", unique=True,
              sqlite_where=text("action = 'start'"), postgresql_where=text("action = 'start'")),
        Index(None, "state", "id"),
    )

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    attempt: Mapped[int] = mapped_column(Integer)
    job_version: Mapped[int] = mapped_column(Integer)
    args: Mapped[dict[str, Any] | None]
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    executor_ref: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)


class SignalRecord(Base):
    """One value of a grid signal (the name carries the unit, e.g. ``carbon_g_per_kwh``) in one zone."""

    __tablename__ = "signals"

    zone: Mapped[str] = mapped_column(String(100), primary_key=True)
    signal: Mapped[str] = mapped_column(String(100), primary_key=True)
    at: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    source: Mapped[str] = mapped_column(String(200))


class GridEventRecord(Base):
    """A received grid event (``body`` is a :class:`gridshift.model.events.GridEvent` as JSON)."""

    __tablename__ = "grid_events"
    __table_args__ = (
        CheckConstraint(_in("status", GRID_EVENT_STATUSES), name="status"),
        Index(None, "end_at", "start_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    body: Mapped[dict[str, Any]]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    received_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    revision: Mapped[int] = mapped_column(Integer, default=1)


class ServiceRecord(Base):
    """An online inference service (``spec``: :class:`gridshift.model.service.Service` as JSON) and its
    replica targets per site and accelerator type."""

    __tablename__ = "services"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200), index=True)
    spec: Mapped[dict[str, Any]]
    replica_targets: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    version: Mapped[int] = mapped_column(Integer, default=1)


class PlanRecord(Base):
    """One plan the reconciler made; the newest is the current plan."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(index=True)
    policy: Mapped[str] = mapped_column(String(200))
    horizon_s: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[dict[str, Any]]


class PlanItemRecord(Base):
    """Where and when a plan puts one job, and why."""

    __tablename__ = "plan_items"
    __table_args__ = (Index(None, "plan_id", "job_id"),)

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(BigID, ForeignKey("plans.id", ondelete="CASCADE"))
    job_id: Mapped[str] = mapped_column(String(36), ForeignKey("jobs.id", ondelete="CASCADE"))
    site: Mapped[str | None] = mapped_column(String(200))
    accelerator: Mapped[str | None] = mapped_column(String(200))
    gang: Mapped[int | None] = mapped_column(Integer)
    start_at: Mapped[datetime | None]
    power_cap_frac: Mapped[float | None] = mapped_column(Float)
    why: Mapped[dict[str, Any] | None]


class SettingRecord(Base):
    """A service setting an operator changed at run time (e.g. the planning policy), kept across restarts."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(200))


# ------------------------------------------------------------------ the model gateway (migration 0005)


class GatewayUsageRecord(Base):
    """One request the model gateway answered: who, which model, where it ran, tokens, energy, carbon, cost."""

    __tablename__ = "gateway_usage"

    id: Mapped[int] = mapped_column(BigID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    tenant: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(256))
    site: Mapped[str | None] = mapped_column(String(64))
    backend: Mapped[str | None] = mapped_column(String(64))
    accelerator: Mapped[str | None] = mapped_column(String(64))
    slo_class: Mapped[str] = mapped_column(String(16))
    endpoint: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    energy_j: Mapped[float] = mapped_column(Float)
    carbon_g: Mapped[float] = mapped_column(Float)
    cost_usd: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    failovers: Mapped[int] = mapped_column(Integer)
    region: Mapped[str | None] = mapped_column(String(64))


class GatewayFileRecord(Base):
    """A file uploaded to the gateway's Batch API (or a batch's output or error file)."""

    __tablename__ = "gateway_files"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    filename: Mapped[str] = mapped_column(String(256))
    purpose: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    content: Mapped[bytes] = mapped_column(LargeBinary)


class GatewayBatchRecord(Base):
    """A batch of the gateway's Batch API, deferred within its completion window."""

    __tablename__ = "gateway_batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    input_file_id: Mapped[str] = mapped_column(String(40))
    completion_window: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    start_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    in_progress_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    output_file_id: Mapped[str | None] = mapped_column(String(40))
    error_file_id: Mapped[str | None] = mapped_column(String(40))
    total: Mapped[int] = mapped_column(Integer)
    completed: Mapped[int] = mapped_column(Integer)
    failed: Mapped[int] = mapped_column(Integer)
    meta: Mapped[dict[str, Any] | None]
    start_reason: Mapped[str | None] = mapped_column(String(256))


class GatewayDemandRecord(Base):
    """Requests the gateway received per minute, model, caller region and SLO class: the observed demand the
    reconciler plans inference services with."""

    __tablename__ = "gateway_demand"

    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    model: Mapped[str] = mapped_column(String(256), primary_key=True)
    region: Mapped[str] = mapped_column(String(64), primary_key=True)
    slo_class: Mapped[str] = mapped_column(String(16), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger)
    completion_tokens: Mapped[int] = mapped_column(BigInteger)
