"""A policy's decision for one reconciler pass: the slot-0 observation of the live jobs, the decision as
executor actions, and the numbers a plan and the metrics report (power, rates, reasons). Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from gridshift.plan.base import Decision, Observation
from gridshift.plan.placement import base_site_mw, batch_increment_mw
from gridshift.service.reconciler.world import PAUSED, RUNNING, WAITING, LiveJob
from gridshift.sim.engine import check_decision
from gridshift.world import accounting as acc
from gridshift.world.arrays import Signals, World


@dataclass(frozen=True)
class Action:
    """One executor action for one job; start and resume carry the placement."""

    job_id: str
    kind: str  # start | resume | pause | set_power_cap
    site: str | None = None
    accelerator: str | None = None
    gang: int | None = None
    power_cap_frac: float | None = None


def pool_index(world: World, site: str | None, accelerator: str | None) -> int:
    """The first pool of accelerator type ``accelerator`` at ``site``, or -1."""
    f = world.fleet
    if site not in f.site_names or accelerator not in f.type_names:
        return -1
    s, k = f.site_names.index(site), f.type_names.index(accelerator)
    hit = np.flatnonzero((f.pool_site == s) & (f.pool_type == k))
    return int(hit[0]) if hit.size else -1


def build_observation(world: World, signals: Signals, live: Sequence[LiveJob], t: int = 0) -> Observation:
    """The observation at slot ``t`` (0: the slot the world starts with) of the live jobs (``live[i]`` is
    row i of ``world.jobs``): active = running, paused and ready waiting jobs; work left from the
    executor's progress; running and paused jobs hold their current pool."""
    n = len(live)
    remaining = world.jobs.work_acc_h.astype(float).copy()
    running_pool = np.full(n, -1, np.int32)
    running_gang = np.zeros(n, np.int32)
    last_pool = np.full(n, -1, np.int32)
    has_started = np.zeros(n, bool)
    active = []
    for i, lj in enumerate(live):
        on = lj.status in (RUNNING, PAUSED)
        if on or (lj.status in WAITING and lj.ready):
            active.append(i)
        if on:
            has_started[i] = True
            if lj.progress_frac is not None:
                remaining[i] = max(remaining[i] * (1.0 - float(lj.progress_frac)), 1e-9)
            p = pool_index(world, lj.site, lj.accelerator)
            last_pool[i] = p
            if lj.status == RUNNING and p >= 0:
                running_pool[i] = p
                running_gang[i] = int(lj.gang or 0)
    demand = world.services.demand_rps[:, :, t] if world.n_slots else np.zeros((world.services.n, 0))
    return Observation(t, world, signals, np.array(active, np.int64), remaining, running_pool, running_gang,
                       has_started, last_pool, demand)


def checked_caps(world: World, obs: Observation, d: Decision, policy: str) -> np.ndarray:
    """The simulator's checks of a decision (PlanError if impossible); returns the pool power caps."""
    active_mask = np.zeros(len(world.jobs), bool)
    active_mask[obs.active] = True
    return check_decision(world, d, active_mask, SimpleNamespace(running_pool=obs.running_pool), policy)


# ------------------------------------------------------------------------------------------- diffing

def placements(world: World, d: Decision, cap: np.ndarray) -> dict[int, tuple[str, str, int, float]]:
    """Job row -> (site, accelerator, gang, power-cap fraction) for every job the decision runs."""
    f = world.fleet
    out = {}
    for j, p, g in zip(d.job_idx.tolist(), d.job_pool.tolist(), d.job_gang.tolist()):
        out[int(j)] = (f.site_names[f.pool_site[p]], f.type_names[f.pool_type[p]], int(g), float(cap[p]))
    return out


def diff_actions(world: World, live: Sequence[LiveJob], placed: Mapping[int, tuple[str, str, int, float]],
                 cap_tol: float = 1e-6) -> list[Action]:
    """Executor actions that turn the current state into the decision: pauses first (they free
    accelerators and power), then resumes, starts and power-cap changes, each in job order. A running job
    the decision moves or resizes is paused and resumed at its new placement."""
    pauses, resumes, starts, caps = [], [], [], []
    for i, lj in enumerate(live):
        jid = lj.job.job_id
        want = placed.get(i)
        if want is None:
            if lj.status == RUNNING:
                pauses.append(Action(jid, "pause"))
            continue
        site, accel, gang, cap = want
        to = Action(jid, "start", site, accel, gang, cap)
        if lj.status in WAITING:
            starts.append(to)
        elif lj.status == PAUSED:
            resumes.append(Action(jid, "resume", site, accel, gang, cap))
        elif lj.status == RUNNING:
            here = pool_index(world, lj.site, lj.accelerator) == pool_index(world, site, accel)
            if here and int(lj.gang or 0) == gang:
                if abs((lj.power_cap_frac if lj.power_cap_frac is not None else 1.0) - cap) > cap_tol:
                    caps.append(Action(jid, "set_power_cap", power_cap_frac=cap))
            else:
                pauses.append(Action(jid, "pause"))
                resumes.append(Action(jid, "resume", site, accel, gang, cap))
    return pauses + resumes + starts + caps


# --------------------------------------------------------------------------------- power and reasons

def job_rate(world: World, i: int, site: str | None, accelerator: str | None, gang: int | None,
             cap: float | None) -> float:
    """Work per hour (reference accelerator-hours) of job row ``i`` at that placement, as the simulator
    counts it: gang × the job's speed on the type × the throughput kept at the power cap (no overheads)."""
    p = pool_index(world, site, accelerator)
    if p < 0 or not gang:
        return 0.0
    f = world.fleet
    k = int(f.pool_type[p])
    xs, ys = f.cap_curve_power_frac[k], f.cap_curve_throughput_frac[k]
    tp = float(np.interp(min(max(1.0 if cap is None else float(cap), xs[0]), 1.0), xs, ys))
    return float(gang) * float(world.jobs.speed[i, k]) * tp


def site_power_mw(world: World, running: Sequence[tuple[str | None, str | None, int, float | None]]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(IT MW, facility MW) per site with ``running`` = [(site, accelerator, gang, cap), …] busy for the
    whole slot and every other accelerator idle: the simulator's accounting."""
    f = world.fleet
    busy = np.zeros(f.n_pools)
    capw = np.zeros(f.n_pools)
    for site, accel, gang, cap in running:
        p = pool_index(world, site, accel)
        if p >= 0:
            busy[p] += gang
            capw[p] += gang * (1.0 if cap is None else cap)
    cap_frac = np.divide(capw, busy, out=np.ones(f.n_pools), where=busy > 0)
    k = f.pool_type
    pool_w = acc.pool_it_power_w(f.pool_count, np.minimum(busy, f.pool_count), np.zeros(f.n_pools),
                                 np.zeros(f.n_pools), cap_frac, f.board_power_w[k], f.idle_power_w[k],
                                 f.host_power_w[k])
    return acc.site_power_mw(pool_w, f.pool_site, f.n_sites, f.pue)


def explain(world: World, signals: Signals, obs: Observation, d: Decision, cap: np.ndarray,
            live: Sequence[LiveJob], placed: Mapping[int, tuple[str, str, int, float]], policy: str,
            t: int = 0) -> list[dict[str, Any]]:
    """Plan items (``gridshift.service.store.PlanItem`` fields) for the active jobs: where each runs in this
    slot and why — its pool's carbon intensity, price and PUE, and which limit binds (``pool_full``: no
    accelerator left; ``site_power_cap``: the site cannot power one more), or, for a job left waiting,
    ``accelerators``, ``site_power_cap`` or ``policy`` (the policy chose to wait)."""
    f, jt = world.fleet, world.jobs
    used = np.bincount(d.job_pool.astype(np.int64), weights=d.job_gang, minlength=f.n_pools)
    if d.replicas is not None and d.replicas.size:
        used = used + d.replicas.sum(axis=(0, 1))
    free = f.pool_count - used
    inc = batch_increment_mw(world, cap)
    site_mw = base_site_mw(world) + np.bincount(f.pool_site, weights=used * inc, minlength=f.n_sites)
    headroom = world.site_cap_mw(t, t, 1)[:, 0] - site_mw
    ci, pr = signals.at("carbon_g_per_kwh", t), signals.at("price_usd_per_mwh", t)
    slot_start = world.slot_starts[t].to_pydatetime()
    items = []
    for i in obs.active.tolist():
        lj = live[i]
        if i in placed:
            site, accel, gang, c = placed[i]
            p = pool_index(world, site, accel)
            s = int(f.pool_site[p])
            z = int(f.site_zone[s])
            bound = [b for b, hit in (("pool_full", free[p] < 1), ("site_power_cap", headroom[s] < inc[p]))
                     if hit]
            action = "keep" if lj.status == RUNNING and obs.running_pool[i] == p else \
                ("resume" if lj.status in (RUNNING, PAUSED) else "start")
            why = {"policy": policy, "action": action, "site": site, "accelerator": accel, "gang": gang,
                   "power_cap_frac": round(c, 4), "carbon_g_per_kwh": round(float(ci[z]), 3),
                   "price_usd_per_mwh": round(float(pr[z]), 3), "pue": float(f.pue[s]),
                   "site_headroom_mw": round(float(headroom[s]), 6), "bound": bound}
            items.append({"job_id": lj.job.job_id, "site": site, "accelerator": accel, "gang": gang,
                          "start_at": slot_start, "power_cap_frac": c, "why": why})
        else:
            can = jt.speed[i, f.pool_type] > 0
            if obs.last_pool[i] >= 0 and not jt.migratable[i]:
                can &= f.pool_site == f.pool_site[obs.last_pool[i]]
            fits = can & (free >= jt.gang_min[i])
            if not fits.any():
                bound = "accelerators"
            elif not (headroom[f.pool_site[fits]] >= jt.gang_min[i] * inc[fits] - 1e-12).any():
                bound = "site_power_cap"
            else:
                bound = "policy"
            why = {"policy": policy, "action": "pause" if lj.status == RUNNING else "wait", "bound": bound}
            items.append({"job_id": lj.job.job_id, "why": why})
    return items
