"""The allocation problem shared by every heterogeneity policy.

Rows are *job variants*: a job with a fixed gang size has one row; a job whose gang size the policy may
choose (between its min and max) has one row per allowed size. Columns are *pools*: accelerators of one
type at one site. A solution ``x[r, p]`` is the fraction of wall-clock time row ``r`` runs on pool ``p``
(with ``gang[r]`` accelerators of that pool).

Base constraints (Gavel's, extended with sites and power):

* ``x >= 0`` and ``x[r, p] = 0`` where ``throughput[r, p] == 0`` (cannot run there);
* every job runs at most all the time: ``sum over its rows and pools of x <= 1``;
* no pool over-allocated: ``sum_r gang[r] * x[r, p] <= count[p]``;
* no site above its power cap, when one is given: ``sum_{r, p at s} power_w[r, p] * x[r, p] <= cap_w[s]``
  where ``cap_w`` is the power available to jobs (cap minus the idle/host base load of the site).

Units: throughput in work units (steps) per second, power in W, time in s, cost per accelerator-hour.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class AllocationProblem:
    throughput: np.ndarray  # [R, P] steps/s of row r on pool p with gang[r] accelerators (0 = cannot run)
    gang: np.ndarray  # [R] accelerators row r uses
    job_of_row: np.ndarray  # [R] index of the job (0..J-1) each row belongs to
    count: np.ndarray  # [P] accelerators in each pool
    weight: np.ndarray | None = None  # [J] priority weights (default 1; a weight-2 job deserves twice the share)
    remaining_steps: np.ndarray | None = None  # [J] work left (makespan, finish-time fairness, SLOs)
    elapsed_s: np.ndarray | None = None  # [J] time since arrival (finish-time fairness)
    deadline_s: np.ndarray | None = None  # [J] seconds from now to each job's SLO (inf = none)
    pool_site: np.ndarray | None = None  # [P] site index of each pool
    cap_w: np.ndarray | None = None  # [S] power available to jobs at each site, W (inf = uncapped)
    power_w: np.ndarray | None = None  # [R, P] power drawn by row r running on pool p, W
    carbon_g_per_kwh: np.ndarray | None = None  # [P] intensity where pool p is (for carbon weight)
    price_per_mwh: np.ndarray | None = None  # [P] energy price where pool p is
    cost_per_acc_h: np.ndarray | None = None  # [P] rent per accelerator-hour (min-cost policy)
    carbon_weight: float = 0.0  # share of the objective traded for carbon (0 = ignore, see policies)
    price_weight: float = 0.0  # share of the objective traded for energy cost
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.throughput = np.asarray(self.throughput, dtype=float)
        r, p = self.throughput.shape
        self.gang = np.asarray(self.gang, dtype=float).reshape(r)
        self.job_of_row = np.asarray(self.job_of_row, dtype=np.int64).reshape(r)
        self.count = np.asarray(self.count, dtype=float).reshape(p)
        if r and (self.job_of_row.min() < 0 or np.any(np.diff(np.unique(self.job_of_row)) != 1)
                  or self.job_of_row.min() != 0):
            raise ValueError("job_of_row must number jobs 0..J-1 without gaps")

    @property
    def n_rows(self) -> int:
        return self.throughput.shape[0]

    @property
    def n_pools(self) -> int:
        return self.throughput.shape[1]

    @property
    def n_jobs(self) -> int:
        return int(self.job_of_row.max()) + 1 if self.n_rows else 0

    def job_throughput(self, x: np.ndarray) -> np.ndarray:
        """Effective steps/s of each job under allocation ``x`` ([R, P] -> [J])."""
        return np.bincount(self.job_of_row, weights=(self.throughput * x).sum(axis=1), minlength=self.n_jobs)

    def check(self, x: np.ndarray, tol: float = 1e-6) -> None:
        """Raise ValueError if ``x`` breaks a base constraint (used by tests and the mechanism)."""
        if x.shape != self.throughput.shape:
            raise ValueError(f"allocation shape {x.shape} != {self.throughput.shape}")
        if np.any(x < -tol):
            raise ValueError("negative time fraction")
        if np.any(x[self.throughput <= 0] > tol):
            raise ValueError("time given where the job cannot run")
        per_job = np.bincount(self.job_of_row, weights=x.sum(axis=1), minlength=self.n_jobs)
        if np.any(per_job > 1 + tol):
            raise ValueError(f"job {int(np.argmax(per_job))} given more than all the time ({per_job.max():.4f})")
        used = self.gang @ x
        if np.any(used > self.count + tol * np.maximum(1, self.count)):
            raise ValueError(f"pool {int(np.argmax(used - self.count))} over-allocated")
        if self.cap_w is not None and self.power_w is not None and self.pool_site is not None:
            site_w = np.bincount(self.pool_site, weights=(self.power_w * x).sum(axis=0), minlength=len(self.cap_w))
            if np.any(site_w > self.cap_w + tol * np.maximum(1, self.cap_w)):
                raise ValueError(f"site {int(np.argmax(site_w - self.cap_w))} above its power cap")


@dataclass
class Allocation:
    x: np.ndarray  # [R, P] time fractions
    objective: float  # the policy's own objective value (in its own units; see each policy)
    solve_s: float  # wall time of the LP solve(s)
    policy: str
    status: str = "optimal"
