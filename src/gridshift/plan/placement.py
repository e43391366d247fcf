"""Placement building blocks shared by the baseline policies: power headroom, service replicas, keeping
running jobs in place, and exact first fit in array code.

Power model (same as the engine's): every accelerator of a pool is powered on and draws ``idle_power_w``
plus ``host_power_w`` of server overhead; a busy batch accelerator draws ``board_power_w × cap`` instead of
idle; a serving replica draws up to its service profile power. Facility power = IT power × PUE.
"""

from __future__ import annotations

import numpy as np

from gridshift.model.time import S_PER_H
from gridshift.plan.base import Observation
from gridshift.plan.response import pinned_cap_credit_mw
from gridshift.world.arrays import World


def pool_cap_frac(world: World, cap: np.ndarray | None) -> np.ndarray:
    return np.ones(world.fleet.n_pools) if cap is None else np.asarray(cap, float)


def batch_increment_mw(world: World, cap: np.ndarray) -> np.ndarray:
    """Facility MW added per pool when one more accelerator runs batch work instead of idling."""
    f = world.fleet
    k = f.pool_type
    w = np.maximum(f.board_power_w[k] * cap - f.idle_power_w[k], 0.0)
    return w * f.pue[f.pool_site] / 1e6


def base_site_mw(world: World) -> np.ndarray:
    """Facility MW per site with every accelerator on and idle."""
    f = world.fleet
    k = f.pool_type
    w = f.pool_count * (f.idle_power_w[k] + f.host_power_w[k]) * f.pue[f.pool_site]
    return np.bincount(f.pool_site, weights=w, minlength=f.n_sites) / 1e6


def replica_increment_mw(world: World, n: int, p: int, cap: float) -> float:
    """Facility MW one replica of service n adds on pool p at power-cap fraction ``cap`` (the engine's
    serving power at full load: the profile power, limited by the cap, above idle)."""
    f = world.fleet
    k = f.pool_type[p]
    busy_w = min(world.services.power_w[n, k], f.board_power_w[k] * cap)
    return max(busy_w - f.idle_power_w[k], 0.0) * f.pue[f.pool_site[p]] / 1e6


def first_fit_1d(gang: np.ndarray, limit: int) -> tuple[np.ndarray, int]:
    """Exact first fit of items in order into ``limit`` units: an item is taken iff it fits in what the
    items before it left. Returns (taken mask, units left). Array code: each round takes the longest
    fitting prefix, then drops every item larger than what is left."""
    taken = np.zeros(gang.shape[0], bool)
    idx = np.arange(gang.shape[0])
    rem = int(limit)
    while idx.size and rem > 0:
        idx = idx[gang[idx] <= rem]
        if not idx.size:
            break
        cs = np.cumsum(gang[idx])
        n = int(np.searchsorted(cs, rem, side="right"))
        taken[idx[:n]] = True
        rem -= int(cs[n - 1])
        if n == idx.size:
            break
        idx = idx[n + 1:]
    return taken, rem


class PlacementState:
    """Free accelerators per pool and power headroom per site during one slot's placement."""

    def __init__(self, obs: Observation, cap: np.ndarray | None = None, enforce_power: bool = True) -> None:
        w = obs.world
        self.enforce_power = enforce_power
        self.world = w
        self.cap = pool_cap_frac(w, cap)
        self.free = w.fleet.pool_count.astype(np.int64).copy()
        self.headroom_mw = w.site_cap_mw(obs.t, obs.t, 1)[:, 0] - base_site_mw(w) + pinned_cap_credit_mw(obs, self.cap)
        self.inc_mw = batch_increment_mw(w, self.cap)
        self.jobs: list[np.ndarray] = []
        self.pools: list[np.ndarray] = []
        self.gangs: list[np.ndarray] = []

    def power_limit(self, p: int, inc_mw: float) -> int:
        """Accelerators of pool p that still fit under the site's power cap at ``inc_mw`` each."""
        h = self.headroom_mw[self.world.fleet.pool_site[p]]
        if inc_mw <= 0 or not self.enforce_power:
            return int(self.free[p])
        return int(max(0.0, np.floor(h / inc_mw + 1e-9)))

    def take(self, p: int, n: int, inc_mw: float) -> None:
        self.free[p] -= n
        self.headroom_mw[self.world.fleet.pool_site[p]] -= n * inc_mw

    def place_jobs(self, jobs: np.ndarray, p: int, gang: np.ndarray) -> None:
        if jobs.size:
            self.jobs.append(jobs)
            self.pools.append(np.full(jobs.size, p, np.int32))
            self.gangs.append(gang.astype(np.int32))
            self.take(p, int(gang.sum()), float(self.inc_mw[p]))

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.jobs:
            z = np.zeros(0, np.int64)
            return z, z.astype(np.int32), z.astype(np.int32)
        return np.concatenate(self.jobs), np.concatenate(self.pools), np.concatenate(self.gangs)


def keep_running(st: PlacementState, obs: Observation, running: np.ndarray, *, force: bool) -> np.ndarray:
    """Keep ``running`` jobs (in order) on their current pool where they still fit; ``force`` keeps them
    even beyond free capacity or power (non-interruptible work cannot be stopped). Returns jobs not kept."""
    pool = obs.running_pool[running]
    gang = obs.running_gang[running]
    left = []
    by_pool = np.argsort(pool, kind="stable")  # each pool's jobs keep their order in ``running``
    pools, first = np.unique(pool[by_pool], return_index=True)
    for p, sel in zip(pools, np.split(by_pool, first[1:])):
        js, gs = running[sel], gang[sel]
        if force:
            ok = np.ones(js.size, bool)
        else:
            lim = min(int(st.free[p]), st.power_limit(int(p), float(st.inc_mw[p])))
            ok, _ = first_fit_1d(gs, lim)
        st.place_jobs(js[ok], int(p), gs[ok])
        left.append(js[~ok])
    return np.concatenate(left) if left else np.zeros(0, np.int64)


def place_fixed(st: PlacementState, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What every policy places first: running non-interruptible work where it is (it cannot be paused or
    moved), then the inference replicas. Returns (running jobs, which of them are rigid, replicas)."""
    active = obs.active
    running = active[obs.running_pool[active] >= 0]
    is_rigid = obs.rigid(running)
    keep_running(st, obs, running[is_rigid], force=True)
    return running, is_rigid, place_services(st, obs)


def place_services(st: PlacementState, obs: Observation, site_order: np.ndarray | None = None,
                   demand_rps: np.ndarray | None = None, reps: np.ndarray | None = None) -> np.ndarray:
    """Replicas per service, region and pool to carry the current demand (or ``demand_rps``) plus headroom,
    added to ``reps`` when given.

    Regions are served from their allowed sites, nearest first (or in ``site_order`` when given), filling
    each pool as far as free accelerators and site power allow."""
    w, svc = st.world, st.world.services
    f = w.fleet
    if reps is None:
        reps = np.zeros((svc.n, svc.demand_rps.shape[1], f.n_pools), np.int64)
    if svc.n == 0:
        return reps
    demand = obs.demand_rps if demand_rps is None else demand_rps
    tp = f.throughput_frac(st.cap)
    need = demand * (1.0 + svc.headroom_frac[:, None])
    for n, r in zip(*np.nonzero(need > 0)):
        need_rps = float(need[n, r])
        pools = _serving_pools(w, int(n), int(r), site_order)
        cap_rps = svc.capacity_rps[n, f.pool_type[pools]] * tp[pools]
        for p, c in zip(pools.tolist(), cap_rps.tolist()):
            if c <= 0:
                continue
            inc = replica_increment_mw(w, int(n), p, float(st.cap[p]))
            want = int(np.ceil(need_rps / c - 1e-9))
            got = min(want, int(st.free[p]), st.power_limit(p, inc))
            if got > 0:
                reps[n, r, p] += got
                st.take(p, got, inc)
                need_rps -= got * c
                if need_rps <= 0:
                    break
    return reps


_SERVING_POOLS: dict[int, tuple[object, dict]] = {}


def _serving_pools(w: World, n: int, r: int, site_order: np.ndarray | None) -> np.ndarray:
    """Pools that may serve region r of service n with a profile for their type, in the order replicas are
    added: allowed sites nearest first (or in ``site_order``), each site's pools in order. The nearest-first
    lists are computed once per world's services."""
    svc, f = w.services, w.fleet

    def build(sites: np.ndarray) -> np.ndarray:
        out = [p for s in sites if svc.allowed[n, r, s] for p in np.flatnonzero(f.pool_site == s)
               if svc.capacity_rps[n, f.pool_type[p]] > 0]
        return np.asarray(out, np.int64)

    if site_order is not None:
        return build(site_order)
    entry = _SERVING_POOLS.get(id(svc))
    if entry is None or entry[0] is not svc:
        if len(_SERVING_POOLS) > 8:
            _SERVING_POOLS.clear()
        entry = (svc, {})
        _SERVING_POOLS[id(svc)] = entry
    cache = entry[1]
    if (n, r) not in cache:
        cache[n, r] = build(np.argsort(svc.rtt_ms[n, r], kind="stable"))
    return cache[n, r]


def first_fit_jobs(st: PlacementState, obs: Observation, order: np.ndarray, pool_order: np.ndarray) -> None:
    """Place waiting jobs ``order`` (priority order) by first fit over pools in ``pool_order``: first at
    their full gang size, then the rest at their minimum gang size."""
    w = st.world
    jobs = w.jobs
    remaining = order
    for p in pool_order:
        if not remaining.size:
            break
        k = w.fleet.pool_type[p]
        cand = remaining[jobs.speed[remaining, k] > 0]
        if not cand.size:
            continue
        placed = np.zeros(0, np.int64)
        for gang_col in (jobs.gang_max, jobs.gang_min):
            lim = min(int(st.free[p]), st.power_limit(int(p), float(st.inc_mw[p])))
            if lim <= 0 or not cand.size:
                break
            g = gang_col[cand]
            ok, _ = first_fit_1d(g, lim)
            st.place_jobs(cand[ok], int(p), g[ok])
            placed = np.concatenate([placed, cand[ok]])
            cand = cand[~ok]
        if placed.size:
            remaining = remaining[~np.isin(remaining, placed, assume_unique=True)]


def priority_order(obs: Observation, jobs_idx: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """Jobs flagged in ``first`` (mask over all jobs) ahead, then higher priority, earlier arrival, lower index."""
    j = obs.world.jobs
    ahead = np.zeros(jobs_idx.size, bool) if first is None else first[jobs_idx]
    o = np.lexsort((jobs_idx, j.arrival_s[jobs_idx], -j.priority[jobs_idx], ~ahead))
    return jobs_idx[o]


def latest_start_passed(obs: Observation, jobs_idx: np.ndarray, max_delay_h: float,
                        margin_slots: float = 2.0) -> np.ndarray:
    """Jobs that must start now: waiting ``margin_slots`` more slots would pass their latest start (deadline
    minus the run time still needed on the slowest accelerator type of the fleet they can use, and the
    restart overhead of a job that ran before); with ``margin_slots=1`` exactly the jobs for which the next
    slot is too late. Jobs without a deadline may wait at most ``max_delay_h`` after arrival."""
    w = obs.world
    j = w.jobs
    types = np.unique(w.fleet.pool_type)
    sp = j.speed[np.ix_(jobs_idx, types)]
    slowest = np.where(sp > 0, sp, np.inf).min(axis=1)
    run_s = obs.remaining_acc_h[jobs_idx] / np.maximum(j.gang_max[jobs_idx] * slowest, 1e-12) * S_PER_H
    restart_s = np.where(obs.has_started[jobs_idx], j.restart_overhead_s[jobs_idx], 0.0)
    latest = j.deadline_s[jobs_idx] - run_s - restart_s
    no_deadline = ~np.isfinite(j.deadline_s[jobs_idx])
    latest = np.where(no_deadline, j.arrival_s[jobs_idx] + max_delay_h * S_PER_H, latest)
    return obs.now_s + margin_slots * w.slot_duration_s > latest + 1e-6
