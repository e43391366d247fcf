"""The tier rule of grid events, for any policy: at a site under a known event, running work of the tiers
that may not pause (0: never slowed; 1 and 2: only power-capped) keeps running where it runs, at its gang.

Planners that place through ``Observation.rigid`` (every bundled one but ``las``) already keep it; this is
the check applied to every decision, so a policy that drops or moves such a job gets it back, and the
jobs it placed on that pool instead give way (tier 3 first, then the jobs that were not running, newest
last in priority). The engine and the live service apply it after ``decide``.

Ahead of a known event the same rule looks one slot on (:class:`NextEventBudget`): what runs in the slot
before the event in those tiers is pinned in the event's first slot, so the placement planners start new
tier-1/2 work there only within what the event's limit leaves after the tier-0 work still waiting.
"""

from __future__ import annotations

import numpy as np

from gridshift.model.events import TIER_MAY_PAUSE
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


def pinned_next(world, jobs: np.ndarray) -> np.ndarray:
    """Mask over ``jobs``: work that, once running, an event may not pause (tiers 0-2, non-interruptible)."""
    tier = np.clip(world.jobs.tier[jobs], 0, len(TIER_MAY_PAUSE) - 1)
    return ~np.asarray(TIER_MAY_PAUSE)[tier] | ~world.jobs.interruptible[jobs]


class NextEventBudget:
    """What a planner may start in slot t at a site that is under a known event in slot t+1, where every
    job of a tier that may not pause (and every non-interruptible one) that runs at t is pinned: the
    site's limit at t+1, less its idle draw, the margin the response keeps, the inference replicas as
    placed now, the pinned work placed so far (tiers 1-2 at the power the response may cap them to) and a
    reserve for the tier-0 work still waiting (at its smallest gang), which starts first at t+1. New work
    that an event may not pause starts at t only within it (tier-1/2 work only within what the reserve
    leaves), so that what it would pin keeps neither tier-0 work from starting nor the inference replicas
    from their room during the event."""

    def __init__(self, obs: Observation, st, reps: np.ndarray | None) -> None:
        w, t = obs.world, obs.t
        f = w.fleet
        self.obs, self.st = obs, st
        self.sites = np.zeros(f.n_sites, bool)
        if w.event_cap_mw is None or t + 1 >= w.n_slots or not st.enforce_power:
            return
        self.sites = np.isfinite(w.event_cap_mw[:, t + 1]) & (w.event_known_slot[:, t + 1] <= t)
        if not self.sites.any():
            return
        margin = 0.0 if w.events is None else w.events.margin_frac
        lim = w.site_cap_mw(t, t + 1, 1)[:, 0]
        self.base_mw = lim - margin * np.where(np.isfinite(w.event_cap_mw[:, t + 1]), w.event_cap_mw[:, t + 1], 0.0) \
            - base_site_mw(w)
        if reps is not None and reps.size:
            for n, _r, p in zip(*np.nonzero(reps)):
                self.base_mw[f.pool_site[p]] -= reps[n, _r, p] * replica_increment_mw(w, int(n), int(p), float(st.cap[p]))

    def _reserve(self, x: int, inc_mw: np.ndarray) -> np.ndarray:
        """[S] MW reserved for waiting tier-0 job ``x`` at its smallest gang, at every event site it could use."""
        f, jt = self.obs.world.fleet, self.obs.world.jobs
        out = np.zeros(f.n_sites)
        ok = (jt.speed[x, f.pool_type] > 0) & self.sites[f.pool_site]
        if ok.any():
            inc = np.full(f.n_sites, np.inf)
            np.minimum.at(inc, f.pool_site[ok], inc_mw[ok])
            s = np.isfinite(inc)
            out[s] = jt.gang_min[x] * inc[s]
        return out

    def left_mw(self, skip: np.ndarray | None = None) -> np.ndarray:
        """[S] budget left at t+1 after the pinned work placed so far and the reserve for the tier-0 work
        still waiting (but for the jobs ``skip``)."""
        w, obs, st = self.obs.world, self.obs, self.st
        f = w.fleet
        j, p, g = st.result()
        j, p, g = j.astype(np.int64), p.astype(np.int64), g.astype(np.int64)
        pin = pinned_next(w, j)
        use = g[pin] * st.inc_mw[p[pin]] - cap_credit_mw(w, j[pin], p[pin], g[pin], st.cap)
        left = self.base_mw - np.bincount(f.pool_site[p[pin]], weights=use, minlength=f.n_sites)
        wait = obs.active[(w.jobs.tier[obs.active] == 0) & ~np.isin(obs.active, j)]
        if skip is not None:
            wait = wait[~np.isin(wait, skip)]
        for x in wait:
            left -= self._reserve(int(x), st.inc_mw)
        return left

    def admit(self, cand: np.ndarray, p: int) -> np.ndarray:
        """Of the waiting jobs ``cand`` (priority order) that may start on pool ``p``: those an event may pause,
        and the others within the budget in order at their largest gang — tier-0 jobs within what is left,
        tier-1/2 (and non-interruptible) ones within what is left after the reserve for the tier-0 jobs."""
        w = self.obs.world
        s = w.fleet.pool_site[p]
        if not self.sites[s] or not cand.size:
            return cand
        limited = pinned_next(w, cand)
        if not limited.any():
            return cand
        zero = w.jobs.tier[cand] == 0
        left = float(self.left_mw(skip=cand[zero])[s])
        res = {int(x): float(self._reserve(int(x), self.st.inc_mw)[s]) for x in cand[zero]}
        held = sum(res.values())
        g = w.jobs.gang_max[cand]
        use = g * self.st.inc_mw[p] - cap_credit_mw(w, cand, np.full(cand.size, p), g, self.st.cap)
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
