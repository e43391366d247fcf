"""What the store returns: plain frozen dataclasses (never ORM objects), and their conversion from and to
table rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gridshift.model.events import GridEvent
from gridshift.model.workload import Job
from gridshift.service.store.base import InvalidSpec, PermissionDenied
from gridshift.service.tables import ROLES, TERMINAL_STATUSES


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
    def system(cls) -> Principal:
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

