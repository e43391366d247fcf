"""Urgent jobs (their latest start has come) placed by groups in array code.

Each job goes to the first pool, in the order of its speed there at the pools' current power caps
(fastest first, ties by pool index), where at least its minimum gang fits under the pool's free
accelerators and its site's power headroom; it takes its full gang if that fits, else its minimum gang.
Jobs are taken in the order given, each seeing what the jobs before it left: the same decisions as placing
them one at a time with :func:`gridshift.plan.placement.first_fit_jobs`, bit for bit (the site headroom
is reduced in the same order, with the same floating-point operations).

How it is done without a Python step per job: jobs with the same speed row over the fleet's types (the same
pool order: same sites and types they may use, at the same relative speed) form a group whose pool order
is sorted once. A window of jobs is then placed tentatively, each on its first fitting pool as the state
stood at the window's start; the running use of each pool and site within the window (integer sums, and the
site headroom by ``np.subtract.accumulate`` in job order) shows the first job whose pool or gang would
differ once the jobs before it are counted. The jobs before it are exact and are kept; placement goes on
from it with the state updated. Free accelerators and headroom only fall during placement, so a pool that
did not fit a job at the window's start does not fit it later in the window: only the chosen pool needs the
check.
"""

from __future__ import annotations

import numpy as np

from gridshift.plan.base import Observation
from gridshift.plan.placement import PlacementState

_WINDOW0 = 64
_WINDOW_MAX = 8192


def pool_orders(obs: Observation, jobs: np.ndarray, tp_pool: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Group of each of ``jobs`` and, per group, its pools fastest first (stable on ties) among the pools
    where the group can run: the order :meth:`LpPolicy._safety_net` tries pools in."""
    jt, fl = obs.world.jobs, obs.world.fleet
    rows, group = np.unique(jt.speed[jobs], axis=0, return_inverse=True)
    group = np.asarray(group).reshape(-1)
    orders = []
    for r in rows:
        sp = r[fl.pool_type]
        fast = np.argsort(-sp * tp_pool, kind="stable")
        orders.append(fast[sp[fast] > 0])
    return group, orders


def _limits(st: PlacementState) -> np.ndarray:
    """Per pool, accelerators that fit now: ``min(free, power_limit)`` as :meth:`PlacementState.power_limit`
    computes it."""
    fl = st.world.fleet
    free = st.free.astype(np.int64)
    if not st.enforce_power:
        return free
    h = st.headroom_mw[fl.pool_site]
    inc = st.inc_mw
    with np.errstate(divide="ignore", invalid="ignore"):
        pl = np.maximum(0.0, np.floor(h / inc + 1e-9))
    pl = np.where(inc <= 0, free, np.minimum(pl, np.iinfo(np.int64).max // 4)).astype(np.int64)
    return np.minimum(free, pl)


def _first_fit_pool(lim: np.ndarray, group: np.ndarray, orders: list[np.ndarray], need: np.ndarray) -> np.ndarray:
    """Per job, the first pool of its group's order with ``lim > 0`` and ``lim >= need`` (-1: none)."""
    out = np.full(group.size, -1, np.int64)
    for g in np.unique(group):
        order = orders[g]
        if not order.size:
            continue
        sel = np.flatnonzero(group == g)
        lo = lim[order]
        fits = (lo[None, :] >= need[sel, None]) & (lo[None, :] > 0)
        first = fits.argmax(axis=1)
        ok = fits[np.arange(sel.size), first]
        out[sel[ok]] = order[first[ok]]
    return out


def place_urgent(st: PlacementState, obs: Observation, order: np.ndarray, tp_pool: np.ndarray) -> None:
    """Place ``order`` (jobs in priority order) as described in the module's docstring."""
    if not order.size:
        return
    jt, fl = obs.world.jobs, obs.world.fleet
    group, orders = pool_orders(obs, order, tp_pool)
    gmax = jt.gang_max[order].astype(np.int64)
    gmin = jt.gang_min[order].astype(np.int64)
    need = np.minimum(gmax, gmin)  # the smallest gang it may take (first_fit_jobs tries gang_max, then gang_min)
    site_of = fl.pool_site
    inc_pool = np.asarray(st.inc_mw, float)
    i, window = 0, _WINDOW0
    out_j, out_p, out_g = [], [], []
    while i < order.size:
        sl = slice(i, min(order.size, i + window))
        n = sl.stop - sl.start
        lim0 = _limits(st)
        p = _first_fit_pool(lim0, group[sl], orders, need[sl])
        # jobs with no pool now will have none later (free accelerators and headroom only fall)
        has = p >= 0
        pp = np.where(has, p, 0)
        g = np.where(gmax[sl] <= lim0[pp], gmax[sl], gmin[sl])
        g = np.where(has, g, 0)
        # each job's pool and site as the jobs before it in the window leave them
        used_before = np.zeros(n, np.int64)
        h_before = np.zeros(n)
        for q in np.unique(pp[has]):
            on = np.flatnonzero(has & (pp == q))
            used_before[on] = np.cumsum(g[on]) - g[on]
        s_of = site_of[pp]
        for s in np.unique(s_of[has]):
            on = np.flatnonzero(has & (s_of == s))
            acc = np.subtract.accumulate(np.concatenate([[st.headroom_mw[s]], g[on] * inc_pool[pp[on]]]))
            h_before[on] = acc[:-1]
        free_now = st.free[pp] - used_before
        if st.enforce_power:
            inc = inc_pool[pp]
            with np.errstate(divide="ignore", invalid="ignore"):
                pl = np.maximum(0.0, np.floor(h_before / inc + 1e-9))
            pl = np.where(inc <= 0, free_now, np.minimum(pl, np.iinfo(np.int64).max // 4)).astype(np.int64)
            lim = np.minimum(free_now, pl)
        else:
            lim = free_now
        same = (lim > 0) & (lim >= need[sl]) & ((gmax[sl] <= lim) == (gmax[sl] <= lim0[pp]))
        good = ~has | same
        k = n if good.all() else int(np.argmin(good))  # the first job whose placement would change
        keep = np.flatnonzero(has[:k])
        if keep.size:
            jobs_k, pools_k, gangs_k = order[sl][keep], pp[keep], g[keep]
            np.subtract.at(st.free, pools_k, gangs_k)
            for s in np.unique(site_of[pools_k]):
                on = keep[s_of[keep] == s]
                last = on[-1]
                st.headroom_mw[s] = h_before[last] - g[last] * inc_pool[pp[last]]
            out_j.append(jobs_k)
            out_p.append(pools_k.astype(np.int32))
            out_g.append(gangs_k.astype(np.int32))
        i += k  # k >= 1: the window's first job sees the state the window started from
        window = min(_WINDOW_MAX, window * 2) if k == n else max(8, k)
    if out_j:
        st.jobs.append(np.concatenate(out_j))
        st.pools.append(np.concatenate(out_p))
        st.gangs.append(np.concatenate(out_g))
