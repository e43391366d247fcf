"""Aggregation with a dual certificate: the large allocation LPs solved with most jobs folded into ``z``.

Most jobs' optimum is one simple *state* (one column at its need, one column all the time, two columns
with time and need both tight, or one column whose level the model picks), which needs no rows of its
own: its ``x`` is affine in ``z``. Only the jobs near a tie keep their columns and rows (``FREE``), so
HiGHS sees a few hundred rows instead of tens of thousands. After each solve every aggregated job is
checked against the model's prices (:func:`solve_reduced`); :func:`~gridshift.plan.allocation.solve.solve_job_lp`
frees the failures until the duals prove the optimum of the whole LP.
"""

from __future__ import annotations

import numpy as np

from gridshift.plan.allocation import job_lp
from gridshift.plan.allocation.job_lp import (
    FREE,
    FREE_T,
    HI,
    INF,
    PAIR,
    REQ,
    VAR,
    VAR_UP,
    JobLP,
    JobSol,
    highs_max,
    tied_jobs,
    time_budget,
)


class States:
    """Per job: state (FREE, FREE_T, REQ, HI, VAR, VAR_UP, PAIR) and its column(s) (-1 = none)."""

    def __init__(self, J: int) -> None:
        self.kind = np.full(J, FREE)
        self.col = np.full(J, -1)
        self.col2 = np.full(J, -1)

def segments(job: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best, second best) index per job segment by ``key`` (descending); second = -1 if none."""
    order = np.lexsort((-key, job))
    pos = np.flatnonzero(np.r_[True, np.diff(job[order]) != 0])
    nxt = np.minimum(pos + 1, order.size - 1)
    has2 = (pos + 1 < order.size) & (job[order[nxt]] == job[order[pos]])
    return order[pos], np.where(has2, order[nxt], -1)


def best_states(lp: JobLP, lam: np.ndarray, z: float, free_gap: float, band: float) -> States:
    """Each job's best option at prices ``lam`` and ``z``: one column (REQ at its need, HI all the time,
    or VAR within ``band`` (relative) of a zero reduced cost: the model picks its level; sampled prices
    are not trusted for that, ``band = inf``) or a PAIR of its fastest column and another. Jobs with no option, and the jobs closest to a tie between their two best options (relative
    gap below ``free_gap``, and at least ``FREE_MIN_PER_ROW`` per coupling row), are FREE: the optimum
    splits a few jobs between options, and those set the prices."""
    J, C = lp.n_jobs, lp.job.size
    st = States(J)
    if not C:
        return st
    z = lp.z_lo if lp.z_hi <= lp.z_lo else float(np.clip(z, lp.z_lo, lp.z_hi))
    t0, t1 = time_budget(lp)
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
    only_need = (tied_jobs(lp) | lp.time_z)[jc] | (profit < 0)
    ratio = need / lp.n  # time at need
    fits = ratio <= T * (1 - 1e-9)
    v1 = np.where(fits, np.where(only_need, profit * ratio, profit * T), -np.inf)
    s1 = mag * np.where(only_need, ratio, T)
    fast = segments(jc, lp.n)[0]
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
    best, second = segments(ojob, val)
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
    st.kind[jobs[single]] = np.where((tied_jobs(lp) | lp.time_z)[jobs[single]] | (rel < -band), REQ,
                                     np.where(rel > band, HI, np.where(rel > 0, VAR_UP, VAR)))
    pair = ok & (best >= C)
    st.col[jobs[pair]], st.col2[jobs[pair]] = f[best[pair] - C], best[pair] - C
    st.kind[jobs[pair]] = PAIR  # (homogenised, time_z: every single state is REQ, nothing runs beyond its need)
    m = min(jobs.size, job_lp.FREE_MIN_PER_ROW * lp.cap.size + 8)
    st.kind[jobs[np.argpartition(gap, m - 1)[:m]]] = FREE
    st.kind[jobs[gap < free_gap]] = FREE
    return st


def rebanded(lp: JobLP, st: States, lam: np.ndarray) -> States:
    """``st`` with its one-column states re-banded at prices ``lam`` (REQ / VAR / HI, see best_states)."""
    new = States(lp.n_jobs)
    new.kind, new.col, new.col2 = st.kind.copy(), st.col.copy(), st.col2.copy()
    j = np.flatnonzero(((st.kind == REQ) | (st.kind == HI) | (st.kind >= VAR)) & ~tied_jobs(lp))
    if lp.time_z or not j.size:
        return new
    c = st.col[j]
    price = lp.A[:, c].T @ lam
    rel = (lp.e[c] - price) / (np.abs(lp.e[c]) + np.abs(price) + 1e-300)
    new.kind[j] = np.where(rel < -job_lp.VAR_BAND, REQ, np.where(rel > job_lp.VAR_BAND, HI, np.where(rel > 0, VAR_UP, VAR)))
    return new


def states_of(lp: JobLP, x: np.ndarray) -> States:
    """States from a solution ``x`` of a related LP: a job on one column keeps it (REQ if its need moves
    with ``z``, else VAR), a job on two columns all the time is a PAIR, an idle job without requirement
    is VAR on its best column, others are FREE."""
    J = lp.n_jobs
    st = States(J)
    if not lp.job.size:
        return st
    on = x > 1e-12
    cnt = np.bincount(lp.job, on, J)
    first, second = segments(lp.job, np.where(on, 2.0 + x, np.tanh(lp.e)))  # used columns, else the best e
    jobs = lp.job[first]
    one = (cnt[jobs] == 1) | ((cnt[jobs] == 0) & ~lp.req[jobs])
    st.col[jobs[one]] = first[one]
    st.kind[jobs[one]] = np.where((tied_jobs(lp) | lp.time_z)[jobs[one]], REQ,
                                  np.where(x[first[one]] >= 1 - 1e-9, VAR_UP, VAR))
    busy = np.bincount(lp.job, x, J) >= 1 - 1e-6  # (x in the original scale: time budget 1)
    two = (cnt[jobs] == 2) & lp.req[jobs] & busy[jobs]
    st.col[jobs[two]], st.col2[jobs[two]] = first[two], second[two]
    st.kind[jobs[two]] = PAIR
    return st


def _aggregated(lp: JobLP, st: States):
    """Columns of the aggregated jobs and ``x = k0 + k1 z`` on them, and the range of ``z`` each state
    needs (``alpha + gamma z >= 0``): (jobs, cols, k0, k1), (job, alpha, gamma) of the conditions."""
    t0, t1 = time_budget(lp)
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


def solve_reduced(lp: JobLP, st: States, deadline: float, ipm: bool = False, basis=None, primal_warm: bool = False):
    """Solve with the non-FREE jobs aggregated (``basis``: a warm start for a model with none aggregated,
    see :func:`~gridshift.plan.allocation.job_lp.highs_max`; with ``primal_warm``, the primal simplex from it).
    Returns (solution or None, aggregated jobs that fail the
    optimality check, jobs whose time row must be added (homogenised form), whether the prices are sane:
    no coupling row needed its slack)."""
    J, K = lp.n_jobs, lp.cap.size
    none = np.zeros(0, np.int64)
    kind = st.kind
    t0, t1 = time_budget(lp)
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
                           np.full(K, -job_lp.SLACK_PENALTY * scale)])
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
    v, row_dual, status, hb = highs_max(cost, lo, hi, rlo, rhi, ri[keep], ci[keep], vi[keep], deadline,
                                        presolve=not aggregated,
                                        primal=(aggregated and 2 * np.count_nonzero(kind == VAR_UP) < vj.size)
                                        or (primal_warm and basis is not None and not aggregated),
                                        ipm=ipm and not aggregated, basis=None if aggregated else basis)
    if v is None:
        return None, none, none, False
    z = float(v[iz])
    x = np.zeros(lp.job.size)
    x[fc], x[vc], x[ac] = v[:nf], v[nf:iz], k0 + k1 * z
    x = np.clip(x, 0.0, None)
    lam = row_dual[r0:]
    sol = JobSol(x=x, z=z, lam=lam, value=lp.value(x, z), status=status, free_jobs=jf.size,
                 over=float(np.sum(v[iz + 1 + nq:])),
                 basis=hb if not aggregated and bool(np.all(kind == FREE_T)) else None)
    timed = none
    if lp.time_z:  # time rows left out: add those that are broken, and those close to it
        # (a FREE job may get more than it needs where capacity is spare, at no cost; trimming it to its
        # need changes neither the objective nor the prices, and leaves only real time limits broken)
        got = np.bincount(lp.job, lp.n * x, J)
        trim = np.where(free & lp.req & (got > lp.beta), lp.beta / np.where(got > 0, got, 1.0), 1.0)
        x *= trim[lp.job]
        used = np.bincount(lp.job, x, J)
        if np.any(free & (kind != FREE_T) & (used > z * (1 + 1e-9) + 1e-12)):
            timed = np.flatnonzero(free & (kind != FREE_T) & (used > job_lp.TIME_ROW_SHARE * z))
    if not aggregated:
        return sol, none, timed, True
    tol = 1e-9 * (1 + abs(z))
    binding = none  # a state's z range binds: free it, and those whose range ends close to z
    if z >= z_hi - tol and z_hi < lp.z_hi:
        binding = cj[up & (bound <= z + job_lp.BIND_SHARE * abs(z) + tol)]
    if z <= z_lo + tol and z_lo > lp.z_lo:
        near = cj[dn & (bound >= z - job_lp.BIND_SHARE * abs(z) - tol)]
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


def _check_states(lp: JobLP, st: States, lam: np.ndarray, x: np.ndarray) -> np.ndarray:
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
