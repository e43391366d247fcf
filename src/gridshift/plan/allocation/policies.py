"""Heterogeneity-aware allocation policies: LPs over time fractions ``x[row, pool]`` (after Gavel,
Narayanan et al., "Heterogeneity-Aware Cluster Scheduling Policies for Deep Learning Workloads", OSDI 2020),
with finish-time fairness as in Themis (Mahajan et al., "Themis: Fair and Efficient GPU Cluster
Scheduling", NSDI 2020) in Gavel's formulation.

Every policy is one objective on the shared base constraints of :mod:`gridshift.plan.allocation.problem`
(built in :mod:`gridshift.plan.allocation.job_lp`; the normalisations used here are those of
:mod:`gridshift.plan.allocation.terms`: the reference throughput ``ref_j`` of the equal time share,
eligible jobs, and the grid rate ``g(x)``). Below
``n_j(x) = thr_j(x) / ref_j`` is job j's normalised throughput (1 = as good as the equal share), ``J+`` the
eligible jobs and ``U`` the policy's objective at the equal share (the scale of the grid term
``- U * g(x)``; with ``carbon_weight = price_weight = 0`` the grid term vanishes).

* ``max-min-fairness`` (Gavel's weighted least-attained-service): maximise
  ``min_{j in J+} n_j(x) / weight_j - g(x)`` (``U = 1``; jobs with weight <= 0 are left out of the min).
* ``finish-time-fairness`` (Themis): minimise ``max_{j in J+} rho_j(x) + g(x)`` with
  ``rho_j = (elapsed_j + remaining_j / thr_j(x)) / t_iso_j`` and ``t_iso_j = elapsed_j + remaining_j /
  ref_j`` (so the equal share has ``rho = 1`` for everyone; jobs with nothing remaining are left out).
  ``rho`` is not linear in ``x``: for a fixed ``rho`` the condition ``rho_j(x) <= rho`` is linear,
  ``n_j(x) >= b_j(rho) = remaining_j / ((rho * t_iso_j - elapsed_j) * ref_j)``. We solve the LP
  ``z*(rho) = max z s.t. n_j(x) >= z * b_j(rho)``: ``z*`` increases with ``rho`` and is 1 at the optimum.
  Each solve brackets it (``z < 1``: ``rho`` too low; its ``x`` achieves ``max_j rho_j(x)``: an upper
  bound); the next ``rho`` is that achieved value (a Dinkelbach step, exact at once when nothing has
  elapsed), then secant steps on ``log z*(rho) = 0``, bisection if a step leaves the bracket; it stops at
  ``z = 1`` (1e-9) or a bracket of 1e-8 (relative), typically after 3-7 LPs. With grid weights,
  ``rho + g`` is then minimised by golden-section search over ``rho`` (the least grid rate that meets
  ``rho`` is convex in ``rho``).
* ``min-makespan``: maximise ``r - g(x) / M_eq`` subject to ``thr_j(x) >= r * remaining_j`` for
  ``j in J+`` with work left; ``1 / r`` is the makespan estimate (s) and ``M_eq = max_j remaining_j /
  ref_j`` the makespan of the equal share (the LP works in ``q = r * M_eq``, ``U = 1``). Objective in 1/s.
* ``max-throughput``: maximise ``sum_j weight_j n_j(x) - U g(x)``, ``U = sum_{J+} weight_j``.
* ``min-cost``: maximise ``sum_j weight_j n_j(x) - U (m(x) + g(x)) - sum_{j in SLO} M_j s_j`` where
  ``m(x)`` is the money rate (rent ``gang * cost_per_acc_h`` plus energy at ``price_per_mwh``, over the
  same for the whole cluster busy) and ``s_j = max(0, b_j - n_j(x))`` the shortfall of job j's SLO
  ``thr_j(x) >= remaining_j / deadline_j`` (``b_j`` is that bound normalised, capped at what the job can
  get alone). ``M_j = 1000 * G * max_c(gang_c / n_c)`` over j's columns, ``G`` the most any column gains
  per accelerator-time: serving SLOs always wins by a factor 1000 over what the capacity would otherwise
  earn, so SLOs are met whenever they can be; when they cannot, the shortfall is minimised and
  ``Allocation.status`` is ``"slo-infeasible"`` (nothing is raised).

The fairness and makespan LPs have many optima (a max-min optimum may leave every job but the worst at
the minimum and capacity idle). They are solved lexicographically: after the policy's objective, a
second solve maximises efficiency, ``sum_{J+} n_j(x) - |J+| g(x)``, with the first objective held within
1e-7 (relative) of its optimum. So no capacity is wasted that a job could use. Every LP is solved by
:func:`~gridshift.plan.allocation.solve.solve_job_lp` (exact; large ones by aggregation, see
:mod:`gridshift.plan.allocation.aggregate`).

Heterogeneity-agnostic variant (``aware=False``): the same policy on
:func:`~gridshift.plan.allocation.agnostic.agnostic_view` (each site one pool of identical accelerators, each row's throughput the same everywhere), split back over the
real pools in proportion to their size and repaired to the true pool sizes. ``Allocation.objective`` is
always :func:`evaluate` under the true throughputs, so aware and agnostic can be compared.

No I/O here.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from gridshift.errors import PlanError
from gridshift.plan.allocation.agnostic import agnostic_view, repair
from gridshift.plan.allocation.job_lp import INF, Columns, JobLP, JobSol
from gridshift.plan.allocation.need_classes import least_parameter
from gridshift.plan.allocation.problem import Allocation, AllocationProblem
from gridshift.plan.allocation.solve import solve_job_lp
from gridshift.plan.allocation.terms import Terms, first_rows, job_max, money_rate

POLICIES: tuple[str, ...] = ("max-min-fairness", "finish-time-fairness", "min-makespan", "max-throughput",
                             "min-cost")
SENSE: dict[str, int] = {p: 1 for p in POLICIES} | {"finish-time-fairness": -1}  # +1 maximised, -1 minimised
SLO_PENALTY_FACTOR = 1e3
_NEEDS_REMAINING = ("finish-time-fairness", "min-makespan")


# ------------------------------------------------------------------------------------------- public API
def allocate(policy: str, problem: AllocationProblem, *, aware: bool = True,
             time_limit_s: float = 10.0) -> Allocation:
    """Time fractions ``x[row, pool]`` for ``policy`` (one of :data:`POLICIES`); always base-feasible
    (``problem.check`` passes). ``objective`` is :func:`evaluate` of ``x``; ``solve_s`` the wall time of
    the whole call (model building and every LP solve); ``status`` is ``"optimal"``, ``"slo-infeasible"``
    (min-cost) or ``"time-limit"`` (no optimum within ``time_limit_s``: the best solution found, or the
    equal time share if none)."""
    if policy not in POLICIES:
        raise PlanError(f"unknown allocation policy {policy!r}; valid: {', '.join(POLICIES)}")
    t0 = time.perf_counter()
    if problem.n_rows == 0:
        return Allocation(x=np.zeros((0, problem.n_pools)), objective=0.0, solve_s=0.0, policy=policy)
    if policy in _NEEDS_REMAINING and problem.remaining_steps is None:
        raise PlanError(f"policy {policy!r} needs remaining_steps")
    view, split = (problem, None) if aware else agnostic_view(problem)
    ctx = _Ctx(view, t0 + time_limit_s)
    try:
        x, status = _SOLVERS[policy](ctx)
        x = ctx.cols.dense(x, view.throughput.shape)
    except PlanError:
        if time.perf_counter() < ctx.deadline:
            raise
        x, status = _equal_share(view), "time-limit"  # out of time: the reference allocation
    x = repair(problem, x if split is None else split(x))
    terms = ctx.t if aware else None
    value = evaluate(policy, problem, x, terms=terms)
    if status == "time-limit":  # a solver stopped early: keep the equal share if that is better
        eq = repair(problem, _equal_share(view) if split is None else split(_equal_share(view)))
        eq_value = evaluate(policy, problem, eq, terms=terms)
        if SENSE[policy] * (eq_value - value) > 0:
            x, value = eq, eq_value
    return Allocation(x=x, objective=value, solve_s=time.perf_counter() - t0, policy=policy, status=status)


def evaluate(policy: str, problem: AllocationProblem, x: np.ndarray, *, terms: Terms | None = None) -> float:
    """The policy's objective (module docstring) for any allocation ``x``, under the problem's throughputs.
    Higher is better except for ``finish-time-fairness`` (see :data:`SENSE`)."""
    if policy not in POLICIES:
        raise PlanError(f"unknown allocation policy {policy!r}; valid: {', '.join(POLICIES)}")
    if problem.n_rows == 0:
        return 0.0
    if policy in _NEEDS_REMAINING and problem.remaining_steps is None:
        raise PlanError(f"policy {policy!r} needs remaining_steps")
    t = terms if terms is not None else Terms(problem)
    n = t.norm_thr(x)
    g = t.grid_of(x)
    if policy == "max-min-fairness":
        jobs = t.eligible & (t.weight > 0)
        return (float(np.min(n[jobs] / t.weight[jobs])) if jobs.any() else 0.0) - g
    if policy == "finish-time-fairness":
        jobs = np.flatnonzero(t.eligible & (t.rem > 0))
        if not jobs.size:
            return g
        return float(np.max(_rho(t, jobs, problem.job_throughput(x)[jobs]))) + g
    if policy == "min-makespan":
        jobs = t.eligible & (t.rem > 0)
        if not jobs.any():
            return -g
        thr = problem.job_throughput(x)
        return float(np.min(thr[jobs] / t.rem[jobs])) - g / float(np.max(t.rem[jobs] / t.ref[jobs]))
    u = float(t.weight[t.eligible].sum())
    value = float(t.weight @ n) - u * g
    if policy == "max-throughput":
        return value
    slo = _Slo(t)
    value -= u * float(np.sum(slo.money * x))
    if slo.jobs.size:
        value -= float(slo.penalty @ np.maximum(slo.need - n[slo.jobs], 0.0))
    return value


# ------------------------------------------------------------------------------------------- policies
class _Ctx:
    """One solve: the problem, its normalisations and columns, and the deadline of the time limit."""

    def __init__(self, pr: AllocationProblem, deadline: float) -> None:
        self.pr, self.deadline = pr, deadline
        self.t = Terms(pr)
        self.cols = Columns(pr, self.t)
        self.J = self.t.J

    def solve(self, lp: JobLP, warm: JobSol | None = None, warm_prices: bool = False,
              want_x: bool = True) -> JobSol:
        return solve_job_lp(lp, deadline=self.deadline, warm=warm, warm_prices=warm_prices, want_x=want_x)

    def efficiency(self) -> np.ndarray:
        """Secondary objective of the lexicographic policies: total normalised throughput - grid term."""
        return self.cols.norm - np.count_nonzero(self.t.eligible) * self.cols.grid

    def lexicographic(self, lp: JobLP) -> JobSol:
        """Solve ``lp`` (objective ``f z + e.x``), then maximise efficiency holding that objective within
        1e-7 (relative) of its optimum: ``z`` fixed when ``e = 0``, else a hold row."""
        first = self.solve(lp, want_x=False)  # (its value, z and prices; x only as a warm start)
        hold = first.value - 1e-7 * max(1.0, abs(first.value))
        if np.any(lp.e != 0):
            second = replace(lp, e=self.efficiency(), f=0.0).hold(lp.e, lp.f, hold)
        else:
            z = min(max(lp.z_lo, hold / lp.f), first.z) if lp.f > 0 else first.z
            second = replace(lp, e=self.efficiency(), f=0.0, z_lo=z, z_hi=z)
        # capacity priced (it binds): the needs pin most jobs where the first stage put them, start there;
        # capacity to spare: jobs will move for efficiency, start afresh from sampled prices
        return self.solve(second, warm=first if np.any(first.lam > 0) else None)


def _max_min_fairness(c: _Ctx):
    t = c.t
    req = t.eligible & (t.weight > 0)  # n_j(x) - weight_j z >= 0
    lp = JobLP.over(c.cols, c.J, -c.cols.grid, req=req, b=np.where(req, t.weight, 0.0), f=1.0,
                    z_hi=INF if req.any() else 0.0)
    sol = c.lexicographic(lp)
    return sol.x, sol.status


def _min_makespan(c: _Ctx):
    t = c.t
    req = t.eligible & (t.rem > 0)
    need_s = t.rem / t.ref  # time to finish at the equal share
    m_eq = float(need_s[req].max()) if req.any() else 1.0
    lp = JobLP.over(c.cols, c.J, -c.cols.grid, req=req, b=np.where(req, need_s / m_eq, 0.0), f=1.0,
                    z_hi=INF if req.any() else 0.0)  # z = r * M_eq: n_j(x) >= z * need_j / M_eq
    sol = c.lexicographic(lp)
    return sol.x, sol.status


def _max_throughput(c: _Ctx):
    t = c.t
    u = float(t.weight[t.eligible].sum())
    sol = c.solve(JobLP.over(c.cols, c.J, t.weight[c.cols.job] * c.cols.norm - u * c.cols.grid))
    return sol.x, sol.status


def _min_cost(c: _Ctx):
    t = c.t
    u = float(t.weight[t.eligible].sum())
    slo = _Slo(t)
    req = np.zeros(c.J, bool)
    req[slo.jobs] = True
    beta, pen = np.zeros(c.J), np.zeros(c.J)
    beta[slo.jobs], pen[slo.jobs] = slo.need, slo.penalty
    money = slo.money[c.cols.row, c.cols.pool]
    lp = JobLP.over(c.cols, c.J, t.weight[c.cols.job] * c.cols.norm - u * (money + c.cols.grid),
                    req=req, beta=beta, pen=pen)
    sol = c.solve(lp)
    short = lp.shortfall(sol.x, 0.0)
    status = sol.status
    if slo.unmeetable or np.any(short > 1e-7 + 1e-6 * beta):
        status = "slo-infeasible"
    return sol.x, status


def _finish_time_fairness(c: _Ctx):
    t, cols = c.t, c.cols
    req = t.eligible & (t.rem > 0)
    jobs = np.flatnonzero(req)
    if not jobs.size:
        return c.lexicographic(JobLP.over(cols, c.J, -cols.grid)).x, "optimal"
    rem, e = t.rem[jobs], t.elapsed[jobs]
    t_iso = e + rem / t.ref[jobs]

    def lp_at(rho: float, obj: np.ndarray, **kw) -> JobLP:  # n_j(x) >= z * b_j(rho)
        b = np.zeros(c.J)
        b[jobs] = rem / ((rho * t_iso - e) * t.ref[jobs])
        return JobLP.over(cols, c.J, obj, req=req, b=b, **kw)

    def rho_of(x: np.ndarray | None, rho: float, z: float) -> float:
        if x is not None:
            return float(np.max(_rho(t, jobs, np.bincount(cols.job, cols.thr * x, c.J)[jobs])))
        if z <= 0:  # (a class solution without x: every need at rho met z times over)
            return np.inf
        return float(np.max((e + (rho * t_iso - e) / z) / t_iso))

    zero = np.zeros(cols.n)
    lo = float(np.max((e + rem / t.best[jobs]) / t_iso))  # each job alone on its best column: a lower bound
    hi, rho, sol, seen = np.inf, lo, None, []
    # jobs in few classes: the least rho directly, on the class LP (need_classes.least_parameter)
    scale = rem / t.ref[jobs]

    def need(r: float) -> np.ndarray:
        out = np.zeros(c.J)
        out[jobs] = scale / (r * t_iso - e)
        return out

    def dneed(r: float) -> np.ndarray:
        out = np.zeros(c.J)
        out[jobs] = -scale * t_iso / (r * t_iso - e) ** 2
        return out

    direct = least_parameter(lp_at(lo, zero), need, dneed, lo, c.deadline)
    if direct is not None:
        hi = lo = direct
    for _ in range(0 if direct is not None else 40):
        sol = c.solve(lp_at(rho, zero, f=1.0, z_hi=INF), warm=sol, warm_prices=True, want_x=False)
        hi = min(hi, rho_of(sol.x, rho, sol.z))  # x achieves this rho: an upper bound
        if sol.z < 1.0:
            lo = max(lo, rho)  # needs at rho cannot all be met: a lower bound
        if hi - lo <= 1e-8 * hi or abs(sol.z - 1.0) <= 1e-9:
            break
        seen.append((rho, np.log(sol.z)))
        rho = hi  # Dinkelbach step: the rho x achieves
        if len(seen) >= 2 and seen[-1][1] != seen[-2][1]:  # secant on log z(rho) = 0 (z is increasing)
            (r1, g1), (r2, g2) = seen[-2:]
            rho = r2 - g2 * (r2 - r1) / (g2 - g1)
        if not lo < rho < hi:
            rho = 0.5 * (lo + hi)
    best = hi
    rho = best * (1 + 1e-7)
    if np.any(cols.grid != 0):
        rho, f = _golden_grid(c, lambda r: lp_at(r, -cols.grid, z_lo=1.0, z_hi=1.0), rho)
        final = lp_at(rho, c.efficiency(), z_lo=1.0, z_hi=1.0).hold(-cols.grid, 0.0, -f - 1e-7 * max(1.0, f))
    else:
        final = lp_at(rho, c.efficiency(), z_lo=1.0, z_hi=1.0)
    sol = c.solve(final, warm=sol if sol is not None and np.any(sol.lam > 0) else None)  # as in lexicographic
    return sol.x, sol.status


def _golden_grid(c: _Ctx, lp_at, rho_lo: float) -> tuple[float, float]:
    """Minimise ``rho + f(rho)``, ``f(rho)`` = least grid rate meeting ``rho`` (convex, decreasing), over
    ``[rho*, rho* + f(rho*)]`` (beyond that ``rho`` alone costs more than any grid saving)."""
    warm = None

    def f(rho: float) -> float:
        nonlocal warm
        warm = c.solve(lp_at(rho), warm=warm, warm_prices=True, want_x=False)
        return -warm.value

    f_lo = f(rho_lo)
    if f_lo <= 1e-9:
        return rho_lo, f_lo
    a, b = rho_lo, rho_lo + f_lo
    phi = (np.sqrt(5.0) - 1) / 2
    x1, x2 = b - phi * (b - a), a + phi * (b - a)
    f1, f2 = f(x1), f(x2)
    while b - a > 1e-6 * (1 + b):
        if x1 + f1 <= x2 + f2:
            b, x2, f2 = x2, x1, f1
            x1 = b - phi * (b - a)
            f1 = f(x1)
        else:
            a, x1, f1 = x1, x2, f2
            x2 = a + phi * (b - a)
            f2 = f(x2)
    return min([(rho_lo + f_lo, rho_lo, f_lo), (x1 + f1, x1, f1), (x2 + f2, x2, f2)])[1:]


_SOLVERS = {"max-min-fairness": _max_min_fairness, "finish-time-fairness": _finish_time_fairness,
            "min-makespan": _min_makespan, "max-throughput": _max_throughput, "min-cost": _min_cost}


# ------------------------------------------------------------------------------------------- helpers
def _equal_share(pr: AllocationProblem) -> np.ndarray:
    """The equal time share behind ``ref`` (terms docstring): each job's first row runs ``s`` of the
    time, spread over the pools in proportion to their size (0 where it cannot run)."""
    x = np.zeros(pr.throughput.shape)
    total = float(pr.count.sum())
    if total > 0:
        r0 = first_rows(pr)
        share = min(1.0, total / float(pr.gang[r0].sum()))
        x[r0] = np.where(pr.throughput[r0] > 0, share * pr.count[None, :] / total, 0.0)
    return x


def _rho(t: Terms, jobs: np.ndarray, thr: np.ndarray) -> np.ndarray:
    """Finish-time fairness ``rho_j`` of ``jobs`` at job throughputs ``thr`` (inf where 0)."""
    rem, e = t.rem[jobs], t.elapsed[jobs]
    t_iso = e + rem / t.ref[jobs]
    with np.errstate(divide="ignore"):
        return (e + np.where(thr > 0, rem / np.where(thr > 0, thr, 1.0), np.inf)) / t_iso


class _Slo:
    """SLO terms of min-cost: jobs with a deadline and work left, normalised need, penalty per unit."""

    def __init__(self, t: Terms) -> None:
        pr = t.pr
        self.money = money_rate(pr)  # [R, P]
        dl = np.full(t.J, np.inf) if pr.deadline_s is None else np.asarray(pr.deadline_s, float)
        rem = np.zeros(t.J) if t.rem is None else t.rem
        wants = np.isfinite(dl) & (rem > 0)
        self.unmeetable = bool(np.any(wants & ~t.eligible))
        self.jobs = np.flatnonzero(wants & t.eligible)
        cap = t.best[self.jobs] / t.ref[self.jobs]  # the most the job can get alone
        raw = rem[self.jobs] / (np.maximum(dl[self.jobs], 1e-9) * t.ref[self.jobs])
        self.unmeetable |= bool(np.any(raw > cap * (1 + 1e-9)))
        self.need = np.minimum(raw, cap)
        u = float(t.weight[t.eligible].sum())
        ok = t.upper > 0
        n = np.where(ok, pr.throughput / t.ref[pr.job_of_row][:, None], 0.0)
        gang = np.maximum(pr.gang, 1e-12)[:, None]
        gain = (np.abs(t.weight[pr.job_of_row])[:, None] * n + u * np.abs(self.money + t.grid)) / gang
        g_max = float(gain[ok].max()) if ok.any() else 1.0
        acc_per_n = job_max(pr, np.where(ok, gang / np.where(ok, n, 1.0), 0.0).max(axis=1))  # [J]
        self.penalty = SLO_PENALTY_FACTOR * max(g_max, 1e-12) * acc_per_n[self.jobs]

