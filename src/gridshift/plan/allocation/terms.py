"""The terms every allocation policy is written in: per-job normalisations and per-(row, pool) rates of
one :class:`~gridshift.plan.allocation.problem.AllocationProblem`.

Normalisations (all computed from the problem alone, so :func:`gridshift.plan.allocation.policies.evaluate` and the
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

import numpy as np

from gridshift.plan.allocation.problem import AllocationProblem


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
