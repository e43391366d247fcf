"""The round-based mechanism: from time fractions to whole placements (Gavel, OSDI 2020, §4).

A policy's allocation ``x[j, p]`` says what fraction of wall-clock time job ``j`` should run on pool ``p``.
Time is cut into rounds (6 minutes by default); in each round a job runs on one pool with all of its
accelerators, or not at all. To make the time each job receives converge to its allocation:

* **priority** of ``(j, p)`` = ``x[j, p] / received[j, p]``, where ``received`` is the fraction of time
  (since the allocation was computed) that ``j`` has actually run on ``p``; a pair that has received
  nothing yet has priority ``x * 1e9``;
* **deficit** of ``(j, p)`` = time owed minus time received since the allocation (ties are broken by the
  larger deficit);
* pairs are visited by priority and the job is placed if it is not placed yet, the pool has enough free
  accelerators for its gang and the site stays under its power cap;
* **stickiness**: a job's priority on the pool it ran on last round is multiplied by ``stickiness`` (> 1),
  so near-ties keep jobs where they are instead of moving them (each move is a checkpoint and restart);
* **backfill** (optional): accelerators left idle go to jobs not placed, fastest pool first (aware) or
  pool order (agnostic), so the mechanism is work-conserving.

Gavel's own mechanism (:func:`place_round_gavel`, used with ``SimConfig(mechanics="gavel")``) differs in
three ways: pools are filled one after the other (Gavel's heterogeneity-aware policies: fastest type first;
agnostic ones: in a random order each round), each from its own queue sorted by (priority, deficit,
allocation); every job that can run on the pool is in that queue, those without time there at priority 0
(so leftover accelerators go to them: no separate backfill); and there is no stickiness. Its ``received``
is a job's share of the time all jobs ran on the pool since the last reset (each starts a reset with half
a round), not of wall-clock time; see :mod:`gridshift.sim.rounds` for the reset interval.

FIFO (:func:`place_fifo`) is not an LP: jobs keep their place until they finish and the oldest waiting job
takes a pool that fits (aware: the fastest one; agnostic ``"random"``: one drawn at random, as Gavel's
paper describes its base FIFO); a job that does not fit anywhere blocks the queue (strict FIFO).
Agnostic ``"fastest-free"`` is what Gavel's base FIFO code does (``scheduler/policies/fifo.py``, its
``worker_type`` loop variable left over from the scan of free types): each waiting job is given the *last*
pool (in pool order: Gavel's types sorted by name, k80 < p100 < v100) that has any free accelerator; if
its gang does not fit there it waits this round (its priority elsewhere is 0, and Gavel's mechanism skips
FIFO jobs at priority 0) and the next job is tried.

Array code: inputs are ``[A, P]`` matrices over active jobs and pools; the only Python loop visits the
pairs with a positive allocation, in priority order, and stops when every pool is full.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NEW_PAIR_PRIORITY = 1e9


@dataclass
class RoundInputs:
    alloc: np.ndarray  # [A, P] time fractions per job and pool (summed over the job's gang variants)
    gang: np.ndarray  # [A, P] accelerators the job uses on that pool (its chosen gang variant), int
    throughput: np.ndarray  # [A, P] steps/s with that gang (0 = cannot run)
    received_frac: np.ndarray  # [A, P] share of time run on the pool since the allocation was computed
    deficit_s: np.ndarray  # [A, P] time owed minus time received since the allocation, s
    incumbent: np.ndarray  # [A] pool each job ran on last round (-1 = none)
    free: np.ndarray  # [P] accelerators of each pool
    pool_site: np.ndarray | None = None  # [P]
    site_headroom_w: np.ndarray | None = None  # [S] power jobs may still add at each site this round
    power_w: np.ndarray | None = None  # [A, P] power the job draws there (gang included), W


def per_pool(job_of_row: np.ndarray, gang: np.ndarray, throughput: np.ndarray, x: np.ndarray, n_jobs: int,
             requested_gang: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse gang variants (rows) to ``[job, pool]``: the summed time fraction, and the gang and throughput
    of the variant with most time there (ties, including no time at all, go to the requested gang)."""
    n_pools = x.shape[1]
    if np.array_equal(job_of_row, np.arange(n_jobs)):  # one row per job (fixed gangs): nothing to collapse
        return x.copy(), np.repeat(np.asarray(gang, float)[:, None], n_pools, axis=1), throughput.copy()
    x_jp = np.zeros((n_jobs, n_pools))
    np.add.at(x_jp, job_of_row, x)
    score = x + np.where(gang == requested_gang[job_of_row], 1e-12, 0.0)[:, None]
    g_jp = np.zeros((n_jobs, n_pools))
    t_jp = np.zeros((n_jobs, n_pools))
    if len(job_of_row) == 0:
        return x_jp, g_jp, t_jp
    for p in range(n_pools):
        o = np.lexsort((score[:, p], job_of_row))
        last = o[np.r_[np.flatnonzero(np.diff(job_of_row[o])), len(o) - 1]]
        g_jp[job_of_row[last], p] = gang[last]
        t_jp[job_of_row[last], p] = throughput[last, p]
    return x_jp, g_jp, t_jp


def priorities(alloc: np.ndarray, received_frac: np.ndarray, incumbent: np.ndarray,
               stickiness: float = 1.0) -> np.ndarray:
    """Gavel's priority ``x / received`` (``x * 1e9`` for pairs not yet served), 0 where ``x == 0``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        pr = np.where(received_frac > 1e-12, alloc / received_frac, alloc * NEW_PAIR_PRIORITY)
    pr = np.where(alloc > 1e-9, pr, 0.0)
    if stickiness != 1.0 and len(incumbent):
        a = np.flatnonzero(incumbent >= 0)
        pr[a, incumbent[a]] *= stickiness
    return pr


def place_round(inp: RoundInputs, *, stickiness: float = 1.2, backfill: bool = True,
                aware: bool = True) -> np.ndarray:
    """Pool each active job runs on this round (``-1`` = waits). Never over-allocates a pool or a site."""
    n_jobs, n_pools = inp.alloc.shape
    pool_of = np.full(n_jobs, -1, dtype=np.int64)
    if n_jobs == 0:
        return pool_of
    free = inp.free.astype(np.int64).copy()
    head = None if inp.site_headroom_w is None else inp.site_headroom_w.astype(float).copy()
    pr = priorities(inp.alloc, inp.received_frac, inp.incumbent, stickiness)
    jj, pp = np.nonzero(pr > 0)
    order = np.lexsort((-inp.deficit_s[jj, pp], -pr[jj, pp]))
    smallest_gang = int(inp.gang[inp.gang > 0].min()) if np.any(inp.gang > 0) else 1
    _greedy(jj[order], pp[order], inp, free, head, pool_of, smallest_gang)
    if backfill and np.any(free >= smallest_gang):
        waiting = np.flatnonzero(pool_of < 0)
        if len(waiting):
            best = pr[waiting].max(axis=1)  # most under-served first
            waiting = waiting[np.argsort(-best, kind="stable")]
            cand = inp.throughput[waiting] > 0
            jw, pw = np.nonzero(cand)
            if aware:  # per job, fastest pool first
                key = -inp.throughput[waiting][jw, pw]
                o = np.lexsort((key, jw))
            else:
                o = np.lexsort((pw, jw))
            _greedy(waiting[jw[o]], pw[o], inp, free, head, pool_of, smallest_gang)
    return pool_of


def _greedy(jobs: np.ndarray, pools: np.ndarray, inp: RoundInputs, free: np.ndarray,
            head: np.ndarray | None, pool_of: np.ndarray, smallest_gang: int) -> None:
    site = inp.pool_site
    for j, p in zip(jobs.tolist(), pools.tolist()):
        if pool_of[j] >= 0:
            continue
        g = int(inp.gang[j, p])
        if g <= 0 or free[p] < g or inp.throughput[j, p] <= 0:
            continue
        if head is not None:
            w = float(inp.power_w[j, p])
            s = int(site[p])
            if w > head[s] + 1e-9:
                continue
            head[s] -= w
        free[p] -= g
        pool_of[j] = p
        if not np.any(free >= smallest_gang):
            break


FIFO_MODES = ("random", "fastest-free")


def place_fifo(order: np.ndarray, running_pool: np.ndarray, gang: np.ndarray, throughput: np.ndarray,
               free: np.ndarray, *, aware: bool, pool_site: np.ndarray | None = None,
               site_headroom_w: np.ndarray | None = None, power_w: np.ndarray | None = None,
               rng: np.random.Generator | None = None, mode: str = "random") -> np.ndarray:
    """Strict FIFO: running jobs stay; waiting jobs in ``order`` take a pool that fits (fastest if aware;
    agnostic: ``mode`` ``"random"`` or Gavel's code's ``"fastest-free"``, see the module docstring).

    ``running_pool[A]`` is -1 for waiting jobs; ``gang``/``throughput``/``power_w`` are ``[A, P]``;
    ``free[P]`` counts accelerators not held by running jobs. Returns the pool of every job.
    """
    if mode not in FIFO_MODES:
        raise ValueError(f"unknown FIFO mode {mode!r}; valid: {', '.join(FIFO_MODES)}")
    pool_of = running_pool.copy()
    free = free.astype(np.int64).copy()
    head = None if site_headroom_w is None else site_headroom_w.astype(float).copy()
    for j in order.tolist():
        if pool_of[j] >= 0:
            continue
        if not aware and mode == "fastest-free":
            if not np.any(free > 0):
                break
            p = int(np.flatnonzero(free > 0)[-1])
            w = 0.0 if head is None else float(power_w[j, p])
            if (throughput[j, p] > 0 and free[p] >= gang[j, p]
                    and (head is None or w <= head[int(pool_site[p])] + 1e-9)):
                free[p] -= int(gang[j, p])
                pool_of[j] = p
                if head is not None:
                    head[int(pool_site[p])] -= w
            continue  # (a job that does not fit there waits; the queue goes on)
        runs = np.flatnonzero(throughput[j] > 0)
        if aware:
            runs = runs[np.argsort(-throughput[j, runs], kind="stable")]
        else:
            fits = runs[free[runs] >= gang[j, runs]]
            runs = (rng or np.random.default_rng(0)).permutation(fits)
        placed = False
        for p in runs.tolist():
            g = int(gang[j, p])
            if free[p] < g:
                continue
            if head is not None:
                s = int(pool_site[p])
                if power_w[j, p] > head[s] + 1e-9:
                    continue
                head[s] -= power_w[j, p]
            free[p] -= g
            pool_of[j] = p
            placed = True
            break
        if not placed:
            break  # head-of-line blocking
    return pool_of


def place_round_gavel(inp: RoundInputs, pool_order: np.ndarray) -> np.ndarray:
    """Gavel's mechanism (module docstring): pools in ``pool_order``, each filled from its queue of the jobs
    that can run there sorted by (priority, deficit, allocation), highest first. ``inp.received_frac`` is the
    job's share of the pool's time since the last reset; ``deficit_s`` Gavel's deficit (carried across
    resets). Power caps are respected as in :func:`place_round`."""
    n_jobs, n_pools = inp.alloc.shape
    pool_of = np.full(n_jobs, -1, dtype=np.int64)
    if n_jobs == 0:
        return pool_of
    free = inp.free.astype(np.int64).copy()
    head = None if inp.site_headroom_w is None else inp.site_headroom_w.astype(float).copy()
    pr = priorities(inp.alloc, inp.received_frac, np.zeros(0, np.int64))
    smallest_gang = int(inp.gang[inp.gang > 0].min()) if np.any(inp.gang > 0) else 1
    for p in np.asarray(pool_order, np.int64).tolist():
        jobs = np.flatnonzero((inp.throughput[:, p] > 0) & (pool_of < 0))
        if not jobs.size or free[p] <= 0:
            continue
        order = jobs[np.lexsort((-inp.alloc[jobs, p], -inp.deficit_s[jobs, p], -pr[jobs, p]))]
        _greedy(order, np.full(order.size, p), inp, free, head, pool_of, smallest_gang)
    return pool_of
