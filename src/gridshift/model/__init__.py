"""Domain model: pydantic types with units in every field name. No I/O."""

from gridshift.model.accelerator import AcceleratorType, PowerCapCurve
from gridshift.model.fleet import Pool, PowerCapStep, Site, Zone
from gridshift.model.scenario import (
    JobGenerator,
    Objective,
    PolicySpec,
    RecurringJobs,
    Scenario,
    TimeRange,
    WorkdayJobs,
    Workloads,
)
from gridshift.model.service import DemandSpec, Service, ServiceProfile
from gridshift.model.workload import JOB_KINDS, Job, JobKind, JobTable, ServiceDemand

__all__ = [
    "AcceleratorType", "PowerCapCurve", "Pool", "PowerCapStep", "Site", "Zone", "JobGenerator", "Objective", "PolicySpec", "RecurringJobs", "WorkdayJobs",
    "Scenario", "TimeRange", "Workloads", "DemandSpec", "Service", "ServiceProfile", "JOB_KINDS", "Job",
    "JobKind", "JobTable", "ServiceDemand",
]
