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
takes a pool that fits (aware: the fastest one; agnostic: one drawn at random, as Gavel's paper describes
its base FIFO); a job that does not fit anywhere blocks the queue (strict FIFO).

:func:`gavel_fifo_assign` is what Gavel's base FIFO code does instead (``scheduler/policies/fifo.py``,
``FIFOPolicy.get_allocation`` with ``mode="base"``): each job is bound for good to one type, and the
type is ``worker_type``, a loop variable left over from the scan of the free types — the *last* type, in
name order (k80 < p100 < v100), with a free accelerator, whether or not the job's gang fits there (the
count may go negative: jobs queue on that type); the random draw the paper describes only picks which type
leaves the list when the chosen one is exactly full. The round mechanism then runs the jobs bound to each
type by priority (allocation 1 over received time) and skips jobs at priority 0 (Gavel's mechanism does
for FIFO), so the jobs bound to one type time-share it.

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


def _round_state(inp: RoundInputs) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """A round's starting state: every job waiting (pool -1), the free accelerators per pool and the power
    headroom per site (copies, spent as jobs are placed), and the smallest gang (for backfill)."""
    pool_of = np.full(inp.alloc.shape[0], -1, dtype=np.int64)
    free = inp.free.astype(np.int64).copy()
    head = None if inp.site_headroom_w is None else inp.site_headroom_w.astype(float).copy()
    smallest_gang = int(inp.gang[inp.gang > 0].min()) if np.any(inp.gang > 0) else 1
    return pool_of, free, head, smallest_gang


def place_round(inp: RoundInputs, *, stickiness: float = 1.2, backfill: bool = True,
                aware: bool = True) -> np.ndarray:
    """Pool each active job runs on this round (``-1`` = waits). Never over-allocates a pool or a site."""
    pool_of, free, head, smallest_gang = _round_state(inp)
    if not pool_of.size:
        return pool_of
    pr = priorities(inp.alloc, inp.received_frac, inp.incumbent, stickiness)
    jj, pp = np.nonzero(pr > 0)
    order = np.lexsort((-inp.deficit_s[jj, pp], -pr[jj, pp]))
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


def place_fifo(order: np.ndarray, running_pool: np.ndarray, gang: np.ndarray, throughput: np.ndarray,
               free: np.ndarray, *, aware: bool, pool_site: np.ndarray | None = None,
               site_headroom_w: np.ndarray | None = None, power_w: np.ndarray | None = None,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Strict FIFO: running jobs stay; waiting jobs in ``order`` take a pool that fits (fastest if aware,
    random otherwise).

    ``running_pool[A]`` is -1 for waiting jobs; ``gang``/``throughput``/``power_w`` are ``[A, P]``;
    ``free[P]`` counts accelerators not held by running jobs. Returns the pool of every job.
    """
    pool_of = running_pool.copy()
    free = free.astype(np.int64).copy()
    head = None if site_headroom_w is None else site_headroom_w.astype(float).copy()
    for j in order.tolist():
        if pool_of[j] >= 0:
            continue
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


def gavel_fifo_assign(waiting: np.ndarray, bound: np.ndarray, finished: np.ndarray, gang: np.ndarray,
                      throughput: np.ndarray, count: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One call of Gavel's base ``FIFOPolicy.get_allocation`` (module docstring), on job ids.

    ``bound[N]`` is each job's type (-1 = none; jobs ``finished`` since the last call still hold theirs);
    ``waiting`` the unbound active jobs in arrival order; ``gang[N]``, ``throughput[N, P]`` (pools in
    Gavel's name order). A finished job's type goes to the head of the queue if its gang fits what is left
    there; then each waiting job, in order, is bound to the last pool with a free accelerator (if its
    throughput there is positive), until no pool has room for the next job's gang. Returns the new ``bound``
    (finished jobs released)."""
    bound = bound.copy()
    queue = [int(j) for j in waiting]
    avail = np.asarray(count, np.int64).copy()
    done = set(int(j) for j in finished)
    for j in np.flatnonzero(bound >= 0).tolist():  # (sorted by id, as Gavel's job ids)
        t = int(bound[j])
        if j in done:
            if queue and gang[queue[0]] <= avail[t] and throughput[queue[0], t] > 0:
                h = queue.pop(0)
                bound[h] = t
                avail[t] -= gang[h]
            bound[j] = -1
        else:
            avail[t] -= gang[j]
    types = [p for p in range(len(avail)) if avail[p] > 0]
    while queue and types:
        h = queue.pop(0)
        fits = [i for i, p in enumerate(types) if avail[p] >= gang[h]]
        if not fits:
            break
        pick = fits[int(rng.integers(len(fits)))]  # the random type the paper describes ...
        t = types[-1]  # ... and the one the code uses (the scan's last)
        if throughput[h, t] > 0:
            bound[h] = t
            avail[t] -= gang[h]
            if avail[t] == 0:
                types.pop(pick)
    return bound


def place_round_gavel(inp: RoundInputs, pool_order: np.ndarray, skip_zero: bool = False) -> np.ndarray:
    """Gavel's mechanism (module docstring): pools in ``pool_order``, each filled from its queue of the jobs
    that can run there sorted by (priority, deficit, allocation), highest first. ``inp.received_frac`` is the
    job's share of the pool's time since the last reset; ``deficit_s`` Gavel's deficit (carried across
    resets). ``skip_zero``: jobs at priority 0 do not run (Gavel's FIFO). Power caps are respected as in
    :func:`place_round`."""
    pool_of, free, head, smallest_gang = _round_state(inp)
    if not pool_of.size:
        return pool_of
    pr = priorities(inp.alloc, inp.received_frac, np.zeros(0, np.int64))
    for p in np.asarray(pool_order, np.int64).tolist():
        jobs = np.flatnonzero((inp.throughput[:, p] > 0) & (pool_of < 0) & ((pr[:, p] > 0) | (not skip_zero)))
        if not jobs.size or free[p] <= 0:
            continue
        order = jobs[np.lexsort((-inp.alloc[jobs, p], -inp.deficit_s[jobs, p], -pr[jobs, p]))]
        _greedy(order, np.full(order.size, p), inp, free, head, pool_of, smallest_gang)
    return pool_of
