"""The executor interface: how the reconciler starts, pauses, resumes, stops, caps and watches jobs.

An executor runs jobs somewhere (local subprocesses, a Ray cluster, …). Every call is idempotent and
every job it started can be found again by a new instance after the service died (`recover`), so the
reconciler can re-dispatch after a crash without running a job twice. See docs/service/executors.md.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from gridshift.errors import GridShiftError

ExecState = Literal["running", "paused", "succeeded", "failed", "lost", "unknown"]
EXEC_STATES: tuple[str, ...] = ("running", "paused", "succeeded", "failed", "lost", "unknown")
FINISHED_STATES: frozenset[str] = frozenset({"succeeded", "failed", "lost"})


class ExecutorError(GridShiftError):
    """An executor could not do what was asked; ``retryable`` says whether trying again may help."""

    def __init__(self, message: str, *, job_id: str | None = None, retryable: bool = True) -> None:
        self.job_id = job_id
        self.retryable = retryable
        super().__init__(f"job '{job_id}': {message}" if job_id else message)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def check_power_cap_frac(frac: float, job_id: str | None = None) -> float:
    """``frac`` as a float in (0, 1], else ExecutorError."""
    try:
        value = float(frac)
    except (TypeError, ValueError):
        raise ExecutorError(f"power cap must be a number in (0, 1], got {frac!r}", job_id=job_id,
                            retryable=False) from None
    if not 0.0 < value <= 1.0:
        raise ExecutorError(f"power cap must be in (0, 1], got {value}", job_id=job_id, retryable=False)
    return value


@dataclass(frozen=True)
class Placement:
    """Where a job runs: a site, an accelerator type, a gang of that many accelerators, a power cap."""

    site: str
    accelerator: str
    gang: int = 1
    power_cap_frac: float = 1.0

    def __post_init__(self) -> None:
        if not self.site or not self.accelerator:
            raise ExecutorError("placement needs a site and an accelerator type", retryable=False)
        if int(self.gang) != self.gang or self.gang < 1:
            raise ExecutorError(f"gang must be a whole number >= 1, got {self.gang}", retryable=False)
        check_power_cap_frac(self.power_cap_frac)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Placement:
        return cls(site=d["site"], accelerator=d["accelerator"], gang=int(d.get("gang", 1)),
                   power_cap_frac=float(d.get("power_cap_frac", 1.0)))


@dataclass(frozen=True)
class JobLaunch:
    """One start request: the command (None: the built-in simulated workload), its environment, its
    placement, the work it stands for (accelerator-hours), the attempt number (1, 2, … on retries) and the
    tenant it belongs to (an executor may run each tenant's commands as its own OS user)."""

    job_id: str
    command: list[str] | None
    env: dict[str, str] = field(default_factory=dict)
    placement: Placement = field(default_factory=lambda: Placement("local", "cpu"))
    work_acc_h: float = 1.0
    attempt: int = 1
    tenant: str | None = None

    def __post_init__(self) -> None:
        if not self.job_id or not str(self.job_id).strip():
            raise ExecutorError("a job needs a non-empty id", retryable=False)
        if self.command is not None and (not self.command or not all(isinstance(a, str) for a in self.command)):
            raise ExecutorError("command must be a non-empty list of strings or None", job_id=self.job_id,
                                retryable=False)
        if int(self.attempt) != self.attempt or self.attempt < 1:
            raise ExecutorError(f"attempt must be a whole number >= 1, got {self.attempt}", job_id=self.job_id,
                                retryable=False)
        if not self.work_acc_h >= 0:
            raise ExecutorError(f"work_acc_h must be >= 0, got {self.work_acc_h}", job_id=self.job_id,
                                retryable=False)

    def to_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "command": list(self.command) if self.command is not None else None,
                "env": dict(self.env), "placement": self.placement.to_dict(), "work_acc_h": self.work_acc_h,
                "attempt": self.attempt, "tenant": self.tenant}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobLaunch:
        return cls(job_id=d["job_id"], command=d.get("command"), env=dict(d.get("env") or {}),
                   placement=Placement.from_dict(d["placement"]), work_acc_h=float(d.get("work_acc_h", 0.0)),
                   attempt=int(d.get("attempt", 1)), tenant=d.get("tenant"))


@dataclass(frozen=True)
class ExecStatus:
    """What an executor knows about one job. Times are UTC; ``exit_code`` is negative for a signal
    (-9: SIGKILL) and None while running or when unknown; ``ref`` is the handle ``adopt`` takes."""

    job_id: str
    state: ExecState
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    updated_at: datetime = field(default_factory=utc_now)
    power_cap_frac: float | None = None
    ref: str | None = None
    attempt: int | None = None
    progress_frac: float | None = None

    @property
    def finished(self) -> bool:
        """True once the job ended (succeeded, failed or lost) and will not change any more."""
        return self.state in FINISHED_STATES

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("started_at", "updated_at"):
            d[key] = d[key].isoformat() if d[key] is not None else None
        return d


class Executor(ABC):
    """Runs jobs. All methods are idempotent; all except ``report``/``recover`` take a job id the executor
    knows (started here, adopted or recovered) and raise ExecutorError otherwise."""

    name: str = "executor"

    @abstractmethod
    def start(self, launch: JobLaunch) -> str:
        """Start ``launch`` and return its ref. The same job and attempt again returns the existing ref
        without starting anything (whatever state it is in); a newer attempt starts only once the older
        one has ended; an older attempt is an error."""

    @abstractmethod
    def pause(self, job_id: str) -> ExecStatus:
        """Ask the job to checkpoint (signal), wait a grace period, then freeze it. A job that exits 0
        during the grace period checkpointed and stopped: it stays paused and ``resume`` restarts it.
        Pausing a paused or finished job changes nothing."""

    @abstractmethod
    def resume(self, job_id: str, placement: Placement | None = None) -> ExecStatus:
        """Continue a paused job, optionally at a new placement (an executor that must move it restarts it
        from its last checkpoint). Resuming a running or finished job changes nothing."""

    @abstractmethod
    def stop(self, job_id: str) -> ExecStatus:
        """End the job: SIGTERM (or the platform's equivalent), then kill after a grace period. The job is
        then ``failed`` with reason "stopped on request"; stopping a finished job changes nothing."""

    @abstractmethod
    def set_power_cap(self, job_id: str, frac: float) -> ExecStatus:
        """Set the job's power cap as a fraction (0, 1] of the accelerators' maximum power."""

    @abstractmethod
    def report(self) -> list[ExecStatus]:
        """The status of every job this executor knows, including those it can find in its durable state
        (state directory, named actors) left by an earlier instance."""

    @abstractmethod
    def adopt(self, refs: list[str]) -> list[ExecStatus]:
        """Take over jobs by the refs an earlier instance returned; a ref that names nothing it can find is
        reported ``unknown``."""

    @abstractmethod
    def recover(self) -> list[ExecStatus]:
        """Find every job an earlier instance started, finish calls it had begun (a pause or stop cut short
        by a crash) and return their statuses. Call it once after a restart, before re-dispatching."""

    def status(self, job_id: str) -> ExecStatus:
        """The status of one job (``unknown`` if this executor has no record of it)."""
        for st in self.report():
            if st.job_id == job_id:
                return st
        return ExecStatus(job_id=job_id, state="unknown", reason="no record of this job")

    def close(self) -> None:  # noqa: B027 (a no-op by default, not abstract)
        """Release the executor's own resources; running jobs keep running."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
