"""Turn the engine's per-slot arrays into a :class:`PolicyRun`: headline metrics, site time series and
per-job outcomes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridshift.model.time import S_PER_H
from gridshift.model.workload import JOB_KINDS
from gridshift.sim.result import PolicyRun
from gridshift.world import accounting as acc
from gridshift.world.arrays import Signals, World


def _times(world: World, seconds: np.ndarray) -> pd.DatetimeIndex:
    start = world.slot_starts[0]
    return pd.DatetimeIndex(start + pd.to_timedelta(seconds, unit="s"))


def build_run(*, policy_name: str, world: World, signals: Signals, out: dict[str, np.ndarray],
              served: np.ndarray, st: Any, plan_time_s: float) -> PolicyRun:
    f, jobs, svc = world.fleet, world.jobs, world.services
    T, S, slot_h = world.n_slots, f.n_sites, world.slot_h
    L = signals.lookback_slots
    ci = signals.carbon_g_per_kwh[f.site_zone, L:L + T]
    price = signals.price_usd_per_mwh[f.site_zone, L:L + T]
    energy = acc.energy_mwh(out["fac_mw"], slot_h)
    carbon = acc.carbon_t(energy, ci)
    cost = acc.cost_usd(energy, price)
    viol = acc.cap_violation_mwh(out["fac_mw"], f.power_cap_mw[:, :T], slot_h)
    total_acc = np.bincount(f.pool_site, weights=f.pool_count, minlength=S)
    site_ts = pd.DataFrame({
        "time": np.tile(world.slot_starts, S),
        "site": np.repeat(np.array(f.site_names, dtype=object), T),
        "zone": np.repeat(np.array([signals.zone_ids[z] for z in f.site_zone], dtype=object), T),
        "it_power_mw": out["it_mw"].ravel(),
        "facility_power_mw": out["fac_mw"].ravel(),
        "power_cap_mw": f.power_cap_mw[:, :T].ravel(),
        "energy_mwh": energy.ravel(),
        "carbon_t": carbon.ravel(),
        "cost_usd": cost.ravel(),
        "carbon_g_per_kwh": ci.ravel(),
        "price_usd_per_mwh": price.ravel(),
        "busy_accelerators": out["busy"].ravel(),
        "serving_accelerators": out["serving"].ravel(),
        "total_accelerators": np.repeat(total_acc, T),
        "cap_violation_mwh": viol.ravel(),
    })
    horizon_s = T * world.slot_duration_s
    completed = ~np.isnan(st.completion_s)
    has_deadline = np.isfinite(jobs.deadline_s)
    late = completed & (st.completion_s > jobs.deadline_s + 1e-6)
    overdue = ~completed & has_deadline & (jobs.deadline_s <= horizon_s)
    missed = late | overdue
    known = has_deadline & (completed | (jobs.deadline_s <= horizon_s))
    jct_h = (st.completion_s - jobs.arrival_s) / S_PER_H
    job_df = pd.DataFrame({
        "job_id": jobs.job_id,
        "kind": np.array([k.value for k in JOB_KINDS], dtype=object)[jobs.kind],
        "tenant": jobs.tenant,
        "arrival": _times(world, jobs.arrival_s),
        "deadline": _times(world, np.where(has_deadline, jobs.deadline_s, np.nan)),
        "first_start": _times(world, st.first_start_s),
        "completion": _times(world, st.completion_s),
        "jct_h": jct_h,
        "missed_deadline": missed,
        "work_acc_h": jobs.work_acc_h,
        "done_acc_h": st.done_acc_h,
        "energy_mwh": st.energy_mwh,
        "carbon_t": st.carbon_t,
        "cost_usd": st.cost_usd,
        "preemptions": st.preemptions,
    })
    svc_frames = []
    demand_total = served_total = 0.0
    for n, name in enumerate(svc.names):
        for r, region in enumerate(svc.regions[n]):
            dem = svc.demand_rps[n, r, :T]
            demand_total += float(dem.sum())
            served_total += float(served[n, r].sum())
            svc_frames.append(pd.DataFrame({"time": world.slot_starts, "service": name, "region": region,
                                            "demand_rps": dem, "served_rps": served[n, r]}))
    svc_df = pd.concat(svc_frames, ignore_index=True) if svc_frames else pd.DataFrame(
        columns=["time", "service", "region", "demand_rps", "served_rps"])
    fleet_mw = out["fac_mw"].sum(axis=0)
    e_total = float(energy.sum())
    metrics = {
        "energy_mwh": e_total,
        "carbon_t": float(carbon.sum()),
        "cost_usd": float(cost.sum()),
        "jobs_completed": int(completed.sum()),
        "deadline_miss_frac": float(missed.sum() / known.sum()) if known.any() else 0.0,
        "avg_jct_h": float(np.mean(jct_h[completed])) if completed.any() else float("nan"),
        "slo_attainment": served_total / demand_total if demand_total > 0 else 1.0,
        "peak_power_mw": float(fleet_mw.max()) if T else 0.0,
        "cap_violation_mwh": float(viol.sum()),
        "plan_time_s": float(plan_time_s),
        "jobs_total": int(len(jobs)),
        "jobs_missed_deadline": int(missed.sum()),
        "p95_jct_h": float(np.percentile(jct_h[completed], 95)) if completed.any() else float("nan"),
        "work_done_frac": float(st.done_acc_h.sum() / jobs.work_acc_h.sum()) if len(jobs) else 1.0,
        "avg_carbon_g_per_kwh": float(carbon.sum() * 1000 / e_total) if e_total > 0 else float("nan"),
        "avg_price_usd_per_mwh": float(cost.sum() / e_total) if e_total > 0 else float("nan"),
        "preemptions": int(st.preemptions.sum()),
        "batch_energy_mwh": float(st.energy_mwh.sum()),
        "batch_carbon_t": float(st.carbon_t.sum()),
        "batch_cost_usd": float(st.cost_usd.sum()),
        "batch_carbon_kg_per_acc_h": float(st.carbon_t.sum() * 1000 / st.done_acc_h.sum())
        if st.done_acc_h.sum() > 0 else float("nan"),
        "site_energy_mwh": {name: float(energy[s].sum()) for s, name in enumerate(f.site_names)},
        "site_peak_power_mw": {name: float(out["fac_mw"][s].max()) for s, name in enumerate(f.site_names)},
    }
    return PolicyRun(policy_name, metrics, site_ts, job_df, svc_df)
