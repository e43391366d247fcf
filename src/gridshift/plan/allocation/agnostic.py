"""The heterogeneity-agnostic view of an allocation problem (each site one pool of identical
accelerators) with the map back to the real pools, and the final feasibility repair every policy's
allocation goes through.
"""

from __future__ import annotations

import numpy as np

from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.terms import has_caps, pool_sites


def agnostic_view(pr: AllocationProblem) -> tuple[AllocationProblem, callable]:
    """The problem as a heterogeneity-agnostic scheduler sees it, and the map back to real pools.

    Each site's pools become one pool (counts summed). Every row has one throughput everywhere: its
    count-weighted mean over the pools it can run on (type-independent; gang scaling kept); a row can use a
    site if it can run on any pool there. Power, carbon, price and rent become the count-weighted means
    over the pools the row can use (so the split below draws exactly the power the aggregate LP saw).
    The split gives a row's site fraction to that site's pools in proportion to their counts, over the
    pools where the row can run; :func:`repair` then scales down any pool this over-fills (possible only
    when rows cannot run on every pool of a site). With ``pr.extra["agnostic_split"] == "all-pools"``
    (Gavel's agnostic LAS, whose LP sets every throughput to 1, so it gives a job time on a type where the
    job cannot run, and whose scheduler then gives the job priority 0 there: that time is lost) the split
    is over every pool of the site, and :func:`repair` drops the share on pools where the row cannot run.
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

    all_pools = pr.extra.get("agnostic_split") == "all-pools"

    def split(x_site: np.ndarray) -> np.ndarray:
        if all_pools:
            return x_site[:, site] * pr.count[None, :] / np.maximum(site_count, 1e-300)[site][None, :]
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
