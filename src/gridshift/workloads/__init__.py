"""Workloads for the simulator: batch jobs (generated from real traces or written inline) as a
:class:`~gridshift.model.workload.JobTable`, and online-service demand per region and slot.

``batch`` and ``inference`` are pure (arrays in, tables out); ``build`` loads traces and the catalog.
"""

from gridshift.workloads.batch import KIND_DEFAULTS, generate_jobs, jobs_to_table
from gridshift.workloads.build import build_demands, build_jobs, request_times_s, speed_matrix
from gridshift.workloads.inference import minute_ratios, region_utc_offset_h, shape_demand
from gridshift.workloads.templates import recurring_jobs, workday_jobs

__all__ = [
    "KIND_DEFAULTS",
    "build_demands",
    "build_jobs",
    "generate_jobs",
    "jobs_to_table",
    "minute_ratios",
    "recurring_jobs",
    "region_utc_offset_h",
    "request_times_s",
    "shape_demand",
    "workday_jobs",
    "speed_matrix",
]
