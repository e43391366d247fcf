"""Non-interruptible jobs planned as a choice of start time (plan/start_times.py), and one class per job."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshift.plan.classes import build_classes
from gridshift.plan.mpc import Mpc, Oracle
from gridshift.sim.engine import simulate
from worldkit import make_fleet, make_jobs, make_signals, make_world

H = 3600.0


def _one_kw_world(carbon, jobs, count=1):
    """One site, ``count`` accelerators of 1 kW busy, nothing idle or for the host, PUE 1: a job's carbon in g
    is the sum of the hourly intensities it runs in (per accelerator)."""
    fleet = make_fleet(((count,),), board_w=(1000.0,), idle_w=(0.0,), host_w=(0.0,), n_slots=len(carbon))
    sig = make_signals([carbon])
    return make_world(fleet, jobs, sig), sig


# a cheap first hour, then dear hours; a cheaper whole run later
CARBON = [10.0, 100.0, 100.0, 100.0, 50.0, 50.0, 50.0, 40.0, 40.0, 40.0, 60.0, 60.0]


def _rigid_world():
    jobs = make_jobs(1, arrival_s=[0.0], work_acc_h=[3.0], gang=[1], deadline_s=[12 * H], interruptible=[False])
    return _one_kw_world(CARBON, jobs)


def test_divisible_plan_of_a_rigid_job_starts_it_now():
    # the old model: the job's work as a class, spread over the cheapest hours (10 now, 40, 40), so the plan
    # gives it work now and rounding starts it now; it then runs through 100, 100
    world, sig = _rigid_world()
    pol = Mpc(forecast="perfect", habit=False, cap_levels=[1.0])
    pol.reset(world, sig)
    T = len(CARBON)
    start_s, end_s = np.arange(T) * H, np.arange(1, T + 1) * H
    classes = build_classes(world, np.array([0]), world.jobs.work_acc_h.copy(), np.array([-1]), pol.sig, start_s,
                            end_s, pol.max_delay_h)
    uc = pol.unit_cost_sites(sig.carbon_g_per_kwh, sig.price_usd_per_mwh)
    z = (np.zeros((1, T)), np.zeros((1, T)))
    sol = pol.solve(pol.problem(classes, np.ones(T), uc, world.fleet.power_cap_mw, np.zeros((0, 0, T)), *z, None,
                                0.0, 0.0))
    assert sol.x[0, 0, 0].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("policy", [lambda: Mpc(forecast="perfect", habit=False, cap_levels=[1.0]),
                                    lambda: Oracle(cap_levels=[1.0])])
def test_rigid_job_starts_when_its_whole_run_is_cheapest(policy):
    world, sig = _rigid_world()
    run = simulate(world, sig, policy())
    job = run.jobs.iloc[0]
    best = min(range(10), key=lambda s: sum(CARBON[s:s + 3]))  # starts 0..9 end by the deadline
    assert best == 7  # 40 + 40 + 40, not 10 + 100 + 100
    assert (job["first_start"] - world.slot_starts[0]).total_seconds() == best * H
    assert job["carbon_t"] == pytest.approx(sum(CARBON[best:best + 3]) * 1e-6)
    assert job["preemptions"] == 0 and not job["missed_deadline"]


def test_one_class_per_job_keeps_a_long_job_on_hours_it_can_use():
    # job 0 (2 h) and job 1 (3 h), both due at 6 h, one accelerator each: pooled, the class is planned 2
    # accelerators in the cheap hours 2 and 3 and one more hour at 0, which the short job (first by index)
    # takes; the long job is then one hour short and ends in a dear hour. One class per job gives the long
    # job hour 0 (50) and hours 2, 3; the short job 2, 3.
    carbon = [50.0, 90.0, 10.0, 10.0, 90.0, 90.0, 90.0]
    jobs = make_jobs(1, arrival_s=[0.0, 0.0], work_acc_h=[2.0, 3.0], gang=[1, 1], deadline_s=[6 * H, 6 * H])
    world, sig = _one_kw_world(carbon, jobs, count=2)
    best = (10 + 10) + (50 + 10 + 10)
    per_job = simulate(world, sig, Mpc(forecast="perfect", habit=False, cap_levels=[1.0], per_job_limit=100))
    pooled = simulate(world, sig, Mpc(forecast="perfect", habit=False, cap_levels=[1.0], per_job_limit=0))
    oracle = simulate(world, sig, Oracle(cap_levels=[1.0]))
    assert per_job.jobs["carbon_t"].sum() == pytest.approx(best * 1e-6)
    assert oracle.jobs["carbon_t"].sum() == pytest.approx(best * 1e-6)
    assert oracle.metrics["oracle_class_per_job"]
    assert pooled.jobs["carbon_t"].sum() > (best + 30) * 1e-6
    for r in (per_job, pooled, oracle):
        assert not r.jobs["missed_deadline"].any()


@st.composite
def rigid_worlds(draw):
    """One site; jobs that never compete (their gangs fit at once), some non-interruptible, each with room to
    spare before its deadline."""
    T = draw(st.integers(10, 30))
    n = draw(st.integers(1, 6))
    gang = draw(st.lists(st.integers(1, 2), min_size=n, max_size=n))
    arrival = sorted(draw(st.lists(st.floats(0, (T // 3) * H), min_size=n, max_size=n)))
    work = draw(st.lists(st.floats(0.3, 5.0), min_size=n, max_size=n))
    slack = draw(st.lists(st.floats(1.0, 3.0), min_size=n, max_size=n))
    dl = [min(a + w / g * H * s + 2 * H, T * H) for a, w, g, s in zip(arrival, work, gang, slack)]
    dl = [max(d, np.ceil(a / H) * H + np.ceil(w / g) * H + H) for d, a, w, g in zip(dl, arrival, work, gang)]
    rigid = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    carbon = draw(st.lists(st.floats(20, 600), min_size=T + 12, max_size=T + 12))
    fleet = make_fleet(((sum(gang),),), board_w=(700.0,), idle_w=(70.0,), host_w=(30.0,), n_slots=T + 12)
    jobs = make_jobs(1, arrival_s=arrival, work_acc_h=work, gang=gang, deadline_s=dl,
                     interruptible=[not r for r in rigid], ckpt_s=60.0, restart_s=120.0)
    sig = make_signals([carbon])
    return make_world(fleet, jobs, sig), sig


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rigid_worlds())
def test_rigid_jobs_never_paused_or_late(ws):
    world, sig = ws
    rigid = ~world.jobs.interruptible
    for pol in (Mpc(forecast="perfect", habit=False), Oracle()):
        run = simulate(world, sig, pol)  # the engine rejects a paused or moved non-interruptible job
        assert not run.jobs["missed_deadline"].any()
        assert run.jobs["completion"].notna().all()
        assert (run.jobs["preemptions"].to_numpy()[rigid] == 0).all()
