"""What one simulated policy run produces: headline metrics, per-site time series and per-job outcomes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

# Columns of PolicyRun.site_timeseries (long format: one row per slot and site).
SITE_TS_COLUMNS = (
    "time",  # slot start, tz-aware UTC
    "site",
    "zone",
    "it_power_mw",
    "facility_power_mw",
    "power_cap_mw",
    "energy_mwh",
    "carbon_t",
    "cost_usd",
    "carbon_g_per_kwh",
    "price_usd_per_mwh",
    "busy_accelerators",
    "serving_accelerators",
    "total_accelerators",
    "cap_violation_mwh",
)

# Columns of PolicyRun.jobs (one row per batch job).
JOB_COLUMNS = (
    "job_id",
    "kind",
    "tenant",
    "arrival",  # tz-aware UTC
    "deadline",  # tz-aware UTC or NaT
    "first_start",  # tz-aware UTC or NaT (never started)
    "completion",  # tz-aware UTC or NaT (not finished in the horizon)
    "jct_h",  # completion - arrival, hours (NaN if not finished)
    "missed_deadline",  # bool: finished late, or unfinished with its deadline inside the horizon
    "work_acc_h",
    "done_acc_h",
    "energy_mwh",  # facility energy attributed to the job
    "carbon_t",  # location-based carbon of that energy
    "cost_usd",  # that energy at the zone's price
    "preemptions",
)


@dataclass
class PolicyRun:
    """The outcome of simulating one policy over a scenario."""

    policy: str
    metrics: dict[str, float]
    site_timeseries: pd.DataFrame
    jobs: pd.DataFrame
    service_timeseries: pd.DataFrame = field(default_factory=pd.DataFrame)
    # service_timeseries columns: time, service, region, demand_rps, served_rps
    placements: pd.DataFrame = field(default_factory=pd.DataFrame)
    # placements columns: time, job_id, site, accelerator, gang, power_cap_frac (one row per job and slot it ran)
    event_traces: dict[str, pd.DataFrame] = field(default_factory=dict)
    # per grid event: time, step_s, requested_mw, achieved_mw, baseline_mw (one row per step the response acted)
