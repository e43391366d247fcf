"""Jobs with identical columns but different needs solved as classes: an exact reduction of the
allocation LPs whose needs differ job by job (finish-time fairness, makespan).

A *class* is a set of jobs whose columns are identical (normalised throughput ``n_c``, objective ``e_c``
and use of every coupling row), as Gavel's workloads drawn from 26 measured configurations are; their
needs ``d_j = beta_j + b_j z`` may differ (each job has its own remaining work and elapsed time). The
objective and the coupling rows see a class only through its total time on each column, ``X_c = sum_j
x_jc``. Which totals can be split into per-job allocations (``sum_c x_jc <= 1``, ``sum_c n_c x_jc >=
d_j``)? The throughputs a class can give its jobs form a polymatroid: any ``m`` of them can together get at
most ``S(m; X) = max{n . w : 0 <= w <= X, sum w <= m}`` (the fastest ``m`` units of time), and every
vector within those bounds is reachable. So the needs can be met iff ``sum X <= M`` (class size) and, for
every ``m``, the ``m`` largest needs sum to at most ``S(m; X)``. By LP duality ``S(m; X) = min over
alpha in {0} u {n_c} of alpha m + sum_c (n_c - alpha)^+ X_c``, so the condition is, for every ``alpha``
and every set ``S`` of jobs::

    sum_c (n_c - alpha)^+ X_c  >=  sum_{j in S} (d_j - alpha)

whose tightest ``S`` is the jobs with ``d_j > alpha``: at most one row per class and distinct speed.
With ``d`` moving with ``z`` that set moves too; rows are added as cutting planes (each is valid for every
``z``) until none is violated, on one HiGHS model re-solved from its last basis. The LP then has a few
columns per class instead of per job, and its optimum (value and coupling prices) is the optimum of the
LP over every job.

The split back to jobs (:func:`split_class`) is constructive: jobs in decreasing need each take a unit
window of the class's time sorted by speed, the slowest one that meets their need exactly; once the
slowest window covers the largest need left, the remaining jobs take their needs from the slow end in
turn; time left over goes to jobs with time to spare. (Each step keeps the majorisation condition for the
jobs left, so no job runs short; the result is checked all the same, and the caller falls back to the
per-job LP if it is not.)
"""

from __future__ import annotations

import time

import highspy
import numpy as np
import scipy.sparse as sp

from gridshift.plan.allocation.job_lp import INF, JobLP, JobSol
from gridshift.plan.allocation.merge import MAX_DENSE_ROWS, _classes

MIN_JOBS = 64  # fewer jobs: the per-job LP is as fast
MAX_CLASS_SHARE = 0.25  # use classes only when there are at most this share as many classes as jobs
MAX_CUT_ROUNDS = 30
CUT_TOL = 1e-9  # relative violation that adds a row
SPLIT_TOL = 1e-7  # relative shortfall of a job's need the split may leave (else: fall back)


class _ClassView:
    """The classes of an LP: per class its representative's columns, size and member jobs."""

    def __init__(self, lp: JobLP, cls: np.ndarray) -> None:
        J = lp.n_jobs
        first = np.unique(cls, return_index=True)[1]
        reps = np.sort(first)
        new_of = np.empty(cls.max() + 1, np.int64)
        new_of[cls[reps]] = np.arange(reps.size)
        self.of_job = new_of[cls]  # [J] class of every job
        self.G = reps.size
        self.size = np.bincount(self.of_job, minlength=self.G).astype(float)
        self.start = np.searchsorted(lp.job, np.arange(J))  # first column of every job
        ncol = np.bincount(lp.job, minlength=J)
        self.width = ncol[reps]
        self.ccol = np.concatenate([self.start[r] + np.arange(w) for r, w in zip(reps, self.width)])  # lp columns
        self.ccls = np.repeat(np.arange(self.G), self.width)  # class of every class column
        self.cpos = np.concatenate([np.arange(w) for w in self.width])
        self.cstart = np.r_[0, np.cumsum(self.width)]
        self.reps = reps


def _job_classes(lp: JobLP, soft: bool = False) -> np.ndarray | None:
    """Class of every job (equal columns; with ``soft``, also equal shortfall penalties), or ``None``."""
    J, C = lp.n_jobs, lp.job.size
    if J < MIN_JOBS or C == 0 or lp.cap.size > MAX_DENSE_ROWS or (lp.pen is not None) != soft or lp.time_z:
        return None
    start = np.searchsorted(lp.job, np.arange(J))
    ncol = np.bincount(lp.job, minlength=J)
    pos = np.arange(C) - start[lp.job]
    col_cls = _classes(np.column_stack([lp.n, lp.e, lp.A.tocsc().toarray().T]))
    blocks = np.full((J, int(ncol.max()) + soft), -1.0)
    blocks[lp.job, pos] = col_cls
    if soft:
        blocks[:, -1] = np.where(lp.req, lp.pen, -1.0)
    cls = _classes(blocks)
    if np.unique(cls).size > MAX_CLASS_SHARE * J:
        return None
    return cls


class _ClassModel:
    """The class LP on one HiGHS model: columns ``X`` (per class and column) and one scalar ``z`` (its
    cost ``f``, bounds ``[z_lo, z_hi]``, coefficients ``a`` in the coupling rows); rows: the coupling rows,
    one time row per class, and the need rows added as cuts."""

    def __init__(self, lp: JobLP, cls: np.ndarray, deadline: float, f: float, z_lo: float, z_hi: float,
                 a: np.ndarray) -> None:
        self.lp, self.deadline = lp, deadline
        v = self.v = _ClassView(lp, cls)
        K, NX = lp.cap.size, v.ccol.size
        self.K, self.NX = K, NX
        self.n_c = lp.n[v.ccol]
        self.n_max = np.full(v.G, -np.inf)
        np.maximum.at(self.n_max, v.ccls, self.n_c)
        levels = []  # alpha levels of every class: 0 and its distinct speeds below its fastest
        for g in range(v.G):
            sp_ = np.unique(self.n_c[v.cstart[g]:v.cstart[g + 1]])  # (none: a job that runs nowhere)
            levels.append(np.r_[0.0, sp_[sp_ < sp_.max()]] if sp_.size else np.zeros(1))
        self.alpha = np.full((v.G, max(len(x) for x in levels)), np.nan)
        for g, x in enumerate(levels):
            self.alpha[g, :x.size] = x
        self.has_need = np.bincount(v.of_job[np.flatnonzero(lp.req)], minlength=v.G) > 0
        self.added: set = set()
        h = self.h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.addVars(NX + 1, np.r_[np.zeros(NX), z_lo if np.isfinite(z_lo) else -INF],
                  np.r_[np.full(NX, INF), z_hi if np.isfinite(z_hi) else INF])
        h.changeColsCost(NX + 1, np.arange(NX + 1, dtype=np.int32), np.r_[lp.e[v.ccol], f])
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        A = lp.A.tocsc()[:, v.ccol].tocoo()
        za = np.flatnonzero(a != 0)
        _add_rows(h, np.full(K + v.G, -INF), np.r_[lp.cap, v.size], np.concatenate([A.row, v.ccls + K, za]),
                  np.concatenate([A.col, np.arange(NX), np.full(za.size, NX)]),
                  np.concatenate([A.data, np.ones(NX), a[za]]))

    def cut_and_solve(self, beta: np.ndarray, b: np.ndarray, z: float, X: np.ndarray | None):
        """Add the need rows (needs ``beta + b z``) that ``X`` breaks (all of them if ``X is None``) and
        re-solve from the last basis: ``(X, z, row duals)``, ``False`` when no row was added (``X`` is
        optimal), ``None`` when HiGHS reaches no optimum."""
        cuts = _violated(self.lp, self.v, self.alpha, self.n_c, beta, b, self.has_need, z, X, self.added)
        if cuts is None:
            return False
        lo, ri, ci, vi = cuts
        _add_rows(self.h, lo, np.full(lo.size, INF), ri, ci, vi)
        self.h.setOptionValue("time_limit", max(self.deadline - time.perf_counter(), 1e-3))
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        s = self.h.getSolution()
        col = np.asarray(s.col_value)
        return np.clip(col[:self.NX], 0.0, None), float(col[self.NX]), np.asarray(s.row_dual)


def solve_by_classes(lp: JobLP, deadline: float, want_x: bool = True) -> JobSol | None:
    """The exact optimum of ``lp`` solved over classes (module docstring), or ``None`` when the LP has no
    such structure (too few jobs, soft needs, the homogenised form, few jobs per class), HiGHS does not
    reach an optimum, or the split falls short (the caller then solves it per job). With ``want_x``
    false, ``x`` of the solution is ``None`` (its value, ``z`` and prices are exact all the same)."""
    cls = _job_classes(lp)
    if cls is None:
        return None
    need_jobs = np.flatnonzero(lp.req)
    beta = np.where(lp.req, lp.beta, 0.0)
    b = np.where(lp.req, lp.b, 0.0)
    z_lo, z_hi = lp.z_lo, lp.z_hi
    # alpha = the fastest speed of a class: every need at most that speed (a bound on z)
    m = _ClassModel(lp, cls, deadline, lp.f, z_lo, z_hi, lp.a)
    if need_jobs.size:
        nm = m.n_max[m.v.of_job[need_jobs]]
        bj, bej = b[need_jobs], beta[need_jobs]
        if np.any((bj <= 0) & (bej > nm * (1 + 1e-12))):
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            lim = (nm - bej) / bj
        if np.any(bj > 0):
            z_hi = min(z_hi, float(np.min(lim[bj > 0])))
        if np.any(bj < 0):
            z_lo = max(z_lo, float(np.max(lim[bj < 0])))
    if z_hi < z_lo:
        return None
    m.h.changeColsBounds(1, np.array([m.NX], np.int32), np.array([z_lo if np.isfinite(z_lo) else -INF]),
                         np.array([z_hi if np.isfinite(z_hi) else INF]))
    z = z_hi if np.isfinite(z_hi) and lp.f > 0 else (z_lo if np.isfinite(z_lo) else 0.0)
    X = out = None
    for _ in range(MAX_CUT_ROUNDS):
        res = m.cut_and_solve(beta, b, z, X)
        if res is None:
            return None
        if res is False:
            break
        X, z, _ = res
        out = res
    else:
        return None
    lam = out[2][:m.K]
    value = float(lp.e[m.v.ccol] @ X) + lp.f * z
    if not want_x:
        return JobSol(x=None, z=z, lam=lam, value=value, status="optimal", free_jobs=m.v.G)
    x = _split_all(lp, m.v, X, np.where(lp.req, lp.beta + lp.b * z, 0.0))
    if x is None:
        return None
    return JobSol(x=x, z=z, lam=lam, value=lp.value(x, z), status="optimal", free_jobs=m.v.G)


def least_parameter(lp: JobLP, need, dneed, lo: float, deadline: float) -> float | None:
    """The least ``rho >= lo`` at which every job's need ``need(rho)`` ([J], convex and decreasing in
    ``rho``; ``dneed`` its derivative) can be met, over the columns and coupling rows of ``lp`` (its own
    needs ignored): the class LP ``min rho`` with the need rows linearised at the current ``rho`` (valid
    for every ``rho`` below, as the needs are convex: an outer approximation), cut until ``rho`` meets
    the true needs, which makes it optimal (a Newton step per round on the binding rows). ``None`` if
    the LP has no class structure or HiGHS fails (the caller then bisects with per-job LPs)."""
    cls = _job_classes(lp)
    if cls is None:
        return None
    m = _ClassModel(lp, cls, deadline, -1.0, lo, INF, np.zeros(lp.cap.size))
    rho, X = lo, None
    for _ in range(MAX_CUT_ROUNDS):
        d, dd = np.where(lp.req, need(rho), 0.0), np.where(lp.req, dneed(rho), 0.0)
        res = m.cut_and_solve(d - dd * rho, dd, rho, X)
        if res is None:
            return None
        if res is False:
            return rho if np.all(d <= m.n_max[m.v.of_job] * (1 + 1e-9)) else None
        X, rho, _ = res
    return None


def solve_soft_by_classes(lp: JobLP, deadline: float) -> JobSol | None:
    """``lp`` with soft needs (a penalty ``pen`` per unit of shortfall, equal within a class) and a fixed
    ``z`` over classes: exact, without cuts. For a class short by ``sigma`` in all, the shortfall that
    eases every row most is taken off the largest needs (``d_j -> min(d_j, L)``: it minimises every sum
    of the ``m`` largest needs at once), and then ``sum_j (min(d_j, L) - alpha)^+ = (sum_j (d_j - alpha)^+
    - sigma)^+``: one row ``sum_c (n_c - alpha)^+ X_c + sigma >= sum_j (d_j - alpha)^+`` per class and
    level (the fastest speed included), with ``sigma`` a column costing ``pen``. ``None`` where the LP
    has no such structure (the caller solves it per job)."""
    if lp.z_hi != lp.z_lo or lp.pen is None:
        return None
    cls = _job_classes(lp, soft=True)
    if cls is None:
        return None
    z = lp.z_lo
    m = _ClassModel(lp, cls, deadline, 0.0, z, z, lp.a)
    v, NX, G = m.v, m.NX, m.v.G
    d = np.where(lp.req, np.maximum(lp.beta + lp.b * z, 0.0), 0.0)
    pen_g = np.zeros(G)
    np.maximum.at(pen_g, v.of_job, np.where(lp.req, lp.pen, 0.0))
    m.h.addVars(G, np.zeros(G), np.full(G, INF))
    m.h.changeColsCost(G, NX + 1 + np.arange(G, dtype=np.int32), -pen_g)
    alpha = np.column_stack([m.alpha, m.n_max])  # (nan where a class has fewer levels)
    lo, ri, ci, vi = [], [], [], []
    k = 0
    for level in range(alpha.shape[1]):
        a_g = alpha[:, level]
        ok = np.isfinite(a_g) & m.has_need
        rhs = np.bincount(v.of_job, np.maximum(d - a_g[v.of_job], 0.0) * np.isfinite(a_g[v.of_job]), G)
        gs = np.flatnonzero(ok & (rhs > 0))
        if not gs.size:
            continue
        row_of = np.full(G, -1)
        row_of[gs] = k + np.arange(gs.size)
        cc = np.flatnonzero(row_of[v.ccls] >= 0)
        ri += [row_of[v.ccls[cc]], row_of[gs]]
        ci += [cc, NX + 1 + gs]
        vi += [np.maximum(m.n_c[cc] - a_g[v.ccls[cc]], 0.0), np.ones(gs.size)]
        lo.append(rhs[gs])
        k += gs.size
    if k:
        _add_rows(m.h, np.concatenate(lo), np.full(k, INF), np.concatenate(ri), np.concatenate(ci),
                  np.concatenate(vi))
    m.h.setOptionValue("time_limit", max(deadline - time.perf_counter(), 1e-3))
    m.h.run()
    if m.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    sol = m.h.getSolution()
    col = np.asarray(sol.col_value)
    X, sigma = np.clip(col[:NX], 0.0, None), np.clip(col[NX + 1:], 0.0, None)
    x = _split_all(lp, v, X, _truncated(d, v.of_job, sigma, G))
    if x is None:
        return None
    return JobSol(x=x, z=z, lam=np.asarray(sol.row_dual)[:m.K], value=lp.value(x, z), status="optimal",
                  free_jobs=G)


def _truncated(d: np.ndarray, g: np.ndarray, sigma: np.ndarray, G: int) -> np.ndarray:
    """Needs ``d`` [J] with each class's shortfall ``sigma`` [G] taken off its largest: ``min(d, L_g)``
    with ``sum_j (d_j - L_g)^+ = sigma_g``."""
    out = d.copy()
    for c in np.flatnonzero(sigma > 0):
        members = np.flatnonzero(g == c)
        dd = np.sort(d[members])[::-1]
        k = np.arange(1, dd.size + 1)
        above = np.cumsum(dd) - k * dd  # shortfall if L = dd[k-1]: sum_{i<k} (dd_i - dd_{k-1})
        i = int(np.searchsorted(above, sigma[c], side="right"))  # L lies below dd[i-1]
        level = (dd[:i].sum() - sigma[c]) / i if i else dd[0]
        out[members] = np.minimum(d[members], max(level, 0.0))
    return out


def _add_rows(h, lo, hi, ri, ci, vi) -> None:
    m = sp.csr_matrix((vi, (ri, ci)), shape=(lo.size, h.getNumCol()))
    m.sum_duplicates()
    m.eliminate_zeros()
    h.addRows(lo.size, lo, hi, m.nnz, m.indptr[:-1].astype(np.int32), m.indices.astype(np.int32), m.data)


def _violated(lp, v, alpha, n_c, beta, b, has_need, z, X, added):
    """Rows ``sum_c (n_c - alpha)^+ X_c - z sum_S b_j >= sum_S (beta_j - alpha)`` with ``S`` the jobs of
    the class with need above ``alpha`` at the current ``z``, for every (class, level) they cut off (all
    of them at the start, ``X is None``). ``None`` when nothing is violated."""
    NX = v.ccol.size
    d = beta + b * z  # [J] needs at z (0 for jobs without one)
    g_of = v.of_job
    lo, ri, ci, vi = [], [], [], []
    k = 0
    tot_need = np.bincount(g_of, np.abs(d), v.G)
    for level in range(alpha.shape[1]):
        a_c = alpha[v.ccls, level]  # [NX]
        a_j = alpha[g_of, level]  # [J]
        ok_g = np.isfinite(alpha[:, level]) & has_need
        inS = (d > a_j) & lp.req & np.isfinite(a_j)
        lhs_c = np.where(np.isfinite(a_c), np.maximum(n_c - a_c, 0.0), 0.0)
        rhs_beta = np.bincount(g_of, np.where(inS, beta - a_j, 0.0), v.G)
        zb = np.bincount(g_of, np.where(inS, b, 0.0), v.G)
        if X is None:
            want = ok_g & (np.bincount(g_of, inS, v.G) > 0)
        else:
            have = np.bincount(v.ccls, lhs_c * X, v.G)
            viol = rhs_beta + zb * z - have
            want = ok_g & (viol > CUT_TOL * (1.0 + tot_need + have))
        gs = [g for g in np.flatnonzero(want).tolist()
              if (g, level, round(float(zb[g]), 12), round(float(rhs_beta[g]), 12)) not in added]
        if not gs:
            continue
        added.update((g, level, round(float(zb[g]), 12), round(float(rhs_beta[g]), 12)) for g in gs)
        row_of = np.full(v.G, -1)
        row_of[gs] = k + np.arange(len(gs))
        cc = np.flatnonzero(row_of[v.ccls] >= 0)
        ri += [row_of[v.ccls[cc]], row_of[gs]]
        ci += [cc, np.full(len(gs), NX)]
        vi += [lhs_c[cc], -zb[gs]]
        lo.append(rhs_beta[gs])
        k += len(gs)
    if not k:  # (a violated row already added: solver tolerance, nothing more to cut)
        return None if X is not None else (np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    return np.concatenate(lo), np.concatenate(ri), np.concatenate(ci), np.concatenate(vi)


def _split_all(lp: JobLP, v: _ClassView, X: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Per-job ``x`` [C] from the class totals ``X`` and needs ``d`` [J] (:func:`split_class`; classes
    with time on at most two columns all at once, :func:`_split_two`), or ``None`` if a job would fall
    short of its need."""
    x = np.zeros(lp.job.size)
    d = np.maximum(d, 0.0)
    used = np.bincount(v.ccls, X > 0, v.G)
    order = np.argsort(v.of_job, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(v.of_job, minlength=v.G))]
    d_lo = np.full(v.G, np.inf)
    d_hi = np.full(v.G, -np.inf)
    np.minimum.at(d_lo, v.of_job, d)
    np.maximum.at(d_hi, v.of_job, d)
    equal = d_lo == d_hi  # equal needs: equal shares (n . X >= M d and sum X <= M), as merging gives
    if equal.any():
        members = np.flatnonzero(equal[v.of_job])
        g = v.of_job[members]
        width = v.width[g]
        rep = np.repeat(np.arange(members.size), width)
        within = np.arange(rep.size) - np.repeat(np.cumsum(width) - width, width)
        x[v.start[members][rep] + within] = X[v.cstart[g][rep] + within] / v.size[g][rep]
    two = (used <= 2) & ~equal
    if two.any() and not _split_two(lp, v, X, d, two, x):
        return None
    for g in np.flatnonzero(~two & ~equal):
        members = order[bounds[g]:bounds[g + 1]]
        sl = slice(v.cstart[g], v.cstart[g + 1])
        xs = split_class(lp.n[v.ccol[sl]], X[sl], d[members])
        if xs is None:
            return None
        x[v.start[members][:, None] + np.arange(v.width[g])[None, :]] = xs
    got = np.bincount(lp.job, lp.n * x, lp.n_jobs)
    tim = np.bincount(lp.job, x, lp.n_jobs)
    if np.any(got < d * (1 - SPLIT_TOL) - 1e-12) or np.any(tim > 1 + SPLIT_TOL):
        return None
    return x


def _seg_cumsum(a: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Cumulative sum of ``a`` within runs of equal ``seg`` (sorted)."""
    c = np.cumsum(a)
    first = np.flatnonzero(np.r_[True, seg[1:] != seg[:-1]])
    base = np.repeat(c[first] - a[first], np.diff(np.r_[first, a.size]))
    return c - base


def _split_two(lp: JobLP, v: _ClassView, X: np.ndarray, d: np.ndarray, sel: np.ndarray, x: np.ndarray) -> bool:
    """:func:`split_class` for every class in ``sel`` (time on at most two columns) at once, into ``x``:
    jobs above the slow column's speed (largest first) mix the two with time 1 and the least fast time
    while the slow column lasts, the rest take their needs from the slow end, and time left over goes to
    jobs with time to spare. False if a need cannot be met."""
    G = v.G
    on = X > 0
    # fast (f) and slow (s) used column of every class (-1: none); a class with one column has only s
    key = np.where(on, v.ccls * 4.0 - np.tanh(lp.n[v.ccol]), np.inf)
    o = np.argsort(key, kind="stable")
    o = o[on[o]]
    cnt = np.bincount(v.ccls[o], minlength=G)
    firsts = np.r_[0, np.cumsum(cnt)[:-1]]
    f_col = np.full(G, -1)
    s_col = np.full(G, -1)
    has2 = cnt == 2
    f_col[has2] = o[firsts[has2]]
    s_col[cnt >= 1] = o[firsts[cnt >= 1] + cnt[cnt >= 1] - 1]
    n1 = np.where(f_col >= 0, lp.n[v.ccol[np.maximum(f_col, 0)]], 0.0)
    X1 = np.where(f_col >= 0, X[np.maximum(f_col, 0)], 0.0)
    n2 = np.where(s_col >= 0, lp.n[v.ccol[np.maximum(s_col, 0)]], 1.0)
    X2 = np.where(s_col >= 0, X[np.maximum(s_col, 0)], 0.0)
    jobs = np.flatnonzero(sel[v.of_job])
    g = v.of_job[jobs]
    o = np.lexsort((-d[jobs], g))
    jobs, g = jobs[o], g[o]
    dd = d[jobs]
    with np.errstate(divide="ignore", invalid="ignore"):
        phi = np.where(n1[g] > n2[g], np.clip((dd - n2[g]) / (n1[g] - n2[g]), 0.0, 1.0), 1.0)
    big = (dd > n2[g]) & (_seg_cumsum(1.0 - phi, g) < X2[g]) & (f_col[g] >= 0)
    big &= _seg_cumsum((~big).astype(float), g) == 0  # (a prefix of each class)
    t1 = np.where(big, phi, 0.0)  # time on the fast and the slow column
    t2 = np.where(big, 1.0 - phi, 0.0)
    r1 = X1 - np.bincount(g, t1, G)
    r2 = X2 - np.bincount(g, t2, G)
    if np.any(r1 < -1e-9 * (1 + X1 + X2)):
        return False
    r1, r2 = np.maximum(r1, 0.0), np.maximum(r2, 0.0)
    rest = ~big & (dd > 0)  # from the slow end, in turn
    q = _seg_cumsum(np.where(rest, dd, 0.0), g)
    cap2 = r2 * n2
    if np.any(q > (cap2 + r1 * n1)[g] * (1 + 1e-9) + 1e-12):
        return False

    def at(qq):  # time from the slow end at throughput qq
        return np.where(qq <= cap2[g], qq / n2[g], r2[g] + (qq - cap2[g]) / np.where(n1[g] > 0, n1[g], 1.0))

    u, u0 = at(q), at(q - np.where(rest, dd, 0.0))
    t2 += np.where(rest, np.minimum(u, r2[g]) - np.minimum(u0, r2[g]), 0.0)
    t1 += np.where(rest, np.maximum(u - r2[g], 0.0) - np.maximum(u0 - r2[g], 0.0), 0.0)
    left1 = np.maximum(X1 - np.bincount(g, t1, G), 0.0)  # left over: fast first, then slow
    left2 = np.maximum(X2 - np.bincount(g, t2, G), 0.0)
    spare = np.maximum(1.0 - t1 - t2, 0.0)
    sc = _seg_cumsum(spare, g)
    a, b = sc - spare, sc
    t1 += np.clip(b, 0.0, left1[g]) - np.clip(a, 0.0, left1[g])
    e2 = left1[g] + left2[g]
    t2 += np.clip(b, left1[g], e2) - np.clip(a, left1[g], e2)
    pos_f = np.where(f_col >= 0, v.cpos[np.maximum(f_col, 0)], 0)
    pos_s = np.where(s_col >= 0, v.cpos[np.maximum(s_col, 0)], 0)
    hf, hs = f_col[g] >= 0, s_col[g] >= 0
    x[v.start[jobs[hf]] + pos_f[g[hf]]] = t1[hf]
    x[v.start[jobs[hs]] + pos_s[g[hs]]] = t2[hs]
    return True


def _clip_overlap(lo: np.ndarray, hi: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """[M, P] length of each interval ``[lo_i, hi_i]`` within each segment ``[edges_c, edges_c+1]``."""
    e0, e1 = edges[None, :-1], edges[None, 1:]
    return np.clip(hi[:, None], e0, e1) - np.clip(lo[:, None], e0, e1)


def _through(edges: list, ns: list, u0: float, u1: float) -> float:
    """Throughput of ``[u0, u1]`` of a profile of time sorted by speed (segment ``c`` is ``[edges[c],
    edges[c + 1]]`` at speed ``ns[c]``)."""
    t = 0.0
    for c in range(len(ns)):
        ov = min(u1, edges[c + 1]) - max(u0, edges[c])
        if ov > 0:
            t += ns[c] * ov
    return t


def split_class(n: np.ndarray, X: np.ndarray, d: np.ndarray) -> np.ndarray | None:
    """Time of each of ``M`` jobs (needs ``d`` [M] >= 0) on each of ``P`` columns (speeds ``n``, totals
    ``X``): [M, P], every job's time at most 1, its throughput at least its need, all of ``X`` used when
    the jobs have the time (module docstring). ``None`` if a need cannot be met."""
    M, P = d.size, n.size
    if M and np.all(d == d[0]):  # equal needs: equal shares, if they meet them
        share = np.clip(X, 0.0, None) / M
        if share @ n < d[0] * (1 - 1e-9) or share.sum() > 1 + 1e-9:
            return None
        return np.repeat(share[None, :], M, axis=0)
    o = np.argsort(-n, kind="stable")
    o = o[X[o] > 0]  # the columns with time, fastest first
    P = o.size
    ns = [float(a) for a in n[o]]
    r = [float(a) for a in X[o]]
    xs = np.zeros((M, P))
    order = np.argsort(-d, kind="stable")
    k = 0
    tol = 1e-12
    if P == 2:  # closed form: a job above the slow speed mixes the two with time 1, least fast time
        n1, n2 = ns
        dd = d[order]
        phi = np.clip((dd - n2) / (n1 - n2), 0.0, 1.0) if n1 > n2 else np.ones(M)
        big = (dd > n2) & (np.cumsum(1.0 - phi) < r[1])
        k = int(np.argmin(big)) if not big.all() else M
        if k:
            xs[order[:k], 0], xs[order[:k], 1] = phi[:k], 1.0 - phi[:k]
            r = [r[0] - float(phi[:k].sum()), r[1] - float(k - phi[:k].sum())]
            if r[0] < -1e-9 * (1 + X.sum()):
                return None
            r = [max(r[0], 0.0), max(r[1], 0.0)]
    while k < M and d[order[k]] > 0:  # jobs that need a unit window in the middle
        dj = float(d[order[k]])
        edges = [0.0]
        for a in r:
            edges.append(edges[-1] + a)
        R = edges[-1]
        w_end = _through(edges, ns, max(R - 1.0, 0.0), R)
        if w_end >= dj * (1 - 1e-12):
            break  # from here on every job fits at the slow end
        if R < 1.0 - tol:
            return None
        cand = sorted({0.0, R - 1.0, *(e for e in edges if 0.0 <= e <= R - 1.0),
                       *(e - 1.0 for e in edges if 0.0 <= e - 1.0 <= R - 1.0)})
        vals = [_through(edges, ns, a, a + 1.0) for a in cand]
        if vals[0] < dj * (1 - 1e-9):
            return None
        a = cand[0]
        for i in range(len(cand) - 1):
            if vals[i + 1] <= dj:
                f1, f2 = vals[i], vals[i + 1]
                a = cand[i] + ((f1 - dj) / (f1 - f2) * (cand[i + 1] - cand[i]) if f1 > f2 else 0.0)
                break
        else:
            a = cand[-1]
        j = order[k]
        for c in range(P):
            ov = min(a + 1.0, edges[c + 1]) - max(a, edges[c])
            if ov > 0:
                ov = min(ov, r[c])
                xs[j, c] = ov
                r[c] -= ov
        k += 1
    rest = order[k:]
    rest = rest[d[rest] > 0]
    rr = np.array(r[::-1])  # the profile from its slow end
    nn = np.array(ns[::-1])
    if rest.size:
        lt = np.r_[0.0, np.cumsum(rr)]
        ct = np.r_[0.0, np.cumsum(rr * nn)]
        q = np.cumsum(d[rest])
        if q[-1] > ct[-1] * (1 + 1e-9) + 1e-12:
            return None
        keep = np.r_[True, np.diff(ct) > 0]
        u = np.interp(np.minimum(q, ct[-1]), ct[keep], lt[keep])
        take = _clip_overlap(np.r_[0.0, u[:-1]], u, lt)  # [rest, P] slow end first
        xs[rest] = take[:, ::-1]
        rr = np.clip(rr - take.sum(axis=0), 0.0, None)
    left = rr[::-1]  # what is left, fastest first
    if left.sum() > 0:
        spare = np.clip(1.0 - xs.sum(axis=1), 0.0, None)
        s = np.cumsum(spare)
        le = np.r_[0.0, np.cumsum(left)]
        xs += _clip_overlap(s - spare, s, le)
    out = np.zeros((M, n.size))
    out[:, o] = xs
    if np.any(out @ n < d * (1 - SPLIT_TOL) - 1e-12) or np.any(out.sum(axis=1) > 1 + SPLIT_TOL):
        return None
    return out
