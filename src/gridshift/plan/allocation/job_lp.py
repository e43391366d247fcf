"""The LP every allocation policy is: per-job columns with the base constraints (:class:`JobLP`), its
columns and coupling rows (:class:`Columns`), its solution (:class:`JobSol`), the solver settings, and the
call to HiGHS.


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

The solver settings below are module attributes read at call time (tests lower them to exercise the
aggregated solve on small problems). :func:`~gridshift.plan.allocation.solve.solve_job_lp` solves a
:class:`JobLP`; :mod:`gridshift.plan.allocation.aggregate` holds the aggregation and its dual certificate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import highspy
import numpy as np
import scipy.sparse as sp

from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.terms import Terms, has_caps, pool_sites

INF = highspy.kHighsInf

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
WHOLE_SHARE = 0.5  # aggregated jobs still failing with more than this share of jobs free: solve the LP whole
SLACK_PENALTY = 1e6  # penalty per unit of elastic slack in the sampled / reduced LPs (relative to the objective scale)


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
    basis: object | None = None  # HiGHS's optimal basis when solved whole (every job FREE_T), else None

def tied_jobs(lp: JobLP) -> np.ndarray:
    """Jobs whose need moves with ``z``."""
    return lp.req & (lp.b > 0) & (lp.z_hi > lp.z_lo)


def time_budget(lp: JobLP) -> tuple[float, float]:
    """A job's time budget is ``T0 + T1 z``: 1, or ``z`` in the homogenised form."""
    return (0.0, 1.0) if lp.time_z else (1.0, 0.0)

def highs_max(cost, lo, hi, rlo, rhi, ri, ci, vi, deadline, presolve=True, primal=False, ipm=False, basis=None):
    """Maximise on HiGHS; returns (column values, row duals, status, basis) or (None, None, None, None) if
    unsolved.
    Aggregated models (thousands of bounded columns in a few rows) run without presolve, which takes
    seconds on them; with the primal simplex when most VAR columns should end at their lower bound (the
    start is then near the optimum: 10x faster than the dual simplex, which is 10x faster otherwise). With
    ``ipm``, HiGHS's interior point method (and crossover): a large whole LP in one solve, 3-10x faster
    than the simplex on the allocation LPs with thousands of jobs whose time rows bind. With ``basis`` (the
    optimal basis of an LP of the same shape, e.g. the previous step of a parametric solve whose
    right-hand sides moved) the dual simplex starts from it: a few pivots instead of a cold solve."""
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
    if basis is not None and (len(basis.col_status) != cost.size or len(basis.row_status) != rlo.size):
        basis = None  # another shape: start cold
    if ipm and basis is None:  # (with crossover: a basic optimum and its duals, as the simplex gives)
        h.setOptionValue("solver", "ipm")
    h.passModel(lp)
    if basis is not None:
        h.setBasis(basis)
    h.run()
    st = h.getModelStatus()
    status = "optimal"
    if st != highspy.HighsModelStatus.kOptimal:
        if st == highspy.HighsModelStatus.kTimeLimit and (h.getInfo().primal_solution_status
                                                             == highspy.SolutionStatus.kSolutionStatusFeasible):
            status = "time-limit"
        else:
            return None, None, None, None
    s = h.getSolution()
    return np.asarray(s.col_value), np.asarray(s.row_dual), status, h.getBasis()
