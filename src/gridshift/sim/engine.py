"""Time-stepped simulator: applies a policy's decision in every slot against the ACTUAL signals.

Hot path is array code over the jobs active in a slot and over pools and sites; nothing loops over
jobs in Python. Deterministic: the engine draws no random numbers.

Overheads: a job that resumes after a pause, moves to another pool, or changes gang size loses its
checkpoint + restart overhead (and, across sites, the data-move time at ``data_move_gbps``) from its
productive time, carried over slots if longer than one; the accelerators are busy (drawing power) meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridshift.errors import PlanError
from gridshift.model.time import S_PER_H
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.event_tiers import hold_tiers
from gridshift.sim.dr import DemandResponseSim, event_warnings
from gridshift.sim.dr_metrics import measured_targets
from gridshift.sim.metrics import build_run
from gridshift.sim.result import PolicyRun
from gridshift.world import accounting as acc
from gridshift.world.arrays import Signals, World


@dataclass(frozen=True)
class EngineConfig:
    data_move_gbps: float = 10.0  # assumed inter-site bandwidth for moving a job's data, Gbit/s


@dataclass
class JobState:
    remaining_acc_h: np.ndarray
    done_acc_h: np.ndarray
    running_pool: np.ndarray
    running_gang: np.ndarray
    last_pool: np.ndarray
    has_started: np.ndarray
    pending_overhead_s: np.ndarray
    first_start_s: np.ndarray
    completion_s: np.ndarray
    energy_mwh: np.ndarray
    carbon_t: np.ndarray
    preemptions: np.ndarray
    cost_usd: np.ndarray

    @staticmethod
    def new(work_acc_h: np.ndarray) -> JobState:
        n = work_acc_h.shape[0]
        return JobState(work_acc_h.astype(float).copy(), np.zeros(n), np.full(n, -1, np.int32), np.zeros(n, np.int32),
                        np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(n), np.full(n, np.nan),
                        np.full(n, np.nan), np.zeros(n), np.zeros(n), np.zeros(n, np.int32), np.zeros(n))


def check_decision(world: World, d: Decision, active_mask: np.ndarray, st: JobState, policy: str) -> np.ndarray:
    """Raise PlanError on an impossible decision; return the per-pool power-cap fractions."""
    f, jobs = world.fleet, world.jobs
    j, p, g = d.job_idx, d.job_pool, d.job_gang
    where = f"policy '{policy}'"
    if not (j.shape == p.shape == g.shape):
        raise PlanError(f"{where}: job_idx, job_pool and job_gang differ in length")
    if j.size:
        js = np.sort(j)
        if (js[1:] == js[:-1]).any():
            raise PlanError(f"{where}: a job is placed twice in one slot")
        if not active_mask[j].all():
            raise PlanError(f"{where}: job {jobs.job_id[j[~active_mask[j]][0]]} is not waiting or running")
        if (p < 0).any() or (p >= f.n_pools).any():
            raise PlanError(f"{where}: pool index out of range")
        bad = (g < jobs.gang_min[j]) | (g > jobs.gang_max[j])
        if bad.any():
            raise PlanError(f"{where}: job {jobs.job_id[j[bad][0]]} gang size outside [gang_min, gang_max]")
        if (jobs.speed[j, f.pool_type[p]] <= 0).any():
            raise PlanError(f"{where}: a job is placed on an accelerator type it cannot run on")
    was_running = np.flatnonzero(st.running_pool >= 0)
    rigid = was_running[~jobs.interruptible[was_running]]
    placed = np.zeros(active_mask.size, bool)
    placed[j] = True
    if rigid.size and not placed[rigid].all():
        raise PlanError(f"{where}: paused a non-interruptible job")
    moved = rigid[placed[rigid]]
    if moved.size:
        pos = np.searchsorted(np.sort(j), moved)
        pj = p[np.argsort(j)][pos]
        if (pj != st.running_pool[moved]).any():
            raise PlanError(f"{where}: moved a non-interruptible job")
    used = np.bincount(p, weights=g, minlength=f.n_pools)
    if d.replicas is not None and d.replicas.size:
        if (d.replicas < 0).any():
            raise PlanError(f"{where}: negative replica count")
        used = used + d.replicas.sum(axis=(0, 1))
        svc = world.services
        site_ok = svc.allowed[:, :, f.pool_site]  # [N, R, P]
        if (d.replicas[~site_ok] > 0).any():
            raise PlanError(f"{where}: replicas placed at a site outside the service's latency bound")
    if (used > f.pool_count + 1e-9).any():
        raise PlanError(f"{where}: pool {int(np.argmax(used - f.pool_count))} over-allocated")
    cap = np.ones(f.n_pools) if d.pool_power_cap_frac is None else np.asarray(d.pool_power_cap_frac, float)
    if cap.shape != (f.n_pools,) or not np.isfinite(cap).all() or (cap > 1 + 1e-9).any() or \
            (cap < f.min_cap_frac() - 1e-9).any():
        raise PlanError(f"{where}: power-cap fraction outside the accelerator's curve")
    return np.clip(cap, f.min_cap_frac(), 1.0)


def start_offsets(world: World, d: Decision, j: np.ndarray, t: int, was_running: np.ndarray) -> np.ndarray:
    """Seconds into slot ``t`` at which each placed job ``j`` starts running: its arrival if that falls
    inside the slot, or the decision's ``job_start_offset_s`` if later; 0 for a job that ran in the previous
    slot (it carries on)."""
    slot_s = float(world.slot_duration_s)
    off = np.clip(world.jobs.arrival_s[j] - t * slot_s, 0.0, slot_s)
    if d.job_start_offset_s is not None and j.size:
        asked = np.asarray(d.job_start_offset_s, float)
        if asked.shape != j.shape or not np.isfinite(asked).all() or (asked < 0).any() or (asked >= slot_s).any():
            raise PlanError("job_start_offset_s must give one offset in [0, slot length) per placed job")
        off = np.maximum(off, np.where(was_running, 0.0, asked))
    return off


def simulate(world: World, signals: Signals, policy: Policy, *, config: EngineConfig = EngineConfig(),
             progress: Callable[[int, int], None] | None = None,
             on_slot: Callable[..., bool] | None = None) -> PolicyRun | None:
    """Run ``policy`` over every slot of ``world``; ``progress(t, T)`` is called after each slot.

    ``on_slot(t, obs, j, p, g, cap, rate, svc_units)``, if given, sees every slot's placements before they
    run (jobs ``j`` on pools ``p`` with gangs ``g``, pool caps, work rates, inference units); returning True
    stops the run there (and ``simulate`` returns None)."""
    f, jobs, svc = world.fleet, world.jobs, world.services
    n_jobs, T, S, P = len(jobs), world.n_slots, f.n_sites, f.n_pools
    slot_s, slot_h = float(world.slot_duration_s), world.slot_h
    st = JobState.new(jobs.work_acc_h)
    order = np.argsort(world.arrival_slot, kind="stable")
    arr_sorted = world.arrival_slot[order]
    ptr = 0
    active = np.zeros(0, np.int64)
    active_mask = np.zeros(n_jobs, bool)
    pool_k = f.pool_type
    board, idle, host = f.board_power_w[pool_k], f.idle_power_w[pool_k], f.host_power_w[pool_k]
    pue_pool = f.pue[f.pool_site]
    out = {k: np.zeros((S, T)) for k in ("it_mw", "fac_mw", "busy", "serving")}
    n_reg = svc.demand_rps.shape[1]
    served_all = np.zeros((svc.n, n_reg, T))
    t0 = time.perf_counter()
    policy.reset(world, signals)
    plan_time_s = time.perf_counter() - t0  # offline planners (the oracle) plan here
    log_t, log_j, log_p, log_g, log_cap = [], [], [], [], []
    dr = DemandResponseSim(world.events, world.slot_duration_s, world.slot_starts)
    svc_tier = np.ones(svc.n, np.int64) if svc.tier is None else svc.tier
    for t in range(T):
        hi = int(np.searchsorted(arr_sorted, t, side="right"))
        if hi > ptr:
            new = order[ptr:hi]
            active = np.concatenate([active, new])
            active_mask[new] = True
            ptr = hi
        demand = svc.demand_rps[:, :, t]
        if world.events is not None:  # a cut from a measured baseline gets its target when it is issued
            world = measured_targets(world, t, out["fac_mw"])
            dr.ev = world.events
        obs = Observation(t, world, signals, active, st.remaining_acc_h, st.running_pool, st.running_gang,
                          st.has_started, st.last_pool, demand)
        t0 = time.perf_counter()
        d, _ = hold_tiers(obs, policy.decide(obs))  # an event never pauses tiers 0-2 (plan/event_tiers.py)
        plan_time_s += time.perf_counter() - t0
        cap = check_decision(world, d, active_mask, st, policy.name)
        tp = f.throughput_frac(cap)
        j, p, g = d.job_idx.astype(np.int64), d.job_pool.astype(np.int64), d.job_gang.astype(np.int64)
        log_t.append(np.full(j.size, t, np.int32)), log_j.append(j.astype(np.int32))
        log_p.append(p.astype(np.int16)), log_g.append(g.astype(np.int32)), log_cap.append(cap[p].astype(np.float32))
        # overheads for resumed, moved or resized jobs
        changed = st.has_started[j] & ((st.running_pool[j] != p) | (st.running_gang[j] != g))
        last = st.last_pool[j]
        site_moved = (last >= 0) & (f.pool_site[np.maximum(last, 0)] != f.pool_site[p])
        move_s = np.where(site_moved, jobs.data_move_gb[j] * 8.0 / config.data_move_gbps, 0.0)
        st.pending_overhead_s[j] += np.where(changed, jobs.checkpoint_overhead_s[j] + jobs.restart_overhead_s[j]
                                             + move_s, 0.0)
        # a job starts at its arrival (to the second) or later inside the slot if the policy says so; a job
        # that ran in the previous slot carries on from the slot's start
        offset_s = start_offsets(world, d, j, t, st.running_pool[j] >= 0)
        consumed = np.minimum(st.pending_overhead_s[j], slot_s - offset_s)
        st.pending_overhead_s[j] -= consumed
        eff_s = slot_s - offset_s - consumed
        rate = g * jobs.speed[j, pool_k[p]] * tp[p]  # reference acc-h per hour
        # inference: replicas, requests served, their power
        serving_acc = np.zeros(P)
        serving_w = np.zeros(P)
        svc_units = None
        if svc.n:
            reps = np.zeros((svc.n, n_reg, P)) if d.replicas is None else d.replicas.astype(float)
            cap_rps = reps * svc.capacity_rps[:, pool_k][:, None, :] * tp[None, None, :]
            served, load = acc.serve(demand, cap_rps)
            served_all[:, :, t] = served
            util = np.divide(load, cap_rps, out=np.zeros_like(load), where=cap_rps > 0)
            p_svc = np.minimum(svc.power_w[:, pool_k], board * cap)[:, None, :]
            serving_w = (reps * (idle + (p_svc - idle) * util)).sum(axis=(0, 1))
            serving_acc = reps.sum(axis=(0, 1))
            if dr.ev is not None or on_slot is not None:
                svc_units = _svc_units(svc, reps, load, cap_rps, p_svc[:, 0, :], cap, svc_tier, demand, served, f)
        if on_slot is not None and on_slot(t, obs, j, p, g, cap, rate, svc_units):
            return None
        # grid events: shed load inside the slot, minute by minute
        eff = None
        if dr.ev is not None:
            base_w = acc.pool_it_power_w(f.pool_count, np.bincount(p, weights=g, minlength=P), serving_acc, serving_w,
                                         cap, board, idle, host)
            eff = dr.slot(t, world=world, site_fac_mw=acc.site_power_mw(base_w, f.pool_site, S, f.pue)[1], j=j, p=p,
                          g=g, cap=cap, tp=tp, rate=rate, svc_units=svc_units, new_start=st.running_pool[j] != p)
            if eff is not None:
                rate = rate * eff.job_tp_mult
        need_s = np.divide(st.remaining_acc_h[j], rate, out=np.full(j.size, np.inf), where=rate > 0) * S_PER_H
        finishing = need_s <= eff_s * (1 + 1e-12)
        run_s = np.where(finishing, need_s, eff_s)
        prog = rate * run_s / S_PER_H
        st.remaining_acc_h[j] = np.where(finishing, 0.0, st.remaining_acc_h[j] - prog)
        st.done_acc_h[j] += np.where(finishing, jobs.work_acc_h[j] - st.done_acc_h[j], prog)
        busy_frac = (consumed + run_s) / slot_s
        start_now = np.isnan(st.first_start_s[j])
        st.first_start_s[j[start_now]] = t * slot_s + offset_s[start_now]
        st.completion_s[j[finishing]] = t * slot_s + (offset_s + consumed + run_s)[finishing]
        # power
        busy_acc = np.bincount(p, weights=g * busy_frac, minlength=P)
        pool_w = acc.pool_it_power_w(f.pool_count, busy_acc, serving_acc, serving_w, cap, board, idle, host)
        job_save_w = 0.0
        if eff is not None:
            job_save_w = g * busy_frac * eff.job_save_w_per_acc
            pool_w = pool_w - np.bincount(p, weights=job_save_w, minlength=P) - eff.pool_svc_save_w
        it_mw, fac_mw = acc.site_power_mw(pool_w, f.pool_site, S, f.pue)
        out["it_mw"][:, t], out["fac_mw"][:, t] = it_mw, fac_mw
        out["busy"][:, t] = np.bincount(f.pool_site, weights=busy_acc, minlength=S)
        out["serving"][:, t] = np.bincount(f.pool_site, weights=serving_acc, minlength=S)
        job_w = (g * (busy_frac * board[p] * cap[p] + (1 - busy_frac) * idle[p] + host[p]) - job_save_w) * pue_pool[p]
        job_e = job_w * slot_h / 1e6
        st.energy_mwh[j] += job_e
        st.carbon_t[j] += job_e * signals.at("carbon_g_per_kwh", t)[f.site_zone[f.pool_site[p]]] / 1000.0
        st.cost_usd[j] += job_e * signals.at("price_usd_per_mwh", t)[f.site_zone[f.pool_site[p]]]
        # state transitions
        prev = np.flatnonzero(st.running_pool >= 0)
        paused = prev[~np.isin(prev, j)]
        st.preemptions[paused] += 1
        st.running_pool[prev] = -1
        st.running_gang[prev] = 0
        cont = ~finishing
        st.running_pool[j[cont]] = p[cont]
        st.running_gang[j[cont]] = g[cont]
        st.last_pool[j] = p
        st.has_started[j] = True
        if finishing.any():
            active_mask[j[finishing]] = False
            active = active[active_mask[active]]
        if progress is not None:
            progress(t + 1, T)
    run = build_run(policy_name=getattr(policy, "label", None) or policy.name, world=world, signals=signals,
                    out=out, served=served_all, st=st, plan_time_s=plan_time_s)
    if log_t:
        lp = np.concatenate(log_p)
        cat = pd.Categorical.from_codes  # integer codes, not a string per row: a year of 100,000 jobs fits
        run.placements = pd.DataFrame({
            "time": world.slot_starts[np.concatenate(log_t)],
            "job_id": cat(np.concatenate(log_j).astype(np.int32), categories=pd.Index(jobs.job_id)),
            "site": cat(f.pool_site[lp].astype(np.int16), categories=list(f.site_names)),
            "accelerator": cat(f.pool_type[lp].astype(np.int16), categories=list(f.type_names)),
            "gang": np.concatenate(log_g).astype(np.int32),
            "power_cap_frac": np.concatenate(log_cap).astype(np.float32),
        })
    stats = getattr(policy, "stats", None)
    if callable(stats):
        run.metrics.update(stats())
    if dr.ev is not None:
        run.metrics["events"], run.event_traces = dr.metrics(jobs.job_id, out["fac_mw"], f.site_names)
        floor = acc.site_power_mw(f.pool_count * (idle + host), f.pool_site, S, f.pue)[1]
        floor_by_event = {dr.ev.ids[e]: float(floor[dr.ev.site_mask[e]].sum()) for e in range(dr.ev.n)}
        warn = event_warnings(run.metrics["events"], floor_by_event)
        if warn:
            run.metrics["plan_warnings"] = list(run.metrics.get("plan_warnings", [])) + warn
    return run


def _svc_units(svc, reps, load, cap_rps, p_svc, cap, tier, demand, served, f) -> dict:
    """Inference replicas per (service, pool) as demand-response units: load-weighted busy replicas, the
    board power they draw at full load, and the spare capacity they may lose without breaking the SLO."""
    n_idx, p_idx = np.nonzero(reps.sum(axis=1) > 0)
    ld, cp = load.sum(axis=1)[n_idx, p_idx], cap_rps.sum(axis=1)[n_idx, p_idx]
    busy = np.divide(ld, cp, out=np.zeros_like(ld), where=cp > 0) * reps.sum(axis=1)[n_idx, p_idx]
    spare = np.divide(cp - ld, cp, out=np.zeros_like(ld), where=cp > 0)
    has = reps.sum(axis=1) > 0  # [N, P]

    def in_sites(values):
        return lambda site_mask: values[(has & site_mask[f.pool_site][None, :]).any(axis=1)].sum()

    return {"pool": p_idx, "busy": busy, "spare": np.clip(spare, 0.0, 1.0), "tier": tier[n_idx],
            "board_w": p_svc[n_idx, p_idx] / np.maximum(cap[p_idx], 1e-9),
            "served_in": in_sites(served.sum(axis=1)), "demand_in": in_sites(demand.sum(axis=1))}
