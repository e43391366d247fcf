"""Heterogeneity policies (Gavel-style LPs over time fractions): hand-computed optima, base constraints on
random problems, aware vs agnostic, power caps and carbon, and the aggregated solver against the whole LP."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq

from gridshift.errors import PlanError
from gridshift.plan.allocation import job_lp as lp_base
from gridshift.plan.allocation.policies import POLICIES, SENSE, allocate, evaluate
from gridshift.plan.allocation.problem import AllocationProblem
from gridshift.plan.allocation.terms import reference_throughput

# job A: 1 vs 4 steps/s on K80 / V100; job B: 1 vs 1.2
THR = np.array([[1.0, 4.0], [1.0, 1.2]])


def two_jobs(count=(1, 1), **kw) -> AllocationProblem:
    kw.setdefault("remaining_steps", np.array([100.0, 100.0]))
    return AllocationProblem(throughput=THR, gang=[1, 1], job_of_row=[0, 1], count=list(count), **kw)


def random_problem(seed: int, n_jobs: int | None = None, *, caps: bool = True, grid: bool = True,
                   variants: bool = True) -> AllocationProblem:
    """Small random problem: 1-2 sites, 1-4 pools, gangs 1/2/4/8, some jobs with several gang variants,
    pools some rows cannot use, optional power caps, carbon, prices, rent, deadlines and weights."""
    rng = np.random.default_rng(seed)
    n_sites = int(rng.integers(1, 3))
    n_pools = int(rng.integers(1, 5))
    site = np.sort(rng.integers(0, n_sites, n_pools))
    site[0] = 0
    n_sites = int(site.max()) + 1
    count = rng.integers(1, 9, n_pools).astype(float)
    J = int(n_jobs if n_jobs is not None else rng.integers(1, 9))
    speed = rng.uniform(0.5, 12.0, (J, n_pools)) * (rng.random((J, n_pools)) > 0.2)
    rows, gangs, jobs = [], [], []
    for j in range(J):
        g0 = int(rng.choice([1, 2, 4, 8], p=[0.7, 0.1, 0.15, 0.05]))
        sizes = [g0] + ([int(rng.choice([1, 2, 4, 8]))] if variants and rng.random() < 0.3 else [])
        for g in dict.fromkeys(sizes):
            rows.append(speed[j] * g ** 0.8)
            gangs.append(g)
            jobs.append(j)
    thr = np.array(rows)
    power = np.array(gangs, float)[:, None] * rng.uniform(100, 400, n_pools)[None, :]
    kw = {}
    if caps and rng.random() < 0.5:
        kw.update(pool_site=site, cap_w=rng.uniform(200, 3000, n_sites) * np.where(rng.random(n_sites) < 0.2, np.inf, 1))
    elif n_sites > 1:
        kw.update(pool_site=site)
    if grid and rng.random() < 0.4:
        kw.update(carbon_g_per_kwh=rng.uniform(50, 600, n_sites)[site], carbon_weight=float(rng.uniform(0, 2)))
    if grid and rng.random() < 0.3:
        kw.update(price_per_mwh=rng.uniform(-20, 200, n_sites)[site], price_weight=float(rng.uniform(0, 1)))
    if rng.random() < 0.5:
        kw.update(cost_per_acc_h=rng.uniform(0.5, 3.0, n_pools))
    rem = rng.uniform(1e3, 1e6, J)
    dl = np.where(rng.random(J) < 0.4, rem / rng.uniform(0.5, 20.0, J), np.inf)
    return AllocationProblem(throughput=thr, gang=gangs, job_of_row=jobs, count=count, power_w=power,
                             weight=rng.choice([0.5, 1.0, 2.0], J), remaining_steps=rem,
                             elapsed_s=rng.uniform(0, 1e4, J) * (rng.random(J) < 0.7), deadline_s=dl, **kw)


def better_or_equal(policy: str, a: float, b: float, rtol: float = 1e-6) -> bool:
    """``a`` at least as good as ``b`` for the policy's sense, within solver tolerance."""
    return SENSE[policy] * (a - b) >= -rtol * max(1.0, abs(a), abs(b))


# ------------------------------------------------------------------------------------------- by hand
def test_reference_throughput_is_the_equal_share():
    # 2 accelerators, 2 jobs of gang 1: each runs all the time, half on each type
    assert np.allclose(reference_throughput(two_jobs()), [2.5, 1.1])
    # 3 accelerators (2 K80): share still 1, spread 2/3 K80, 1/3 V100
    assert np.allclose(reference_throughput(two_jobs(count=(2, 1))), [(2 + 4) / 3, (2 + 1.2) / 3])
    # oversubscribed: 2 accelerators, gangs 1 + 3: each job runs half the time
    pr = AllocationProblem(throughput=THR, gang=[1, 3], job_of_row=[0, 1], count=[1, 1])
    assert np.allclose(reference_throughput(pr), 0.5 * np.array([2.5, 1.1]))


def test_max_throughput_puts_each_job_where_it_gains_most():
    a = allocate("max-throughput", two_jobs())
    assert np.allclose(a.x, [[0, 1], [1, 0]], atol=1e-7)  # A on V100, B on K80
    assert a.objective == pytest.approx(4 / 2.5 + 1 / 1.1)
    # agnostic: equal split, A gets (1 + 4) / 2 = its reference: value 2
    b = allocate("max-throughput", two_jobs(), aware=False)
    assert np.allclose(b.x, 0.5) and b.objective == pytest.approx(2.0)


def test_max_min_fairness_by_hand():
    # one accelerator of each type: both jobs always busy; a = A's V100 share; n_A = (1 + 3a) / 2.5,
    # n_B = (1.2 - 0.2a) / 1.1, equal at a = 1/2 (the equal share itself): value 1
    a = allocate("max-min-fairness", two_jobs())
    assert a.objective == pytest.approx(1.0, rel=1e-6)
    assert np.allclose(a.x, 0.5, atol=1e-6)
    # two K80 and one V100: a + b <= 1 on the V100, both jobs on K80 the rest of the time;
    # n_A = (1 + 3a) / 2, n_B = (1 + 0.2 (1 - a)) * 15/16, equal at a = 10/27: value 19/18
    a = allocate("max-min-fairness", two_jobs(count=(2, 1)))
    assert a.objective == pytest.approx(19 / 18, rel=1e-6)
    assert a.x[0, 1] == pytest.approx(10 / 27, rel=1e-5) and a.x[1, 1] == pytest.approx(17 / 27, rel=1e-5)
    assert np.allclose(a.x.sum(axis=1), 1.0)
    # weights: A (weight 2) deserves twice B's normalised throughput: a = 1 is the best it can do
    a = allocate("max-min-fairness", two_jobs(weight=np.array([2.0, 1.0])))
    assert a.objective == pytest.approx(min(4 / 2.5 / 2, 1 / 1.1), rel=1e-6)
    assert np.allclose(a.x, [[0, 1], [1, 0]], atol=1e-6)


def test_min_makespan_by_hand():
    # thr_A = 1 + 3a, thr_B = 1.2 - 0.2a with 100 steps each: equal at a = 1/16, 1.1875 steps/s
    a = allocate("min-makespan", two_jobs())
    assert a.objective == pytest.approx(1.1875 / 100, rel=1e-6)  # 1 / makespan
    assert a.x[0, 1] == pytest.approx(1 / 16, rel=1e-5)
    assert allocate("min-makespan", two_jobs(), aware=False).objective == pytest.approx(1.1 / 100)


def test_finish_time_fairness_by_hand():
    # no time elapsed: rho_j = ref_j / thr_j, so the optimum is 1 / (max-min value) = 18/19
    a = allocate("finish-time-fairness", two_jobs(count=(2, 1)))
    assert a.objective == pytest.approx(18 / 19, rel=1e-6)
    # A has waited 20 s: t_iso_A = 20 + 100/2 = 70, t_iso_B = 100 / (3.2/3) = 93.75; with a = A's V100
    # time, rho_A = (20 + 100 / (1 + 3a)) / 70 and rho_B = (100 / (1 + 0.2 (1 - a))) / 93.75 meet at a*
    pr = two_jobs(count=(2, 1), elapsed_s=np.array([20.0, 0.0]))
    rho_a = lambda a: (20 + 100 / (1 + 3 * a)) / 70
    rho_b = lambda a: (100 / (1 + 0.2 * (1 - a))) / 93.75
    a_star = brentq(lambda a: rho_a(a) - rho_b(a), 0.0, 1.0)
    got = allocate("finish-time-fairness", pr)
    assert got.objective == pytest.approx(rho_a(a_star), rel=1e-6)
    assert got.x[0, 1] == pytest.approx(a_star, rel=1e-4)
    assert evaluate("finish-time-fairness", pr, got.x) == pytest.approx(got.objective)


def test_max_min_wastes_no_capacity():
    # B (pool Q, 1 GPU) limits the minimum; A (pool P, 2 GPUs, weight 0.1) reaches it with a fifth of
    # its time. A pure max-min LP may stop there; the second stage gives A all its time.
    pr = AllocationProblem(throughput=[[1.0, 0.0], [0.0, 1.0]], gang=[1, 1], job_of_row=[0, 1], count=[2, 1],
                           weight=[0.1, 1.0])
    a = allocate("max-min-fairness", pr)
    assert a.objective == pytest.approx(3.0, rel=1e-6)
    assert np.allclose(a.x, [[1, 0], [0, 1]], atol=1e-6)
    # three jobs; job 2 could also use a 1-GPU pool nobody else can: at the optimum (z = 1) it runs 2/3
    # on the 2-GPU pool and 1/3 on the small one, jobs 0 and 1 share the rest; nothing idle is usable
    pr = AllocationProblem(throughput=[[1.0, 0.0], [1.0, 0.0], [2.0, 1.0]], gang=[1, 1, 1], job_of_row=[0, 1, 2],
                           count=[2, 1])
    a = allocate("max-min-fairness", pr)
    assert a.objective == pytest.approx(1.0, rel=1e-6)
    assert np.allclose(a.x, [[2 / 3, 0], [2 / 3, 0], [2 / 3, 1 / 3]], atol=1e-6)
    assert not usable_idle(pr, a.x).any()


def usable_idle(pr: AllocationProblem, x: np.ndarray) -> np.ndarray:
    """[R, P] rows with time left that could run on a pool with room for them."""
    free = pr.count - pr.gang @ x
    time_left = 1 - np.bincount(pr.job_of_row, x.sum(axis=1), pr.n_jobs)[pr.job_of_row]
    return (pr.throughput > 0) & (time_left[:, None] > 1e-5) & (free[None, :] > 1e-5 * pr.gang[:, None])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_fairness_policies_leave_no_usable_capacity_idle(seed):
    pr = random_problem(seed, caps=False, grid=False, variants=False)
    for policy in ("max-min-fairness", "min-makespan", "finish-time-fairness"):
        x = allocate(policy, pr).x
        assert not usable_idle(pr, x).any(), (policy, np.argwhere(usable_idle(pr, x)))


# ------------------------------------------------------------------------------------------- base constraints
@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_allocations_meet_the_base_constraints(seed):
    pr = random_problem(seed)
    for policy in POLICIES:
        for aware in (True, False):
            a = allocate(policy, pr, aware=aware)
            pr.check(a.x)  # no pool over-allocated, no job above all the time, caps, nothing where it cannot run
            assert a.x.shape == pr.throughput.shape and a.status in ("optimal", "slo-infeasible")
            assert a.objective == pytest.approx(evaluate(policy, pr, a.x))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_aware_is_never_worse_than_agnostic(seed):
    pr = random_problem(seed)
    for policy in POLICIES:
        aware = allocate(policy, pr).objective
        agnostic = allocate(policy, pr, aware=False).objective
        assert better_or_equal(policy, aware, agnostic, 1e-5), (policy, aware, agnostic)


def test_gang_variants_are_chosen():
    # one job alone on a 4-GPU pool: its gang-4 variant (3.5 steps/s) beats gang 1 (1 step/s)
    pr = AllocationProblem(throughput=[[1.0], [3.5]], gang=[1, 4], job_of_row=[0, 0], count=[4])
    a = allocate("max-throughput", pr)
    assert np.allclose(a.x, [[0], [1]], atol=1e-7)
    # two such jobs sharing the pool: each job x1 at gang 1 and x4 at gang 4 with x1 + x4 <= 1 and
    # x1 + 4 x4 <= 2 (half the pool): best x1 = 2/3, x4 = 1/3, 11/6 steps/s each (gang 4 alone: 1.75)
    pr = AllocationProblem(throughput=[[1.0], [3.5], [1.0], [3.5]], gang=[1, 4, 1, 4], job_of_row=[0, 0, 1, 1],
                           count=[4])
    a = allocate("max-min-fairness", pr)
    pr.check(a.x)
    assert np.allclose(pr.job_throughput(a.x), 11 / 6, rtol=1e-6)
    assert np.allclose(a.x.ravel(), [2 / 3, 1 / 3, 2 / 3, 1 / 3], atol=1e-6)


def test_a_gang_larger_than_each_pool_combines_pools():
    # gang 4, two pools of 2: at most half the time on each (fractions, as Gavel's), all the time in total
    pr = AllocationProblem(throughput=[[1.0, 1.5]], gang=[4], job_of_row=[0], count=[2, 2], remaining_steps=[10.0])
    for policy in POLICIES:
        a = allocate(policy, pr)
        pr.check(a.x)
        assert np.allclose(a.x, [[0.5, 0.5]], atol=1e-7), policy


# ------------------------------------------------------------------------------------------- grid
def power_problem(cap_w: float | None) -> AllocationProblem:
    # one gang-1 job: 1 step/s on K80 (100 W), 2 on V100 (300 W): per watt the K80 is better
    return AllocationProblem(throughput=[[1.0, 2.0]], gang=[1], job_of_row=[0], count=[1, 1],
                             power_w=[[100.0, 300.0]], pool_site=[0, 0],
                             cap_w=None if cap_w is None else [cap_w], remaining_steps=[100.0])


@pytest.mark.parametrize("policy", POLICIES)
def test_power_cap_leaves_only_the_low_power_type(policy):
    free = allocate(policy, power_problem(None)).x
    assert free[0, 1] == pytest.approx(1.0)  # uncapped: V100
    pr = power_problem(100.0)
    capped = allocate(policy, pr).x
    pr.check(capped)
    assert np.allclose(capped, [[1.0, 0.0]], atol=1e-7)  # 100 W: the K80 all the time beats a third of a V100
    assert capped @ [100.0, 300.0] <= 100.0 + 1e-6


@pytest.mark.parametrize("policy", POLICIES)
def test_carbon_weight_moves_work_to_the_cleaner_site(policy):
    kw = {"throughput": [[1.0, 1.0]] * 2, "gang": [1, 1], "job_of_row": [0, 1], "count": [2, 2], "pool_site": [0, 1],
          "power_w": [[300.0, 300.0]] * 2, "carbon_g_per_kwh": [500.0, 50.0], "remaining_steps": [100.0, 100.0]}
    x = allocate(policy, AllocationProblem(**kw, carbon_weight=0.5)).x
    assert x[:, 1].sum() == pytest.approx(2.0) and x[:, 0].sum() == pytest.approx(0.0, abs=1e-7)
    # a clean site too small for everything: the rest runs at the dirty one (the weight is small)
    kw["count"] = [2, 1]
    pr = AllocationProblem(**kw, carbon_weight=0.1)
    x = allocate(policy, pr).x
    assert x[:, 1].sum() == pytest.approx(1.0) and x[:, 0].sum() > 0.5


def test_min_cost_meets_slos_and_says_when_it_cannot():
    # a K80 and a V100; A runs on the V100 only (1 step/s), B (weight 3) is 20x faster there than on
    # the K80 and would take the V100 all the time. A's SLO (50 steps in 100 s) needs half the V100.
    kw = {"throughput": [[0.0, 1.0], [1.0, 20.0]], "gang": [1, 1], "job_of_row": [0, 1], "count": [1, 1],
          "weight": [1.0, 3.0], "cost_per_acc_h": [1.0, 3.0]}
    free = allocate("min-cost", AllocationProblem(**kw, remaining_steps=[50.0, 1e6]))
    assert free.x[1, 1] == pytest.approx(1.0) and free.x[0, 1] == pytest.approx(0.0, abs=1e-7)
    a = allocate("min-cost", AllocationProblem(**kw, remaining_steps=[50.0, 1e6], deadline_s=[100.0, np.inf]))
    assert a.status == "optimal"
    # just the SLO; B takes the rest of the V100; the K80 (B's 1/20 speed) is not worth its rent
    assert np.allclose(a.x, [[0, 0.5], [0, 0.5]], atol=1e-6)
    # 200 steps in 100 s at 1 step/s: impossible; A gets all it can, no exception
    pr = AllocationProblem(**kw, remaining_steps=[200.0, 1e6], deadline_s=[100.0, np.inf])
    a = allocate("min-cost", pr)
    assert a.status == "slo-infeasible" and a.x[0, 1] == pytest.approx(1.0)
    pr.check(a.x)


def test_min_cost_prefers_cheap_accelerators():
    # same speed on both pools, one costs 10x more per hour: work goes to the cheap one first
    pr = AllocationProblem(throughput=[[1.0, 1.0]] * 3, gang=[1, 1, 1], job_of_row=[0, 1, 2], count=[2, 2],
                           cost_per_acc_h=[1.0, 10.0])
    x = allocate("min-cost", pr).x
    assert x[:, 0].sum() == pytest.approx(2.0)
    assert x[:, 1].sum() < 1.0 + 1e-6


# ------------------------------------------------------------------------------------------- API edges
def test_unknown_policy_names_the_valid_ones():
    with pytest.raises(PlanError, match="max-min-fairness.*min-cost"):
        allocate("fifo", two_jobs())
    with pytest.raises(PlanError):
        evaluate("nope", two_jobs(), np.zeros((2, 2)))


def test_empty_problem_and_missing_inputs():
    pr = AllocationProblem(throughput=np.zeros((0, 3)), gang=[], job_of_row=[], count=[1, 2, 3])
    for policy in POLICIES:
        a = allocate(policy, pr)
        assert a.x.shape == (0, 3)
    with pytest.raises(PlanError, match="remaining_steps"):
        allocate("min-makespan", AllocationProblem(throughput=THR, gang=[1, 1], job_of_row=[0, 1], count=[1, 1]))


def test_jobs_that_cannot_run_anywhere_do_not_pin_the_minimum():
    pr = AllocationProblem(throughput=[[1.0, 0.0], [0.0, 0.0]], gang=[1, 1], job_of_row=[0, 1], count=[1, 1],
                           remaining_steps=[10.0, 10.0])
    for policy in POLICIES:
        a = allocate(policy, pr)
        assert a.x[0, 0] == pytest.approx(1.0) and not a.x[1].any(), policy


def test_agnostic_split_respects_pools_some_jobs_cannot_use():
    # one site, pools of 1 and 3 GPUs; job 0 can only use the small one: split in proportion to counts
    # over the pools a job can use, then scaled down where the small pool is over-filled
    pr = AllocationProblem(throughput=[[2.0, 0.0], [1.0, 1.0], [1.0, 1.0]], gang=[1, 1, 1], job_of_row=[0, 1, 2],
                           count=[1, 3])
    for policy in ("max-min-fairness", "max-throughput"):
        a = allocate(policy, pr, aware=False)
        pr.check(a.x)
        assert not a.x[0, 1] and a.x[0, 0] > 0


# ------------------------------------------------------------------------------------------- aggregated solver
@contextmanager
def solver_settings(**values):
    """Temporarily change lp_base's thresholds."""
    old = {k: getattr(lp_base, k) for k in values}
    for k, v in values.items():
        setattr(lp_base, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(lp_base, k, v)


def whole(policy, pr, aware=True):
    with solver_settings(FULL_LP_MAX_JOBS=10**9):
        return allocate(policy, pr, aware=aware)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n_jobs=st.integers(20, 90))
def test_aggregated_solve_matches_the_whole_lp(seed, n_jobs):
    """Aggregation forced on small problems (it normally starts above 300 jobs): same optimum."""
    pr = random_problem(seed, n_jobs=n_jobs)
    for policy in POLICIES:
        with solver_settings(FULL_LP_MAX_JOBS=12, SAMPLE_JOBS=8, SAMPLE_SHARE=4, FREE_MIN_PER_ROW=1):
            agg = allocate(policy, pr)
        ref = whole(policy, pr)
        pr.check(agg.x)
        assert agg.status == ref.status
        # the same optimum (the second-stage efficiency may pick another of equal value)
        assert agg.objective == pytest.approx(ref.objective, rel=2e-6, abs=1e-9), policy


def gavel_like_jobs(rng, J):
    """Gang sizes 1-8 in Gavel's mix and throughputs on K80 / P100 / V100 that grow with the type."""
    gang = rng.choice([1, 2, 4, 8], J, p=[0.7, 0.1, 0.15, 0.05]).astype(float)
    k80 = rng.uniform(0.5, 5.0, J)
    v = rng.uniform(1.0, 12.0, J)
    thr = np.stack([k80, k80 * (1 + (v - 1) * rng.uniform(0.3, 0.7, J)), k80 * v], axis=1) * gang[:, None] ** 0.8
    return gang, thr


def test_aggregated_solve_on_a_larger_cluster():
    """A Gavel-like cluster with 1,200 jobs (3 types, gangs 1-8): aggregation used, same optimum."""
    rng = np.random.default_rng(7)
    J = 1200
    gang, thr = gavel_like_jobs(rng, J)
    rem = thr[:, 2] * 60 * 10 ** rng.uniform(1.5, 4, J)
    pr = AllocationProblem(throughput=thr, gang=gang, job_of_row=np.arange(J), count=[J // 8] * 3,
                           remaining_steps=rem, elapsed_s=rng.uniform(0, 1e5, J))
    for policy in ("max-min-fairness", "max-throughput", "min-makespan"):
        agg, ref = allocate(policy, pr), whole(policy, pr)
        pr.check(agg.x)
        assert agg.objective == pytest.approx(ref.objective, rel=1e-6), policy


def test_parametric_solves_restart_from_the_previous_basis(monkeypatch):
    """Finish-time fairness solves one LP per trial ``rho`` that differ only in right-hand sides; where
    aggregation cannot certify them (a cluster nearly big enough for every job), each later one starts
    the dual simplex from the previous optimal basis. The optimum is the cold whole LP's."""
    rng = np.random.default_rng(4)
    J = 600
    gang, thr = gavel_like_jobs(rng, J)
    rem = thr[:, 2] * 60 * 10 ** rng.uniform(1.5, 4, J)
    pr = AllocationProblem(throughput=thr, gang=gang, job_of_row=np.arange(J), count=[J // 6] * 3,
                           remaining_steps=rem, elapsed_s=rng.uniform(0, 1e5, J))
    calls = []
    real = lp_base.highs_max

    def spy(*args, **kw):
        calls.append(kw.get("basis") is not None)
        return real(*args, **kw)

    monkeypatch.setattr("gridshift.plan.allocation.aggregate.highs_max", spy)
    a = allocate("finish-time-fairness", pr)
    warm = sum(calls)
    monkeypatch.setattr("gridshift.plan.allocation.aggregate.highs_max", real)
    ref = whole("finish-time-fairness", pr)
    pr.check(a.x)
    assert warm >= 2  # the rho steps after the first whole solve
    assert a.objective == pytest.approx(ref.objective, rel=1e-7)


def test_second_stage_restarts_the_primal_simplex_from_the_first(monkeypatch):
    """A cluster just big enough for every job (aggregation cannot certify it, the LP is solved whole): the
    lexicographic second stage (its objective changed, not its right-hand sides) starts the primal simplex
    from the first stage's basis. The optimum is the cold whole LP's."""
    rng = np.random.default_rng(11)
    J = 600
    gang, thr = gavel_like_jobs(rng, J)
    pr = AllocationProblem(throughput=thr, gang=gang, job_of_row=np.arange(J), count=[int(0.77 * gang.sum() / 3)] * 3)
    calls = []
    real = lp_base.highs_max

    def spy(*args, **kw):
        calls.append((kw.get("basis") is not None, kw.get("primal")))
        return real(*args, **kw)

    monkeypatch.setattr("gridshift.plan.allocation.aggregate.highs_max", spy)
    a = allocate("max-min-fairness", pr)
    monkeypatch.setattr("gridshift.plan.allocation.aggregate.highs_max", real)
    ref = whole("max-min-fairness", pr)
    pr.check(a.x)
    assert (True, True) in calls
    assert a.objective == pytest.approx(ref.objective, rel=1e-7)
