"""The HTTP API of ``gridshift serve`` (FastAPI; routes under ``/api/v1``, OpenAPI at ``/openapi.json``).

``create_app(store, fleet=..., reconciler=..., settings=...)`` builds the app around a
:class:`~gridshift.service.store.Store`. The fleet (sites, zones, accelerator pools) is fixed when the app is
built and exposed read-only. A reconciler, if given, is any object with ``notify(reason)`` and ``status()``:
the API calls ``notify`` after changes that matter (a job submitted or cancelled, a grid event, signals)
and reads ``status()`` for ``/health``, ``/power`` and ``/metrics``.

Roles, limits and error answers are described in ``docs/api.md``; authentication lives in
:mod:`gridshift.service.auth`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridshift.errors import GridShiftError
from gridshift.model.events import GridEvent
from gridshift.model.service import Service
from gridshift.model.workload import Job
from gridshift.service.auth import (
    ApiSettings,
    Authenticator,
    BodyLimitMiddleware,
    ErrorResponse,
    document_security,
    install_error_handlers,
    require,
)
from gridshift.service.db import StateError, current_revision, head_revision
from gridshift.service.store import (
    CLIENT_JOB_ID,
    GridEventRow,
    InvalidSpec,
    JobEvent,
    JobRow,
    NotFound,
    Plan,
    PlanItem,
    Principal,
    ServiceRow,
    Store,
)

__all__ = ["ApiSettings", "create_app", "fleet_from_sites"]

log = logging.getLogger("gridshift.api")

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


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the usual error codes plus ``codes``."""
    wanted = sorted({401, 403, 413, 422, 429, 503, *codes})
    return {c: {"model": ErrorResponse, "description": _DESCRIPTIONS[c]} for c in wanted}


# ----------------------------------------------------------------------------------------------- models


def _to_utc(v: datetime | None) -> datetime | None:
    if v is None:
        return None
    return v.replace(tzinfo=timezone.utc) if v.tzinfo is None else v.astimezone(timezone.utc)


def _aware_utc(v: datetime | None) -> datetime | None:
    """A deadline is an instant: a time without a zone is refused, any other is converted to UTC."""
    if v is None:
        return None
    if v.tzinfo is None or v.utcoffset() is None:
        raise ValueError("must be timezone-aware UTC: give it with 'Z' or an offset, e.g. "
                         f"{v.replace(microsecond=0).isoformat()}Z")
    return v.astimezone(timezone.utc)


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
                                           description="Shell-style command the executor runs."))
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
    def of(cls, j: JobRow) -> "JobOut":
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
    def of(cls, e: JobEvent) -> "JobEventOut":
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
    def of(cls, it: PlanItem) -> "PlanItemOut":
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
    def of(cls, p: Plan) -> "PlanOut":
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
    def of(cls, s: ServiceRow) -> "ServiceOut":
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

    _utc = field_validator("time")(lambda v: _to_utc(v))


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

    _utc = field_validator("start", "end")(lambda v: _to_utc(v))


class PullOut(BaseModel):
    zone: str
    start: datetime
    end: datetime
    rows: dict[str, int] = Field(description="Rows stored per signal.")


class GridEventOut(BaseModel):
    id: str
    event: GridEvent
    source: str
    status: Literal["active", "cancelled"]
    received_at: datetime
    updated_at: datetime
    revision: int

    @classmethod
    def of(cls, r: GridEventRow) -> "GridEventOut":
        return cls(id=r.id, event=r.event, source=r.source, status=r.status, received_at=r.received_at,
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


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    time: datetime
    version: str
    database: DatabaseHealth
    reconciler: dict[str, Any] | None = Field(
        None, description="The reconciler's status (null: none runs); in full for an operator token, else whether "
                          "it runs, its passes and errors.")


# ---------------------------------------------------------------------------------------------- helpers


def fleet_from_sites(sites: list[Any], zones: list[Any] | None = None, at: datetime | None = None) -> dict:
    """A plain fleet description from :class:`~gridshift.model.fleet.Site` (and ``Zone``) objects; a step
    series power cap gives the step in force at ``at`` (default now)."""
    at = at or datetime.now(timezone.utc)
    out_sites = []
    for s in sites:
        cap = s.power_cap_mw
        if isinstance(cap, list):
            in_force = [st for st in cap if st.start <= at]
            cap = (in_force[-1] if in_force else cap[0]).power_cap_mw
        out_sites.append({"name": s.name, "zone": s.zone, "region": s.region, "pue": s.pue,
                          "power_cap_mw": float(cap),
                          "pools": [{"accelerator": p.accelerator, "count": p.count} for p in s.pools]})
    out_zones = [{"id": z.id, "carbon_basis": z.carbon_basis} for z in (zones or [])]
    return {"sites": out_sites, "zones": out_zones}


def _fleet_model(fleet: Mapping[str, Any] | None) -> FleetOut:
    data = dict(fleet or {})
    sites = [SiteOut.model_validate(s) for s in data.get("sites", [])]
    zones = data.get("zones")
    if zones is None:
        zones = [{"id": z} for z in dict.fromkeys(s.zone for s in sites)]
    acc: dict[str, int] = {}
    for s in sites:
        for p in s.pools:
            acc[p.accelerator] = acc.get(p.accelerator, 0) + p.count
    return FleetOut(sites=sites, zones=[ZoneOut.model_validate(z) for z in zones], accelerators=acc)


def _check_text(value: Any, path: str = "") -> None:
    """Refuse NUL characters, unencodable strings and non-finite numbers anywhere in a body."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidSpec("must not contain NUL characters", field=path or None)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidSpec("is not valid Unicode text", field=path or None) from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSpec("must be a finite number", field=path or None)
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _check_text(k, path)
            _check_text(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_text(v, f"{path}.{i}" if path else str(i))


def _check_cursor(cursor: str | None) -> None:
    if cursor is None:
        return
    try:
        text = base64.urlsafe_b64decode(cursor.encode()).decode("utf-8")
        json.loads(text)
    except (ValueError, TypeError):
        raise InvalidSpec("invalid cursor (pass next_cursor from the previous page)", field="cursor") from None
    if "\x00" in text or "\\u0000" in text:
        raise InvalidSpec("invalid cursor (pass next_cursor from the previous page)", field="cursor")


def _status(reconciler: Any) -> dict[str, Any] | None:
    """The reconciler's status as JSON-ready data (None without a reconciler)."""
    if reconciler is None or not callable(getattr(reconciler, "status", None)):
        return None
    try:
        st = reconciler.status()
        return jsonable_encoder(st if isinstance(st, Mapping) else {"status": st})
    except Exception as exc:  # noqa: BLE001 (the reconciler's failure must not take the API down)
        return {"error": f"status() failed: {type(exc).__name__}: {exc}"}


def _notify(app: FastAPI, reason: str) -> None:
    rec = app.state.reconciler
    if rec is None or not callable(getattr(rec, "notify", None)):
        return
    try:
        rec.notify(reason)
    except Exception:  # noqa: BLE001
        log.exception("reconciler.notify(%r) failed", reason)


def _first_number(d: Mapping[str, Any] | None, *keys: str) -> float | None:
    for k in keys:
        v = (d or {}).get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            return float(v)
    return None


def _site_map(v: Any) -> dict[str, float] | None:
    if not isinstance(v, Mapping):
        return None
    try:
        return {str(k): float(x) for k, x in v.items()}
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------------------------- the app


class _State:
    """What the routes share: store, fleet, reconciler, settings, catalog look-ups."""

    def __init__(self, store: Store, fleet: FleetOut, settings: ApiSettings) -> None:
        self.store = store
        self.fleet = fleet
        self.settings = settings
        self._power_w: dict[str, tuple[float, float]] = {}

    def accelerator_power_w(self, name: str) -> tuple[float, float]:
        """(board power, host power per accelerator) in W; (0, 0) for an unknown type."""
        if name not in self._power_w:
            from gridshift.catalog import get_accelerator

            try:
                a = get_accelerator(name)
                self._power_w[name] = (a.board_power_w, a.host_power_w)
            except GridShiftError:
                self._power_w[name] = (0.0, 0.0)
        return self._power_w[name]

    def plan_power(self, plan: Plan | None, now: datetime) -> dict[str, float]:
        """Facility power per site of the plan items in force at ``now`` (board power × cap + host, × PUE)."""
        pue = {s.name: s.pue for s in self.fleet.sites}
        out = dict.fromkeys(pue, 0.0)
        if plan is None:
            return out
        items = [i for i in plan.items if i.site and i.accelerator and i.gang
                 and (i.start_at is None or i.start_at <= now)]
        if not items:
            return out
        sites = [i.site for i in items]
        watts = np.array([self.accelerator_power_w(i.accelerator) for i in items]).reshape(-1, 2)
        gang = np.array([i.gang for i in items], dtype=float)
        cap = np.array([1.0 if i.power_cap_frac is None else i.power_cap_frac for i in items])
        site_pue = np.array([pue.get(s, 1.0) for s in sites])
        mw = gang * (watts[:, 0] * cap + watts[:, 1]) * site_pue / 1e6
        for s, v in zip(sites, mw):
            out[s] = out.get(s, 0.0) + float(v)
        return out

    def power(self, reconciler: Any, status: dict[str, Any] | None = None,
              plan: Plan | None | Literal[False] = False) -> tuple[dict[str, float], str]:
        """Facility power per site (every fleet site listed) and where it comes from: the reconciler's
        ``site_power_mw``, else the plan summary's, else an estimate from the plan items in force."""
        zeros = {s.name: 0.0 for s in self.fleet.sites}
        st = _status(reconciler) if status is None else status
        got = _site_map((st or {}).get("site_power_mw"))
        if got is not None:
            return {**zeros, **got}, "reconciler"
        if plan is False:
            plan = self.store.current_plan()
        got = _site_map(plan.summary.get("site_power_mw")) if plan is not None else None
        if got is not None:
            return {**zeros, **got}, "plan"
        return self.plan_power(plan, datetime.now(timezone.utc)), "plan"


class _Collector:
    """Gauges read at scrape time from the store and the reconciler."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201
        st: _State = self.app.state.api
        rec_status = _status(self.app.state.reconciler)
        up = GaugeMetricFamily("gridshift_database_up", "1 if the database answered this scrape.")
        queue = GaugeMetricFamily("gridshift_queue_jobs", "Jobs per status.", labels=["status"])
        power = GaugeMetricFamily("gridshift_site_power_mw", "Facility power per site, MW.", labels=["site"])
        plan = None
        try:
            for status, n in st.store.queue_stats().items():
                queue.add_metric([status], n)
            if rec_status is None:
                plan = st.store.current_plan()
            sites, _ = st.power(self.app.state.reconciler, rec_status, plan if rec_status is None else False)
            for site, mw in sorted(sites.items()):
                power.add_metric([site], mw)
            up.add_metric([], 1)
        except StateError:
            up.add_metric([], 0)
        yield up
        yield queue
        yield power
        plan_s = _first_number(rec_status, "plan_seconds", "plan_time_s")
        if plan_s is None and plan is not None:
            plan_s = _first_number(plan.summary, "plan_seconds", "plan_time_s")
        g = GaugeMetricFamily("gridshift_plan_seconds", "Time the last plan took to make, s.")
        g.add_metric([], plan_s if plan_s is not None else 0.0)
        yield g
        carbon = _first_number(rec_status, "carbon_t_total", "carbon_t")
        g = GaugeMetricFamily("gridshift_carbon_t_total", "Carbon emitted by the fleet's work so far, t CO2e.")
        g.add_metric([], carbon if carbon is not None else 0.0)
        yield g
        cost = _first_number(rec_status, "cost_usd_total", "cost_usd")
        if cost is not None:
            g = GaugeMetricFamily("gridshift_cost_usd_total", "Energy cost of the fleet's work so far, $.")
            g.add_metric([], cost)
            yield g
        cf = rec_status.get("counterfactual") if isinstance(rec_status, Mapping) else None
        if isinstance(cf, Mapping):
            policy = str(cf.get("policy", "asap"))
            for key, name, text in (("carbon_t", "gridshift_counterfactual_carbon_t_total", "t CO2e"),
                                    ("cost_usd", "gridshift_counterfactual_cost_usd_total", "$"),
                                    ("energy_mwh", "gridshift_counterfactual_energy_mwh_total", "MWh")):
                v = _first_number(cf, key)
                if v is not None:
                    g = GaugeMetricFamily(name, f"The same work under the counterfactual policy so far, {text}.",
                                          labels=["policy"])
                    g.add_metric([policy], v)
                    yield g


class MetricsMiddleware:
    """Counts requests and times them, by route template, method and status."""

    def __init__(self, app: ASGIApp, requests: Counter, latency: Histogram) -> None:
        self.app = app
        self.requests = requests
        self.latency = latency
        # labelled children by (route, method, status): ``labels()`` checks and locks on every call
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def _child(self, route: str, method: str, status: str) -> tuple[Any, Any]:
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(route, method, status), self.latency.labels(route, method))
            if len(self._children) < 10_000:  # routes are templates; methods and statuses are few
                self._children[key] = child
        return child

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            requests, latency = self._child(getattr(scope.get("route"), "path", None) or "unmatched",
                                            scope.get("method", ""), str(status))
            requests.inc()
            latency.observe(time.perf_counter() - t0)


def create_app(store: Store, *, fleet: dict | None = None, reconciler: Any = None,
               settings: ApiSettings | None = None) -> FastAPI:
    """The API app around ``store``; ``fleet`` is ``{"sites": [...], "zones": [...]}`` (see
    :func:`fleet_from_sites`), ``reconciler`` any object with ``notify(reason)`` and ``status()``."""
    settings = settings or ApiSettings()
    state = _State(store, _fleet_model(fleet), settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = None
        if settings.pull_interval_s and settings.pull_zones:
            task = asyncio.create_task(_pull_clock(app))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    from gridshift import __version__

    app = FastAPI(
        title="GridShift API", version=API_VERSION, lifespan=lifespan,
        description="Jobs, inference services, plans, grid signals and events of a GridShift service. "
                    "Authenticate with `Authorization: Bearer gs_...`; see docs/api.md for roles and limits.",
    )
    app.state.api = state
    app.state.store = store
    app.state.reconciler = reconciler
    app.state.settings = settings
    app.state.auth = Authenticator(store, settings)
    app.state.gridshift_version = __version__
    registry = CollectorRegistry(auto_describe=True)
    app.state.metrics_registry = registry
    requests = Counter("gridshift_http_requests", "HTTP requests by route, method and status.",
                       ["route", "method", "status"], registry=registry)
    latency = Histogram("gridshift_http_request_seconds", "HTTP request latency by route and method, s.",
                        ["route", "method"], registry=registry,
                        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0))
    registry.register(_Collector(app))
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, requests=requests, latency=latency)

    app.include_router(_router())
    _root_routes(app)
    document_security(app, public={f"{API_PREFIX}/health"} | ({"/metrics"} if settings.public_metrics else set()))
    return app


PUBLIC_RECONCILER_KEYS = frozenset({"running", "state", "ticks", "errors", "last_tick_at", "last_tick_s", "policy",
                                    "interval_s"})


def _is_operator(request: Request, db_reachable: bool) -> bool:
    """Whether the request carries a valid operator token (no failure logging, no rate limit: health only)."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not secret or len(secret) > 512:
        return False
    auth: Authenticator = request.app.state.auth
    principal = auth.cached(secret.strip())
    if principal is None and db_reachable:
        with contextlib.suppress(StateError):
            principal = auth.lookup(secret.strip())
    return principal is not None and principal.role == "operator"


def _threaded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a route's (blocking) body in the thread pool: one hop per request; the answer is serialised on
    the event loop."""
    @functools.wraps(fn)
    async def route(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    return route


def _st(request: Request) -> _State:
    return request.app.state.api


TENANT_OR_OPERATOR = require("tenant", "operator")
OPERATOR = require("operator")
GRID_OR_OPERATOR = require("grid", "operator")

JobId = Annotated[str, PathParam(pattern=JOB_ID_PATTERN, description="Job id: the service's UUID, or the id the "
                                 "job was submitted with (a tenant's own; for an operator, if one tenant uses it).")]
ServiceName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Service name.")]
EventId = Annotated[str, PathParam(pattern=NAME_PATTERN, description="Grid event id.")]
TokenId = Annotated[str, PathParam(pattern=TOKEN_ID_PATTERN, description="Token id (the part after 'gs_').")]


def _router() -> APIRouter:  # noqa: C901 (one function per route)
    r = APIRouter(prefix=API_PREFIX)

    # ---------------------------------------------------------------------------------------- health

    @r.get("/health", response_model=HealthOut, tags=["service"],
           summary="Database, schema and reconciler status (details with an operator token)",
           responses={503: {"model": HealthOut, "description": "The database is unreachable or not migrated."}})
    @_threaded
    def health(request: Request) -> JSONResponse:
        st = _st(request)
        db = DatabaseHealth(backend=st.store.dialect, reachable=False, expected_revision=head_revision())
        try:
            db.revision = current_revision(st.store.engine)
            db.reachable = True
            if db.revision != db.expected_revision:
                db.error = f"schema at revision {db.revision or 'none'}, expected {db.expected_revision}"
        except StateError as exc:
            db.error = str(exc)
        ok = db.reachable and db.error is None
        rec = _status(request.app.state.reconciler)
        if not _is_operator(request, db.reachable):  # others see whether things run, not the details
            db.error = None if db.error is None else "database unreachable or not migrated"
            rec = None if rec is None else {k: v for k, v in rec.items() if k in PUBLIC_RECONCILER_KEYS}
        body = HealthOut(status="ok" if ok else "unavailable", time=datetime.now(timezone.utc),
                         version=request.app.state.gridshift_version, database=db, reconciler=rec)
        return JSONResponse(jsonable_encoder(body), status_code=200 if ok else 503)

    # ----------------------------------------------------------------------------------------- fleet

    @r.get("/fleet", response_model=FleetOut, tags=["fleet"], summary="Sites, zones and accelerator pools",
           responses=_errors())
    @_threaded
    def get_fleet(request: Request, _: Principal = Depends(OPERATOR)) -> FleetOut:
        return _st(request).fleet

    @r.get("/sites", response_model=list[SiteOut], tags=["fleet"], summary="Sites with their pools",
           responses=_errors())
    @_threaded
    def get_sites(request: Request, _: Principal = Depends(OPERATOR)) -> list[SiteOut]:
        return _st(request).fleet.sites

    @r.get("/power", response_model=PowerOut, tags=["fleet"], summary="Aggregate facility power per site",
           responses=_errors())
    @_threaded
    def get_power(request: Request, _: Principal = Depends(GRID_OR_OPERATOR)) -> PowerOut:
        sites, source = _st(request).power(request.app.state.reconciler)
        return PowerOut(at=datetime.now(timezone.utc), source=source, site_power_mw=sites,
                        total_power_mw=float(sum(sites.values())))

    # ------------------------------------------------------------------------------------------ jobs

    @r.post("/jobs", response_model=JobOut, status_code=201, tags=["jobs"], summary="Submit a job",
            responses={200: {"model": JobOut, "description": "A job was already submitted with this "
                                                             "Idempotency-Key: the first one."},
                       201: {"description": "The job was queued."}, **_errors(409)})
    @_threaded
    def submit_job(
        request: Request,
        response: Response,
        body: JobSubmit,  # type: ignore[valid-type]
        principal: Principal = Depends(TENANT_OR_OPERATOR),
        idempotency_key: Annotated[str | None, Header(
            alias="Idempotency-Key", pattern=KEY_PATTERN,
            description="Resubmitting with the same key returns the first job (200).")] = None,
    ) -> JobOut:
        spec = body.model_dump(mode="json", exclude_unset=True)
        _check_text(spec)
        job, created = _st(request).store.submit_job(principal, spec, idempotency_key)
        if created:
            _notify(request.app, "job submitted")
        else:
            response.status_code = 200
        response.headers["Location"] = f"{API_PREFIX}/jobs/{job.id}"
        return JobOut.of(job)

    @r.get("/jobs", response_model=JobPage, tags=["jobs"], summary="List jobs (oldest first, paginated)",
           responses=_errors())
    @_threaded
    def list_jobs(
        request: Request,
        principal: Principal = Depends(TENANT_OR_OPERATOR),
        status: Annotated[list[JobStatus] | None, Query(description="Only jobs in these statuses.")] = None,
        tenant: Annotated[str | None, Query(pattern=NAME_PATTERN, description="Only this tenant's jobs (a "
                                                                             "tenant token: only its own).")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN)] = None,
    ) -> JobPage:
        _check_cursor(cursor)
        rows, nxt = _st(request).store.list_jobs(principal, status=status, limit=limit, cursor=cursor, tenant=tenant)
        return JobPage(items=[JobOut.of(j) for j in rows], next_cursor=nxt)

    @r.get("/jobs/{job_id}", response_model=JobOut, tags=["jobs"], summary="A job", responses=_errors(404, 409))
    @_threaded
    def get_job(request: Request, job_id: JobId, principal: Principal = Depends(TENANT_OR_OPERATOR)) -> JobOut:
        return JobOut.of(_st(request).store.get_job(principal, job_id))

    @r.get("/jobs/{job_id}/history", response_model=list[JobEventOut], tags=["jobs"],
           summary="A job's status changes, oldest first", responses=_errors(404, 409))
    @_threaded
    def job_history(request: Request, job_id: JobId,
                    principal: Principal = Depends(TENANT_OR_OPERATOR)) -> list[JobEventOut]:
        return [JobEventOut.of(e) for e in _st(request).store.job_history(principal, job_id)]

    @r.get("/jobs/{job_id}/plan", response_model=JobPlanOut, tags=["jobs"],
           summary="Where and when the current plan puts a job, and why", responses=_errors(404, 409))
    @_threaded
    def job_plan(request: Request, job_id: JobId, principal: Principal = Depends(TENANT_OR_OPERATOR)) -> JobPlanOut:
        items = _st(request).store.job_plan(principal, job_id)
        if job_id not in {i.job_id for i in items}:  # named by its client id, or not in the plan
            job_id = _st(request).store.get_job(principal, job_id).id
        return JobPlanOut(job_id=job_id, items=[PlanItemOut.of(i) for i in items])

    @r.post("/jobs/{job_id}/cancel", response_model=JobOut, tags=["jobs"], summary="Cancel a job",
            responses=_errors(404, 409))
    @_threaded
    def cancel_job(request: Request, job_id: JobId, body: CancelRequest | None = None,
                   principal: Principal = Depends(TENANT_OR_OPERATOR)) -> JobOut:
        reason = (body or CancelRequest()).reason
        _check_text(reason, "reason")
        before = _st(request).store.get_job(principal, job_id)
        job = _st(request).store.cancel_job(principal, job_id, reason)
        if before.status != job.status:
            _notify(request.app, "job cancelled")
        return JobOut.of(job)

    # -------------------------------------------------------------------------------------- services

    @r.get("/services", response_model=list[ServiceOut], tags=["services"], summary="Inference services",
           responses=_errors())
    @_threaded
    def list_services(request: Request, principal: Principal = Depends(TENANT_OR_OPERATOR)) -> list[ServiceOut]:
        return [ServiceOut.of(s) for s in _st(request).store.list_services(principal)]

    @r.get("/services/{name}", response_model=ServiceOut, tags=["services"], summary="An inference service",
           responses=_errors(404))
    @_threaded
    def get_service(request: Request, name: ServiceName,
                    principal: Principal = Depends(TENANT_OR_OPERATOR)) -> ServiceOut:
        return ServiceOut.of(_st(request).store.get_service(principal, name))

    @r.put("/services/{name}", response_model=ServiceOut, tags=["services"],
           summary="Create or replace an inference service",
           responses={201: {"model": ServiceOut, "description": "Created."}, **_errors(409)})
    @_threaded
    def put_service(request: Request, response: Response, name: ServiceName,
                    body: ServiceIn,  # type: ignore[valid-type]
                    principal: Principal = Depends(TENANT_OR_OPERATOR)) -> ServiceOut:
        spec = body.model_dump(mode="json", exclude_unset=True)
        if spec.get("name") not in (None, name):
            raise InvalidSpec(f"body names service '{spec['name']}' but the path names '{name}'", field="name")
        spec["name"] = name
        if spec.get("tenant") is None:
            spec.pop("tenant", None)
        _check_text(spec)
        store = _st(request).store
        if principal.role == "operator" and "tenant" not in spec:  # replacing a spec keeps its owner
            with contextlib.suppress(NotFound):
                spec["tenant"] = store.get_service(principal, name).tenant
        row = store.put_service(principal, spec)
        if row.version == 1:
            response.status_code = 201
        _notify(request.app, "service changed")
        return ServiceOut.of(row)

    @r.delete("/services/{name}", status_code=204, tags=["services"], summary="Delete an inference service",
              responses=_errors(404))
    @_threaded
    def delete_service(request: Request, name: ServiceName,
                       principal: Principal = Depends(TENANT_OR_OPERATOR)) -> Response:
        if not _st(request).store.delete_service(principal, name):
            raise NotFound(f"no service '{name}'")
        _notify(request.app, "service deleted")
        return Response(status_code=204)

    @r.put("/services/{name}/replicas", response_model=ServiceOut, tags=["services"],
           summary="Set a service's replica targets", responses=_errors(404, 409))
    @_threaded
    def put_replicas(request: Request, name: ServiceName, body: ReplicasIn,
                     _: Principal = Depends(OPERATOR)) -> ServiceOut:
        _check_text(body.replica_targets, "replica_targets")
        row = _st(request).store.set_replica_targets(name, body.replica_targets, expect_version=body.expect_version)
        _notify(request.app, "replica targets changed")
        return ServiceOut.of(row)

    # ------------------------------------------------------------------------------------------ plan

    @r.get("/plan", response_model=PlanOut, tags=["plan"], summary="The current plan, with why per job",
           responses=_errors(404))
    @_threaded
    def get_plan(request: Request, _: Principal = Depends(OPERATOR)) -> PlanOut:
        plan = _st(request).store.current_plan()
        if plan is None:
            raise NotFound("no plan has been made yet")
        return PlanOut.of(plan)

    # ---------------------------------------------------------------------------------------- policy

    def _policy_out(rec: Any) -> PolicyOut:
        from gridshift.service.reconciler import LIVE_POLICIES

        spec = rec.policy_spec
        return PolicyOut(name=spec.name, label=spec.key, params=jsonable_encoder(spec.params),
                         available=list(LIVE_POLICIES))

    def _reconciler(request: Request) -> Any:
        rec = request.app.state.reconciler
        if rec is None or not callable(getattr(rec, "set_policy", None)):
            raise NotFound("no reconciler runs (start gridshift serve with --fleet)")
        return rec

    @r.get("/policy", response_model=PolicyOut, tags=["plan"], summary="The reconciler's planning policy",
           responses=_errors(404))
    @_threaded
    def get_policy(request: Request, _: Principal = Depends(OPERATOR)) -> PolicyOut:
        return _policy_out(_reconciler(request))

    @r.put("/policy", response_model=PolicyOut, tags=["plan"],
           summary="Switch the planning policy (the next pass plans afresh with it)", responses=_errors(404))
    @_threaded
    def put_policy(request: Request, body: PolicyIn, p: Principal = Depends(OPERATOR)) -> PolicyOut:
        from gridshift.model.scenario import PolicySpec

        rec = _reconciler(request)
        try:
            rec.set_policy(PolicySpec(name=body.name, label=body.label, params=body.params), actor=f"token {p.token_id}")
        except GridShiftError:
            raise
        except Exception as exc:  # noqa: BLE001 (a policy's own checks may raise anything on odd parameters)
            raise InvalidSpec(f"policy '{body.name}' rejected its parameters: {exc}", field="params") from exc
        log.info("policy set to %s by token %s", rec.policy_spec.key, p.token_id)
        return _policy_out(rec)

    # --------------------------------------------------------------------------------------- signals

    @r.post("/signals", response_model=SignalsStored, tags=["grid"], summary="Push grid signal values",
            responses=_errors())
    @_threaded
    def post_signals(request: Request, body: SignalBatch, principal: Principal = Depends(GRID_OR_OPERATOR)
                     ) -> SignalsStored:
        rows = [{"zone": s.zone, "signal": s.signal, "at": s.time, "value": s.value, "source": s.source}
                for s in body.rows]
        _check_text(rows, "rows")
        n = _st(request).store.upsert_signals(rows)
        _notify(request.app, "signals")
        return SignalsStored(rows=n)

    @r.get("/signals", response_model=list[SignalOut], tags=["grid"], summary="Stored signal values",
           responses=_errors())
    @_threaded
    def get_signals(
        request: Request,
        zone: Annotated[str, Query(pattern=ZONE_PATTERN)],
        signal: Annotated[str, Query(pattern=SIGNAL_PATTERN)],
        start: Annotated[datetime, Query(description="Window start (UTC).")],
        end: Annotated[datetime, Query(description="Window end (UTC, exclusive).")],
        _: Principal = Depends(OPERATOR),
    ) -> list[SignalOut]:
        start, end = _to_utc(start), _to_utc(end)
        _window(start, end)
        pts = _st(request).store.signals_between(zone, signal, start, end)
        return [SignalOut(zone=p.zone, signal=p.signal, time=p.at, value=p.value, source=p.source) for p in pts]

    @r.post("/signals/pull", response_model=PullOut, tags=["grid"],
            summary="Pull a zone's signals from the data registry into the store", responses=_errors())
    @_threaded
    def pull_signals(request: Request, body: PullRequest, _: Principal = Depends(OPERATOR)) -> PullOut:
        _window(body.start, body.end)
        path = None if body.file is None else _signal_file(request.app.state.settings, body.file)
        counts = pull_registry(_st(request).store, body.zone, body.signals, body.start, body.end, body.shift_s,
                               path=path)
        if sum(counts.values()):
            _notify(request.app, "signals")
        return PullOut(zone=body.zone, start=body.start, end=body.end, rows=counts)

    # ---------------------------------------------------------------------------------------- events

    @r.post("/events", response_model=GridEventOut, status_code=201, tags=["grid"],
            summary="Receive a grid event (the same id again replaces it)",
            responses={200: {"model": GridEventOut, "description": "An event with this id exists: replaced "
                                                                   "if its body changed, else unchanged."},
                       201: {"description": "A new event."}, **_errors()})
    @_threaded
    def post_event(request: Request, response: Response, body: GridEvent,
                   principal: Principal = Depends(GRID_OR_OPERATOR)) -> GridEventOut:
        import re

        if not re.match(NAME_PATTERN, body.id):
            raise InvalidSpec("must be 1-200 printable characters without '/'", field="id")
        _check_text(body.model_dump(mode="json"))
        row, created = _st(request).store.add_grid_event(body, source=f"api:{principal.role}:{principal.token_id}")
        if not created:
            response.status_code = 200
        _notify(request.app, "grid event")
        return GridEventOut.of(row)

    @r.get("/events", response_model=list[GridEventOut], tags=["grid"], summary="Grid events by start time",
           responses=_errors())
    @_threaded
    def list_events(
        request: Request,
        active_at: Annotated[datetime | None, Query(description="Only events in force at this time.")] = None,
        end_after: Annotated[datetime | None, Query(description="Only events ending after this time.")] = None,
        include_cancelled: bool = False,
        _: Principal = Depends(GRID_OR_OPERATOR),
    ) -> list[GridEventOut]:
        rows = _st(request).store.grid_events(_to_utc(active_at), end_after=_to_utc(end_after),
                                              include_cancelled=include_cancelled)
        return [GridEventOut.of(e) for e in rows]

    @r.delete("/events/{event_id}", response_model=GridEventOut, tags=["grid"], summary="Cancel a grid event",
              responses=_errors(404))
    @_threaded
    def cancel_event(request: Request, event_id: EventId, _: Principal = Depends(GRID_OR_OPERATOR)) -> GridEventOut:
        row = _st(request).store.cancel_grid_event(event_id)
        _notify(request.app, "grid event cancelled")
        return GridEventOut.of(row)

    # ---------------------------------------------------------------------------------------- tokens

    @r.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"],
            summary="Create an API token (the secret is shown once)", responses=_errors())
    @_threaded
    def create_token(request: Request, body: TokenIn, _: Principal = Depends(OPERATOR)) -> TokenCreated:
        _check_text(body.model_dump())
        store = _st(request).store
        token_id, secret = store.create_token(body.name, body.role, body.tenant)
        info = next((t for t in store.list_tokens() if t.id == token_id), None)
        created = info.created_at if info is not None else datetime.now(timezone.utc)
        return TokenCreated(id=token_id, name=body.name, role=body.role, tenant=body.tenant, created_at=created,
                            revoked_at=None, secret=secret)

    @r.get("/tokens", response_model=list[TokenOut], tags=["tokens"], summary="API tokens (without secrets)",
           responses=_errors())
    @_threaded
    def list_tokens(request: Request, _: Principal = Depends(OPERATOR)) -> list[TokenOut]:
        return [TokenOut(id=t.id, name=t.name, role=t.role, tenant=t.tenant, created_at=t.created_at,
                         revoked_at=t.revoked_at) for t in _st(request).store.list_tokens()]

    @r.delete("/tokens/{token_id}", status_code=204, tags=["tokens"], summary="Revoke an API token",
              responses=_errors(404))
    @_threaded
    def revoke_token(request: Request, token_id: TokenId, _: Principal = Depends(OPERATOR)) -> Response:
        if not _st(request).store.revoke_token(token_id):
            raise NotFound(f"no active token '{token_id}'")
        request.app.state.auth.forget(token_id)
        return Response(status_code=204)

    return r


def _window(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidSpec("end must be after start", field="end")
    if end - start > MAX_WINDOW:
        raise InvalidSpec(f"window longer than {MAX_WINDOW.days} days", field="end")


def _signal_file(settings: ApiSettings, name: str) -> Path:
    """``name`` inside ``settings.signal_files_dir`` (422 if reading files is off or it points outside)."""
    if settings.signal_files_dir is None:
        raise InvalidSpec("reading signal files is not enabled on this server (signal_files_dir)", field="file")
    base = Path(settings.signal_files_dir).resolve()
    path = (base / name).resolve()
    if base not in path.parents:
        raise InvalidSpec("must name a file inside the signal files directory", field="file")
    if not path.is_file():
        raise InvalidSpec(f"no file '{name}' in the signal files directory", field="file")
    return path


def pull_registry(store: Store, zone: str, signals: list[str] | tuple[str, ...], start: datetime, end: datetime,
                  shift_s: float = 0.0, *, path: Path | None = None) -> dict[str, int]:
    """Copy ``zone``'s registry values (or those of the CSV at ``path``) with data time in
    ``[start - shift, end - shift)`` into the store, timestamped ``data time + shift``; returns rows stored
    per signal (one transaction)."""
    from gridshift.data.grid import load_carbon, load_price

    if path is not None and len({PULL_SIGNALS.get(s) for s in signals}) > 1:
        raise InvalidSpec("a file holds either carbon or price signals: ask for one kind", field="signals")

    try:
        shift = pd.Timedelta(seconds=float(shift_s))
        lo, hi = pd.Timestamp(start) - shift, pd.Timestamp(end) - shift
        (pd.Timestamp(start) + shift, pd.Timestamp(end) + shift)  # noqa: B018 (both ends must be representable)
    except (OverflowError, pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta):
        raise InvalidSpec(f"window {start.isoformat()} .. {end.isoformat()} shifted by {shift_s:g} s lies outside "
                          "the years 1678-2261", field="start") from None
    frames: dict[str, pd.DataFrame] = {}
    rows: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    for sig in dict.fromkeys(signals):
        kind = PULL_SIGNALS.get(sig)
        if kind is None:
            raise InvalidSpec(f"unknown signal '{sig}' (known: {', '.join(PULL_SIGNALS)})", field="signals")
        if kind not in frames:
            frames[kind] = load_carbon(zone, path=path) if kind == "carbon" else load_price(zone, path=path)
        df = frames[kind]
        sel = df.loc[(df.index >= lo) & (df.index < hi), sig]
        times = (sel.index + shift).to_pydatetime()
        values = sel.to_numpy(dtype=float)
        keep = np.isfinite(values)
        source = f"registry:{kind}/{zone}" if path is None else f"file:{path.name}"
        rows += [{"zone": zone, "signal": sig, "at": t, "value": float(v), "source": source}
                 for t, v in zip(times[keep], values[keep])]
        counts[sig] = int(keep.sum())
    store.upsert_signals(rows)
    return counts


def pull_window(store: Store, s: ApiSettings, now: datetime,
                warn: Callable[..., None] | None = None) -> int:
    """Pull the configured zones' registry signals for ``[now - pull_interval_s, now + pull_horizon_s)``
    (shifted by ``pull_shift_s``) into the store; returns the rows stored. A zone or signal that fails is
    reported through ``warn(kind, zone, signal, message, *args)`` and the others go on."""
    start = now - timedelta(seconds=s.pull_interval_s or 0)
    end = now + timedelta(seconds=s.pull_horizon_s)
    stored = 0
    for zone in s.pull_zones:
        for signal in s.pull_signals:
            try:
                counts = pull_registry(store, zone, [signal], start, end, s.pull_shift_s)
                stored += sum(counts.values())
                if not sum(counts.values()) and warn is not None:
                    warn("empty", zone, signal, "signal pull: no %s for zone %s in %s .. %s (shifted by %g s)",
                         signal, zone, start.isoformat(), end.isoformat(), s.pull_shift_s)
            except Exception as exc:  # noqa: BLE001 (keep the clock running; the next pull may succeed)
                if warn is not None:
                    warn("failed", zone, signal, "signal pull of %s for zone %s failed: %s", signal, zone, exc)
    return stored


async def _pull_clock(app: FastAPI) -> None:
    """Pull the configured zones' signals every ``pull_interval_s``."""
    s: ApiSettings = app.state.settings
    warned: set[tuple[str, str, str]] = set()

    def warn(kind: str, zone: str, signal: str, message: str, *args: Any) -> None:
        """Log a problem once per zone and signal (then at debug level), so each interval does not repeat it."""
        key = (kind, zone, signal)
        log.log(logging.DEBUG if key in warned else logging.WARNING, message, *args)
        warned.add(key)

    if getattr(app.state, "pulled_at_start", False):  # `gridshift serve` pulled once before the first plan
        await asyncio.sleep(s.pull_interval_s or 60.0)
    while True:
        stored = await asyncio.to_thread(pull_window, app.state.store, s, datetime.now(timezone.utc), warn)
        if stored:
            _notify(app, "signals")
        await asyncio.sleep(s.pull_interval_s or 60.0)


# ---------------------------------------------------------------------------------- metrics, dashboard


def _root_routes(app: FastAPI) -> None:
    guard = [] if app.state.settings.public_metrics else [Depends(GRID_OR_OPERATOR)]

    @app.get("/metrics", response_class=PlainTextResponse, tags=["service"], summary="Prometheus metrics",
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
                        **_errors()}, dependencies=guard)
    @_threaded
    def metrics(request: Request) -> Response:
        return Response(generate_latest(app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD_HTML)


def _dashboard_html() -> str:
    """The live dashboard: one self-contained page (plain JS and inline SVG; no external requests) that polls
    ``/api/v1`` with the token the user enters."""
    from importlib import resources

    return resources.files("gridshift.service").joinpath("static/dashboard.html").read_text(encoding="utf-8")


DASHBOARD_HTML = _dashboard_html()
