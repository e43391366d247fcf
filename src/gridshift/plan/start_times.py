"""Non-interruptible waiting jobs in the planning LP as a choice of start time.

A job that cannot be paused is not divisible work: once started it runs straight through. Planned as work
of a class, the LP spreads it over cheap hours, and when one of them is now the job starts and must then run
through the dear hours as well. Here each such job ``j`` gets start-time columns instead: ``y[j, p, s]`` in
[0, 1] for each pool ``p`` it may run on and each candidate start ``s`` inside its window [release, deadline
− run time] (the grid the caller gives, plus the exact latest start), and ``left[j]`` for not starting in
the horizon; ``Σ_{p,s} y + left = 1``.

* cost of ``y``: gang × incremental facility MW of the pool's type at full power × ∫ unit cost over [s, s +
  run] (the unit cost at slot resolution; beyond the horizon, its mean there);
* pool capacity and site power: gang (× MW) times the share of each period that [s, s + run] covers;
* ``left``: the job's incremental energy at the mean unit cost of the horizon on the dearest pool it may
  use (as a class's work left, :func:`gridshift.plan.lp_policy.terminal_value`) if it may still start after
  the horizon, else a lateness penalty above any start;
* a job that can no longer meet its deadline gets one column at its earliest start, charged as late.

The columns and rows go into the LP through :class:`gridshift.plan.lp._Builder` (duck-typed here, so this
module imports nothing of the planner); :func:`chosen_starts` turns the solution into one start per job
(the largest ``y``; ``left`` wins when it is largest).
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from gridshift.model.time import S_PER_H
from gridshift.world.arrays import World

INF = highspy.kHighsInf


@dataclass
class StartTimes:
    jobs: np.ndarray  # int64 [J] job indices
    col_job: np.ndarray  # [M] position in ``jobs``
    col_pool: np.ndarray  # [M]
    col_start_h: np.ndarray  # [M] hours from the plan start
    col_run_h: np.ndarray  # [M] run time on the column's pool
    col_gang: np.ndarray  # [M] accelerators
    col_mw: np.ndarray  # [M] incremental facility MW while it runs
    col_energy: np.ndarray  # [M] objective of its energy
    col_late: np.ndarray  # [M] lateness penalty (0 where the start meets the deadline)
    left_cost: np.ndarray  # [J]

    @property
    def n(self) -> int:
        return int(self.jobs.size)

    def add_to(self, b, cap_rows: np.ndarray, pow_rows: np.ndarray, edges_h: np.ndarray, pool_site: np.ndarray,
               tie: float) -> tuple[np.ndarray, np.ndarray]:
        """Add the columns and rows to builder ``b``: pool-capacity rows ``cap_rows[p * T + t]``, site-power
        rows ``pow_rows[s * T + t]`` of periods with edges ``edges_h`` (hours, T + 1). ``tie``: the LP's
        preference for earlier work, per unit of the period index. Returns (y columns, left columns)."""
        T = edges_h.size - 1
        pos = np.searchsorted(edges_h, self.col_start_h, side="right") - 1
        ycol = b.add_cols(self.col_energy + self.col_late + tie * (np.clip(pos, 0, T - 1) + 1) / max(T, 1), 1.0)
        left = b.add_cols(self.left_cost, 1.0)
        r = b.add_rows(np.ones(self.n), np.ones(self.n))
        b.add_coef(r[self.col_job], ycol, 1.0)
        b.add_coef(r, left, 1.0)
        # overlap of [s, s + run] with each period, as a share of the period
        a, e = self.col_start_h, self.col_start_h + self.col_run_h
        t0 = np.clip(np.searchsorted(edges_h, a, side="right") - 1, 0, T)
        t1 = np.clip(np.searchsorted(edges_h, e, side="left"), 0, T)  # one past the last period touched
        n = np.maximum(t1 - t0, 0)
        m = np.repeat(np.arange(a.size), n)
        t = t0[m] + np.arange(m.size) - np.repeat(np.cumsum(n) - n, n)
        dur = edges_h[t + 1] - edges_h[t]
        share = np.clip(np.minimum(e[m], edges_h[t + 1]) - np.maximum(a[m], edges_h[t]), 0.0, None) / dur
        p = self.col_pool[m]
        b.add_coef(cap_rows[p * T + t], ycol[m], self.col_gang[m] * share)
        b.add_coef(pow_rows[pool_site[p] * T + t], ycol[m], self.col_mw[m] * share)
        return ycol, left


def _integral(cum: np.ndarray, mean: np.ndarray, step_h: float, site: np.ndarray, a_h: np.ndarray,
              b_h: np.ndarray) -> np.ndarray:
    """∫ unit cost over [a_h, b_h] at ``site``: ``cum[S, H + 1]`` its running integral on a grid of ``step_h``
    hours; past the grid the cost is ``mean[S]``."""
    H = cum.shape[1] - 1
    end_h = H * step_h

    def at(x):
        xc = np.clip(x, 0.0, end_h) / step_h
        i = np.minimum(np.floor(xc).astype(np.int64), max(H - 1, 0))
        frac = xc - i
        v = cum[site, i] + frac * (cum[site, np.minimum(i + 1, H)] - cum[site, i])
        return v + np.maximum(x - end_h, 0.0) * mean[site]

    return at(b_h) - at(a_h)


def build_start_times(world: World, jobs: np.ndarray, remaining: np.ndarray, now_s: float, grid_h: np.ndarray,
                      horizon_h: float, uc_fine: np.ndarray, step_h: float, late_cost: float,
                      home_site: np.ndarray | None = None) -> StartTimes:
    """Start-time columns for the waiting non-interruptible ``jobs`` of a plan starting at ``now_s`` (seconds
    since the scenario start) and covering ``horizon_h`` hours. ``grid_h``: candidate starts (hours from the
    plan start, inside the horizon); ``uc_fine[S, H]``: objective per facility MWh at steps of ``step_h``
    hours from the plan start; ``late_cost`` per unit of work and hour late; ``home_site[j]`` >= 0 confines
    a job to a site."""
    f, jt = world.fleet, world.jobs
    jobs = np.asarray(jobs, np.int64)
    k, s = f.pool_type, f.pool_site
    inc_mw = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0.0) * f.pue[s] / 1e6  # [P]
    cum = np.concatenate([np.zeros((uc_fine.shape[0], 1)), np.cumsum(uc_fine * step_h, axis=1)], axis=1)
    mean = uc_fine.mean(axis=1) if uc_fine.shape[1] else np.zeros(uc_fine.shape[0])
    gang = jt.gang_max[jobs].astype(float)
    sp = jt.speed[jobs][:, k]  # [J, P]
    ok = sp > 0
    if home_site is not None:
        ok &= (home_site[:, None] < 0) | (home_site[:, None] == s[None, :])
    run_h = np.where(ok, remaining[jobs][:, None] / np.maximum(gang[:, None] * sp, 1e-12), np.inf)  # [J, P]
    release_h = np.maximum(jt.arrival_s[jobs] - now_s, 0.0) / S_PER_H
    deadline_h = (jt.deadline_s[jobs] - now_s) / S_PER_H  # inf without a deadline
    latest_h = deadline_h[:, None] - run_h  # [J, P]
    grid_h = np.asarray(grid_h, float)
    grid_h = grid_h[grid_h < horizon_h]
    # candidates: grid points in [release, latest], and the exact latest start when it lies in the horizon
    jj, pp = np.nonzero(ok)
    lo, hi = release_h[jj], latest_h[jj, pp]
    first = np.searchsorted(grid_h, lo - 1e-9, side="left")
    last = np.searchsorted(grid_h, np.minimum(hi, horizon_h) + 1e-9, side="right")
    n = np.maximum(last - first, 0)
    m = np.repeat(np.arange(jj.size), n)
    start = grid_h[first[m] + np.arange(m.size) - np.repeat(np.cumsum(n) - n, n)]
    exact = (hi >= lo - 1e-9) & (hi < horizon_h) & np.isfinite(hi)
    on_grid = np.isin(np.round(hi, 6), np.round(grid_h, 6))
    extra = np.flatnonzero(exact & ~on_grid)
    # a job that cannot meet its deadline on a pool: its earliest start there, charged as late
    late_only = np.flatnonzero((hi < lo - 1e-9) & (lo < horizon_h))
    m = np.concatenate([m, extra, late_only])
    start = np.concatenate([start, np.maximum(hi[extra], lo[extra]), lo[late_only]])
    cj, cp = jj[m], pp[m]
    run = run_h[cj, cp]
    energy = gang[cj] * inc_mw[cp] * _integral(cum, mean, step_h, s[cp], start, start + run)
    late_h = np.maximum(start + run - deadline_h[cj], 0.0)
    work = remaining[jobs]
    late = late_cost * work[cj] * late_h
    # left for after the horizon: the dearest allowed pool's incremental energy at the horizon's mean cost;
    # a job that must start inside the horizon pays more than the latest of its starts would
    run_ok = np.where(ok, run_h, 0.0)
    terminal = np.where(ok, gang[:, None] * inc_mw[None, :] * run_ok * mean[s][None, :], -np.inf).max(axis=1)
    terminal = np.where(np.isfinite(terminal), terminal, 0.0)
    can_wait = (latest_h.max(axis=1, initial=-np.inf) >= horizon_h) | ~np.isfinite(deadline_h)
    worst = np.zeros(jobs.size)
    if cj.size:
        np.maximum.at(worst, cj, energy + late)
    left_cost = np.where(can_wait, terminal, worst + late_cost * work * (max(horizon_h, 1.0) + 24.0))
    return StartTimes(jobs, cj, cp, start, run, gang[cj], gang[cj] * inc_mw[cp], energy, late, left_cost)


def chosen_starts(st: StartTimes, y: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per job of ``st``: the start (hours from the plan start; inf = not in the horizon) and the pool of
    its largest ``y``; ``left`` wins when it is at least as large."""
    J = st.n
    best = np.full(J, -1.0)
    idx = np.full(J, -1)
    if st.col_job.size:
        order = np.lexsort((st.col_start_h, -y, st.col_job))  # per job: largest y, then earliest start
        first = np.ones(order.size, bool)
        first[1:] = st.col_job[order[1:]] != st.col_job[order[:-1]]
        top = order[first]
        best[st.col_job[top]] = y[top]
        idx[st.col_job[top]] = top
    start = np.where((idx >= 0) & (best > left + 1e-9), st.col_start_h[np.maximum(idx, 0)], np.inf)
    pool = np.where(np.isfinite(start), st.col_pool[np.maximum(idx, 0)], -1)
    return start, pool


def start_slots(st: StartTimes, y: np.ndarray | None, left: np.ndarray | None, t0: int,
                slot_h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(jobs, slot, pool): the slot each job of ``st`` starts in under the plan made at slot ``t0`` (a start
    inside a slot is taken at the slot's start; a large number = not in the horizon) and its pool."""
    never = np.int64(1) << 60
    if y is None or left is None or not st.n:
        return st.jobs, np.full(st.n, never), np.full(st.n, -1)
    start_h, pool = chosen_starts(st, y, left)
    fin = np.isfinite(start_h)
    slot = t0 + np.floor(np.where(fin, start_h, 0.0) / slot_h + 1e-9).astype(np.int64)
    return st.jobs, np.where(fin, slot, never), pool
