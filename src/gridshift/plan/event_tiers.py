"""The tier rule of grid events, for any policy: at a site under a known event, running work of the tiers
that may not pause (0: never slowed; 1 and 2: only power-capped) keeps running where it runs, at its gang.

Planners that place through ``Observation.rigid`` (every bundled one but ``las``) already keep it; this is
the check applied to every decision, so a policy that drops or moves such a job gets it back, and the
jobs it placed on that pool instead give way (tier 3 first, then the jobs that were not running, newest
last in priority). The engine and the live service apply it after ``decide``.

Ahead of a known event the same rule looks over the whole notice (:class:`NextEventBudget`, up to
``LOOKAHEAD_H``): work of those tiers that would still run when the event starts is pinned in its first
slot, so the placement planners start new tier-1/2 work that would reach it only within what the event's
limit leaves after the tier-0 work still waiting (tier-0 work itself only in the slot before the event);
work that finishes before it starts freely.
"""

from __future__ import annotations

import numpy as np

from gridshift.model.events import TIER_MAY_PAUSE
from gridshift.model.time import S_PER_H
from gridshift.plan.base import Decision, Observation
from gridshift.plan.placement import base_site_mw, first_fit_jobs, priority_order, replica_increment_mw
from gridshift.plan.response import cap_credit_mw


def protected_running(obs: Observation) -> np.ndarray:
    """Jobs that ran in the previous slot at a site under a known event, in a tier that may not pause."""
    w = obs.world
    under = w.sites_under_event(obs.t)
    if under is None or not under.any():
        return np.zeros(0, np.int64)
    run = obs.active[obs.running_pool[obs.active] >= 0]
    tier = np.clip(w.jobs.tier[run], 0, len(TIER_MAY_PAUSE) - 1)
    keep = ~np.asarray(TIER_MAY_PAUSE)[tier] & under[w.fleet.pool_site[obs.running_pool[run]]]
    return run[keep]


def hold_tiers(obs: Observation, d: Decision) -> tuple[Decision, int]:
    """``d`` with every protected running job back on its pool at its gang; returns (decision, jobs restored)."""
    prot = protected_running(obs)
    if not prot.size:
        return d, 0
    j, p, g = d.job_idx.astype(np.int64), d.job_pool.astype(np.int64), d.job_gang.astype(np.int64)
    pos = {int(x): i for i, x in enumerate(j)}
    want_p, want_g = obs.running_pool[prot], obs.running_gang[prot]
    bad = np.array([pos.get(int(x), -1) < 0 or p[pos[int(x)]] != wp or g[pos[int(x)]] != wg
                    for x, wp, wg in zip(prot, want_p, want_g)], bool)
    if not bad.any():
        return d, 0
    fix = prot[bad]
    keep = ~np.isin(j, fix)
    j, p, g = j[keep], p[keep], g[keep]
    j = np.concatenate([j, fix])
    p = np.concatenate([p, want_p[bad].astype(np.int64)])
    g = np.concatenate([g, want_g[bad].astype(np.int64)])
    f, jt = obs.world.fleet, obs.world.jobs
    used = np.bincount(p, weights=g, minlength=f.n_pools)
    if d.replicas is not None and d.replicas.size:
        used = used + d.replicas.sum(axis=(0, 1))
    over = np.flatnonzero(used > f.pool_count + 1e-9)
    drop = np.zeros(j.size, bool)
    is_prot = np.isin(j, prot) | ~jt.interruptible[j]
    for pool in over:
        cand = np.flatnonzero((p == pool) & ~is_prot)
        # give way: tier 3 first, then work that did not run there before, lowest priority first
        was_here = obs.running_pool[j[cand]] == pool
        order = cand[np.lexsort((-jt.arrival_s[j[cand]], jt.priority[j[cand]], was_here, -jt.tier[j[cand]]))]
        excess = used[pool] - f.pool_count[pool]
        for i in order:
            if excess <= 1e-9:
                break
            drop[i] = True
            excess -= g[i]
    j, p, g = j[~drop], p[~drop], g[~drop]
    return Decision(j, p.astype(np.int32), g.astype(np.int32), d.pool_power_cap_frac, d.replicas), int(bad.sum())


LOOKAHEAD_H = 24.0  # how far ahead of a known event the planners count what new work would pin during it


def pinned_next(world, jobs: np.ndarray) -> np.ndarray:
    """Mask over ``jobs``: work that, once running, an event may not pause (tiers 0-2, non-interruptible)."""
    tier = np.clip(world.jobs.tier[jobs], 0, len(TIER_MAY_PAUSE) - 1)
    return ~np.asarray(TIER_MAY_PAUSE)[tier] | ~world.jobs.interruptible[jobs]


def pool_throughput_frac(world, cap: np.ndarray) -> np.ndarray:
    """[P] throughput of each pool's accelerators at its power-cap fraction ``cap`` (1 uncapped)."""
    f = world.fleet
    return np.array([float(np.interp(cap[p], f.cap_curve_power_frac[k], f.cap_curve_throughput_frac[k]))
                     for p, k in enumerate(f.pool_type)])


class NextEventBudget:
    """What a planner may start in slot t at a site with a known event ahead: the first slot e > t (within
    ``LOOKAHEAD_H``) with a limit known at t. Every job of a tier that may not pause (and every
    non-interruptible one) that still runs at e is pinned there, so the budget is the site's limit at e,
    less its idle draw, the margin the response keeps, the inference replicas as placed now, the pinned work
    expected to still run at e (its remaining work at its gang, speed and the pool's cap; tiers 1-2 at the
    power the response may cap them to) and a reserve for the tier-0 work still waiting (at its smallest
    gang), which starts first under the event. New work that an event may not pause and that would still
    run at e starts at t only within it (tier-1/2 work only within what the reserve leaves), so that what
    it would pin keeps neither tier-0 work from starting nor the inference replicas from their room during
    the event; work expected to finish at least a slot before e, and work an event may pause, starts freely.
    Tier-0 work is held only in the slot before the event (with more notice, holding it would only take
    hours from it: the reserve keeps its room at e, and once running it counts against the budget). With the
    event in the next slot (e = t+1) this is the one-slot rule: everything that runs at t counts."""

    def __init__(self, obs: Observation, st, reps: np.ndarray | None) -> None:
        w, t = obs.world, obs.t
        f = w.fleet
        self.obs, self.st = obs, st
        self.sites = np.zeros(f.n_sites, bool)
        if w.event_cap_mw is None or t + 1 >= w.n_slots or not st.enforce_power:
            return
        n = max(1, int(np.ceil(LOOKAHEAD_H * S_PER_H / w.slot_duration_s)))
        ahead = slice(t + 1, min(w.n_slots, t + 1 + n))
        known = np.isfinite(w.event_cap_mw[:, ahead]) & (w.event_known_slot[:, ahead] <= t)
        self.sites = known.any(axis=1)
        if not self.sites.any():
            return
        e = t + 1 + np.argmax(known, axis=1)
        s_idx = np.arange(f.n_sites)
        self.event_start_s = np.where(self.sites, e * w.slot_duration_s, np.inf)
        lim = np.minimum(f.power_cap_mw[s_idx, e], np.where(self.sites, w.event_cap_mw[s_idx, e], np.inf))
        margin = 0.0 if w.events is None else w.events.margin_frac
        self.base_mw = np.where(self.sites, lim - margin * np.where(self.sites, w.event_cap_mw[s_idx, e], 0.0), 0.0) \
            - base_site_mw(w)
        if reps is not None and reps.size:
            for nn, _r, p in zip(*np.nonzero(reps)):
                self.base_mw[f.pool_site[p]] -= reps[nn, _r, p] * replica_increment_mw(w, int(nn), int(p), float(st.cap[p]))
        self.tp = pool_throughput_frac(w, st.cap)

    def reaches_event(self, jobs: np.ndarray, pools: np.ndarray, gangs: np.ndarray) -> np.ndarray:
        """Mask over ``jobs``: run from now on ``pools`` at ``gangs``, might each still run when the event
        ahead of its pool's site starts? (remaining work at its gang, speed and the pool's throughput at its
        cap, from its arrival if that is later, plus the restart overhead of a job that resumes, expected to
        end later than one slot before the event starts)."""
        obs, w = self.obs, self.obs.world
        jt, f = w.jobs, w.fleet
        rate = gangs * jt.speed[jobs, f.pool_type[pools]] * self.tp[pools]
        run_s = obs.remaining_acc_h[jobs] / np.maximum(rate, 1e-12) * S_PER_H
        resumes = obs.has_started[jobs] & (obs.running_pool[jobs] != pools)
        run_s = run_s + np.where(resumes, jt.restart_overhead_s[jobs], 0.0)
        end_s = np.maximum(obs.now_s, jt.arrival_s[jobs]) + run_s
        # one slot of margin for the estimate: work due to end in the slot before the event counts (with the
        # event in the next slot, everything that runs now)
        return end_s > self.event_start_s[f.pool_site[pools]] - w.slot_duration_s + 1e-6

    def _reserve(self, x: np.ndarray, inc_mw: np.ndarray) -> np.ndarray:
        """[S] MW reserved for the waiting tier-0 jobs ``x``, each at its smallest gang at every event site it
        could use."""
        f, jt = self.obs.world.fleet, self.obs.world.jobs
        out = np.zeros(f.n_sites)
        if not x.size:
            return out
        ok = (jt.speed[x][:, f.pool_type] > 0) & self.sites[f.pool_site][None, :]  # [X, P]
        for s in np.flatnonzero(self.sites):
            at = f.pool_site == s
            inc = np.where(ok[:, at], inc_mw[at][None, :], np.inf).min(axis=1)
            fin = np.isfinite(inc)
            out[s] = float((jt.gang_min[x[fin]] * inc[fin]).sum())
        return out

    def left_mw(self, skip: np.ndarray | None = None) -> np.ndarray:
        """[S] budget left at each site's event after the pinned work placed so far that would still run
        then and the reserve for the tier-0 work still waiting (but for the jobs ``skip``)."""
        w, obs, st = self.obs.world, self.obs, self.st
        f = w.fleet
        j, p, g = st.result()
        j, p, g = j.astype(np.int64), p.astype(np.int64), g.astype(np.int64)
        pin = pinned_next(w, j)
        pin[pin] = self.reaches_event(j[pin], p[pin], g[pin])
        use = g[pin] * st.inc_mw[p[pin]] - cap_credit_mw(w, j[pin], p[pin], g[pin], st.cap)
        left = self.base_mw - np.bincount(f.pool_site[p[pin]], weights=use, minlength=f.n_sites)
        wait = obs.active[(w.jobs.tier[obs.active] == 0) & ~np.isin(obs.active, j)]
        if skip is not None:
            wait = wait[~np.isin(wait, skip)]
        return left - self._reserve(wait, st.inc_mw)

    def admit(self, cand: np.ndarray, p: int) -> np.ndarray:
        """Of the waiting jobs ``cand`` (priority order) that may start on pool ``p``: those an event may pause,
        those that would finish before it (at their smallest gang) and tier-0 ones while the event is more
        than a slot ahead, and the others within the budget in order at their largest gang — tier-0 jobs
        within what is left, tier-1/2 (and non-interruptible) ones within what is left after the reserve for
        the tier-0 jobs."""
        w = self.obs.world
        s = w.fleet.pool_site[p]
        if not self.sites[s] or not cand.size:
            return cand
        pool = np.full(cand.size, p)
        limited = pinned_next(w, cand)
        limited[limited] = self.reaches_event(cand[limited], pool[limited], w.jobs.gang_min[cand[limited]])
        if self.event_start_s[s] > self.obs.now_s + w.slot_duration_s + 1e-6:
            limited &= w.jobs.tier[cand] != 0  # tier 0 is held only in the slot before the event
        if not limited.any():
            return cand
        zero = w.jobs.tier[cand] == 0
        left = float(self.left_mw(skip=cand[zero])[s])
        res = {int(x): float(self._reserve(np.array([x]), self.st.inc_mw)[s]) for x in cand[zero]}
        held = sum(res.values())
        g = w.jobs.gang_max[cand]
        use = g * self.st.inc_mw[p] - cap_credit_mw(w, cand, pool, g, self.st.cap)
        ok = ~limited
        for i in np.flatnonzero(limited):
            if zero[i]:
                if use[i] <= left + 1e-12:
                    ok[i] = True
                    left -= use[i]
                    held -= res[int(cand[i])]
            elif use[i] <= left - held + 1e-12:
                ok[i] = True
                left -= use[i]
        return cand[ok]


def tier0_first(obs: Observation, st, tp_pool: np.ndarray) -> np.ndarray:
    """Start the tier-0 jobs waiting for a site under a known event before any other new work (placement
    ``st`` after the pinned work and the inference replicas), each on the fastest pool there that it fits, in
    priority order: an event may not keep tier-0 work from starting while the site's limit leaves room.
    Returns the jobs started."""
    w = obs.world
    under = w.sites_under_event(obs.t)
    if under is None or not under.any():
        return np.zeros(0, np.int64)
    f, jt = w.fleet, w.jobs
    placed = np.concatenate(st.jobs) if st.jobs else np.zeros(0, np.int64)
    wait = obs.active[(jt.tier[obs.active] == 0) & (obs.running_pool[obs.active] < 0)]
    wait = wait[~np.isin(wait, placed)]
    started = []
    for j in priority_order(obs, wait):
        ok = under[f.pool_site] & (jt.speed[j, f.pool_type] > 0)
        last = obs.last_pool[j]
        if last >= 0 and not jt.migratable[j]:
            ok &= f.pool_site == f.pool_site[last]
        pools = np.flatnonzero(ok)
        if not pools.size:
            continue
        pools = pools[np.argsort(-jt.speed[j, f.pool_type[pools]] * tp_pool[pools], kind="stable")]
        n = len(st.jobs)
        first_fit_jobs(st, obs, np.array([j]), pools)
        if len(st.jobs) > n:
            started.append(j)
    return np.array(started, np.int64)
