"""The API's request and response bodies (pydantic), the patterns of names in paths and bodies, and the
documented error answers of each route.

Request models refuse unknown fields (``extra="forbid"``); times without a zone are taken as UTC, except a
job's deadline, which must carry one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from gridshift.model.events import GridEvent
from gridshift.model.service import Service
from gridshift.model.time import as_utc, utc_in_range
from gridshift.model.workload import Job
from gridshift.service.http_errors import ErrorResponse
from gridshift.service.store import CLIENT_JOB_ID, GridEventRow, JobEvent, JobRow, Plan, PlanItem, ServiceRow

API_PREFIX = "/api/v1"
API_VERSION = "1.0"
MAX_SIGNAL_ROWS = 10_000
MAX_WINDOW = timedelta(days=400)
MAX_SHIFT_S = 100 * 366 * 86400.0

# Names used in paths and stored in short columns: printable, no '/', 1-200 characters.
NAME_PATTERN = r"^[^\x00-\x20\x7f/][^\x00-\x1f\x7f/]{0,199}$"
ZONE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
SIGNAL_PATTERN = r"^[a-z][a-z0-9_]{0,99}$"
CLIENT_JOB_ID_PATTERN = rf"^{CLIENT_JOB_ID.pattern}$"  # a job id a client chooses
JOB_ID_PATTERN = CLIENT_JOB_ID_PATTERN  # the service's UUIDs match it too
TOKEN_ID_PATTERN = r"^[0-9a-f]{1,32}$"
CURSOR_PATTERN = r"^[A-Za-z0-9_=-]{1,512}$"
KEY_PATTERN = r"^[!-~]{1,200}$"
FILE_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}$"

JobStatus = Literal["queued", "planned", "running", "paused", "succeeded", "failed", "cancelled"]
Role = Literal["tenant", "operator", "grid"]
PULL_SIGNALS = {"carbon_g_per_kwh": "carbon", "clean_frac": "carbon", "renewable_frac": "carbon",
                "price_usd_per_mwh": "price"}
PullSignal = Literal["carbon_g_per_kwh", "clean_frac", "renewable_frac", "price_usd_per_mwh"]

Name = Annotated[str, Field(pattern=NAME_PATTERN)]

# ------------------------------------------------------------------------------------------- responses

_DESCRIPTIONS = {
    401: "No token, or an unknown or revoked one.",
    403: "The token's role may not use this route.",
    404: "No such object, or not visible to this token.",
    409: "Conflicts with the current state: a finished job, a stale version, a job id in use or shared.",
    413: "Request body too large.",
    422: "Invalid input: the message names the field and what is wrong.",
    429: "Rate limit exceeded; see Retry-After.",
    503: "The database is unavailable; retry later.",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the usual error codes plus ``codes``."""
    wanted = sorted({401, 403, 413, 422, 429, 503, *codes})
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in wanted}


# ----------------------------------------------------------------------------------------------- models


def to_utc(v: datetime | None) -> datetime | None:
    """UTC (naive = UTC): a query's time, any instant."""
    if v is None:
        return None
    return as_utc(v)


def _aware_utc(v: datetime | None) -> datetime | None:
    """A deadline is an instant: a time without a zone is refused, any other is converted to UTC."""
    if v is None:
        return None
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("must be timezone-aware UTC: give it with 'Z' or an offset, e.g. "
                         f"{v.replace(microsecond=0).isoformat()}Z")
    return utc_in_range(v)


def _job_submit_model() -> type[BaseModel]:
    """The submission body: :class:`Job`'s fields without the service-set ones, plus ``id`` and ``command``."""
    fields: dict[str, Any] = {
        "id": (str | None, Field(None, pattern=CLIENT_JOB_ID_PATTERN,
                                 description="Your own id for the job (1-128 characters: letters, digits, "
                                             ". _ : -), unique per tenant; a second job with it is a 409. The "
                                             "job's id stays the service's UUID; yours is its client_id."))}
    for name, info in Job.model_fields.items():
        if name in ("job_id", "arrival"):
            continue
        if name == "tenant":
            fields[name] = (str | None, Field(None, pattern=NAME_PATTERN,
                                              description="Tenant; only an operator may set it (a tenant "
                                                          "token submits for its own tenant)."))
        else:
            fields[name] = (info.annotation, info)
    fields["command"] = (str | None, Field(None, min_length=1, max_length=10_000,
                                           description="Shell-style command the executor runs (refused for "
                                                       "tenants while tenant_commands is templates-only)."))
    fields["template"] = (str | None, Field(None, pattern=NAME_PATTERN, max_length=64,
                                            description="Instead of a command: the name of an operator's job "
                                                        "template (PUT /settings/job-templates)."))
    return create_model(
        "JobSubmit", __config__=ConfigDict(extra="forbid"),
        __doc__="A job to queue: the fields of a GridShift Job; the id, tenant and arrival are set by the "
                "service.",
        __validators__={"_utc": field_validator("deadline")(lambda v: _aware_utc(v))},
        **fields,
    )


JobSubmit = _job_submit_model()


class PlacementOut(BaseModel):
    site: str
    accelerator: str
    gang: int
    power_cap_frac: float | None = None


class JobOut(BaseModel):
    """A job as stored: its spec, status, placement and attempts."""

    id: str = Field(description="The service's id for the job (a UUID).")
    client_id: str | None = Field(None, description="The id the client gave the job at submission, if any.")
    tenant: str
    status: JobStatus
    spec: dict[str, Any]
    command: str | None = None
    idempotency_key: str | None = None
    submitted_at: datetime
    updated_at: datetime
    placement: PlacementOut | None = None
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None = None
    failure_reason: str | None = None
    version: int

    @classmethod
    def of(cls, j: JobRow) -> JobOut:
        p = j.placement
        return cls(id=j.id, client_id=j.client_id, tenant=j.tenant, status=j.status, spec=j.spec, command=j.command,
                   idempotency_key=j.idempotency_key, submitted_at=j.submitted_at, updated_at=j.updated_at,
                   placement=None if p is None else PlacementOut(site=p.site, accelerator=p.accelerator,
                                                                 gang=p.gang, power_cap_frac=p.power_cap_frac),
                   attempts=j.attempts, max_attempts=j.max_attempts, next_attempt_at=j.next_attempt_at,
                   failure_reason=j.failure_reason, version=j.version)


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(None, description="Pass as ?cursor= for the next page; null on the last.")


class JobOverview(BaseModel):
    """The queue at a glance, bounded whatever the number of jobs (the dashboard polls it)."""

    counts: dict[str, int] = Field(description="Jobs per status (every status listed), counted by the database.")
    total: int
    newest: list[JobOut] = Field(description="The newest submissions, newest first.")
    active: list[JobOut] = Field(description="Running and paused jobs, oldest submission first (at most `active`).")
    active_truncated: bool = Field(description="More jobs run or are paused than `active` listed.")
    picked: list[JobOut] = Field(default_factory=list, description="The jobs asked for by `ids` (those visible).")


class JobEventOut(BaseModel):
    id: int
    job_id: str
    at: datetime
    from_status: str | None = None
    to_status: str
    reason: str
    actor: str | None = Field(None, description="Token id of whoever made the change (null: the service).")
    detail: dict[str, Any] | None = None

    @classmethod
    def of(cls, e: JobEvent) -> JobEventOut:
        return cls(**{k: getattr(e, k) for k in cls.model_fields})


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("cancelled by user", min_length=1, max_length=500)


class PlanItemOut(BaseModel):
    """Where and when the plan puts a job, and why."""

    job_id: str
    site: str | None = None
    accelerator: str | None = None
    gang: int | None = None
    start_at: datetime | None = None
    power_cap_frac: float | None = None
    why: dict[str, Any] | None = None

    @classmethod
    def of(cls, it: PlanItem) -> PlanItemOut:
        return cls(**{k: getattr(it, k) for k in cls.model_fields})


class JobPlanOut(BaseModel):
    job_id: str
    items: list[PlanItemOut] = Field(description="The current plan's items for the job (empty: not planned).")


class PlanOut(BaseModel):
    id: int
    created_at: datetime
    policy: str
    horizon_s: float | None = None
    summary: dict[str, Any]
    items: list[PlanItemOut]

    @classmethod
    def of(cls, p: Plan) -> PlanOut:
        return cls(id=p.id, created_at=p.created_at, policy=p.policy, horizon_s=p.horizon_s,
                   summary=p.summary, items=[PlanItemOut.of(i) for i in p.items])


def _service_in_model() -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for name, info in Service.model_fields.items():
        if name in ("name", "tenant"):
            fields[name] = (str | None, Field(None, pattern=NAME_PATTERN,
                                              description="Taken from the path." if name == "name" else
                                              "Tenant; only an operator may set it."))
        else:
            fields[name] = (info.annotation, info)
    return create_model("ServiceIn", __config__=ConfigDict(extra="forbid"),
                        __doc__="An inference service (the name comes from the path).", **fields)


ServiceIn = _service_in_model()
ReplicaCount = Annotated[int, Field(ge=0, le=1_000_000)]


class ServiceOut(BaseModel):
    name: str
    tenant: str
    spec: dict[str, Any]
    replica_targets: dict[str, dict[str, int]] = Field(
        description="Replicas per site and accelerator type: {site: {accelerator: replicas}}.")
    updated_at: datetime
    version: int

    @classmethod
    def of(cls, s: ServiceRow) -> ServiceOut:
        return cls(name=s.name, tenant=s.tenant, spec=s.spec, replica_targets=s.replica_targets,
                   updated_at=s.updated_at, version=s.version)


class ReplicasIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replica_targets: dict[Name, dict[Name, ReplicaCount]] = Field(
        description="{site: {accelerator type: replicas}}; replaces the current targets.")
    expect_version: int | None = Field(None, ge=1, le=2**62,
                                       description="Apply only if the service is at this version (409 otherwise).")


class SignalIn(BaseModel):
    """One value of a grid signal; the signal name carries the unit (``carbon_g_per_kwh``)."""

    model_config = ConfigDict(extra="forbid")

    zone: str = Field(pattern=ZONE_PATTERN)
    signal: str = Field(pattern=SIGNAL_PATTERN, examples=["carbon_g_per_kwh"])
    time: datetime = Field(description="Start of the interval the value holds for (UTC; naive = UTC).")
    value: float = Field(allow_inf_nan=False)
    source: str = Field("api", min_length=1, max_length=200)

    _utc = field_validator("time")(utc_in_range)  # a body's time: within the documented range


class SignalBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[SignalIn] = Field(min_length=1, max_length=MAX_SIGNAL_ROWS)


class SignalOut(BaseModel):
    zone: str
    signal: str
    time: datetime
    value: float
    source: str


class SignalsStored(BaseModel):
    rows: int = Field(description="Rows inserted or replaced.")


class PullRequest(BaseModel):
    """Pull a zone's signals from the data registry for a window into the store."""

    model_config = ConfigDict(extra="forbid")

    zone: str = Field(pattern=ZONE_PATTERN, description="Grid zone as in the data registry, e.g. 'DE-LU'.")
    signals: list[PullSignal] = Field(["carbon_g_per_kwh"], min_length=1, max_length=4)
    start: datetime = Field(description="Window start (UTC), of the stored times.")
    end: datetime = Field(description="Window end (UTC, exclusive).")
    shift_s: float = Field(0.0, ge=-MAX_SHIFT_S, le=MAX_SHIFT_S, allow_inf_nan=False,
                           description="Store each value this many seconds after its data time (replay a past "
                                       "year as the present); the data read is [start - shift, end - shift).")
    file: str | None = Field(None, pattern=FILE_PATTERN,
                             description="Read this CSV (in the registry's carbon or price format) from the "
                                         "server's signal files directory instead of the registry.")

    _utc = field_validator("start", "end")(utc_in_range)


class PullOut(BaseModel):
    zone: str
    start: datetime
    end: datetime
    rows: dict[str, int] = Field(description="Rows stored per signal.")


class GridEventOut(BaseModel):
    id: str
    event: GridEvent
    source: str
    status: Literal["active", "cancelled", "rejected"] = Field(
        description="rejected: the planner cannot take this revision of the event and skips it (see "
                    "rejected_reason); sending a changed body makes a new revision, which is tried again.")
    rejected_reason: str | None = None
    received_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, r: GridEventRow, rejected: Mapping[str, Any] | None = None) -> GridEventOut:
        """``rejected``: the quarantine entry of the event ({revision, reason}), if any."""
        out = rejected is not None and rejected.get("revision") == r.revision and r.status == "active"
        return cls(id=r.id, event=r.event, source=r.source, status="rejected" if out else r.status,
                   rejected_reason=rejected.get("reason") if out else None, received_at=r.received_at,
                   updated_at=r.updated_at, revision=r.revision)


class PowerOut(BaseModel):
    at: datetime
    source: Literal["reconciler", "plan"] = Field(description="Where the figures come from.")
    site_power_mw: dict[str, float] = Field(description="Facility power per site, MW.")
    total_power_mw: float


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, max_length=64, description="Planning policy: asap, threshold or mpc.")
    label: str | None = Field(None, pattern=NAME_PATTERN, max_length=64, description="Name in plans and metrics.")
    params: dict[str, Any] = Field(default_factory=dict, max_length=32,
                                   description="The policy's parameters, as in a scenario's `policies` entry.")


class PolicyOut(BaseModel):
    name: str
    label: str
    params: dict[str, Any]
    available: list[str] = Field(description="Policies the live service can run.")


class TenantCommandsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["allowed", "templates-only"] = Field(
        description="allowed: tenants may submit free-form commands; templates-only: only job templates (or no "
                    "command, the built-in simulated workload). Operators may always submit commands.")


class TenantCommandsOut(BaseModel):
    mode: Literal["allowed", "templates-only"]


class JobTemplatesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    templates: dict[str, list[Annotated[str, Field(min_length=1, max_length=4096)]]] = Field(
        max_length=200, description="Template name -> the command as an argv list (replaces all templates).")


class JobTemplatesOut(BaseModel):
    templates: dict[str, list[str]]


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
    role: Role
    tenant: str | None = Field(None, pattern=NAME_PATTERN, description="Required for the tenant role only.")


class TokenOut(BaseModel):
    id: str
    name: str
    role: Role
    tenant: str | None = None
    created_at: datetime
    revoked_at: datetime | None = None


class TokenCreated(TokenOut):
    secret: str = Field(description="The bearer token; shown only in this answer.")


class PoolOut(BaseModel):
    accelerator: str
    count: int = Field(ge=0)


class SiteOut(BaseModel):
    name: str
    zone: str
    region: str | None = None
    pue: float = 1.2
    power_cap_mw: float | None = Field(None, description="Facility power limit in force now, MW.")
    pools: list[PoolOut] = Field(default_factory=list)


class ZoneOut(BaseModel):
    id: str
    carbon_basis: str | None = None


class FleetOut(BaseModel):
    sites: list[SiteOut] = Field(default_factory=list)
    zones: list[ZoneOut] = Field(default_factory=list)
    accelerators: dict[str, int] = Field(default_factory=dict, description="Accelerators per type, all sites.")


class DatabaseHealth(BaseModel):
    backend: str
    reachable: bool
    revision: str | None = None
    expected_revision: str | None = None
    error: str | None = None
    writable: bool | None = Field(None, description="False: writes are stuck (a write transaction has held the "
                                                    "lock too long, or writes were refused as busy lately).")
    write_lock_held_s: float | None = Field(None, description="How long the write in progress has held the "
                                                              "write lock (SQLite; operators only).")
    busy_errors: int | None = Field(None, description="Writes refused as busy since start (operators only).")
    last_busy_at: datetime | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="degraded: reads work, writes are stuck (see database.writable); answered 200.")
    time: datetime
    version: str
    database: DatabaseHealth
    reconciler: dict[str, Any] | None = Field(
        None, description="The reconciler's status (null: none runs); in full for an operator token, else whether "
                          "it runs, its passes and errors.")
    providers: list[dict[str, Any]] | None = Field(
        None, description="Live grid-signal providers per zone (null: none configured): whether each is stale; "
                          "for an operator token also its last pull, error and dropped-row reports.")

