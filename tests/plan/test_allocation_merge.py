"""Identical jobs merged into one class (plan.allocation.merge): the same optimum as the LP over every job,
every member given the same time, on problems of every policy with many copies of a few jobs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_allocation_policies import random_problem, solver_settings

from gridshift.plan.allocation import solve
from gridshift.plan.allocation.merge import merge_identical
from gridshift.plan.allocation.policies import POLICIES, allocate
from gridshift.plan.allocation.problem import AllocationProblem


def with_copies(pr: AllocationProblem, copies: np.ndarray) -> tuple[AllocationProblem, np.ndarray]:
    """``pr`` with job j repeated ``copies[j]`` times; returns the problem and each new job's original."""
    orig = np.repeat(np.arange(pr.n_jobs), copies)
    rows, jobs = [], []
    for new, j in enumerate(orig):
        r = np.flatnonzero(pr.job_of_row == j)
        rows.append(r)
        jobs.append(np.full(r.size, new))
    rows, jobs = np.concatenate(rows), np.concatenate(jobs)

    def per_job(a):
        return None if a is None else np.asarray(a)[orig]

    out = AllocationProblem(throughput=pr.throughput[rows], gang=pr.gang[rows], job_of_row=jobs, count=pr.count,
                            weight=per_job(pr.weight), remaining_steps=per_job(pr.remaining_steps),
                            elapsed_s=per_job(pr.elapsed_s), deadline_s=per_job(pr.deadline_s),
                            pool_site=pr.pool_site, cap_w=pr.cap_w,
                            power_w=None if pr.power_w is None else pr.power_w[rows],
                            carbon_g_per_kwh=pr.carbon_g_per_kwh, price_per_mwh=pr.price_per_mwh,
                            cost_per_acc_h=pr.cost_per_acc_h, carbon_weight=pr.carbon_weight,
                            price_weight=pr.price_weight)
    return out, orig


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_merged_solve_matches_the_lp_over_every_job(seed):
    rng = np.random.default_rng(seed)
    base = random_problem(seed, int(rng.integers(2, 6)))
    pr, orig = with_copies(base, rng.integers(1, 9, base.n_jobs))
    for policy in POLICIES:
        merged = allocate(policy, pr)
        old = solve.merge_identical
        solve.merge_identical = lambda lp: None
        try:
            ref = allocate(policy, pr)
        finally:
            solve.merge_identical = old
        pr.check(merged.x)
        assert merged.status == ref.status
        assert merged.objective == pytest.approx(ref.objective, rel=2e-6, abs=1e-9), policy
        # copies of one job get the same time on every pool
        per_job = np.zeros((pr.n_jobs, pr.n_pools))
        np.add.at(per_job, pr.job_of_row, merged.x)
        for j in range(base.n_jobs):
            same = per_job[orig == j]
            assert np.allclose(same, same[0], atol=1e-9), policy


def test_merging_also_runs_in_the_aggregated_solve():
    pr, _ = with_copies(random_problem(7, 5), np.full(5, 12))
    with solver_settings(FULL_LP_MAX_JOBS=4, SAMPLE_JOBS=4, SAMPLE_SHARE=4):
        a = allocate("max-min-fairness", pr)
    old = solve.merge_identical
    solve.merge_identical = lambda lp: None
    try:
        b = allocate("max-min-fairness", pr)
    finally:
        solve.merge_identical = old
    assert a.objective == pytest.approx(b.objective, rel=2e-6)


def test_distinct_jobs_are_not_merged():
    from gridshift.plan.allocation.job_lp import Columns, JobLP
    from gridshift.plan.allocation.terms import Terms

    rng = np.random.default_rng(3)
    pr = AllocationProblem(throughput=rng.uniform(1, 5, (8, 3)), gang=np.ones(8), job_of_row=np.arange(8),
                           count=[2, 2, 2])
    t = Terms(pr)
    lp = JobLP.over(Columns(pr, t), t.J, np.ones(Columns(pr, t).n))
    assert merge_identical(lp) is None
    pr2, _ = with_copies(pr, np.full(8, 3))
    t2 = Terms(pr2)
    cols = Columns(pr2, t2)
    small, expand, _ = merge_identical(JobLP.over(cols, t2.J, cols.norm))
    assert small.n_jobs == 8
