"""Workloads: batch jobs (pydantic for files and the API, a column table for the simulator) and online
inference services.

Work is measured in accelerator-hours of a reference accelerator type: a job with ``work_acc_h = 8`` on
the reference type finishes in one hour on 8 of them. ``throughput`` (or the table's ``speed`` matrix)
scales that rate per accelerator type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridshift.model import bounds as B
from gridshift.model.time import utc_in_range


class JobKind(str, Enum):
    PRE_TRAINING = "pre-training"
    FINE_TUNING = "fine-tuning"
    BATCH_INFERENCE = "batch-inference"


JOB_KINDS: tuple[JobKind, ...] = tuple(JobKind)


class Job(BaseModel):
    """One batch job as a user submits it."""

    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(min_length=1)
    kind: JobKind
    tenant: str = "default"
    priority: int = Field(default=0, ge=-B.MAX_PRIORITY, le=B.MAX_PRIORITY,
                          description="Higher runs first among jobs that are ready.")
    arrival: datetime = Field(description="When the job is submitted (UTC).")
    deadline: datetime | None = Field(default=None, description="Latest completion time (UTC); None = no deadline.")
    work_acc_h: float = Field(gt=0, le=B.MAX_WORK_ACC_H, allow_inf_nan=False,
                              description="Work in accelerator-hours of the reference accelerator type.")
    throughput: dict[str, float] = Field(
        default_factory=dict,
        description="Throughput per accelerator type relative to the reference type (1.0 = same). Types not "
        "listed are estimated from the catalog; 0 means the job cannot run there.",
    )
    gang_min: int = Field(default=1, ge=1, le=B.MAX_GANG)
    gang_max: int = Field(default=1, ge=1, le=B.MAX_GANG)
    interruptible: bool = True
    checkpoint_overhead_s: float = Field(default=60.0, ge=0, le=B.MAX_OVERHEAD_S, allow_inf_nan=False,
                                         description="Time lost writing a checkpoint at pause.")
    restart_overhead_s: float = Field(default=120.0, ge=0, le=B.MAX_OVERHEAD_S, allow_inf_nan=False,
                                      description="Time lost reloading a checkpoint at resume.")
    migratable: bool = True
    data_move_gb: float = Field(default=0.0, ge=0, le=B.MAX_DATA_MOVE_GB, allow_inf_nan=False,
                                description="Data to move when the job changes site, GB.")
    tier: int = Field(default=1, ge=0, le=3, description="Flexibility tier in grid events: 0 never slowed, 1 up to "
                      "10 % throughput loss, 2 up to 25 %, 3 up to 50 % and may pause.")

    _utc = field_validator("arrival", "deadline")(utc_in_range)

    @field_validator("work_acc_h")
    @classmethod
    def _work(cls, v: float) -> float:
        if v < B.MIN_WORK_ACC_H:
            raise ValueError(f"must be at least {B.MIN_WORK_ACC_H:g} accelerator-hours")
        return v

    @model_validator(mode="after")
    def _check(self) -> Job:
        if self.gang_max < self.gang_min:
            raise ValueError("gang_max must be >= gang_min")
        if self.deadline is not None and self.deadline <= self.arrival:
            raise ValueError("deadline must be after arrival")
        for k, v in self.throughput.items():
            if not np.isfinite(v) or not 0 <= v <= B.MAX_THROUGHPUT:
                raise ValueError(f"throughput for '{k}' must be a number from 0 to {B.MAX_THROUGHPUT:g}")
        return self


@dataclass
class JobTable:
    """Column-oriented jobs, as the simulator and policies consume them (one row per job).

    Times are seconds since the scenario start. ``speed[j, k]`` is job j's throughput on the scenario's
    accelerator type k relative to the reference type (0 = cannot run there).
    """

    job_id: np.ndarray  # object (str)
    kind: np.ndarray  # int8, index into JOB_KINDS
    tenant: np.ndarray  # object (str)
    priority: np.ndarray  # int32
    arrival_s: np.ndarray  # float64
    deadline_s: np.ndarray  # float64, inf = none
    work_acc_h: np.ndarray  # float64
    gang_min: np.ndarray  # int32
    gang_max: np.ndarray  # int32
    speed: np.ndarray  # float64 [n_jobs, n_types]
    interruptible: np.ndarray  # bool
    checkpoint_overhead_s: np.ndarray  # float64
    restart_overhead_s: np.ndarray  # float64
    migratable: np.ndarray  # bool
    data_move_gb: np.ndarray  # float64
    type_names: tuple[str, ...] = field(default=())
    tier: np.ndarray | None = None  # int8 flexibility tier 0..3 (None: every job tier 1)
    # float64 habitual start (seconds since the scenario start, like arrival_s): a recurring job's nominal
    # start; NaN = the job has none (None: no job has one)
    nominal_start_s: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.tier is None:
            self.tier = np.ones(self.arrival_s.shape[0], dtype=np.int8)
        if self.nominal_start_s is None:
            self.nominal_start_s = np.full(self.arrival_s.shape[0], np.nan)

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    def validate(self) -> None:
        n = len(self)
        for name in ("job_id", "kind", "tenant", "priority", "deadline_s", "work_acc_h", "gang_min", "gang_max",
                     "interruptible", "checkpoint_overhead_s", "restart_overhead_s", "migratable", "data_move_gb", "tier",
                     "nominal_start_s"):
            if getattr(self, name).shape[0] != n:
                raise ValueError(f"column {name} has {getattr(self, name).shape[0]} rows, expected {n}")
        if self.speed.shape != (n, len(self.type_names)):
            raise ValueError(f"speed has shape {self.speed.shape}, expected {(n, len(self.type_names))}")
        for name in ("arrival_s", "work_acc_h", "checkpoint_overhead_s", "restart_overhead_s", "data_move_gb"):
            a = getattr(self, name)
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"column {name} must be finite and >= 0")
        if np.any(self.work_acc_h <= 0):
            raise ValueError("column work_acc_h must be > 0")
        if np.any(self.gang_min < 1) or np.any(self.gang_max < self.gang_min):
            raise ValueError("gang sizes must satisfy 1 <= gang_min <= gang_max")
        if np.any(np.isnan(self.deadline_s)) or np.any(self.deadline_s <= self.arrival_s):
            raise ValueError("deadline_s must be after arrival_s")
        if not np.all(np.isfinite(self.speed)) or np.any(self.speed < 0):
            raise ValueError("speed must be finite and >= 0")
        if np.any(self.tier < 0) or np.any(self.tier > 3):
            raise ValueError("tier must be 0, 1, 2 or 3")
        nom = self.nominal_start_s[np.isfinite(self.nominal_start_s)]
        if np.any(nom < 0) or np.any(np.isinf(self.nominal_start_s)):
            raise ValueError("column nominal_start_s must be NaN (none) or finite and >= 0")

    def take(self, idx: np.ndarray) -> JobTable:
        """Rows ``idx`` as a new table."""
        cols = {k: getattr(self, k)[idx] for k in self.__dataclass_fields__ if k != "type_names"}
        return JobTable(**cols, type_names=self.type_names)

    @staticmethod
    def concat(tables: list[JobTable]) -> JobTable:
        if not tables:
            raise ValueError("nothing to concatenate")
        names = tables[0].type_names
        cols = {
            k: np.concatenate([getattr(t, k) for t in tables])
            for k in tables[0].__dataclass_fields__
            if k != "type_names"
        }
        return JobTable(**cols, type_names=names)


@dataclass
class ServiceDemand:
    """Request rate of one online inference service, per user region and slot (requests per second)."""

    service: str
    regions: tuple[str, ...]
    requests_per_s: np.ndarray  # float64 [n_regions, n_slots]
