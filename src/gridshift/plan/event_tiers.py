"""The tier rule of grid events, for any policy: at a site under a known event, running work of the tiers
that may not pause (0: never slowed; 1 and 2: only power-capped) keeps running where it runs, at its gang.

Planners that place through ``Observation.rigid`` (every bundled one but ``las``) already keep it; this is
the check applied to every decision, so a policy that drops or moves such a job gets it back, and the
jobs it placed on that pool instead give way (tier 3 first, then the jobs that were not running, newest
last in priority). The engine and the live service apply it after ``decide``.
"""

from __future__ import annotations

import numpy as np

from gridshift.model.events import TIER_MAY_PAUSE
from gridshift.plan.base import Decision, Observation


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
