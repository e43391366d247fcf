"""The exact optimum of an allocation LP (:func:`solve_job_lp`): whole on HiGHS when small, homogenised
when it is a pure ``max z``, checked at its bound ``z`` when the jobs rather than capacity cap it, and by
aggregation with a dual certificate (:mod:`gridshift.plan.allocation.aggregate`) when large, priced by a
sampled LP.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gridshift.errors import PlanError
from gridshift.plan.allocation import job_lp
from gridshift.plan.allocation.aggregate import (
    States,
    best_states,
    rebanded,
    solve_reduced,
    states_of,
)
from gridshift.plan.allocation.job_lp import (
    FREE,
    FREE_T,
    INF,
    VAR,
    JobLP,
    JobSol,
    tied_jobs,
)
from gridshift.plan.allocation.merge import merge_identical
from gridshift.plan.allocation.need_classes import solve_by_classes, solve_soft_by_classes
from gridshift.plan.allocation.terms import alone_best


def solve_job_lp(lp: JobLP, *, deadline: float, warm: JobSol | None = None, warm_prices: bool = False,
                 whole: bool = False, merge: bool = True, want_x: bool = True) -> JobSol:
    """Exact optimum of ``lp``.

    Jobs with identical columns are first solved as classes when there are few of them
    (:func:`~gridshift.plan.allocation.need_classes.solve_by_classes`: exact, whatever their needs; with
    ``want_x`` false its solution may carry ``x = None``); else identical jobs are merged into one
    (:func:`~gridshift.plan.allocation.merge.merge_identical`).

    Small LPs (``<= FULL_LP_MAX_JOBS`` jobs, or ``whole``) go to HiGHS whole. Larger ones are solved by
    *aggregation*: a job whose optimum is of a simple kind needs no rows of its own, its ``x`` being
    affine in ``z`` (its use of the coupling rows folds into ``z``'s column and the right-hand sides):

    * ``REQ``: on one column with its requirement just met (``x_c = need / n_c``; 0 without one);
    * ``HI``: on one column all the time (``x_c = 1``);
    * ``PAIR``: on two columns with time and requirement both tight (a job too slow for its need on the
      cheap column alone);
    * ``VAR``: one column with bounds ``[need / n_c, 1]`` whose level the model picks (needs that do not
      move with ``z`` only);
    * ``FREE``: all the job's columns, its time row and requirement row.

    States come from prices (an LP over a sample of the jobs, each standing for ``J / sample`` of them,
    or ``warm``'s with ``warm_prices``), or from ``warm``'s solution of a related LP (same columns); jobs
    near a tie between two options start FREE. After each solve every aggregated job is checked against the model's prices: its state
    gives its row duals, all its columns must have non-positive reduced cost, the duals the right signs,
    the ``z`` range its state implies must not bind, and no coupling row may need its (expensive) slack.
    Jobs that fail are freed and the model re-solved (once, if many fail, all states are re-picked at the
    new prices instead). When none fails, the duals prove the solution optimal for the whole LP (the
    tests compare with solving it whole). After ``MAX_ROUNDS``, or with half the jobs free, the whole LP
    is solved.
    """
    if not whole and merge:
        sol = solve_by_classes(lp, deadline, want_x=want_x) if lp.pen is None else solve_soft_by_classes(lp, deadline)
        if sol is not None:
            return sol
    if warm is not None and warm.x is None:  # (a class solution without x: its prices only)
        warm = replace(warm, x=np.zeros(0), basis=None) if warm_prices else None
    merged = merge_identical(lp) if merge else None  # identical jobs as one (exact; see merge)
    if merged is not None:
        small, expand, shrink = merged
        return expand(solve_job_lp(small, deadline=deadline, warm=None if warm is None else shrink(warm),
                                   warm_prices=warm_prices, whole=whole, merge=False))
    J = lp.n_jobs
    if not whole:
        sol = _at_z_bound(lp, deadline)
        if sol is not None:
            return sol
    hom = _homogenised(lp)
    if hom is not None:  # (solutions carry t = 1 / z as hz, for warm starts of the next homogenised LP)
        hw = None if warm is None else replace(warm, z=warm.hz if warm.hz is not None else 1.0 / max(warm.z, 1e-300))
        sol = solve_job_lp(hom, deadline=deadline, warm=hw, warm_prices=warm_prices, whole=whole, merge=False)
        z = 1.0 / sol.z
        return replace(sol, x=sol.x * z, z=z, value=lp.value(sol.x * z, z), hz=sol.z)
    if whole or J <= job_lp.FULL_LP_MAX_JOBS:
        return _whole(lp, deadline)
    if warm is not None and warm.basis is not None and warm.x.size == lp.job.size:
        # the related LP needed every job free (aggregation failed there): so will this one, most likely;
        # start the dual simplex from its basis (a parametric step moves a few pivots)
        # (a max-z step whose right-hand sides moved: the dual simplex; a second stage whose objective
        # changed, the basis still primal feasible: the primal simplex, 4x faster there)
        return _whole(lp, deadline, basis=warm.basis, primal=not lp.time_z)
    lam0 = z0 = None  # prices the states were picked at
    if warm is not None and warm_prices and warm.lam.size == lp.cap.size:
        lam0, z0 = warm.lam, warm.z
        st = best_states(lp, lam0, z0, job_lp.FREE_GAP, band=np.inf)
    elif warm is not None and warm.x.size == lp.job.size:
        st = states_of(lp, warm.x)
    else:
        lam0, z0 = _prices(lp, deadline)
        st = best_states(lp, lam0, z0, job_lp.FREE_GAP, band=np.inf)
    gap, repicked = job_lp.FREE_GAP, False
    for _ in range(job_lp.MAX_ROUNDS):
        sol, bad, timed, sane = solve_reduced(lp, st, deadline)
        if sol is None:
            if not bad.size:
                break
            st.kind[bad] = FREE  # states that allow no z at all
            continue
        st.kind[timed] = FREE_T
        if not bad.size and not timed.size:
            return sol
        keep = st.kind <= FREE_T
        if bad.size > job_lp.REPICK_SHARE * J or np.count_nonzero(st.kind >= VAR) > job_lp.REPICK_SHARE * J:
            lost = lam0 is not None and bool(np.any((sol.lam <= 1e-9 * max(float(sol.lam.max()), 1e-300))
                                                    & (lam0 > 1e-3 * max(float(lam0.max()), 0.0))))
            tied = lp.time_z or bool(tied_jobs(lp).any())  # (there, a model with few FREE jobs misprices rows)
            if sane and not lost and not repicked and not tied:  # re-pick the states at the model's prices
                if lam0 is None:  # warm states: keep their columns (they fit), only re-band them
                    new = rebanded(lp, st, sol.lam)
                    new.kind[bad] = FREE
                else:
                    new = best_states(lp, sol.lam, sol.z, job_lp.FREE_GAP_REPICK, band=job_lp.VAR_BAND)
                    new.kind[keep] = st.kind[keep]
                st, lam0, z0, repicked = new, sol.lam, sol.z, True
                continue
            if np.count_nonzero(keep) + bad.size > job_lp.WHOLE_SHARE * J:  # most jobs fail: no state pricing will hold
                break
            if lam0 is not None and (not sane or lost or tied) and gap < 0.3:  # too few free jobs to price
                gap *= 3  # every row: free more of those near a tie (the failures are artefacts of that)
                new = best_states(lp, lam0, z0, gap, band=np.inf)
                new.kind[keep] = st.kind[keep]
                st = new
                continue
        if np.count_nonzero(keep) + bad.size > job_lp.WHOLE_SHARE * J:
            break
        st.kind[bad] = np.where(st.kind[bad] == FREE_T, FREE_T, FREE)
    return _whole(lp, deadline)

def _whole(lp: JobLP, deadline: float, basis=None, primal: bool = False) -> JobSol:
    """The LP with every job FREE (in the homogenised form, time rows added as they bind). Large LPs (more
    than ``FULL_LP_MAX_JOBS`` jobs, reached when aggregation fails: typically a cluster nearly big enough
    for every job, where thousands of jobs run all the time on two types) are solved in one go, every time
    row present, by the interior point method: adding the time rows in batches to the simplex took 3-4
    solves of ~0.5 s each at 2,048 jobs. With ``basis`` (of a whole solve of a related LP of the same shape),
    the dual simplex from that basis instead: 3-10 ms at 2,048 jobs where the interior point takes 130 (with
    ``primal``, the primal simplex: for an LP whose objective, not its right-hand sides, changed)."""
    st = States(lp.n_jobs)
    if lp.n_jobs > job_lp.FULL_LP_MAX_JOBS:
        st.kind[:] = FREE_T
        sol = solve_reduced(lp, st, deadline, ipm=True, basis=basis, primal_warm=primal)[0]
        if sol is not None:
            return sol
    for _ in range(job_lp.MAX_ROUNDS):
        sol, _, timed, _ = solve_reduced(lp, st, deadline)
        if sol is None:
            raise PlanError("allocation LP not solved (infeasible, or no solution within the time limit)")
        if not timed.size:
            return sol
        st.kind[timed] = FREE_T
    st.kind[:] = FREE_T
    return solve_reduced(lp, st, deadline)[0]

def _pure_max_z(lp: JobLP) -> bool:
    """``max z s.t. n_j(x) >= b_j z`` and the base rows: no other objective, no constant needs."""
    return bool(not lp.time_z and lp.f > 0 and lp.z_lo <= 0 and np.isinf(lp.z_hi) and lp.pen is None
                and lp.req.any() and not np.any(lp.e != 0) and not np.any(lp.a != 0)
                and not np.any(lp.beta[lp.req] != 0))


def _at_z_bound(lp: JobLP, deadline: float) -> JobSol | None:
    """For a pure max-z LP: ``z`` can be no larger than every job's best alone, ``z_ub = min_j best_j /
    b_j`` (:func:`alone_best`, ``u_c`` the most of column c a job could run alone). When capacity is no constraint
    (e.g. the makespan of a few long jobs), ``z_ub`` is the optimum: check it with one LP at that fixed
    ``z`` (cheap: needs are constants), after a necessary test on total capacity. ``None`` otherwise."""
    if lp.n_jobs <= job_lp.FULL_LP_MAX_JOBS or not _pure_max_z(lp):
        return None
    A = lp.A.tocsc()
    with np.errstate(divide="ignore"):
        room = np.where(A.data > 0, lp.cap[A.indices] / A.data, np.inf)
    u = np.ones(lp.job.size)
    nz = np.flatnonzero(np.diff(A.indptr) > 0)
    u[nz] = np.minimum(1.0, np.minimum.reduceat(room, A.indptr[nz]))
    best = alone_best(lp.job, lp.n, np.maximum(u, 0.0), lp.n_jobs)
    req = np.flatnonzero(lp.req)
    z_ub = float(np.min(best[req] / lp.b[req]))
    t = z_ub * lp.b[lp.job] / lp.n  # time each column needs at z_ub
    share = np.asarray(abs(A).multiply(1.0 / np.maximum(np.abs(lp.cap), 1e-300)[:, None]).sum(axis=0)).ravel() * t
    cheapest = np.full(lp.n_jobs, np.inf)
    np.minimum.at(cheapest, lp.job, np.where(t <= 1 + 1e-12, share, np.inf))
    if not np.isfinite(z_ub) or np.sum(cheapest[req]) > lp.cap.size * (1 + 1e-9):
        return None
    fixed = replace(lp, z_lo=z_ub, z_hi=z_ub)
    # start from a spread that fits (large LPs only, see the guard above): prices make over-full rows dear
    lam = 1.0 / np.maximum(np.abs(lp.cap), 1e-300)
    At = abs(A).multiply(t[None, :]).tocoo()  # use of each row by each column at its need
    AtT = At.T.tocsr()
    starts = np.flatnonzero(np.r_[True, lp.job[1:] != lp.job[:-1]])  # (columns are sorted by job)
    seg = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, lp.job.size]))
    for _ in range(40):
        cost = np.where(t <= 1 + 1e-12, AtT @ lam, np.inf)
        pick = _first_min(cost, starts, seg)
        pick = pick[lp.req[lp.job[pick]] & np.isfinite(cost[pick])]
        chosen = np.zeros(lp.job.size)
        chosen[pick] = 1.0
        load = np.bincount(At.row, At.data * chosen[At.col], lp.cap.size)
        ratio = load / np.maximum(np.abs(lp.cap), 1e-300)
        if np.all(ratio <= 1.0):
            break
        lam = lam * np.exp(2.0 * (ratio - 1.0))
    else:  # no spread of the needs fits: capacity binds, z_ub is not the optimum (most likely)
        return None
    x = np.zeros(lp.job.size)
    x[pick] = t[pick]
    warm = JobSol(x=x, z=z_ub, lam=lam, value=0.0, status="optimal", free_jobs=0)
    sol = solve_job_lp(fixed, deadline=deadline, warm=warm)
    if sol.over > 1e-9 * (1 + float(np.abs(lp.cap).sum())):
        return None
    return sol


def _first_min(key: np.ndarray, starts: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Index of the first smallest ``key`` in each run of a sorted segmentation (``starts`` of the runs,
    ``seg`` the run of every entry): what ``segments(job, -key)[0]`` gives, without a sort."""
    low = np.minimum.reduceat(key, starts)
    idx = np.flatnonzero(key == low[seg])
    return idx[np.r_[True, seg[idx[1:]] != seg[idx[:-1]]]]


def _homogenised(lp: JobLP) -> JobLP | None:
    """``max z s.t. n_j(x) >= b_j z`` (no other objective, no constant needs) in the variables ``y = x / z``
    and ``t = 1 / z``: ``min t s.t. n_j(y) >= b_j, sum y_j <= t, A y <= cap t``. Its requirements are
    constants, so ``t`` is no dense column: it sits in the coupling rows and in the time rows, which are
    added only for the jobs whose time binds. ``None`` if ``lp`` is not of that form."""
    if not _pure_max_z(lp):
        return None
    return replace(lp, cap=np.zeros_like(lp.cap), a=-lp.cap, b=np.zeros(lp.n_jobs),
                   beta=np.where(lp.req, lp.b, 0.0), f=-1.0, z_lo=0.0, z_hi=INF, time_z=True)

def _prices(lp: JobLP, deadline: float) -> tuple[np.ndarray, float]:
    """Coupling prices and ``z`` of the LP over ``max(SAMPLE_JOBS, J / SAMPLE_SHARE)`` jobs, evenly spaced
    in order of efficiency, each standing for ``J / sample`` jobs (coupling use and objective scaled up;
    a large sample is solved by aggregation in turn). Requirements that do not move with ``z`` are eased
    by 2 % there (a sample of jobs whose needs exactly fill the cluster would otherwise overfill it half
    of the time)."""
    J = lp.n_jobs
    # systematic sample over the jobs sorted by efficiency (value per unit of coupling use on their best
    # column): the cost of serving a job is heavy-tailed, and a plain sample misjudges it by several %
    use = np.asarray(abs(lp.A).sum(axis=0)).ravel() + 1e-300
    eff = np.full(J, -np.inf)
    np.maximum.at(eff, lp.job, np.where(lp.req[lp.job], lp.n, lp.e) / use)
    order = np.argsort(eff, kind="stable")
    pick = np.sort(order[np.unique(np.linspace(0, J - 1, max(job_lp.SAMPLE_JOBS, J // job_lp.SAMPLE_SHARE)).round().astype(np.int64))])
    k = J / pick.size
    newid = np.full(J, -1)
    newid[pick] = np.arange(pick.size)
    sel = np.flatnonzero(newid[lp.job] >= 0)
    ease = np.where(tied_jobs(lp)[pick], 1.0, 0.98)
    sub = JobLP(n_jobs=pick.size, job=newid[lp.job[sel]], n=lp.n[sel], e=lp.e[sel] * k, A=lp.A[:, sel] * k,
                cap=lp.cap, a=lp.a, req=lp.req[pick], b=lp.b[pick] * ease, beta=lp.beta[pick] * ease,
                pen=None if lp.pen is None else lp.pen[pick] * k, f=lp.f, z_lo=lp.z_lo, z_hi=lp.z_hi,
                time_z=lp.time_z)
    try:
        sol = solve_job_lp(sub, deadline=deadline)  # aggregated in turn when the sample is large
    except PlanError:
        return np.zeros(lp.cap.size), lp.z_lo
    return sol.lam, sol.z
