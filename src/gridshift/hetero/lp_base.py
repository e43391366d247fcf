"""Shared machinery of the heterogeneity policies: normalisations, the LP over per-job columns with the
base constraints and its solver on HiGHS, the heterogeneity-agnostic view of a problem, and the final
feasibility repair.

Normalisations (all computed from the problem alone, so :func:`gridshift.hetero.policies.evaluate` and the
LPs agree):

* **Reference throughput** ``ref_j`` (steps/s): what job ``j`` gets from an *equal time share* of the
  cluster. Every job runs a fraction ``s = min(1, total accelerators / sum_j gang_j)`` of the time (with
  ``gang_j`` the gang of the job's first row, its default variant), spread over the pools in proportion
  to their size: ``ref_j = s * sum_p throughput[r0_j, p] * count[p] / sum(count)``. This allocation
  respects every pool size (power caps aside), and a job that cannot run on a pool gets nothing there.
  If the first row cannot run anywhere the job's best row is used; a job that cannot run at all gets
  ``ref = 1`` (and is not *eligible*, see below). ``thr_j(x) / ref_j`` is the job's *normalised
  throughput*: 1 = as good as the equal share.
* **Eligible jobs**: those that could get some throughput alone, i.e. ``max over columns of
  throughput * upper > 0`` where ``upper = min(1, count / gang, cap_w / power_w)``. Fairness and makespan
  terms range over eligible jobs only (a job that can run nowhere would pin them at 0).
* **Grid rate** ``g[r, p]`` (per unit of ``x``, dimensionless): ``carbon_weight * power_w * carbon / C_max
  + price_weight * power_w * price / E_max`` where ``C_max = sum_p count_p * carbon_p * max_r(power_w[r, p]
  / gang_r)`` is the carbon rate of the whole cluster busy with its most power-hungry work (``E_max`` the
  same with ``|price|``). So ``g(x) = sum g * x`` is at most the weight. Each policy subtracts
  ``U * g(x)`` from its objective, ``U`` being the policy's objective at the equal share (see policies):
  with weight 1, running the whole cluster flat out at its dirtiest costs as much as the equal share is
  worth.
* **Money rate** (min-cost): ``gang * cost_per_acc_h + power_w * price_per_mwh / 1e6`` (per hour),
  divided by the same for the whole cluster busy.

Solving. Every policy is a :class:`JobLP`: per-job columns ``x`` (one per row and pool where the row can
run), per-job time and requirement rows, a few coupling rows (pool sizes, capped sites) and one scalar
``z`` (the fairness level, makespan rate, ...). :func:`solve_job_lp` returns its exact optimum:

* up to ``FULL_LP_MAX_JOBS`` jobs, on HiGHS as a whole (built column-wise with scipy.sparse, as
  :mod:`gridshift.plan.lp` does);
* ``max z s.t. n_j(x) >= b_j z`` is first *homogenised* (``y = x / z``, ``t = 1 / z``): a dense ``z``
  column over thousands of requirement rows makes every simplex pivot slow, the homogenised form has
  none; and when ``z`` is capped by the jobs themselves, not by capacity (a makespan set by the longest
  job), the cap is checked with one fixed-``z`` LP and is the answer;
* larger LPs by *aggregation with a dual certificate*: most jobs' optimum is one simple state (one
  column at its need, one column all the time, or two columns with both time and need tight), which
  needs no rows of its own; only the jobs near a tie keep their rows, so HiGHS sees a few hundred rows
  instead of tens of thousands; every aggregated job is then checked against the model's prices and the
  failures are freed until the duals prove the optimum of the whole LP (or, failing that, the whole LP
  is solved). Measured: max-min fairness for 20,000 jobs in ~0.2 s instead of > 10 s whole
  (``benchmarks/bench_hetero_solve.py``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import highspy
import numpy as np
import scipy.sparse as sp

from gridshift.errors import PlanError
from gridshift.hetero.problem import AllocationProblem

INF = highspy.kHighsInf


# ---------------------------------------------------------------------------------------- normalisations
def pool_sites(pr: AllocationProblem) -> np.ndarray:
    return np.zeros(pr.n_pools, np.int64) if pr.pool_site is None else np.asarray(pr.pool_site, np.int64)


def has_caps(pr: AllocationProblem) -> bool:
    return pr.cap_w is not None and pr.power_w is not None and pr.pool_site is not None


def first_rows(pr: AllocationProblem) -> np.ndarray:
    """Index of each job's first row ([J])."""
    return np.unique(pr.job_of_row, return_index=True)[1]


def job_max(pr: AllocationProblem, per_row: np.ndarray) -> np.ndarray:
    """Max over each job's rows of ``per_row`` ([R] -> [J])."""
    order = np.argsort(pr.job_of_row, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(pr.job_of_row[order]) != 0])
    return np.maximum.reduceat(per_row[order], starts)


def reference_throughput(pr: AllocationProblem) -> np.ndarray:
    """``ref_j`` (steps/s) of every job: its throughput under the equal time share (module docstring)."""
    total = float(pr.count.sum())
    if pr.n_rows == 0 or total <= 0:
        return np.ones(pr.n_jobs)
    r0 = first_rows(pr)
    share = min(1.0, total / float(pr.gang[r0].sum()))
    per_row = share * (np.where(pr.throughput > 0, pr.throughput, 0.0) @ pr.count) / total
    ref = per_row[r0]
    bad = ref <= 0
    if bad.any():
        ref = np.where(bad, job_max(pr, per_row), ref)
    return np.where(ref > 0, ref, 1.0)


def column_upper(pr: AllocationProblem) -> np.ndarray:
    """[R, P] largest ``x`` each (row, pool) could have alone: pool size, site cap, 1; 0 where it cannot run."""
    with np.errstate(divide="ignore", invalid="ignore"):
        u = np.minimum(1.0, pr.count[None, :] / np.maximum(pr.gang[:, None], 1e-12))
        if has_caps(pr):
            cap = np.asarray(pr.cap_w, float)[pool_sites(pr)]
            pw = np.asarray(pr.power_w, float)
            u = np.where(pw > 0, np.minimum(u, cap[None, :] / pw), u)
    return np.where((pr.throughput > 0) & (pr.count[None, :] > 0), np.clip(u, 0.0, 1.0), 0.0)


def _busy_rate(pr: AllocationProblem) -> np.ndarray:
    """[P] the most power one accelerator of each pool draws (W), over the rows that can run there."""
    per_acc = np.where(pr.throughput > 0, np.asarray(pr.power_w, float) / np.maximum(pr.gang[:, None], 1e-12), 0.0)
    return per_acc.max(axis=0) if pr.n_rows else np.zeros(pr.n_pools)


def grid_rate(pr: AllocationProblem) -> np.ndarray:
    """[R, P] normalised, weighted carbon + price rate per unit of ``x`` (module docstring); zeros if unused."""
    g = np.zeros(pr.throughput.shape)
    if pr.power_w is None or pr.n_rows == 0:
        return g
    pw = np.asarray(pr.power_w, float)
    busy = _busy_rate(pr)
    for w, sig in ((pr.carbon_weight, pr.carbon_g_per_kwh), (pr.price_weight, pr.price_per_mwh)):
        if w and sig is not None:
            sig = np.asarray(sig, float)
            full = float(np.sum(pr.count * np.abs(sig) * busy))
            if full > 0:
                g += w * pw * sig[None, :] / full
    return g


def money_rate(pr: AllocationProblem) -> np.ndarray:
    """[R, P] rent + energy cost per unit of ``x`` over the cost of the whole cluster busy (min-cost)."""
    m = np.zeros(pr.throughput.shape)
    full = 0.0
    if pr.cost_per_acc_h is not None:
        c = np.asarray(pr.cost_per_acc_h, float)
        m += pr.gang[:, None] * c[None, :]
        full += float(np.sum(pr.count * c))
    if pr.price_per_mwh is not None and pr.power_w is not None and pr.n_rows:
        price = np.asarray(pr.price_per_mwh, float)
        m += np.asarray(pr.power_w, float) * price[None, :] / 1e6
        full += float(np.sum(pr.count * _busy_rate(pr) * np.abs(price))) / 1e6
    return m / full if full > 0 else np.zeros_like(m)


def alone_best(job: np.ndarray, value: np.ndarray, upper: np.ndarray, n_jobs: int) -> np.ndarray:
    """[J] the most ``sum value_c x_c`` a job can get alone: ``sum x_c <= 1``, ``x_c <= upper_c`` (a
    fractional knapsack: best columns first). An upper bound when columns also share rows."""
    order = np.lexsort((-value, job))
    j, v, u = job[order], value[order], upper[order]
    cum = np.cumsum(u)
    start = np.flatnonzero(np.r_[True, np.diff(j) != 0]) if j.size else np.zeros(0, np.int64)
    before = cum - u - np.repeat(cum[start] - u[start], np.diff(np.r_[start, j.size]))
    x = np.clip(1.0 - before, 0.0, u)
    return np.bincount(j, v * x, n_jobs)


class Terms:
    """Per-job normalisations and per-(row, pool) rates of one problem (shared by the LPs and evaluate)."""

    def __init__(self, pr: AllocationProblem) -> None:
        self.pr = pr
        self.J = pr.n_jobs
        self.weight = np.ones(self.J) if pr.weight is None else np.asarray(pr.weight, float)
        self.ref = reference_throughput(pr)  # [J] steps/s
        self.upper = column_upper(pr)  # [R, P]
        rr, pp = np.nonzero(self.upper > 0)
        self.best = alone_best(pr.job_of_row[rr], pr.throughput[rr, pp], self.upper[rr, pp], self.J)  # [J]
        self.eligible = self.best > 0
        self.grid = grid_rate(pr)  # [R, P]
        self.rem = None if pr.remaining_steps is None else np.asarray(pr.remaining_steps, float)
        self.elapsed = np.zeros(self.J) if pr.elapsed_s is None else np.asarray(pr.elapsed_s, float)

    def norm_thr(self, x: np.ndarray) -> np.ndarray:
        """[J] normalised throughput ``thr_j(x) / ref_j``."""
        return self.pr.job_throughput(x) / self.ref

    def grid_of(self, x: np.ndarray) -> float:
        return float(np.sum(self.grid * x))


# ------------------------------------------------------------------------------------------- the job LP
FREE, FREE_T, REQ, HI, PAIR, VAR, VAR_UP = range(7)  # job states of the aggregated solve (solve_job_lp)
FULL_LP_MAX_JOBS = 300  # up to this many jobs the LP is solved whole
SAMPLE_JOBS = 256  # jobs in the sampled LP that prices the aggregated solve (at least; and J / SAMPLE_SHARE)
SAMPLE_SHARE = 8
MAX_ROUNDS = 12
FREE_GAP = 0.005  # jobs this close (relative) to a tie between two columns at sampled prices start FREE
FREE_GAP_REPICK = 0.001  # the same at the prices of a solved model
FREE_MIN_PER_ROW = 4  # and at least this many per coupling row
VAR_BAND = 0.25  # a job's reduced cost within this (relative) of 0: the model decides how much it runs
TIME_ROW_SHARE = 0.5  # homogenised form: when time rows must be added, add them where time > this share
BIND_SHARE = 0.1  # a state's z range binds: free the jobs whose range ends within this share of z
REPICK_SHARE = 0.05  # more failed (or VAR) jobs than this share: re-pick all states at the new prices
_BIG = 1e6  # penalty per unit of elastic slack in the sampled / reduced LPs (relative to the objective scale)


class Columns:
    """The ``x`` columns of a problem (``(row, pool)`` pairs where the row can run), sorted by job, and the
    coupling rows they share: pool sizes (``sum gang * x <= count``) and capped sites (``sum power * x /
    cap <= 1``)."""

    def __init__(self, pr: AllocationProblem, t: Terms) -> None:
        rr, pp = np.nonzero(t.upper > 0)
        job = pr.job_of_row[rr]
        o = np.argsort(job, kind="stable")
        self.row, self.pool, self.job = rr[o], pp[o], job[o]
        self.gang = pr.gang[self.row]
        self.thr = pr.throughput[self.row, self.pool]
        self.norm = self.thr / t.ref[self.job]  # normalised throughput per unit of x
        self.grid = t.grid[self.row, self.pool]
        self.n = self.row.size
        ri, ci, vi = [self.pool], [np.arange(self.n)], [self.gang]
        cap = [pr.count.astype(float)]
        if has_caps(pr):
            cw = np.asarray(pr.cap_w, float)
            capped = np.flatnonzero(np.isfinite(cw) & (cw > 0))
            k = np.full(cw.size, -1)
            k[capped] = pr.n_pools + np.arange(capped.size)
            site = pool_sites(pr)[self.pool]
            sel = np.flatnonzero(k[site] >= 0)
            ri.append(k[site[sel]])
            ci.append(sel)
            vi.append(np.asarray(pr.power_w, float)[self.row[sel], self.pool[sel]] / cw[site[sel]])
            cap.append(np.ones(capped.size))
        self.cap = np.concatenate(cap)
        self.A = sp.csc_matrix((np.concatenate(vi), (np.concatenate(ri), np.concatenate(ci))),
                               shape=(self.cap.size, self.n))

    def dense(self, x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        out = np.zeros(shape)
        out[self.row, self.pool] = x
        return out


@dataclass
class JobLP:
    """An LP over per-job columns (sorted by job), solved by :func:`solve_job_lp`::

        max  e . x + f z - pen . s
        s.t. sum_{c in j} x_c <= 1                                   every job j
             sum_{c in j} n_c x_c - b_j z + s_j >= beta_j            jobs with req[j] (s_j = 0 unless pen)
             A x + a z <= cap                                        coupling rows (pools, caps, holds)
             z_lo <= z <= z_hi,  x, s >= 0

    Every policy is one of these: max-min fairness has ``b = weight``, ``f = 1``; makespan ``b = need``;
    finish-time fairness ``b = b(rho)``; a lexicographic second stage fixes ``z`` or adds a hold row.
    """

    n_jobs: int
    job: np.ndarray  # [C] sorted
    n: np.ndarray  # [C] coefficient in the job's requirement row (normalised throughput)
    e: np.ndarray  # [C] objective per unit of x
    A: sp.csc_matrix  # [K, C]
    cap: np.ndarray  # [K]
    a: np.ndarray  # [K] z's coefficients in the coupling rows
    req: np.ndarray  # bool [J]
    b: np.ndarray  # [J]
    beta: np.ndarray  # [J]
    pen: np.ndarray | None = None  # [J] penalty per unit of requirement shortfall (None = hard)
    f: float = 0.0
    z_lo: float = 0.0
    z_hi: float = 0.0
    time_z: bool = False  # time rows are sum x <= z (the homogenised form, see _homogenised)

    @classmethod
    def over(cls, cols: Columns, n_jobs: int, e: np.ndarray, **kw) -> JobLP:
        kw.setdefault("req", np.zeros(n_jobs, bool))
        kw.setdefault("b", np.zeros(n_jobs))
        kw.setdefault("beta", np.zeros(n_jobs))
        return cls(n_jobs=n_jobs, job=cols.job, n=cols.norm, e=np.asarray(e, float), A=cols.A, cap=cols.cap,
                   a=np.zeros(cols.cap.size), **kw)

    def hold(self, coef_x: np.ndarray, coef_z: float, lower: float) -> JobLP:
        """A copy with the extra row ``coef_x . x + coef_z z >= lower``."""
        row = sp.csc_matrix(-np.asarray(coef_x, float)[None, :])
        return replace(self, A=sp.vstack([self.A, row], format="csc"), cap=np.r_[self.cap, -lower],
                       a=np.r_[self.a, -coef_z])

    def value(self, x: np.ndarray, z: float) -> float:
        v = float(self.e @ x) + self.f * z
        if self.pen is not None:
            v -= float(self.pen[self.req] @ self.shortfall(x, z)[self.req])
        return v

    def shortfall(self, x: np.ndarray, z: float) -> np.ndarray:
        got = np.bincount(self.job, weights=self.n * x, minlength=self.n_jobs)
        return np.where(self.req, np.maximum(self.beta + self.b * z - got, 0.0), 0.0)


@dataclass
class JobSol:
    x: np.ndarray  # [C]
    z: float
    lam: np.ndarray  # [K] coupling-row prices (d objective / d cap)
    value: float
    status: str  # "optimal" or "time-limit"
    free_jobs: int  # jobs solved with all their columns and rows (the rest were aggregated)
    over: float = 0.0  # coupling-row slack used (> 0: the LP is infeasible as posed)
    hz: float | None = None  # z of the homogenised LP it was solved as (t = 1 / z)


def solve_job_lp(lp: JobLP, *, deadline: float, warm: JobSol | None = None, warm_prices: bool = False,
                 whole: bool = False) -> JobSol:
    """Exact optimum of ``lp``.

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
    J = lp.n_jobs
    if not whole:
        sol = _at_z_bound(lp, deadline)
        if sol is not None:
            return sol
    hom = _homogenised(lp)
    if hom is not None:  # (solutions carry t = 1 / z as hz, for warm starts of the next homogenised LP)
        hw = None if warm is None else replace(warm, z=warm.hz if warm.hz is not None else 1.0 / max(warm.z, 1e-300))
        sol = solve_job_lp(hom, deadline=deadline, warm=hw, warm_prices=warm_prices, whole=whole)
        z = 1.0 / sol.z
        return replace(sol, x=sol.x * z, z=z, value=lp.value(sol.x * z, z), hz=sol.z)
    if whole or J <= FULL_LP_MAX_JOBS:
        return _whole(lp, deadline)
    lam0 = z0 = None  # prices the states were picked at
    if warm is not None and warm_prices and warm.lam.size == lp.cap.size:
        lam0, z0 = warm.lam, warm.z
        st = _best_states(lp, lam0, z0, FREE_GAP, band=np.inf)
    elif warm is not None and warm.x.size == lp.job.size:
        st = _states_of(lp, warm.x)
    else:
        lam0, z0 = _prices(lp, deadline)
        st = _best_states(lp, lam0, z0, FREE_GAP, band=np.inf)
    gap, repicked = FREE_GAP, False
    for _ in range(MAX_ROUNDS):
        sol, bad, timed, sane = _solve_reduced(lp, st, deadline)
        if sol is None:
            if not bad.size:
                break
            st.kind[bad] = FREE  # states that allow no z at all
            continue
        st.kind[timed] = FREE_T
        if not bad.size and not timed.size:
            return sol
        keep = st.kind <= FREE_T
        if bad.size > REPICK_SHARE * J or np.count_nonzero(st.kind >= VAR) > REPICK_SHARE * J:
            lost = lam0 is not None and bool(np.any((sol.lam <= 1e-9 * max(float(sol.lam.max()), 1e-300))
                                                    & (lam0 > 1e-3 * max(float(lam0.max()), 0.0))))
            tied = lp.time_z or bool(_tied(lp).any())  # (there, a model with few FREE jobs misprices rows)
            if sane and not lost and not repicked and not tied:  # re-pick the states at the model's prices
                if lam0 is None:  # warm states: keep their columns (they fit), only re-band them
                    new = _rebanded(lp, st, sol.lam)
                    new.kind[bad] = FREE
                else:
                    new = _best_states(lp, sol.lam, sol.z, FREE_GAP_REPICK, band=VAR_BAND)
                    new.kind[keep] = st.kind[keep]
                st, lam0, z0, repicked = new, sol.lam, sol.z, True
                continue
            if lam0 is not None and (not sane or lost or tied) and gap < 0.3:  # too few free jobs to price
                gap *= 3  # every row: free more of those near a tie (the failures are artefacts of that)
                new = _best_states(lp, lam0, z0, gap, band=np.inf)
                new.kind[keep] = st.kind[keep]
                st = new
                continue
        if np.count_nonzero(keep) + bad.size > J // 2:
            break
        st.kind[bad] = np.where(st.kind[bad] == FREE_T, FREE_T, FREE)
    return _whole(lp, deadline)


class _States:
    """Per job: state (FREE, FREE_T, REQ, HI, VAR, VAR_UP, PAIR) and its column(s) (-1 = none)."""

    def __init__(self, J: int) -> None:
        self.kind = np.full(J, FREE)
        self.col = np.full(J, -1)
        self.col2 = np.full(J, -1)


def _whole(lp: JobLP, deadline: float) -> JobSol:
    """The LP with every job FREE (in the homogenised form, time rows added as they bind)."""
    st = _States(lp.n_jobs)
    for _ in range(MAX_ROUNDS):
        sol, _, timed, _ = _solve_reduced(lp, st, deadline)
        if sol is None:
            raise PlanError("allocation LP not solved (infeasible, or no solution within the time limit)")
        if not timed.size:
            return sol
        st.kind[timed] = FREE_T
    st.kind[:] = FREE_T
    return _solve_reduced(lp, st, deadline)[0]


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
    if lp.n_jobs <= FULL_LP_MAX_JOBS or not _pure_max_z(lp):
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
    At = abs(A).multiply(t[None, :]).tocsc()  # use of each row by each column at its need
    for _ in range(40):
        cost = np.where(t <= 1 + 1e-12, At.T @ lam, np.inf)
        pick = _segments(lp.job, -cost)[0]
        pick = pick[lp.req[lp.job[pick]] & np.isfinite(cost[pick])]
        load = At[:, pick] @ np.ones(pick.size)
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


def _homogenised(lp: JobLP) -> JobLP | None:
    """``max z s.t. n_j(x) >= b_j z`` (no other objective, no constant needs) in the variables ``y = x / z``
    and ``t = 1 / z``: ``min t s.t. n_j(y) >= b_j, sum y_j <= t, A y <= cap t``. Its requirements are
    constants, so ``t`` is no dense column: it sits in the coupling rows and in the time rows, which are
    added only for the jobs whose time binds. ``None`` if ``lp`` is not of that form."""
    if not _pure_max_z(lp):
        return None
    return replace(lp, cap=np.zeros_like(lp.cap), a=-lp.cap, b=np.zeros(lp.n_jobs),
                   beta=np.where(lp.req, lp.b, 0.0), f=-1.0, z_lo=0.0, z_hi=INF, time_z=True)


def _tied(lp: JobLP) -> np.ndarray:
    """Jobs whose need moves with ``z``."""
    return lp.req & (lp.b > 0) & (lp.z_hi > lp.z_lo)


def _time(lp: JobLP) -> tuple[float, float]:
    """A job's time budget is ``T0 + T1 z``: 1, or ``z`` in the homogenised form."""
    return (0.0, 1.0) if lp.time_z else (1.0, 0.0)


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
    pick = np.sort(order[np.unique(np.linspace(0, J - 1, max(SAMPLE_JOBS, J // SAMPLE_SHARE)).round().astype(np.int64))])
    k = J / pick.size
    newid = np.full(J, -1)
    newid[pick] = np.arange(pick.size)
    sel = np.flatnonzero(newid[lp.job] >= 0)
    ease = np.where(_tied(lp)[pick], 1.0, 0.98)
    sub = JobLP(n_jobs=pick.size, job=newid[lp.job[sel]], n=lp.n[sel], e=lp.e[sel] * k, A=lp.A[:, sel] * k,
                cap=lp.cap, a=lp.a, req=lp.req[pick], b=lp.b[pick] * ease, beta=lp.beta[pick] * ease,
                pen=None if lp.pen is None else lp.pen[pick] * k, f=lp.f, z_lo=lp.z_lo, z_hi=lp.z_hi,
                time_z=lp.time_z)
    try:
        sol = solve_job_lp(sub, deadline=deadline)  # aggregated in turn when the sample is large
    except PlanError:
        return np.zeros(lp.cap.size), lp.z_lo
    return sol.lam, sol.z


def _segments(job: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best, second best) index per job segment by ``key`` (descending); second = -1 if none."""
    order = np.lexsort((-key, job))
    pos = np.flatnonzero(np.r_[True, np.diff(job[order]) != 0])
    nxt = np.minimum(pos + 1, order.size - 1)
    has2 = (pos + 1 < order.size) & (job[order[nxt]] == job[order[pos]])
    return order[pos], np.where(has2, order[nxt], -1)


def _best_states(lp: JobLP, lam: np.ndarray, z: float, free_gap: float, band: float) -> _States:
    """Each job's best option at prices ``lam`` and ``z``: one column (REQ at its need, HI all the time,
    or VAR within ``band`` (relative) of a zero reduced cost: the model picks its level; sampled prices
    are not trusted for that, ``band = inf``) or a PAIR of its fastest column and another. Jobs with no option, and the jobs closest to a tie between their two best options (relative
    gap below ``free_gap``, and at least ``FREE_MIN_PER_ROW`` per coupling row), are FREE: the optimum
    splits a few jobs between options, and those set the prices."""
    J, C = lp.n_jobs, lp.job.size
    st = _States(J)
    if not C:
        return st
    z = lp.z_lo if lp.z_hi <= lp.z_lo else float(np.clip(z, lp.z_lo, lp.z_hi))
    t0, t1 = _time(lp)
    T = t0 + t1 * z
    jc = lp.job
    need = np.where(lp.req, lp.beta + lp.b * z, 0.0)[jc]
    # a tiny price on every row's capacity breaks ties where prices are 0 (capacity to spare): jobs then
    # spread over the rows in proportion to their size instead of all being "near a tie"
    size_k = np.maximum(np.abs(lp.a) if lp.time_z else np.abs(lp.cap), 1e-12)
    lam = lam + 1e-6 * max(1.0, float(np.max(lam * size_k))) / size_k
    price = lp.A.T @ lam
    profit = lp.e - price  # per unit of x
    mag = np.abs(lp.e) + np.abs(price)  # what a price error moves, per unit of x
    only_need = (_tied(lp) | lp.time_z)[jc] | (profit < 0)
    ratio = need / lp.n  # time at need
    fits = ratio <= T * (1 - 1e-9)
    v1 = np.where(fits, np.where(only_need, profit * ratio, profit * T), -np.inf)
    s1 = mag * np.where(only_need, ratio, T)
    fast = _segments(jc, lp.n)[0]
    fast_of = np.full(J, -1)
    fast_of[jc[fast]] = fast
    f = fast_of[jc]
    with np.errstate(divide="ignore", invalid="ignore"):
        target = need / T  # the speed a job too slow for its need on one column must average
    ok2 = lp.req[jc] & (lp.n < target) & (lp.n[f] > target)
    xf = np.where(ok2, (need - lp.n * T) / np.where(ok2, lp.n[f] - lp.n, 1.0), 0.0)
    xc = T - xf
    v2 = np.where(ok2, profit[f] * xf + profit * xc, -np.inf)
    s2 = mag[f] * xf + mag * xc
    val, size, ojob = np.r_[v1, v2], np.r_[s1, s2], np.r_[jc, jc]
    best, second = _segments(ojob, val)
    jobs = ojob[best]
    vb = val[best]
    vs = np.where(second >= 0, val[second], -np.inf)
    idle = ~lp.req[jobs] & (vb <= 0)  # runs nowhere at these prices, whichever column it keeps
    with np.errstate(invalid="ignore"):  # gap relative to the value's size: how wrong prices must be to flip
        gap = np.where(np.isfinite(vs) & ~idle, (vb - vs) / (size[best] + size[np.maximum(second, 0)] + 1e-300),
                       np.inf)
    ok = np.isfinite(vb)
    single = ok & (best < C)
    c = best[single]
    rel = profit[c] / (mag[c] + 1e-300)
    st.col[jobs[single]] = c
    st.kind[jobs[single]] = np.where((_tied(lp) | lp.time_z)[jobs[single]] | (rel < -band), REQ,
                                     np.where(rel > band, HI, np.where(rel > 0, VAR_UP, VAR)))
    pair = ok & (best >= C)
    st.col[jobs[pair]], st.col2[jobs[pair]] = f[best[pair] - C], best[pair] - C
    st.kind[jobs[pair]] = PAIR  # (homogenised, time_z: every single state is REQ, nothing runs beyond its need)
    m = min(jobs.size, FREE_MIN_PER_ROW * lp.cap.size + 8)
    st.kind[jobs[np.argpartition(gap, m - 1)[:m]]] = FREE
    st.kind[jobs[gap < free_gap]] = FREE
    return st


def _rebanded(lp: JobLP, st: _States, lam: np.ndarray) -> _States:
    """``st`` with its one-column states re-banded at prices ``lam`` (REQ / VAR / HI, see _best_states)."""
    new = _States(lp.n_jobs)
    new.kind, new.col, new.col2 = st.kind.copy(), st.col.copy(), st.col2.copy()
    j = np.flatnonzero(((st.kind == REQ) | (st.kind == HI) | (st.kind >= VAR)) & ~_tied(lp))
    if lp.time_z or not j.size:
        return new
    c = st.col[j]
    price = lp.A[:, c].T @ lam
    rel = (lp.e[c] - price) / (np.abs(lp.e[c]) + np.abs(price) + 1e-300)
    new.kind[j] = np.where(rel < -VAR_BAND, REQ, np.where(rel > VAR_BAND, HI, np.where(rel > 0, VAR_UP, VAR)))
    return new


def _states_of(lp: JobLP, x: np.ndarray) -> _States:
    """States from a solution ``x`` of a related LP: a job on one column keeps it (REQ if its need moves
    with ``z``, else VAR), a job on two columns all the time is a PAIR, an idle job without requirement
    is VAR on its best column, others are FREE."""
    J = lp.n_jobs
    st = _States(J)
    if not lp.job.size:
        return st
    on = x > 1e-12
    cnt = np.bincount(lp.job, on, J)
    first, second = _segments(lp.job, np.where(on, 2.0 + x, np.tanh(lp.e)))  # used columns, else the best e
    jobs = lp.job[first]
    one = (cnt[jobs] == 1) | ((cnt[jobs] == 0) & ~lp.req[jobs])
    st.col[jobs[one]] = first[one]
    st.kind[jobs[one]] = np.where((_tied(lp) | lp.time_z)[jobs[one]], REQ,
                                  np.where(x[first[one]] >= 1 - 1e-9, VAR_UP, VAR))
    busy = np.bincount(lp.job, x, J) >= 1 - 1e-6  # (x in the original scale: time budget 1)
    two = (cnt[jobs] == 2) & lp.req[jobs] & busy[jobs]
    st.col[jobs[two]], st.col2[jobs[two]] = first[two], second[two]
    st.kind[jobs[two]] = PAIR
    return st


def _aggregated(lp: JobLP, st: _States):
    """Columns of the aggregated jobs and ``x = k0 + k1 z`` on them, and the range of ``z`` each state
    needs (``alpha + gamma z >= 0``): (jobs, cols, k0, k1), (job, alpha, gamma) of the conditions."""
    t0, t1 = _time(lp)
    b, beta = np.where(lp.req, lp.b, 0.0), np.where(lp.req, lp.beta, 0.0)
    r = np.flatnonzero(st.kind == REQ)  # x = need / n: time must hold
    cr = st.col[r]
    k0r, k1r = beta[r] / lp.n[cr], b[r] / lp.n[cr]
    h = np.flatnonzero(st.kind == HI)  # x = T: need must hold
    ch = st.col[h]
    p = np.flatnonzero(st.kind == PAIR)  # time and need tight on two columns: both x >= 0
    c1, c2 = st.col[p], st.col2[p]
    d = lp.n[c2] - lp.n[c1]
    k02, k12 = (beta[p] - lp.n[c1] * t0) / d, (b[p] - lp.n[c1] * t1) / d
    k01, k11 = t0 - k02, t1 - k12
    cols = (np.r_[r, h, p, p], np.r_[cr, ch, c1, c2], np.r_[k0r, np.full(h.size, t0), k01, k02],
            np.r_[k1r, np.full(h.size, t1), k11, k12])
    conds = (np.r_[r, h, p, p], np.r_[t0 - k0r, lp.n[ch] * t0 - beta[h], k01, k02],
             np.r_[t1 - k1r, lp.n[ch] * t1 - b[h], k11, k12])
    return cols, conds


def _solve_reduced(lp: JobLP, st: _States, deadline: float):
    """Solve with the non-FREE jobs aggregated. Returns (solution or None, aggregated jobs that fail the
    optimality check, jobs whose time row must be added (homogenised form), whether the prices are sane:
    no coupling row needed its slack)."""
    J, K = lp.n_jobs, lp.cap.size
    none = np.zeros(0, np.int64)
    kind = st.kind
    t0, t1 = _time(lp)
    free = kind <= FREE_T
    fc = np.flatnonzero(free[lp.job])  # columns of FREE jobs
    jf = np.unique(lp.job[fc])
    fj = jf[lp.req[jf]]
    tf = jf[kind[jf] == FREE_T] if lp.time_z else jf  # jobs with a time row
    vj = np.flatnonzero((kind == VAR) | (kind == VAR_UP))
    vc = st.col[vj]
    (aj, ac, k0, k1), (cj, alpha, gamma) = _aggregated(lp, st)
    with np.errstate(divide="ignore", invalid="ignore"):
        bound = -alpha / gamma
    up, dn = gamma < -1e-15, gamma > 1e-15
    z_hi = min(lp.z_hi, float(bound[up].min())) if up.any() else lp.z_hi
    z_lo = max(lp.z_lo, float(bound[dn].max())) if dn.any() else lp.z_lo
    broken = np.flatnonzero(~up & ~dn & (alpha < -1e-9 * (1 + np.abs(alpha))))
    if broken.size or z_hi < z_lo - 1e-12 * (1 + abs(z_lo)):  # states that allow no z: free them
        return None, np.unique(np.r_[cj[broken], cj[up & (bound < z_lo)], cj[dn & (bound > z_hi)]]), none, False
    v_lo = np.where(lp.req[vj], lp.beta[vj] + lp.b[vj] * lp.z_lo, 0.0) / lp.n[vc]
    soft = lp.pen is not None
    nf, nv, nq = fc.size, vc.size, (fj.size if soft else 0)
    iz = nf + nv
    scale = 1.0 + (float(np.max(np.abs(lp.e))) if lp.e.size else 0.0) + abs(lp.f)
    cost = np.concatenate([lp.e[fc], lp.e[vc], [lp.f + float(lp.e[ac] @ k1)], -lp.pen[fj] if soft else [],
                           np.full(K, -_BIG * scale)])
    lo = np.concatenate([np.zeros(nf), v_lo, [z_lo], np.zeros(nq + K)])
    hi = np.concatenate([np.full(nf, INF), np.ones(nv), [z_hi], np.full(nq + K, INF)])
    time_row = np.full(J, -1)
    time_row[tf] = np.arange(tf.size)
    req_row = np.full(J, -1)
    req_row[fj] = tf.size + np.arange(fj.size)
    r0 = tf.size + fj.size  # first coupling row
    Af = lp.A[:, np.r_[fc, vc]].tocoo()
    Aa = lp.A[:, ac]
    ri = [time_row[lp.job[fc]], req_row[lp.job[fc]], req_row[fj], r0 + Af.row, r0 + np.arange(K),
          r0 + np.arange(K), req_row[fj[:nq]], np.arange(tf.size)]
    ci = [np.arange(nf), np.arange(nf), np.full(fj.size, iz), Af.col, np.full(K, iz), iz + 1 + nq + np.arange(K),
          iz + 1 + np.arange(nq), np.full(tf.size, iz)]
    vi = [np.ones(nf), lp.n[fc], -lp.b[fj], Af.data, lp.a + Aa @ k1, -np.ones(K), np.ones(nq),
          np.full(tf.size, -t1)]
    ri, ci, vi = np.concatenate(ri), np.concatenate(ci), np.concatenate(vi)
    keep = (ri >= 0) & (vi != 0)
    rlo = np.concatenate([np.full(tf.size, -INF), lp.beta[fj], np.full(K, -INF)])
    rhi = np.concatenate([np.full(tf.size, t0), np.full(fj.size, INF), lp.cap - Aa @ k0])
    aggregated = bool(aj.size or vj.size)
    v, row_dual, status = _highs(cost, lo, hi, rlo, rhi, ri[keep], ci[keep], vi[keep], deadline,
                                 presolve=not aggregated,
                                 primal=aggregated and 2 * np.count_nonzero(kind == VAR_UP) < vj.size)
    if v is None:
        return None, none, none, False
    z = float(v[iz])
    x = np.zeros(lp.job.size)
    x[fc], x[vc], x[ac] = v[:nf], v[nf:iz], k0 + k1 * z
    x = np.clip(x, 0.0, None)
    lam = row_dual[r0:]
    sol = JobSol(x=x, z=z, lam=lam, value=lp.value(x, z), status=status, free_jobs=jf.size,
                 over=float(np.sum(v[iz + 1 + nq:])))
    timed = none
    if lp.time_z:  # time rows left out: add those that are broken, and those close to it
        # (a FREE job may get more than it needs where capacity is spare, at no cost; trimming it to its
        # need changes neither the objective nor the prices, and leaves only real time limits broken)
        got = np.bincount(lp.job, lp.n * x, J)
        trim = np.where(free & lp.req & (got > lp.beta), lp.beta / np.where(got > 0, got, 1.0), 1.0)
        x *= trim[lp.job]
        used = np.bincount(lp.job, x, J)
        if np.any(free & (kind != FREE_T) & (used > z * (1 + 1e-9) + 1e-12)):
            timed = np.flatnonzero(free & (kind != FREE_T) & (used > TIME_ROW_SHARE * z))
    if not aggregated:
        return sol, none, timed, True
    tol = 1e-9 * (1 + abs(z))
    binding = none  # a state's z range binds: free it, and those whose range ends close to z
    if z >= z_hi - tol and z_hi < lp.z_hi:
        binding = cj[up & (bound <= z + BIND_SHARE * abs(z) + tol)]
    if z <= z_lo + tol and z_lo > lp.z_lo:
        near = cj[dn & (bound >= z - BIND_SHARE * abs(z) - tol)]
        if lp.time_z:  # homogenised: the binding bound is a job's time (x <= z): it needs its time row
            timed = np.union1d(timed, near)
        binding = np.union1d(binding, near)
    over = np.flatnonzero(v[iz + 1 + nq:] > 1e-9 * (1 + np.abs(lp.cap)))
    if binding.size:  # z sits where a state's range ends: its prices say nothing about the other states
        if over.size:  # and the capped z cannot fit the rest: free every state that caps z
            binding = np.union1d(binding, cj[up])
        return sol, np.setdiff1d(binding, timed), timed, not over.size
    if over.size:  # a coupling row over-full: the states' fixed minimums on it are wrong
        on = np.asarray(abs(lp.A[over]).sum(axis=0)).ravel() > 0
        return sol, np.unique(np.r_[aj[on[ac] & (x[ac] > 0)], vj[on[vc] & (v_lo > 0)]]), timed, False
    bad = _check_states(lp, st, lam, x)
    return sol, np.setdiff1d(bad, timed), timed, True


def _check_states(lp: JobLP, st: _States, lam: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Aggregated jobs whose state is not optimal at prices ``lam`` (see :func:`solve_job_lp`): row duals
    ``mu`` (requirement) and ``nu`` (time) from the state, then reduced costs of all the job's columns."""
    J = lp.n_jobs
    profit = lp.e - lp.A.T @ lam
    mu, nu = np.zeros(J), np.zeros(J)
    k = st.kind
    r = np.flatnonzero(k == REQ)  # requirement tight, time slack
    mu[r] = np.where(lp.req[r], -profit[st.col[r]] / lp.n[st.col[r]], 0.0)
    h = np.flatnonzero(k == HI)  # time tight, requirement slack
    nu[h] = profit[st.col[h]]
    p = np.flatnonzero(k == PAIR)  # both tight: both columns' reduced costs 0
    c1, c2 = st.col[p], st.col2[p]
    mu[p] = (profit[c1] - profit[c2]) / (lp.n[c2] - lp.n[c1])
    nu[p] = profit[c1] + mu[p] * lp.n[c1]
    v = np.flatnonzero((k == VAR) | (k == VAR_UP))  # the column's reduced cost: > 0 at 1, < 0 at its need
    d = profit[st.col[v]]
    nu[v] = np.maximum(d, 0.0)
    mu[v] = np.where(lp.req[v] & (d < 0), -d / lp.n[st.col[v]], 0.0)
    agg = k > FREE_T
    scale = np.abs(lp.e) + np.abs(lp.A).T @ np.abs(lam) + np.abs(mu[lp.job] * lp.n) + np.abs(nu[lp.job])
    rcost = profit + mu[lp.job] * lp.n - nu[lp.job]
    bad = np.zeros(J, bool)
    bad[lp.job[agg[lp.job] & (rcost > 1e-9 + 1e-7 * scale)]] = True
    bad |= agg & ((mu < -1e-9 - 1e-7 * np.abs(mu)) | (nu < -1e-9 - 1e-7 * np.abs(nu)))
    if lp.pen is not None:
        bad |= agg & lp.req & (mu > lp.pen * (1 + 1e-7) + 1e-9)
    return np.flatnonzero(bad)


def _highs(cost, lo, hi, rlo, rhi, ri, ci, vi, deadline, presolve=True, primal=False):
    """Maximise on HiGHS; returns (column values, row duals, status) or (None, None, None) if unsolved.
    Aggregated models (thousands of bounded columns in a few rows) run without presolve, which takes
    seconds on them; with the primal simplex when most VAR columns should end at their lower bound (the
    start is then near the optimum: 10x faster than the dual simplex, which is 10x faster otherwise)."""
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = cost.size, rlo.size
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = cost, lo, hi
    lp.row_lower_, lp.row_upper_ = rlo, rhi
    a = sp.csc_matrix((vi, (ri, ci)), shape=(rlo.size, cost.size))
    a.sum_duplicates()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = a.indptr, a.indices, a.data
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
    if not presolve:
        h.setOptionValue("presolve", "off")
    if primal:
        h.setOptionValue("simplex_strategy", 4)
    h.passModel(lp)
    h.run()
    st = h.getModelStatus()
    status = "optimal"
    if st != highspy.HighsModelStatus.kOptimal:
        if st == highspy.HighsModelStatus.kTimeLimit and h.getInfo().primal_solution_status == 2:
            status = "time-limit"
        else:
            return None, None, None
    s = h.getSolution()
    return np.asarray(s.col_value), np.asarray(s.row_dual), status


# ------------------------------------------------------------------------------- agnostic view and repair
def agnostic_view(pr: AllocationProblem) -> tuple[AllocationProblem, callable]:
    """The problem as a heterogeneity-agnostic scheduler sees it, and the map back to real pools.

    Each site's pools become one pool (counts summed). Every row has one throughput everywhere: its
    count-weighted mean over the pools it can run on (type-independent; gang scaling kept); a row can use a
    site if it can run on any pool there. Power, carbon, price and rent become the count-weighted means
    over the pools the row can use (so the split below draws exactly the power the aggregate LP saw).
    The split gives a row's site fraction to that site's pools in proportion to their counts, over the
    pools where the row can run; :func:`repair` then scales down any pool this over-fills (possible only
    when rows cannot run on every pool of a site).
    """
    site = pool_sites(pr)
    n_sites = int(site.max()) + 1 if site.size else 0
    onehot = np.zeros((pr.n_pools, n_sites))
    onehot[np.arange(pr.n_pools), site] = 1.0
    can = (pr.throughput > 0) & (pr.count[None, :] > 0)
    cw = can * pr.count[None, :]  # [R, P] count where the row can run
    site_cnt = cw @ onehot  # [R, S]
    tot = cw.sum(axis=1)
    mean_thr = np.where(tot > 0, (np.where(can, pr.throughput, 0.0) * cw).sum(axis=1) / np.maximum(tot, 1e-300), 0.0)
    thr = np.where(site_cnt > 0, mean_thr[:, None], 0.0)
    safe = np.maximum(site_cnt, 1e-300)

    def site_mean_rp(a):  # [R, P] -> [R, S] count-weighted over the row's pools at each site
        return None if a is None else np.where(site_cnt > 0, (np.asarray(a, float) * cw) @ onehot / safe, 0.0)

    site_count = pr.count @ onehot

    def site_mean_p(a):  # [P] -> [S] count-weighted over the site's pools
        if a is None:
            return None
        return (np.asarray(a, float) * pr.count) @ onehot / np.maximum(site_count, 1e-300)

    agg = AllocationProblem(
        throughput=thr, gang=pr.gang, job_of_row=pr.job_of_row, count=site_count, weight=pr.weight,
        remaining_steps=pr.remaining_steps, elapsed_s=pr.elapsed_s, deadline_s=pr.deadline_s,
        pool_site=np.arange(n_sites) if pr.pool_site is not None else None, cap_w=pr.cap_w,
        power_w=site_mean_rp(pr.power_w), carbon_g_per_kwh=site_mean_p(pr.carbon_g_per_kwh),
        price_per_mwh=site_mean_p(pr.price_per_mwh), cost_per_acc_h=site_mean_p(pr.cost_per_acc_h),
        carbon_weight=pr.carbon_weight, price_weight=pr.price_weight, extra=dict(pr.extra))

    def split(x_site: np.ndarray) -> np.ndarray:
        return x_site[:, site] * cw / safe[:, site]

    return agg, split


def repair(pr: AllocationProblem, x: np.ndarray) -> np.ndarray:
    """Clip solver noise and scale down whatever still breaks a base constraint (each step only lowers x,
    so earlier constraints stay met): time where a row cannot run, job time, pool size, site power."""
    x = np.where(pr.throughput > 0, np.clip(x, 0.0, None), 0.0)
    x[x < 1e-12] = 0.0
    if x.size == 0:
        return x
    per_job = np.bincount(pr.job_of_row, weights=x.sum(axis=1), minlength=pr.n_jobs)
    x *= np.minimum(1.0, 1.0 / np.maximum(per_job, 1e-300))[pr.job_of_row][:, None]
    used = pr.gang @ x
    x *= np.where(used > pr.count, pr.count / np.maximum(used, 1e-300), 1.0)[None, :]
    if has_caps(pr):
        site = pool_sites(pr)
        cap = np.asarray(pr.cap_w, float)
        site_w = np.bincount(site, weights=(np.asarray(pr.power_w, float) * x).sum(axis=0), minlength=cap.size)
        x *= np.where(site_w > cap, cap / np.maximum(site_w, 1e-300), 1.0)[site][None, :]
    return x
