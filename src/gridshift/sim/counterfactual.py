"""What each grid event cost, by flexibility tier, measured against the same policy run on the same world
without the events (the counterfactual): accelerator-hours the tier held during the event, the work it
finished over the run, and its deadline misses.

By default every run with power requests gets it (``demand_response.counterfactual``): one more run of
each policy with the events removed, which costs what the run itself costs. Accelerator-hours are
allocated accelerators (gang × time in the event's slots, by the slot's overlap with the event); work is
reference accelerator-hours finished by the end of the run; misses count jobs that finished late or not
by a deadline inside the horizon.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from gridshift.model.events import N_TIERS
from gridshift.model.time import S_PER_H
from gridshift.sim.result import PolicyRun
from gridshift.world.arrays import World


def without_events(world: World) -> World:
    return dataclasses.replace(world, events=None, event_cap_mw=None, event_known_slot=None)


def _tier_acc_h(run: PolicyRun, world: World, a_s: float, b_s: float) -> np.ndarray:
    out = np.zeros(N_TIERS)
    pl = run.placements
    if pl is None or pl.empty:
        return out
    slot_s = float(world.slot_duration_s)
    t = ((pl["time"] - world.slot_starts[0]).dt.total_seconds().to_numpy() / slot_s).round().astype(np.int64)
    overlap = np.clip(np.minimum((t + 1) * slot_s, b_s) - np.maximum(t * slot_s, a_s), 0.0, None) / S_PER_H
    j = pl["job_id"].cat.codes.to_numpy()
    np.add.at(out, np.clip(world.jobs.tier[j], 0, N_TIERS - 1), pl["gang"].to_numpy() * overlap)
    return out


def _by_tier(world: World, values: np.ndarray) -> np.ndarray:
    return np.bincount(np.clip(world.jobs.tier, 0, N_TIERS - 1), weights=values.astype(float), minlength=N_TIERS)


def event_costs(world: World, run: PolicyRun, base: PolicyRun) -> list[dict]:
    """Per power request of ``world``: the cost by tier of ``run`` against ``base`` (the no-event run)."""
    ev = world.events
    if ev is None:
        return []
    jobs_run, jobs_base = run.jobs, base.jobs
    work = _by_tier(world, jobs_run["done_acc_h"].to_numpy())
    work0 = _by_tier(world, jobs_base["done_acc_h"].to_numpy())
    miss = _by_tier(world, jobs_run["missed_deadline"].to_numpy())
    miss0 = _by_tier(world, jobs_base["missed_deadline"].to_numpy())
    has_dl = _by_tier(world, np.isfinite(world.jobs.deadline_s))
    out = []
    rebound = np.zeros(ev.n) if ev.rebound_s is None else ev.rebound_s
    for e in range(ev.n):
        a, b = float(ev.start_s[e]), float(ev.end_s[e] + rebound[e])
        acc, acc0 = _tier_acc_h(run, world, a, b), _tier_acc_h(base, world, a, b)
        tiers = {}
        for k in range(N_TIERS):
            tiers[str(k)] = {
                "acc_h": float(acc[k]), "acc_h_without_event": float(acc0[k]),
                "acc_h_lost_frac": float(1 - acc[k] / acc0[k]) if acc0[k] > 0 else 0.0,
                "work_done_acc_h": float(work[k]), "work_done_without_event_acc_h": float(work0[k]),
                "work_lost_acc_h": float(work0[k] - work[k]),
                "deadline_misses": int(miss[k]), "deadline_misses_without_event": int(miss0[k]),
                "deadline_miss_frac": float(miss[k] / has_dl[k]) if has_dl[k] else 0.0,
                "deadline_miss_frac_without_event": float(miss0[k] / has_dl[k]) if has_dl[k] else 0.0,
            }
        out.append({"window": "event start to end of its rebound hold", "by_tier": tiers,
                    "deadline_miss_frac": run.metrics.get("deadline_miss_frac"),
                    "deadline_miss_frac_without_event": base.metrics.get("deadline_miss_frac")})
    return out


def attach(world: World, run: PolicyRun, base: PolicyRun) -> None:
    """Put each event's counterfactual cost into ``run.metrics['events'][i]['vs_no_event']`` and warn where
    tier-0 work lost accelerator-hours to an event."""
    costs = event_costs(world, run, base)
    warn = []
    for e, c in zip(run.metrics.get("events", []), costs):
        e["vs_no_event"] = c
        t0 = c["by_tier"]["0"]
        if t0["acc_h_without_event"] - t0["acc_h"] > 1e-6:
            warn.append(f"event '{e['id']}': tier-0 work held {t0['acc_h']:.4g} accelerator-hours during it against "
                        f"{t0['acc_h_without_event']:.4g} in the same run without the event")
    if warn:
        run.metrics["plan_warnings"] = list(run.metrics.get("plan_warnings", [])) + warn
