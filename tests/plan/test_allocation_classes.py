"""Jobs with identical columns but different needs solved as classes (plan.allocation.need_classes): the
split meets every need, and the class LP (with its cuts), the least finish-time-fairness ``rho`` and every
policy on class-structured problems reach the optimum of the LP over every job."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridshift.plan.allocation import need_classes
from gridshift.plan.allocation.job_lp import INF, Columns, JobLP
from gridshift.plan.allocation.need_classes import solve_by_classes, solve_soft_by_classes, split_class
from gridshift.plan.allocation.policies import POLICIES, allocate
from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.solve import solve_job_lp
from gridshift.plan.allocation.terms import Terms


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_split_meets_every_need_within_the_class_totals(seed):
    """Needs that some allocation meets (drawn from one) are met by the split, every job's time at most 1,
    no column above its total, and all of it used when the jobs have the time."""
    rng = np.random.default_rng(seed)
    P, M = int(rng.integers(1, 5)), int(rng.integers(1, 40))
    n = rng.uniform(0.2, 3.0, P)  # (columns where a job cannot run are not columns)
    share = rng.dirichlet(np.ones(P), M) * rng.uniform(0, 1, (M, 1)) * (rng.random((M, P)) < 0.7)
    X = share.sum(axis=0) + rng.uniform(0, 2, P) * (rng.random(P) < 0.3)
    d = share @ n * rng.uniform(0.2, 1.0, M) * (rng.random(M) < 0.9)
    xs = split_class(n, X, d)
    assert xs is not None
    assert np.all(xs >= -1e-12)
    assert np.all(xs.sum(axis=1) <= 1 + 1e-9)
    assert np.all(xs @ n >= d * (1 - 1e-9) - 1e-12)
    assert np.all(xs.sum(axis=0) <= X * (1 + 1e-9) + 1e-12)
    if X.sum() <= M:
        assert np.allclose(xs.sum(axis=0), X, rtol=1e-9, atol=1e-9)


def test_split_refuses_needs_no_allocation_meets():
    # speeds (2, 1), one unit of each: 3 in all, and two jobs need 1.9 each
    assert split_class(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([1.9, 1.9])) is None
    # 3.6 in all is enough, but one job can get at most 2 (all the fast time)
    assert split_class(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([2.1, 0.5])) is None
    assert split_class(np.array([2.0, 1.0]), np.array([1.0, 1.0]), np.array([1.9, 1.0])) is not None


def class_problem(seed: int, J: int, caps: bool = False) -> AllocationProblem:
    """A few job types (identical rows) with gang sizes, each job its own work and elapsed time."""
    rng = np.random.default_rng(seed)
    P = int(rng.integers(2, 5))
    types = int(rng.integers(2, 6))
    speed = rng.uniform(0.5, 8.0, (types, P)) * (rng.random((types, P)) > 0.15)
    speed[:, 0] = np.maximum(speed[:, 0], 0.5)
    gang_of = rng.choice([1, 2, 4], types)
    t = rng.integers(0, types, J)
    thr = speed[t] * gang_of[t, None] ** 0.8
    kw = {}
    if caps:
        kw = dict(pool_site=np.zeros(P, np.int64), cap_w=np.array([float(rng.uniform(500, 3000))]),
                  power_w=gang_of[t, None] * rng.uniform(100, 400, P)[None, :],
                  carbon_g_per_kwh=rng.uniform(100, 500, P), carbon_weight=0.5)
    rem = rng.uniform(1e3, 1e6, J)
    deadline = np.where(rng.random(J) < 0.4, rem / (speed[t, 0] * rng.uniform(0.3, 3.0, J)), np.inf)
    return AllocationProblem(throughput=thr, gang=gang_of[t].astype(float), job_of_row=np.arange(J),
                             count=rng.integers(2, 12, P).astype(float), remaining_steps=rem,
                             elapsed_s=rng.uniform(0, 1e4, J) * (rng.random(J) < 0.7), deadline_s=deadline,
                             cost_per_acc_h=rng.uniform(0.5, 3.0, P), **kw)


def random_class_case(seed: int, caps: bool, share_with_needs: float):
    """A class problem of 70-160 jobs, its columns, and which eligible jobs carry a need."""
    rng = np.random.default_rng(seed)
    pr = class_problem(seed, int(rng.integers(70, 160)), caps)
    t = Terms(pr)
    return rng, pr, Columns(pr, t), t.eligible & (rng.random(pr.n_jobs) < share_with_needs)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), caps=st.booleans())
def test_class_lp_matches_the_lp_over_every_job(seed, caps):
    """max z with per-job needs ``z b_j`` (the first stage), then fixed ``z`` and constant needs with an
    efficiency objective (the second): the same optimum and coupling prices as the whole per-job LP."""
    rng, pr, cols, req = random_class_case(seed, caps, share_with_needs=0.9)
    J = pr.n_jobs
    b = np.where(req, rng.uniform(0.2, 2.0, J), 0.0)
    first = JobLP.over(cols, J, np.zeros(cols.n), req=req, b=b, f=1.0, z_hi=INF)
    got = solve_by_classes(first, deadline=np.inf)
    ref = solve_job_lp(first, deadline=np.inf, whole=True)
    assert got is not None
    assert got.z == pytest.approx(ref.z, rel=1e-7)
    z = 0.9 * got.z
    second = JobLP.over(cols, J, cols.norm, req=req, b=b, f=0.0, z_lo=z, z_hi=z)
    got2 = solve_by_classes(second, deadline=np.inf)
    ref2 = solve_job_lp(second, deadline=np.inf, whole=True)
    assert got2 is not None
    assert got2.value == pytest.approx(ref2.value, rel=1e-7)
    # the split is a feasible allocation of the per-job LP with that value
    assert np.all(second.shortfall(got2.x, z) <= 1e-7 * (1 + second.b * z))
    assert np.all(np.bincount(second.job, got2.x, J) <= 1 + 1e-7)
    assert np.all(second.A @ got2.x <= second.cap * (1 + 1e-7) + 1e-9)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), caps=st.booleans())
def test_soft_needs_over_classes_match_the_lp_over_every_job(seed, caps):
    """Needs with a penalty per unit of shortfall (min-cost's SLOs), some beyond what the cluster can
    give: the class LP's shortfall taken off the largest needs reaches the per-job optimum."""
    rng, pr, cols, req = random_class_case(seed, caps, share_with_needs=0.6)
    J = pr.n_jobs
    beta = np.where(req, rng.uniform(0.0, 3.0, J), 0.0)
    row_pen = rng.uniform(0.5, 5.0, 16)
    key = np.unique(pr.throughput, axis=0, return_inverse=True)[1].ravel() % 16
    lp = JobLP.over(cols, J, cols.norm - rng.uniform(0.0, 0.5) * cols.gang, req=req, beta=beta, pen=row_pen[key])
    got = solve_soft_by_classes(lp, deadline=np.inf)
    ref = solve_job_lp(lp, deadline=np.inf, whole=True)
    assert got is not None
    assert got.value == pytest.approx(ref.value, rel=1e-7, abs=1e-9)
    assert got.value == pytest.approx(lp.value(got.x, 0.0), rel=1e-12)
    assert np.all(np.bincount(lp.job, got.x, J) <= 1 + 1e-7)
    assert np.all(lp.A @ got.x <= lp.cap * (1 + 1e-7) + 1e-9)


def test_class_lp_is_used_only_where_jobs_share_columns():
    pr = class_problem(3, 120)
    t = Terms(pr)
    cols = Columns(pr, t)
    lp = JobLP.over(cols, pr.n_jobs, cols.norm)
    assert solve_by_classes(lp, deadline=np.inf) is not None
    distinct = AllocationProblem(throughput=pr.throughput * np.linspace(1, 2, pr.n_jobs)[:, None], gang=pr.gang,
                                 job_of_row=pr.job_of_row, count=pr.count)
    t2 = Terms(distinct)
    cols2 = Columns(distinct, t2)
    assert solve_by_classes(JobLP.over(cols2, pr.n_jobs, cols2.norm), deadline=np.inf) is None


@pytest.mark.parametrize("seed", range(4))
def test_policies_over_classes_reach_the_per_job_optimum(seed, monkeypatch):
    """Every policy on a class-structured problem (finish-time fairness through its least ``rho`` on the
    class LP, makespan through the class LP): the objective of the per-job solve."""
    pr = class_problem(seed, 150, caps=seed % 2 == 1)
    fast = {p: allocate(p, pr) for p in POLICIES}
    monkeypatch.setattr(need_classes, "MIN_JOBS", 10**9)
    for p in POLICIES:
        ref = allocate(p, pr)
        pr.check(fast[p].x)
        assert fast[p].objective == pytest.approx(ref.objective, rel=2e-6, abs=1e-9), p


def test_identical_jobs_get_identical_time():
    """Jobs of one class with equal needs (max-min fairness) get equal shares, as merging gave them."""
    pr = class_problem(5, 120)
    a = allocate("max-min-fairness", pr)
    rows = pr.throughput
    for key in np.unique(rows, axis=0):
        same = np.flatnonzero(np.all(rows == key, axis=1))
        assert np.allclose(a.x[same], a.x[same[0]], atol=1e-9)
