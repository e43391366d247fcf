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
* ``left``: if the job may still start after the horizon, the cost of its best such start as far as the
  unit cost is known (beyond that, its run at the mean unit cost), on the dearest pool it may use (as a
  class's work left is valued, :func:`gridshift.plan.lp_policy.terminal_value`); else a lateness penalty
  above any start;
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


def _after_horizon(ok: np.ndarray, latest_h: np.ndarray, release_h: np.ndarray, run_h: np.ndarray,
                   gang: np.ndarray, inc_mw: np.ndarray, site: np.ndarray, cum: np.ndarray, mean: np.ndarray,
                   step_h: float, horizon_h: float) -> np.ndarray:
    """[J] cost of each job's best start at or after the horizon's end (per pool the dearest, as a class's
    work left is valued), inf where it must start inside the horizon: starts on the ``step_h`` grid up to
    the end of ``cum`` and the exact latest start; a start past it costs the run at the mean."""
    end_h = (cum.shape[1] - 1) * step_h
    grid = np.arange(np.ceil(horizon_h / step_h - 1e-9) * step_h, end_h, step_h)
    J, P = ok.shape
    out = np.full((J, P), np.inf)
    jj, pp = np.nonzero(ok & (latest_h >= horizon_h - 1e-9))
    if not jj.size:
        return out.min(axis=1)
    lo = np.maximum(release_h[jj], horizon_h)
    hi = latest_h[jj, pp]
    first = np.searchsorted(grid, lo - 1e-9, side="left")
    last = np.searchsorted(grid, hi + 1e-9, side="right")
    n = np.maximum(last - first, 0)
    m = np.repeat(np.arange(jj.size), n)
    st = np.concatenate([grid[first[m] + np.arange(m.size) - np.repeat(np.cumsum(n) - n, n)],
                         np.where(np.isfinite(hi), np.maximum(hi, lo), lo)])
    m = np.concatenate([m, np.arange(jj.size)])
    run = run_h[jj[m], pp[m]]
    e = gang[jj[m]] * inc_mw[pp[m]] * _integral(cum, mean, step_h, site[pp[m]], st, st + run)
    best = np.full(jj.size, np.inf)
    np.minimum.at(best, m, e)
    out[jj, pp] = best
    return _dearest(out)


def _dearest(cost: np.ndarray) -> np.ndarray:
    """Per row, the largest finite value (inf where none)."""
    fin = np.isfinite(cost)
    top = np.where(fin, cost, -np.inf).max(axis=1, initial=-np.inf)
    return np.where(fin.any(axis=1), top, np.inf)


def build_start_times(world: World, jobs: np.ndarray, remaining: np.ndarray, now_s: float, grid_h: np.ndarray,
                      horizon_h: float, uc_fine: np.ndarray, step_h: float, late_cost: float,
                      max_delay_h: float = 24.0, home_site: np.ndarray | None = None) -> StartTimes:
    """Start-time columns for the waiting non-interruptible ``jobs`` of a plan starting at ``now_s`` (seconds
    since the scenario start) and covering ``horizon_h`` hours. ``grid_h``: candidate starts (hours from the
    plan start, inside the horizon); ``uc_fine[S, H]``: objective per facility MWh at steps of ``step_h``
    hours from the plan start, covering the horizon and, where known, beyond it (costs of runs that end
    after the horizon, and of starting after it); ``late_cost`` per unit of work and hour late; a job
    without a deadline must start within ``max_delay_h`` of its arrival; ``home_site[j]`` >= 0 confines a
    job to a site."""
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
    dl = jt.deadline_s[jobs]
    deadline_h = (np.where(np.isfinite(dl), dl, jt.arrival_s[jobs] + max_delay_h * S_PER_H) - now_s) / S_PER_H
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
    late = late_cost * remaining[jobs][cj] * late_h
    # left for after the horizon: its best start after the horizon as far as ``uc_fine`` reaches (beyond it,
    # the run at the mean cost there), on the dearest pool it may use (others may want the cheapest later);
    # a job that must start inside the horizon pays more than the latest of its starts would
    left_cost = _after_horizon(ok, latest_h, release_h, run_h, gang, inc_mw, s, cum, mean, step_h, horizon_h)
    can_wait = np.isfinite(left_cost)
    worst = np.zeros(jobs.size)
    if cj.size:
        np.maximum.at(worst, cj, energy + late)
    work = remaining[jobs]
    left_cost = np.where(can_wait, left_cost, worst + late_cost * work * (max(horizon_h, 1.0) + 24.0))
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
