"""A scenario: fleet, zones, workloads, time range, slot length and the policies to compare."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridshift.model import bounds as B
from gridshift.model.events import DemandResponse, GridEvent
from gridshift.model.fleet import Site, Zone
from gridshift.model.service import Service
from gridshift.model.time import slot_hours, utc_in_range
from gridshift.model.workload import Job, JobKind

ALLOWED_SLOT_S = (300, 600, 900, 1200, 1800, 3600)


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime
    end: datetime

    _utc = field_validator("start", "end")(utc_in_range)

    @model_validator(mode="after")
    def _check(self) -> TimeRange:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


class JobGenerator(BaseModel):
    """Batch jobs drawn from real traces: arrivals and lengths from a GAIA trace (Alibaba PAI by default),
    optionally lengths from Philly run times; seeded and reproducible."""

    model_config = ConfigDict(extra="forbid")

    trace: Literal["gaia/pai-100k", "gaia/azure-100k", "gaia/mustang-100k"] = "gaia/pai-100k"
    length_trace: Literal["gaia", "philly"] = "gaia"
    count: int = Field(ge=1, le=10_000_000)
    window: int | None = Field(default=None, ge=1, le=100_000_000, description=(
        "Trace rows the arrivals span (default: count); count of them are drawn at random, so runs of "
        "different counts with the same window share the arrival pattern."))
    reference_accelerator: str = "H100"
    kind_mix: dict[JobKind, float] = Field(
        default_factory=lambda: {
            JobKind.PRE_TRAINING: 0.1,
            JobKind.FINE_TUNING: 0.5,
            JobKind.BATCH_INFERENCE: 0.4,
        }
    )
    gang_sizes: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16, 32, 64], min_length=1)
    gang_size_weights: list[float] | None = None
    deadline_slack_frac: tuple[float, float] = Field(
        default=(0.5, 3.0),
        description="Deadline = arrival + run time × (1 + slack), slack uniform in this range; 'inf' for none.",
    )
    no_deadline_frac: float = Field(default=0.2, ge=0, le=1)
    interruptible_frac: float = Field(default=0.8, ge=0, le=1)
    tenants: list[str] = Field(default_factory=lambda: ["team-a", "team-b", "team-c"], min_length=1)
    max_length_h: float = Field(default=168.0, gt=0, le=B.MAX_LENGTH_H, allow_inf_nan=False)
    load_scale: float = Field(default=1.0, gt=0, le=B.MAX_LOAD_SCALE, allow_inf_nan=False, description="Multiplies every job's work.")
    tier_mix: dict[int, float] = Field(default_factory=lambda: {1: 1.0},
                                       description="Share of jobs in each flexibility tier (0–3).")

    @model_validator(mode="after")
    def _check(self) -> JobGenerator:
        if not _weights(self.kind_mix.values()):
            raise ValueError("kind_mix weights must be finite, >= 0 and sum to > 0")
        if any(not 1 <= g <= B.MAX_GANG for g in self.gang_sizes):
            raise ValueError(f"gang_sizes must be from 1 to {B.MAX_GANG}")
        if self.gang_size_weights is not None and len(self.gang_size_weights) != len(self.gang_sizes):
            raise ValueError("gang_size_weights must have one weight per gang size")
        if self.gang_size_weights is not None and not _weights(self.gang_size_weights):
            raise ValueError("gang_size_weights must be finite, >= 0 and sum to > 0")
        lo, hi = self.deadline_slack_frac
        if not 0 <= lo <= hi:
            raise ValueError("deadline_slack_frac must be (low, high) with 0 <= low <= high")
        if any(k not in (0, 1, 2, 3) for k in self.tier_mix) or not _weights(self.tier_mix.values()):
            raise ValueError("tier_mix maps tiers 0–3 to weights >= 0 with a positive sum")
        return self


def _weights(values) -> bool:
    """Weights are finite, >= 0 and have a positive, finite sum."""
    w = [float(v) for v in values]
    return bool(w) and all(0 <= v <= 1e12 for v in w) and sum(w) > 0


class RecurringJobs(BaseModel):
    """A job that recurs every day (or every workday) at a nominal local start time and may shift by up to
    ``window_h`` either way: it arrives ``window_h`` before the nominal start and is due ``window_h`` after
    the nominal end. (The nightly-job scenario of Wiesner et al., "Let's Wait Awhile", Middleware 2021.)"""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: JobKind = JobKind.BATCH_INFERENCE
    tenant: str = "default"
    tz: str = Field(description="Time zone of the nominal start, stated explicitly: 'UTC' (the convention of "
                    "Wiesner et al.'s nightly job, 01:00 UTC) or an IANA zone such as 'Europe/Berlin' (local time, "
                    "daylight saving handled).")
    start_local_h: float = Field(ge=0, lt=24, description="Nominal start, hour of the local day.")
    run_h: float = Field(gt=0, le=168, description="Run time on the reference accelerator at full gang, h.")
    gang: int = Field(default=1, ge=1, le=B.MAX_GANG)
    window_h: float = Field(ge=0, le=72)
    workdays_only: bool = False
    interruptible: bool = False
    reference_accelerator: str = "H100"
    tier: int = Field(default=1, ge=0, le=3, description="Flexibility tier of these jobs in grid events.")


class WorkdayJobs(BaseModel):
    """Jobs submitted on workdays at random times between ``submit_from_local_h`` and ``submit_to_local_h``
    with run times uniform in ``run_h``; results are due at ``due_local_h`` on the first workday on which
    the job, started at submission, could have finished. (The ML-training scenario of "Let's Wait Awhile".)"""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    kind: JobKind = JobKind.PRE_TRAINING
    tenant: str = "default"
    tz: str = "UTC"
    jobs_per_workday: float = Field(gt=0, le=10_000, description="Mean; the count per day is Poisson.")
    submit_from_local_h: float = Field(default=9.0, ge=0, lt=24)
    submit_to_local_h: float = Field(default=17.0, gt=0, le=24)
    due_local_h: float = Field(default=9.0, ge=0, lt=24)
    run_h: tuple[float, float] = Field(default=(4.0, 90.0))
    gang: list[int] = Field(default_factory=lambda: [1, 2, 4, 8])
    interruptible_frac: float = Field(default=0.5, ge=0, le=1)
    reference_accelerator: str = "H100"
    tier: int = Field(default=1, ge=0, le=3, description="Flexibility tier of these jobs in grid events.")

    @model_validator(mode="after")
    def _check(self) -> WorkdayJobs:
        if self.submit_to_local_h <= self.submit_from_local_h:
            raise ValueError("submit_to_local_h must be after submit_from_local_h")
        lo, hi = self.run_h
        if not (0 < lo <= hi <= B.MAX_LENGTH_H):
            raise ValueError(f"run_h must be (low, high) with 0 < low <= high <= {B.MAX_LENGTH_H:g}")
        if not self.gang or any(not 1 <= g <= B.MAX_GANG for g in self.gang):
            raise ValueError(f"gang sizes must be from 1 to {B.MAX_GANG}")
        return self


class Workloads(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[Job] = Field(default_factory=list)
    generate: JobGenerator | None = None
    recurring: list[RecurringJobs] = Field(default_factory=list)
    workday: list[WorkdayJobs] = Field(default_factory=list)
    services: list[Service] = Field(default_factory=list)


class Objective(BaseModel):
    """What planning policies minimise, and how every policy is scored: ``carbon`` (t CO2), ``cost`` (USD),
    or ``weighted`` = cost + carbon × ``carbon_price_usd_per_t``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["carbon", "cost", "weighted"] = "carbon"
    carbon_price_usd_per_t: float = Field(default=0.0, ge=0, allow_inf_nan=False)


class PolicySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    label: str | None = Field(default=None, description="Name in reports; defaults to `name`.")
    params: dict[str, Any] = Field(default_factory=dict)

    @property
    def key(self) -> str:
        return self.label or self.name


class Scenario(BaseModel):
    """Everything a simulation needs, validated."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(default=0, ge=0, le=B.MAX_SEED)
    time_range: TimeRange
    slot_duration_s: int = Field(default=3600, description="One of 300, 600, 900, 1200, 1800, 3600.")
    zones: list[Zone] = Field(min_length=1)
    sites: list[Site] = Field(min_length=1)
    workloads: Workloads = Field(default_factory=Workloads)
    policies: list[PolicySpec] = Field(
        default_factory=lambda: [PolicySpec(name="asap"), PolicySpec(name="threshold")], min_length=1
    )
    fill_gaps_max_h: int = Field(default=0, ge=0, le=48, description="Fill signal gaps up to this length (0 = never).")
    objective: Objective = Field(default_factory=Objective)
    events: list[GridEvent] = Field(default_factory=list, description="Grid events (demand response, signals).")
    events_file: str | None = Field(default=None, description="CSV of more grid events, relative to the scenario "
                                    "file; one row per event, columns named like the fields of an event.")
    demand_response: DemandResponse = Field(default_factory=DemandResponse)

    @field_validator("objective", mode="before")
    @classmethod
    def _objective(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v

    @field_validator("policies", mode="before")
    @classmethod
    def _policies(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [{"name": p} if isinstance(p, str) else p for p in v]
        return v

    @model_validator(mode="after")
    def _check(self) -> Scenario:
        if self.slot_duration_s not in ALLOWED_SLOT_S:
            raise ValueError(f"slot_duration_s must be one of {ALLOWED_SLOT_S}")
        if self.time_range.duration_s % self.slot_duration_s:
            raise ValueError("time_range must be a whole number of slots")
        if self.time_range.start.timestamp() % self.slot_duration_s:
            raise ValueError("time_range.start must be aligned to the slot length")
        zone_ids = [z.id for z in self.zones]
        if len(set(zone_ids)) != len(zone_ids):
            raise ValueError("zone ids must be unique")
        names = [s.name for s in self.sites]
        if len(set(names)) != len(names):
            raise ValueError("site names must be unique")
        for s in self.sites:
            if s.zone not in zone_ids:
                raise ValueError(f"site '{s.name}' refers to zone '{s.zone}' which is not in zones")
        keys = [p.key for p in self.policies]
        if len(set(keys)) != len(keys):
            raise ValueError("policy labels must be unique (set `label` to run one policy twice)")
        job_ids = [j.job_id for j in self.workloads.jobs]
        if len(set(job_ids)) != len(job_ids):
            raise ValueError("job ids must be unique")
        svc = [s.name for s in self.workloads.services]
        if len(set(svc)) != len(svc):
            raise ValueError("service names must be unique")
        _check_events(self)
        w = self.workloads
        if not (w.jobs or w.generate or w.services or w.recurring or w.workday):
            raise ValueError("workloads is empty: give jobs, a job generator, recurring or workday jobs, or services")
        return self

    @property
    def n_slots(self) -> int:
        return int(self.time_range.duration_s // self.slot_duration_s)

    @property
    def slot_h(self) -> float:
        return slot_hours(self.slot_duration_s)


def _check_events(sc: Scenario) -> None:
    """Events name known sites or zones, fall inside the time range, and two power requests never overlap on
    one site."""
    sites = {s.name: s.zone for s in sc.sites}
    ids = [e.id for e in sc.events]
    if len(set(ids)) != len(ids):
        raise ValueError("event ids must be unique")
    windows: dict[str, list] = {}
    for e in sc.events:
        if e.sites is not None:
            bad = [s for s in e.sites if s not in sites]
            if bad:
                raise ValueError(f"event '{e.id}' names site '{bad[0]}' which is not in sites")
            members = list(e.sites)
        else:
            members = [s for s, z in sites.items() if z == e.zone]
            if not members:
                raise ValueError(f"event '{e.id}' names zone '{e.zone}' where no site is")
        if e.start < sc.time_range.start or e.end > sc.time_range.end:
            raise ValueError(f"event '{e.id}' ({e.start.isoformat()} – {e.end.isoformat()}) is not inside the "
                             "scenario's time range")
        if e.is_power_request:
            for s in members:
                for other, a, b in windows.get(s, []):
                    if e.start < b and a < e.end:
                        raise ValueError(f"events '{other}' and '{e.id}' overlap at site '{s}'")
                windows.setdefault(s, []).append((e.id, e.start, e.end))


def unrunnable_gang(sc: Scenario) -> tuple[tuple[str | int, ...], str] | None:
    """The first written job, recurring or workday template that asks for a gang larger than every pool of the
    fleet (a gang runs inside one pool, so it could never start), as (field path, message); None if none."""
    largest = max(p.count for s in sc.sites for p in s.pools)
    w = sc.workloads

    def msg(gang: int) -> str:
        return (f"a gang of {gang} accelerators is larger than any pool of the fleet (the largest has {largest}): "
                "the job could never run")

    for i, j in enumerate(w.jobs):
        if j.gang_min > largest:
            return ("workloads", "jobs", i, "gang_min"), msg(j.gang_min)
    for i, r in enumerate(w.recurring):
        if r.gang > largest:
            return ("workloads", "recurring", i, "gang"), msg(r.gang)
    for i, d in enumerate(w.workday):
        if max(d.gang) > largest:
            return ("workloads", "workday", i, "gang"), msg(max(d.gang))
    return None


def utc_now() -> datetime:
    return datetime.now(UTC)
