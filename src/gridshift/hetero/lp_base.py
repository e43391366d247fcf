"""Shared machinery of the heterogeneity policies: normalisations, the base constraints on HiGHS, the
heterogeneity-agnostic view of a problem, and the final feasibility repair.

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


class Terms:
    """Per-job normalisations and per-(row, pool) rates of one problem (shared by the LPs and evaluate)."""

    def __init__(self, pr: AllocationProblem) -> None:
        self.pr = pr
        self.J = pr.n_jobs
        self.weight = np.ones(self.J) if pr.weight is None else np.asarray(pr.weight, float)
        self.ref = reference_throughput(pr)  # [J] steps/s
        self.upper = column_upper(pr)  # [R, P]
        self.best = job_max(pr, (pr.throughput * self.upper).max(axis=1)) if pr.n_rows else np.zeros(0)  # [J]
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
FREE, REQ, HI, VAR = 0, 1, 2, 3  # job states of the aggregated solve (see solve_job_lp)
FULL_LP_MAX_JOBS = 300  # up to this many jobs the LP is solved whole
SAMPLE_JOBS = 256  # jobs in the sampled LP that prices the aggregated solve
MAX_ROUNDS = 12
FREE_GAP = 0.01  # jobs this close (relative) to a tie between two columns at sampled prices start FREE
FREE_GAP_REPICK = 0.001  # the same at the prices of a solved model
FREE_MIN_PER_ROW = 4  # and at least this many per coupling row
VAR_BAND = 0.02  # a job's reduced cost within this (relative) of 0: the model decides how much it runs
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


def solve_job_lp(lp: JobLP, *, deadline: float, warm: JobSol | None = None, whole: bool = False) -> JobSol:
    """Exact optimum of ``lp``.

    Small LPs (``<= FULL_LP_MAX_JOBS`` jobs, or ``whole``) go to HiGHS whole. Larger ones are solved by
    *aggregation*: a job whose optimum uses a single column needs no rows of its own. States:

    * ``REQ``: requirement just met, ``x_c = (beta + b z) / n_c`` (0 without a requirement): a constant,
      or affine in ``z`` when ``z`` is free and ``b > 0`` (its use of the coupling rows folds into
      ``z``'s column);
    * ``HI``: ``x_c = 1``; ``VAR``: one column with bounds ``[need / n_c, 1]`` (``need`` constant), the
      LP picks where (both only when the job's need does not move with ``z``);
    * ``FREE``: all the job's columns, its time row and requirement row.

    Only FREE and VAR jobs enter the HiGHS model, which stays small. States come from prices (an LP
    over a sample of the jobs, each standing for ``J / sample`` of them), or from ``warm``, a solution of
    a related LP (same columns); jobs near a tie between two columns start FREE. After each solve every
    aggregated job is checked against the model's prices: its state gives its row duals, all its columns
    must have non-positive reduced cost, the duals the right signs, the ``z`` bounds a REQ state implies
    must not bind and no coupling row may need its (expensive) slack. Jobs that fail are freed and the
    model re-solved (once, if many fail, all states are re-picked at the new prices instead). When none
    fails, the duals prove the solution optimal for the whole LP (the tests compare with solving it
    whole). After ``MAX_ROUNDS``, or with half the jobs free, the whole LP is solved.
    """
    J = lp.n_jobs
    if whole or J <= FULL_LP_MAX_JOBS:
        return _whole(lp, deadline)
    if warm is not None and warm.x.size == lp.job.size:
        kind, col = _states_of(lp, warm.x)
    else:
        kind, col = _best_states(lp, *_prices(lp, deadline), FREE_GAP)
    repicked = False
    for _ in range(MAX_ROUNDS):
        sol, bad, sane = _solve_reduced(lp, kind, col, deadline)
        if sol is None:
            break
        if not bad.size:
            return sol
        if not repicked and sane and (bad.size > REPICK_SHARE * J or np.count_nonzero(kind == VAR) > REPICK_SHARE * J):
            free = kind == FREE
            kind, col = _best_states(lp, sol.lam, sol.z, FREE_GAP_REPICK)
            kind[free | np.isin(np.arange(J), bad)] = FREE
            repicked = True
            continue
        if np.count_nonzero(kind == FREE) + bad.size > J // 2:
            break
        kind[bad] = FREE
    return _whole(lp, deadline)


def _whole(lp: JobLP, deadline: float) -> JobSol:
    sol = _solve_reduced(lp, np.full(lp.n_jobs, FREE), np.full(lp.n_jobs, -1), deadline)[0]
    if sol is None:
        raise PlanError("allocation LP not solved (infeasible, or no solution within the time limit)")
    return sol


def _tied(lp: JobLP) -> np.ndarray:
    """Jobs whose need moves with ``z`` (only REQ or FREE for them)."""
    return lp.req & (lp.b > 0) & (lp.z_hi > lp.z_lo)


def _prices(lp: JobLP, deadline: float) -> tuple[np.ndarray, float]:
    """Coupling prices and ``z`` of the LP over ``SAMPLE_JOBS`` evenly spaced jobs, each standing for
    ``J / SAMPLE_JOBS`` jobs (coupling use and objective scaled up). Requirements are elastic there, and
    those that do not move with ``z`` are eased by 2 % (a sample of jobs whose needs exactly fill the
    cluster would otherwise overfill it half of the time, and price capacity at the elastic penalty)."""
    J = lp.n_jobs
    pick = np.unique(np.linspace(0, J - 1, SAMPLE_JOBS).round().astype(np.int64))
    k = J / pick.size
    newid = np.full(J, -1)
    newid[pick] = np.arange(pick.size)
    sel = np.flatnonzero(newid[lp.job] >= 0)
    scale = _BIG * (1.0 + float(np.max(np.abs(lp.e[sel])))) if sel.size else 1.0
    ease = np.where(_tied(lp)[pick], 1.0, 0.98)
    sub = JobLP(n_jobs=pick.size, job=newid[lp.job[sel]], n=lp.n[sel], e=lp.e[sel] * k, A=lp.A[:, sel] * k,
                cap=lp.cap, a=lp.a, req=lp.req[pick], b=lp.b[pick] * ease, beta=lp.beta[pick] * ease,
                pen=np.full(pick.size, scale * k) if lp.pen is None else lp.pen[pick] * k,
                f=lp.f, z_lo=lp.z_lo, z_hi=lp.z_hi)
    sol = _solve_reduced(sub, np.full(pick.size, FREE), np.full(pick.size, -1), deadline, elastic=True)[0]
    if sol is None:
        return np.zeros(lp.cap.size), lp.z_lo
    return sol.lam, sol.z


def _best_states(lp: JobLP, lam: np.ndarray, z: float, free_gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Each job's best column at prices ``lam`` and ``z``, and its state there: REQ if tied to ``z`` or
    its reduced cost is clearly negative, HI if clearly positive, VAR within ``VAR_BAND`` (relative) of 0.
    Jobs with no column that fits, and the jobs closest to a tie between their two best columns
    (relative gap below ``free_gap``, and at least ``FREE_MIN_PER_ROW`` per coupling row), are FREE: the
    optimum splits a few jobs between columns, and those set the prices."""
    J = lp.n_jobs
    kind, col = np.full(J, FREE), np.full(J, -1)
    if not lp.job.size:
        return kind, col
    z = lp.z_lo if lp.z_hi <= lp.z_lo else float(np.clip(z, lp.z_lo, lp.z_hi))
    tied, jc = _tied(lp), lp.job
    ratio = np.where(lp.req, lp.beta + lp.b * z, 0.0)[jc] / lp.n  # time at need
    price = lp.A.T @ lam
    profit = lp.e - price  # per unit of x
    value = np.where(tied[jc], profit * ratio, np.maximum(profit * ratio, profit))
    value = np.where(ratio <= 1 - 1e-9, value, -np.inf)
    order = np.lexsort((-value, jc))  # per job, best column first
    pos = np.flatnonzero(np.r_[True, np.diff(jc[order]) != 0])
    first, jobs = order[pos], jc[order[pos]]
    nxt = np.minimum(pos + 1, order.size - 1)
    v1 = value[first]
    v2 = np.where((pos + 1 < order.size) & (jc[order[nxt]] == jobs), value[order[nxt]], -np.inf)
    idle = ~lp.req[jobs] & (v1 <= 0)  # runs nowhere at these prices, whichever column it keeps
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(v2) & ~idle, (v1 - v2) / (np.abs(v1) + np.abs(v2) + 1e-300), np.inf)
    ok = np.isfinite(v1)
    c = first[ok]
    rel = profit[c] / (np.abs(lp.e[c]) + np.abs(price[c]) + 1e-300)
    col[jobs[ok]] = c
    kind[jobs[ok]] = np.where(tied[jobs[ok]] | (rel < -VAR_BAND), REQ, np.where(rel > VAR_BAND, HI, VAR))
    m = min(jobs.size, FREE_MIN_PER_ROW * lp.cap.size + 8)
    kind[jobs[np.argpartition(gap, m - 1)[:m]]] = FREE
    kind[jobs[gap < free_gap]] = FREE
    return kind, col


def _states_of(lp: JobLP, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """States from a solution ``x`` of a related LP: a job on one column keeps it (REQ if tied to ``z``,
    else VAR), an idle job without requirement is VAR on its best column, a split job is FREE."""
    J = lp.n_jobs
    kind, col = np.full(J, FREE), np.full(J, -1)
    if not lp.job.size:
        return kind, col
    on = x > 1e-12
    cnt = np.bincount(lp.job, on, J)
    order = np.lexsort((-np.where(on, 1.0 + x, np.tanh(lp.e)), lp.job))  # the used column, else the best e
    first = order[np.flatnonzero(np.r_[True, np.diff(lp.job[order]) != 0])]
    jobs = lp.job[first]
    ok = (cnt[jobs] == 1) | ((cnt[jobs] == 0) & ~lp.req[jobs])
    col[jobs[ok]] = first[ok]
    kind[jobs[ok]] = np.where(_tied(lp)[jobs[ok]], REQ, VAR)
    return kind, col


def _solve_reduced(lp: JobLP, kind: np.ndarray, col: np.ndarray, deadline: float,
                   elastic: bool = False) -> tuple[JobSol | None, np.ndarray, bool]:
    """Solve with the REQ, HI and VAR jobs aggregated; returns (solution, aggregated jobs that fail the
    optimality check, whether the prices are sane: no coupling row needed its slack)."""
    J, K = lp.n_jobs, lp.cap.size
    none = np.zeros(0, np.int64)
    fc = np.flatnonzero(kind[lp.job] == FREE)  # columns of FREE jobs
    jf = np.unique(lp.job[fc])
    fj = jf[lp.req[jf]]
    aj = np.flatnonzero((kind == REQ) | (kind == HI))  # fixed: x = k0 + k1 z
    ac = col[aj]
    vj = np.flatnonzero(kind == VAR)
    vc = col[vj]
    tied = _tied(lp)
    is_req = kind[aj] == REQ
    k0 = np.where(is_req, np.where(lp.req[aj], lp.beta[aj] + lp.b[aj] * np.where(tied[aj], 0.0, lp.z_lo), 0.0)
                  / lp.n[ac], 1.0)
    k1 = np.where(is_req & tied[aj], lp.b[aj] / lp.n[ac], 0.0)
    tj = np.flatnonzero(k1 > 0)
    z_cap = (lp.n[ac[tj]] - lp.beta[aj[tj]]) / lp.b[aj[tj]]  # REQ tied: x <= 1
    z_hi = min(lp.z_hi, float(z_cap.min())) if tj.size else lp.z_hi
    if z_hi < lp.z_lo - 1e-12:  # the REQ states allow no z in range: free the jobs that cap it
        return JobSol(np.zeros(lp.job.size), lp.z_lo, np.zeros(K), -np.inf, "optimal", 0), aj[tj[z_cap < lp.z_lo]], False
    v_lo = np.where(lp.req[vj], lp.beta[vj] + lp.b[vj] * lp.z_lo, 0.0) / lp.n[vc]
    soft = lp.pen is not None or elastic
    nf, nv, nq = fc.size, vc.size, (fj.size if soft else 0)
    iz = nf + nv
    scale = 1.0 + (float(np.max(np.abs(lp.e))) if lp.e.size else 0.0) + abs(lp.f)
    pen = lp.pen[fj] if lp.pen is not None else np.full(fj.size, _BIG * scale)
    cost = np.concatenate([lp.e[fc], lp.e[vc], [lp.f + float(lp.e[ac] @ k1)], -pen[:nq], np.full(K, -_BIG * scale)])
    lo = np.concatenate([np.zeros(nf), v_lo, [lp.z_lo], np.zeros(nq + K)])
    hi = np.concatenate([np.full(nf, INF), np.ones(nv), [z_hi], np.full(nq + K, INF)])
    time_row = np.full(J, -1)
    time_row[jf] = np.arange(jf.size)
    req_row = np.full(J, -1)
    req_row[fj] = jf.size + np.arange(fj.size)
    r0 = jf.size + fj.size  # first coupling row
    Af = lp.A[:, np.r_[fc, vc]].tocoo()
    Aa = lp.A[:, ac]
    ri = [time_row[lp.job[fc]], req_row[lp.job[fc]], req_row[fj], r0 + Af.row, r0 + np.arange(K),
          r0 + np.arange(K), req_row[fj[:nq]]]
    ci = [np.arange(nf), np.arange(nf), np.full(fj.size, iz), Af.col, np.full(K, iz), iz + 1 + nq + np.arange(K),
          iz + 1 + np.arange(nq)]
    vi = [np.ones(nf), lp.n[fc], -lp.b[fj], Af.data, lp.a + Aa @ k1, -np.ones(K), np.ones(nq)]
    ri, ci, vi = np.concatenate(ri), np.concatenate(ci), np.concatenate(vi)
    keep = ri >= 0
    rlo = np.concatenate([np.full(jf.size, -INF), lp.beta[fj], np.full(K, -INF)])
    rhi = np.concatenate([np.ones(jf.size), np.full(fj.size, INF), lp.cap - Aa @ k0])
    v, row_dual, status = _highs(cost, lo, hi, rlo, rhi, ri[keep], ci[keep], vi[keep], deadline,
                                 aggregated=bool(aj.size or vj.size))
    if v is None:
        return None, none, False
    z = float(v[iz])
    x = np.zeros(lp.job.size)
    x[fc], x[vc], x[ac] = v[:nf], v[nf:iz], k0 + k1 * z
    x = np.clip(x, 0.0, None)
    lam = row_dual[r0:]
    sol = JobSol(x=x, z=z, lam=lam, value=lp.value(x, z), status=status, free_jobs=jf.size)
    if elastic or not (aj.size or vj.size):
        return sol, none, True
    over = np.flatnonzero(v[iz + 1 + nq:] > 1e-9 * (1 + np.abs(lp.cap)))
    if over.size:  # a coupling row over-full: free the aggregated jobs with a fixed minimum on it
        on = np.asarray(abs(lp.A[over]).sum(axis=0)).ravel() > 0
        return sol, np.r_[aj[on[ac] & (x[ac] > 0)], vj[on[vc] & (v_lo > 0)]], False
    bad = _check_states(lp, lam, x, aj, ac, vj, vc)
    if tj.size and z_hi < lp.z_hi and z >= z_hi - 1e-9 * (1 + abs(z_hi)):
        bad = np.union1d(bad, aj[tj[z_cap <= 2 * z]])  # a REQ job's time binds: free it and those close
    return sol, bad, True


def _check_states(lp: JobLP, lam, x, aj, ac, vj, vc) -> np.ndarray:
    """Aggregated jobs whose state is not optimal at prices ``lam`` (see :func:`solve_job_lp`): row duals
    ``mu`` (requirement) and ``nu`` (time) from the state, then reduced costs of all the job's columns."""
    J = lp.n_jobs
    profit = lp.e - lp.A.T @ lam
    mu, nu = np.zeros(J), np.zeros(J)
    d = profit[ac]
    is_req = x[ac] < 1 - 1e-12  # REQ (HI runs all the time)
    mu[aj] = np.where(is_req & lp.req[aj], -d / lp.n[ac], 0.0)  # requirement tight, time slack
    nu[aj] = np.where(is_req, 0.0, d)  # HI: time tight, requirement slack
    d = profit[vc]  # VAR: the column's reduced cost in the model; > 0 at 1 (time tight), < 0 at need
    nu[vj] = np.maximum(d, 0.0)
    mu[vj] = np.where(lp.req[vj] & (d < 0), -d / lp.n[vc], 0.0)
    agg = np.zeros(J, bool)
    agg[aj] = agg[vj] = True
    scale = np.abs(lp.e) + np.abs(lp.A).T @ np.abs(lam) + np.abs(mu[lp.job] * lp.n) + np.abs(nu[lp.job])
    rcost = profit + mu[lp.job] * lp.n - nu[lp.job]
    bad = np.zeros(J, bool)
    bad[lp.job[agg[lp.job] & (rcost > 1e-9 + 1e-7 * scale)]] = True
    bad |= agg & ((mu < -1e-9 - 1e-7 * np.abs(mu)) | (nu < -1e-9 - 1e-7 * np.abs(nu)))
    if lp.pen is not None:
        bad |= agg & lp.req & (mu > lp.pen * (1 + 1e-7) + 1e-9)
    return np.flatnonzero(bad)


def _highs(cost, lo, hi, rlo, rhi, ri, ci, vi, deadline, aggregated=False):
    """Maximise on HiGHS; returns (column values, row duals, status) or (None, None, None) if unsolved.
    Aggregated models (many bounded columns in a few rows, starting feasible at their lower bounds) run
    without presolve, which takes seconds on them, and with the primal simplex (10x faster there)."""
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
    if aggregated:
        h.setOptionValue("presolve", "off")
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
