"""Aggregate jobs into work classes so the planning LP does not grow with the number of jobs.

A class is (deadline period, throughput signature, home site, run-time bucket): jobs whose deadline falls in
the same planning period, that run at the same speed on every accelerator type, that may run at the same
sites, and whose remaining run times are within a factor of two — or, when the jobs are few enough, one job.
Gang sizes become a per-class bound on accelerators (the sum of the members' maximum gangs); whole gangs
are restored when the plan is turned into placements.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.model.time import S_PER_H
from gridshift.world.arrays import World


@dataclass
class Classes:
    member: np.ndarray  # int [n_jobs_considered] class of each job
    jobs: np.ndarray  # int64 job indices considered
    work: np.ndarray  # [C]
    speed: np.ndarray  # [C, K]
    allowed: np.ndarray  # bool [C, P]
    max_acc: np.ndarray  # [C, T]
    release: np.ndarray  # [C, T]
    deadline_period: np.ndarray  # [C]
    min_work: np.ndarray  # [C]
    eff_deadline_s: np.ndarray  # [n_jobs_considered] deadline used (explicit, or arrival + max delay)
    deadline_s: np.ndarray  # [C] earliest member deadline
    run_h: np.ndarray  # [C, K] longest member run time at full gang on each type (inf where it cannot run)

    @property
    def n(self) -> int:
        return self.work.size


def signature_ids(world: World) -> np.ndarray:
    """Id of each job's speed row (jobs with identical per-type throughput share an id)."""
    _, inv = np.unique(np.round(world.jobs.speed, 9), axis=0, return_inverse=True)
    return inv.ravel()


def build_classes(world: World, jobs: np.ndarray, remaining: np.ndarray, home_site: np.ndarray,
                  sig: np.ndarray, period_start_s: np.ndarray, period_end_s: np.ndarray,
                  max_delay_h: float, deadline_rounding: str = "down", bucket_periods: int = 1,
                  per_job: bool = False) -> Classes:
    """Classes over ``jobs`` for periods [period_start_s, period_end_s) (seconds since the scenario start).

    ``deadline_rounding="down"``: work counts toward a deadline only in periods that end by it (safe for
    planning); ``"up"``: also in the period that contains it (a relaxation, for bounds).
    ``home_site[j]`` is the site a non-migratable job must stay at, or -1. ``bucket_periods`` > 1 merges
    deadlines into buckets of that many periods (fewer classes, for long planning periods). ``per_job``: one
    class per job (exact when there are few jobs: a pooled class keeps planning accelerator-hours after its
    short members have finished, which its long members cannot use).
    """
    f, jt = world.fleet, world.jobs
    T = period_start_s.size
    dl = jt.deadline_s[jobs]
    eff = np.where(np.isfinite(dl), dl, jt.arrival_s[jobs] + max_delay_h * S_PER_H)
    if deadline_rounding == "down":
        d_per = np.searchsorted(period_end_s, eff + 1e-6, side="right")  # periods ending by the deadline
    else:
        d_per = np.searchsorted(period_start_s, eff - 1e-6, side="right")
    if bucket_periods > 1:  # coarser deadline classes: earlier bucket edge when planning, later for bounds
        d_per = (d_per // bucket_periods if deadline_rounding == "down" else -(-d_per // bucket_periods)) \
            * bucket_periods
    d_per = np.minimum(d_per, T)
    # jobs of similar remaining run time (factor-of-2 buckets at full gang on their fastest type) share a
    # class, so the class's run time stands for its members when lateness is estimated
    best_h = remaining[jobs] / np.maximum(jt.gang_max[jobs] * jt.speed[jobs].max(axis=1), 1e-12)
    run_bucket = np.floor(np.log2(np.maximum(best_h, 0.25))).astype(np.int64)
    key = np.stack([d_per, sig[jobs], home_site, run_bucket] + ([np.arange(jobs.size)] if per_job else []), axis=1)
    uniq, member = np.unique(key, axis=0, return_inverse=True)
    member = member.ravel()
    C = uniq.shape[0]
    work = np.bincount(member, weights=remaining[jobs], minlength=C)
    speed = np.zeros((C, len(f.type_names)))
    speed[member] = jt.speed[jobs]
    home = uniq[:, 2] if C else np.zeros(0, np.int64)
    allowed = (speed[:, f.pool_type] > 0) & ((home[:, None] < 0) | (home[:, None] == f.pool_site[None, :]))
    # release and accelerator bound by arrival: a job may run from its arrival to the second, so in the period
    # that contains it for the part of the period after it (its accelerators count pro rata there)
    arr = jt.arrival_s[jobs]
    arr_per = np.clip(np.searchsorted(period_start_s, arr + 1e-6, side="right") - 1, 0, T)
    a0, a1 = period_start_s[np.minimum(arr_per, T - 1)], period_end_s[np.minimum(arr_per, T - 1)]
    inside = (arr_per < T) & (arr > a0 + 1e-6)
    part = np.where(inside, (a1 - arr) / np.maximum(a1 - a0, 1e-9), 1.0)
    part = np.clip(part, 0.0, 1.0)
    rel = np.zeros((C, T + 1))
    np.add.at(rel, (member, arr_per), remaining[jobs])
    release = np.cumsum(rel, axis=1)[:, :T]
    gang = jt.gang_max[jobs].astype(float)
    acc = np.zeros((C, T + 2))
    np.add.at(acc, (member, arr_per), gang * part)
    np.add.at(acc, (member, arr_per + 1), gang * (1.0 - part))
    max_acc = np.cumsum(acc, axis=1)[:, :T]
    # work needed inside the horizon for deadlines beyond it
    # after the horizon a job cannot count on the fastest type (others want it too): use the median speed
    # over the fleet's types it can run on
    sp = jt.speed[jobs][:, np.unique(f.pool_type)]
    typical = np.nanmedian(np.where(sp > 0, sp, np.nan), axis=1)
    typical = np.where(np.isfinite(typical), typical, 0.0)
    after_h = np.maximum(eff - period_end_s[-1], 0.0) / S_PER_H
    need = np.maximum(remaining[jobs] - jt.gang_max[jobs] * typical * after_h, 0.0)
    min_work = np.bincount(member, weights=np.where(d_per >= T, need, 0.0), minlength=C)
    c_dl = np.full(C, np.inf)
    np.minimum.at(c_dl, member, eff)
    with np.errstate(divide="ignore"):
        rh = remaining[jobs][:, None] / (jt.gang_max[jobs][:, None] * jt.speed[jobs])
    run_h = np.zeros((C, len(f.type_names)))
    np.maximum.at(run_h, member, rh)
    return Classes(member, jobs, work, speed, allowed, max_acc, release, uniq[:, 0].astype(np.int64), min_work, eff,
                   c_dl, run_h)
