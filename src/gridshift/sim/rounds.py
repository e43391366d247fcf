"""Round simulator for heterogeneity policies (the setting of Gavel's simulator, OSDI 2020 §6).

Jobs arrive over time, each with a job type, a number of steps and a gang size (or a range of gang sizes
the policy may choose from). At the start of every round the simulator admits the jobs that have arrived,
re-solves the policy's allocation when the set of jobs (or the hour's power cap, carbon or price) has
changed, lets the mechanism (:mod:`gridshift.plan.allocation.rounds`) place whole jobs, and advances every placed
job by ``throughput × run time``; a job that finishes inside a round completes at that instant and its
accelerators idle until the next round. Energy is counted per job (its accelerators at busy power while it
runs) and per site (idle power for accelerators not running), carbon with the site's hourly intensity.

Two round mechanics (``SimConfig.mechanics``):

* ``"gridshift"`` (the default): the allocation is re-solved as soon as the set of jobs changes, and the
  time each job has received is counted from that solve (so the new allocation is met from then on);
  placement is :func:`~gridshift.plan.allocation.rounds.place_round` (global priority order, stickiness,
  backfill). Right for a policy that must react at once (a power cap, an SLO, a new job on idle
  accelerators) and the default for every GridShift study.
* ``"gavel"``: Gavel's simulator (``scheduler/scheduler.py``, ``_update_priorities`` and
  ``_reset_time_run_so_far``): the allocation is re-solved only when something changed *and* at least
  ``reset_interval_s`` (Gavel's ``minimum_time_between_allocation_resets``, 1,920 s) has passed since the
  last reset; jobs that arrive in between have no allocation until then (they run on leftover
  accelerators only); at a reset every job's received time on every pool restarts at half a round and its
  deficit (time owed minus time received) is carried over; placement is
  :func:`~gridshift.plan.allocation.rounds.place_round_gavel`; an agnostic policy's time is split over
  every pool of a site, as Gavel's agnostic LP (every throughput 1) splits it, so the share on a type where
  a job cannot run is lost (Gavel's scheduler gives the job priority 0 there). The Gavel reproduction
  (:mod:`gridshift.studies.gavel`) uses it.

Steps are a job's unit of work on every pool and gang size (Gavel's throughputs at ``g`` GPUs are steps/s
of the whole job), so a job may change pool or gang size between rounds and keep its progress. Moving a
job costs ``restart_s`` of the round it moves in (0 by default, as in Gavel's simulator).

The core does no I/O: workloads, throughputs and grid series come in as arrays.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gridshift.model.time import S_PER_H
from gridshift.plan.allocation.policies import allocate
from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.rounds import (
    RoundInputs,
    gavel_fifo_assign,
    per_pool,
    place_fifo,
    place_round,
    place_round_gavel,
)

ROUND_S = 360.0  # Gavel's default round (6 minutes)
GAVEL_RESET_S = 1920.0  # Gavel's minimum_time_between_allocation_resets (scheduler/scheduler.py)
MECHANICS = ("gridshift", "gavel")
FIFO_POLICIES = ("fifo", "fifo-random")  # strict FIFO, agnostic: a random type that fits
GAVEL_FIFO = "fifo-fastest-free"  # Gavel's base FIFO code (plan.allocation.rounds.gavel_fifo_assign)


@dataclass
class Cluster:
    pool_type: list[str]  # accelerator type of each pool
    count: np.ndarray  # [P]
    busy_power_w: np.ndarray  # [P] one accelerator running a job, W
    idle_power_w: np.ndarray  # [P] one idle accelerator, W
    pool_site: np.ndarray | None = None  # [P] (default: one site)
    site_names: list[str] = field(default_factory=lambda: ["site"])
    site_cap_w: np.ndarray | None = None  # [S, H] facility cap per hour from t=0 (inf = none), W
    carbon_g_per_kwh: np.ndarray | None = None  # [S, H] hourly intensity from t=0
    price_per_mwh: np.ndarray | None = None  # [S, H] hourly price from t=0

    def __post_init__(self) -> None:
        self.count = np.asarray(self.count, dtype=np.int64)
        n = len(self.count)
        self.busy_power_w = np.asarray(self.busy_power_w, dtype=float).reshape(n)
        self.idle_power_w = np.asarray(self.idle_power_w, dtype=float).reshape(n)
        self.pool_site = (np.zeros(n, dtype=np.int64) if self.pool_site is None
                          else np.asarray(self.pool_site, dtype=np.int64))
        if len(self.site_names) < int(self.pool_site.max()) + 1:
            raise ValueError("site_names shorter than the sites pools refer to")

    @property
    def n_sites(self) -> int:
        return len(self.site_names)

    def hourly(self, series: np.ndarray | None, hour: int, default: float) -> np.ndarray:
        if series is None:
            return np.full(self.n_sites, default)
        return np.asarray(series)[:, min(hour, series.shape[1] - 1)]


@dataclass
class JobSet:
    arrival_s: np.ndarray  # [N]
    job_type: np.ndarray  # [N] index into the throughput tensor's first axis
    steps: np.ndarray  # [N] work, steps
    gang: np.ndarray  # [N] requested gang size
    gang_min: np.ndarray | None = None  # [N] smallest gang the policy may choose (default: gang)
    gang_max: np.ndarray | None = None  # [N] largest (default: gang)
    weight: np.ndarray | None = None  # [N]
    tenant: np.ndarray | None = None  # [N] tenant index
    deadline_s: np.ndarray | None = None  # [N] absolute SLO time (inf = none)

    def __post_init__(self) -> None:
        self.arrival_s = np.asarray(self.arrival_s, dtype=float)
        n = len(self.arrival_s)
        if np.any(np.diff(self.arrival_s) < 0):
            raise ValueError("jobs must be sorted by arrival time")
        self.job_type = np.asarray(self.job_type, dtype=np.int64)
        self.steps = np.asarray(self.steps, dtype=float)
        self.gang = np.asarray(self.gang, dtype=np.int64)
        self.gang_min = self.gang.copy() if self.gang_min is None else np.asarray(self.gang_min, dtype=np.int64)
        self.gang_max = self.gang.copy() if self.gang_max is None else np.asarray(self.gang_max, dtype=np.int64)
        self.weight = np.ones(n) if self.weight is None else np.asarray(self.weight, dtype=float)
        self.tenant = np.zeros(n, dtype=np.int64) if self.tenant is None else np.asarray(self.tenant, dtype=np.int64)
        self.deadline_s = np.full(n, np.inf) if self.deadline_s is None else np.asarray(self.deadline_s, dtype=float)

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass
class SimResult:
    policy: str
    aware: bool
    completion_s: np.ndarray  # [N] (nan = not finished)
    jct_s: np.ndarray  # [N]
    energy_j: np.ndarray  # [N] busy energy of each job's accelerators
    carbon_g: np.ndarray  # [N]
    gang_run: np.ndarray  # [N] last gang size each job ran with
    site_energy_j: np.ndarray  # [S] including idle accelerators
    site_carbon_g: np.ndarray  # [S]
    site_power_w: np.ndarray  # [rounds, S] average power in each round
    round_start_s: np.ndarray  # [rounds]
    moves: int  # placements on a different pool than the job's previous round
    preemptions: int  # rounds in which a job that ran last round waits
    solves: int
    solve_s: float
    wall_s: float
    end_s: float
    cap_exceeded_rounds: int = 0

    def window(self, lo: int, hi: int) -> dict:
        """Average JCT (h), makespan (h) and energy over jobs ``lo <= id < hi``."""
        sl = slice(lo, hi)
        jct = self.jct_s[sl]
        done = np.isfinite(jct)
        return {"jobs": int(done.sum()), "avg_jct_h": float(np.mean(jct[done]) / S_PER_H) if done.any() else float("nan"),
                "makespan_h": float(np.nanmax(self.completion_s[sl]) / S_PER_H) if done.any() else float("nan"),
                "energy_mwh": float(self.energy_j[sl].sum() / 3.6e9),
                "carbon_t": float(self.carbon_g[sl].sum() / 1e6)}


@dataclass
class SimConfig:
    policy: str = "max-min-fairness"  # one of policies.POLICIES, FIFO_POLICIES or GAVEL_FIFO
    aware: bool = True
    choose_gang: bool = False  # let the policy pick each job's gang size in [gang_min, gang_max]
    round_s: float = ROUND_S
    stickiness: float = 1.2
    backfill: bool = True
    restart_s: float = 0.0
    carbon_weight: float = 0.0
    price_weight: float = 0.0
    stop_after: tuple[int, int] | None = None  # stop once jobs lo..hi-1 are done (steady-state window)
    max_time_s: float = 5e7
    seed: int = 0  # random choices of the agnostic FIFO
    mechanics: str = "gridshift"  # or "gavel" (module docstring)
    reset_interval_s: float | None = None  # least time between re-solves (default: 0, or 1,920 s with "gavel")
    resolve_each_round: bool | None = None  # re-solve every round (default: for policies that depend on the
    # work left — min-makespan, finish-time-fairness — whose allocation drifts as rounding deviates from it)


class RoundSimulator:
    """Simulate one policy on one workload. ``thr[type, gang_index, pool]`` is steps/s (0 = cannot run)."""

    def __init__(self, jobs: JobSet, cluster: Cluster, thr: np.ndarray, gang_sizes: np.ndarray,
                 config: SimConfig) -> None:
        self.jobs, self.cluster, self.cfg = jobs, cluster, config
        self.thr = np.asarray(thr, dtype=float)
        self.gang_sizes = np.asarray(gang_sizes, dtype=np.int64)
        if self.thr.shape[2] != len(cluster.count) or self.thr.shape[1] != len(self.gang_sizes):
            raise ValueError("throughput tensor does not match the pools or gang sizes")
        self._gidx = {int(g): i for i, g in enumerate(self.gang_sizes)}
        self._rng = np.random.default_rng(config.seed)
        if config.mechanics not in MECHANICS:
            raise ValueError(f"unknown round mechanics {config.mechanics!r}; valid: {', '.join(MECHANICS)}")
        for g in np.unique(np.concatenate([jobs.gang, jobs.gang_min, jobs.gang_max])):
            if int(g) not in self._gidx:
                raise ValueError(f"gang size {int(g)} has no throughput column")

    # ----------------------------------------------------------------- allocation problem for active jobs
    def _rows(self, act: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(job position, gang, throughput [R, P]) of every row (gang variant) of the active jobs."""
        j = self.jobs
        if not self.cfg.choose_gang:
            g = j.gang[act]
            gi = np.array([self._gidx[int(x)] for x in g], dtype=np.int64)
            return np.arange(len(act)), g, self.thr[j.job_type[act], gi]
        pos, gs = [], []
        for k, g in enumerate(self.gang_sizes.tolist()):
            ok = (j.gang_min[act] <= g) & (j.gang_max[act] >= g) & (self.thr[j.job_type[act], k].max(axis=1) > 0)
            idx = np.flatnonzero(ok)
            pos.append(idx)
            gs.append(np.full(len(idx), g))
        pos_a = np.concatenate(pos)
        g_a = np.concatenate(gs)
        o = np.argsort(pos_a, kind="stable")
        pos_a, g_a = pos_a[o], g_a[o]
        gi = np.array([self._gidx[int(x)] for x in g_a], dtype=np.int64)
        return pos_a, g_a, self.thr[j.job_type[act][pos_a], gi]

    def _problem(self, act, rows, t, hour) -> AllocationProblem:
        c, j = self.cluster, self.jobs
        pos, g, thr = rows
        extra_w = g[:, None] * (c.busy_power_w - c.idle_power_w)[None, :]
        capped = c.site_cap_w is not None
        cap_w = None
        if capped:
            base = np.bincount(c.pool_site, weights=c.count * c.idle_power_w, minlength=c.n_sites)
            cap_w = np.maximum(c.hourly(c.site_cap_w, hour, np.inf) - base, 0.0)
        return AllocationProblem(
            throughput=thr, gang=g, job_of_row=pos, count=c.count, weight=j.weight[act],
            remaining_steps=np.maximum(j.steps[act] - self.done[act], 0.0),
            elapsed_s=np.maximum(t - j.arrival_s[act], 0.0), deadline_s=j.deadline_s[act] - t,
            pool_site=c.pool_site, cap_w=cap_w, power_w=extra_w,
            carbon_g_per_kwh=c.hourly(c.carbon_g_per_kwh, hour, 0.0)[c.pool_site],
            price_per_mwh=c.hourly(c.price_per_mwh, hour, 0.0)[c.pool_site],
            carbon_weight=self.cfg.carbon_weight if c.carbon_g_per_kwh is not None else 0.0,
            price_weight=self.cfg.price_weight if c.price_per_mwh is not None else 0.0,
            extra={"agnostic_split": "all-pools"} if self.cfg.mechanics == "gavel" and not self.cfg.aware else {})

    def initial_problem(self) -> AllocationProblem:
        """The allocation problem over every job at t = 0 with nothing done (all jobs present only when they
        all arrive at 0, as in a makespan experiment)."""
        self.done = np.zeros(len(self.jobs))
        act = np.flatnonzero(self.jobs.arrival_s <= 0.0)
        return self._problem(act, self._rows(act), 0.0, 0)

    # ------------------------------------------------------------------------------------------ run
    def run(self) -> SimResult:
        cfg, c, j = self.cfg, self.cluster, self.jobs
        n, n_pools, n_sites = len(j), len(c.count), c.n_sites
        self.done = np.zeros(n)
        completion = np.full(n, np.nan)
        energy = np.zeros(n)
        carbon = np.zeros(n)
        gang_run = j.gang.astype(np.int64).copy()
        site_e = np.zeros(n_sites)
        site_c = np.zeros(n_sites)
        power_rows, starts = [], []
        last_pool = np.full(n, -1, dtype=np.int64)
        fifo = cfg.policy in FIFO_POLICIES
        gfifo = cfg.policy == GAVEL_FIFO
        bound = np.full(n, -1, dtype=np.int64)  # Gavel's FIFO: the type each job is bound to
        released = np.zeros(n, dtype=bool)
        gavel = cfg.mechanics == "gavel"
        reset_s = (cfg.reset_interval_s if cfg.reset_interval_s is not None
                   else GAVEL_RESET_S if gavel else 0.0)
        last_solve = -np.inf
        deficit = np.zeros((0, n_pools))
        base = np.zeros(0)  # received time each job started the reset with (Gavel: half a round)
        # Gavel fills its types fastest first (v100, p100, k80) for aware policies: pools by mean throughput
        fast_order = np.argsort(-self.thr[:, 0, :].mean(axis=0), kind="stable")
        active = np.zeros(0, dtype=np.int64)
        nxt = 0
        t = float(j.arrival_s[0]) if n else 0.0
        need_alloc, alloc_key = True, None
        moves = preempt = solves = cap_bad = 0
        solve_s = 0.0
        wall0 = time.perf_counter()
        since = 0.0
        run_on = np.zeros((0, n_pools))
        x_jp = g_jp = t_jp = None
        lo, hi = cfg.stop_after if cfg.stop_after else (0, n)
        resolve_each = (cfg.resolve_each_round if cfg.resolve_each_round is not None
                        else cfg.policy in ("min-makespan", "finish-time-fairness"))
        grid_aware = c.site_cap_w is not None or cfg.carbon_weight > 0 or cfg.price_weight > 0
        while t < cfg.max_time_s:
            # admit arrivals
            k = int(np.searchsorted(j.arrival_s, t, side="right"))
            if k > nxt:
                active = np.concatenate([active, np.arange(nxt, k)])
                run_on = np.vstack([run_on, np.zeros((k - nxt, n_pools))])
                deficit = np.vstack([deficit, np.zeros((k - nxt, n_pools))])
                base = np.concatenate([base, np.zeros(k - nxt)])
                if x_jp is not None and len(x_jp) < len(active):  # no allocation until the next solve
                    x_jp, g_jp, t_jp = self._unallocated(active[len(x_jp):], x_jp, g_jp, t_jp)
                nxt = k
                need_alloc = True
            if len(active) == 0:
                if nxt >= n:
                    break
                t = float(j.arrival_s[nxt])
                continue
            hour = int(t // S_PER_H)
            if grid_aware and alloc_key != hour:
                need_alloc = True
            if resolve_each:
                need_alloc = True
            a = len(active)
            if fifo:
                pool_of = self._fifo_round(active, last_pool, hour)
            else:
                if need_alloc and (x_jp is None or t - last_solve >= reset_s - 1e-9):
                    if gavel and x_jp is not None:  # Gavel's reset: carry the deficit, restart received time
                        deficit += x_jp * (t - last_solve) - (run_on - base[:, None])
                    if gfifo:
                        gone = np.flatnonzero((bound >= 0) & ~released & np.isfinite(completion))
                        released[gone] = True
                        bound = gavel_fifo_assign(active[bound[active] < 0], bound, gone, j.gang,
                                                  self._job_thr(np.arange(n)), c.count, self._rng)
                        x_jp, g_jp, t_jp = self._unallocated(active, np.zeros((0, n_pools)), np.zeros((0, n_pools)),
                                                             np.zeros((0, n_pools)))
                        on = bound[active] >= 0
                        x_jp[np.flatnonzero(on), bound[active][on]] = 1.0
                    else:
                        rows = self._rows(active)
                        prob = self._problem(active, rows, t, hour)
                        res = allocate(cfg.policy, prob, aware=cfg.aware)
                        solve_s += res.solve_s
                        x_jp, g_jp, t_jp = self._per_pool(active, rows, res.x)
                    solves += 1
                    base[:] = cfg.round_s / 2 if gavel else 0.0
                    run_on[:] = base[:, None]
                    since = 0.0
                    last_solve = t
                    need_alloc, alloc_key = False, hour
                if gavel:  # the job's share of all jobs' time on the pool since the reset
                    tot = run_on.sum(axis=0)
                    recv = np.where(tot > 0, run_on / np.where(tot > 0, tot, 1.0), 0.0)
                    owed = deficit
                else:
                    recv = run_on / since if since > 0 else np.zeros_like(run_on)
                    owed = x_jp * since - run_on
                inp = RoundInputs(alloc=x_jp, gang=g_jp, throughput=t_jp, received_frac=recv,
                                  deficit_s=owed, incumbent=last_pool[active],
                                  free=c.count.copy(), pool_site=c.pool_site,
                                  site_headroom_w=self._headroom(hour),
                                  power_w=g_jp * (c.busy_power_w - c.idle_power_w)[None, :])
                if gavel:
                    order = fast_order if cfg.aware else self._rng.permutation(n_pools)
                    pool_of = place_round_gavel(inp, order, skip_zero=gfifo)
                else:
                    pool_of = place_round(inp, stickiness=cfg.stickiness, backfill=cfg.backfill and not gfifo,
                                          aware=cfg.aware)
            # advance the placed jobs
            placed = np.flatnonzero(pool_of >= 0)
            pj, pp = active[placed], pool_of[placed]
            if fifo:
                gidx = np.array([self._gidx[int(x)] for x in j.gang[pj]], dtype=np.int64)
                gang = j.gang[pj]
                rate = self.thr[j.job_type[pj], gidx, pp]
            else:
                gang = g_jp[placed, pp].astype(np.int64)
                rate = t_jp[placed, pp]
            prev = last_pool[pj]
            moved = (prev >= 0) & (prev != pp)
            moves += int(moved.sum())
            preempt += int(((last_pool[active] >= 0) & (pool_of < 0)).sum())
            avail = np.full(len(pj), cfg.round_s) - np.where(moved, cfg.restart_s, 0.0)
            left = np.maximum(j.steps[pj] - self.done[pj], 0.0)
            need = np.where(rate > 0, left / np.maximum(rate, 1e-300), np.inf)
            run = np.clip(np.minimum(avail, need), 0.0, None)
            self.done[pj] += rate * run
            fin = need <= avail + 1e-9
            end = t + (cfg.round_s - avail) + need
            completion[pj[fin]] = end[fin]
            gang_run[pj] = gang
            # energy and carbon
            ci = c.hourly(c.carbon_g_per_kwh, hour, 0.0)
            e_job = gang * c.busy_power_w[pp] * run
            energy[pj] += e_job
            carbon[pj] += e_job / 3.6e6 * ci[c.pool_site[pp]]
            busy_acc_s = np.bincount(pp, weights=gang * run, minlength=n_pools)
            e_site = (np.bincount(c.pool_site[pp], weights=e_job, minlength=n_sites)
                      + np.bincount(c.pool_site, weights=(c.count * cfg.round_s - busy_acc_s) * c.idle_power_w,
                                    minlength=n_sites))
            site_e += e_site
            site_c += e_site / 3.6e6 * ci
            power_rows.append(e_site / cfg.round_s)
            starts.append(t)
            if c.site_cap_w is not None:
                cap_bad += int(np.any(e_site / cfg.round_s > c.hourly(c.site_cap_w, hour, np.inf) + 1e-6))
            # time accounting for priorities
            if not fifo:
                run_on[placed, pp] += run
                since += cfg.round_s
            last_pool[active] = -1
            last_pool[pj] = pp
            keep = np.ones(a, dtype=bool)
            keep[placed[fin]] = False
            if not keep.all():
                active, run_on, deficit, base = active[keep], run_on[keep], deficit[keep], base[keep]
                if x_jp is not None and not fifo:
                    x_jp, g_jp, t_jp = x_jp[keep], g_jp[keep], t_jp[keep]
                last_pool[pj[fin]] = -1
                need_alloc = True
            t += cfg.round_s
            if nxt >= hi and np.all(np.isfinite(completion[lo:hi])):
                break
        jct = completion - j.arrival_s
        return SimResult(
            policy=cfg.policy, aware=cfg.aware, completion_s=completion, jct_s=jct, energy_j=energy,
            carbon_g=carbon, gang_run=gang_run, site_energy_j=site_e, site_carbon_g=site_c,
            site_power_w=np.array(power_rows).reshape(-1, n_sites), round_start_s=np.array(starts),
            moves=moves, preemptions=preempt, solves=solves, solve_s=solve_s,
            wall_s=time.perf_counter() - wall0, end_s=t, cap_exceeded_rounds=cap_bad)

    # ------------------------------------------------------------------------------------------ helpers
    def _per_pool(self, act, rows, x):
        """Per job and pool: summed fraction, and the gang and throughput of the variant with most time."""
        pos, g, thr = rows
        return per_pool(pos, np.asarray(g), thr, x, len(act), self.jobs.gang[act])

    def _job_thr(self, ids):
        """[len(ids), P] throughput of each job at its requested gang."""
        j = self.jobs
        gi = np.array([self._gidx[int(x)] for x in j.gang[ids]], dtype=np.int64)
        return self.thr[j.job_type[ids], gi]

    def _unallocated(self, new, x_jp, g_jp, t_jp):
        """Rows for jobs that arrived since the last solve: no time, their requested gang and throughput."""
        g = np.repeat(self.jobs.gang[new][:, None].astype(float), x_jp.shape[1], axis=1)
        return (np.vstack([x_jp, np.zeros_like(g)]), np.vstack([g_jp, g]), np.vstack([t_jp, self._job_thr(new)]))

    def _headroom(self, hour: int) -> np.ndarray | None:
        c = self.cluster
        if c.site_cap_w is None:
            return None
        base = np.bincount(c.pool_site, weights=c.count * c.idle_power_w, minlength=c.n_sites)
        return np.maximum(c.hourly(c.site_cap_w, hour, np.inf) - base, 0.0)

    def _fifo_round(self, act, last_pool, hour):
        c, j = self.cluster, self.jobs
        gi = np.array([self._gidx[int(x)] for x in j.gang[act]], dtype=np.int64)
        thr = self.thr[j.job_type[act], gi]
        gang = np.repeat(j.gang[act][:, None], len(c.count), axis=1)
        running = last_pool[act]
        held = np.bincount(running[running >= 0], weights=j.gang[act][running >= 0], minlength=len(c.count))
        power = gang * (c.busy_power_w - c.idle_power_w)[None, :]
        head = self._headroom(hour)
        if head is not None:
            r = np.flatnonzero(running >= 0)
            used = np.bincount(c.pool_site[running[r]], weights=power[r, running[r]], minlength=c.n_sites)
            head = head - used
        order = np.argsort(j.arrival_s[act], kind="stable")
        return place_fifo(order, running.copy(), gang, thr, c.count - held.astype(np.int64), aware=self.cfg.aware,
                          pool_site=c.pool_site, site_headroom_w=head, power_w=power, rng=self._rng)
