"""Conservation properties of the simulator, checked on random small worlds (hypothesis)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridshift.errors import PlanError
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Policy
from gridshift.plan.las import LeastAttainedService
from gridshift.plan.placement import first_fit_1d
from gridshift.plan.threshold import Threshold
from gridshift.sim.engine import simulate
from worldkit import PauseAt, make_fleet, make_jobs, make_signals, make_world


@st.composite
def worlds(draw):
    T = draw(st.integers(4, 30))
    n_sites = draw(st.integers(1, 3))
    n_types = draw(st.integers(1, 2))
    counts = tuple(tuple(draw(st.integers(0, 6)) for _ in range(n_types)) for _ in range(n_sites))
    if sum(map(sum, counts)) == 0:
        counts = ((2,) + (0,) * (n_types - 1),) + counts[1:]
    n = draw(st.integers(1, 25))
    gang = draw(st.lists(st.integers(1, 4), min_size=n, max_size=n))
    gmin = [draw(st.integers(1, g)) for g in gang]
    arrival = sorted(draw(st.lists(st.floats(0, T * 3600 - 1), min_size=n, max_size=n)))
    work = draw(st.lists(st.floats(0.05, 12.0), min_size=n, max_size=n))
    dl = [a + draw(st.floats(600, 20 * 3600)) if draw(st.booleans()) else np.inf for a in arrival]
    speed = np.array([[draw(st.sampled_from([0.0, 0.5, 1.0, 2.0])) for _ in range(n_types)] for _ in range(n)])
    speed[speed.sum(1) == 0, 0] = 1.0
    inter = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    fleet = make_fleet(counts, board_w=(700.0, 400.0)[:n_types], idle_w=(70.0, 40.0)[:n_types],
                       host_w=(30.0, 20.0)[:n_types], pue=[1.1 + 0.1 * s for s in range(n_sites)],
                       cap_mw=[[draw(st.floats(0.002, 0.02))] * T for _ in range(n_sites)], n_slots=T)
    jobs = make_jobs(n_types, arrival_s=arrival, work_acc_h=work, gang=gang, gang_min=gmin, deadline_s=dl,
                     speed=speed, interruptible=inter, ckpt_s=60.0, restart_s=120.0)
    carbon = np.array([draw(st.lists(st.floats(10, 800), min_size=T, max_size=T)) for _ in range(n_sites)])
    sig = make_signals(carbon)
    return make_world(fleet, jobs, sig), sig


POLICIES = [Asap(), Threshold(percentile=40, window_h=6, max_delay_h=3), LeastAttainedService()]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(0, len(POLICIES) - 1))
def test_conservation(ws, pi):
    world, sig = ws
    run = simulate(world, sig, POLICIES[pi])
    ts = run.site_timeseries
    # energy equals power × time, per site and slot
    assert np.allclose(ts["energy_mwh"], ts["facility_power_mw"] * world.slot_h)
    assert np.allclose(ts["facility_power_mw"], ts["it_power_mw"] * np.repeat(world.fleet.pue, world.n_slots))
    assert run.metrics["energy_mwh"] == pytest.approx(ts["energy_mwh"].sum())
    # work done never exceeds work asked; completed jobs did all of it
    jobs = run.jobs
    assert (jobs["done_acc_h"] <= jobs["work_acc_h"] * (1 + 1e-9)).all()
    done = jobs["completion"].notna()
    assert np.allclose(jobs.loc[done, "done_acc_h"], jobs.loc[done, "work_acc_h"])
    # no pool over-allocated: busy + serving never exceed the accelerators a site has
    assert (ts["busy_accelerators"] + ts["serving_accelerators"] <= ts["total_accelerators"] + 1e-9).all()
    # nothing runs before it arrives; completion after first start
    started = jobs["first_start"].notna()
    assert (jobs.loc[started, "first_start"] >= jobs.loc[started, "arrival"].dt.floor("h")).all()
    assert (jobs.loc[done, "completion"] >= jobs.loc[done, "first_start"]).all()
    # power is at least every accelerator idle plus host
    f = world.fleet
    floor_w = np.bincount(f.pool_site, weights=f.pool_count * (f.idle_power_w + f.host_power_w)[f.pool_type],
                          minlength=f.n_sites)
    it = ts["it_power_mw"].to_numpy().reshape(f.n_sites, -1)
    assert (it * 1e6 >= floor_w[:, None] - 1e-6).all()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_deterministic(ws):
    world, sig = ws
    a, b = simulate(world, sig, Asap()), simulate(world, sig, Asap())
    assert a.site_timeseries.equals(b.site_timeseries)
    assert a.jobs.equals(b.jobs)


def _first_fit_reference(gang, limit):
    taken, rem = [], limit
    for g in gang:
        ok = g <= rem
        taken.append(ok)
        rem -= g if ok else 0
    return np.array(taken, bool), rem


@given(st.lists(st.integers(1, 64), max_size=200), st.integers(0, 500))
def test_first_fit_matches_sequential(gang, limit):
    g = np.array(gang, np.int64)
    got, rem = first_fit_1d(g, limit)
    want, rem_want = _first_fit_reference(gang, limit)
    assert np.array_equal(got, want) and rem == rem_want


def test_over_allocation_is_rejected():
    class Greedy(Policy):
        name = "greedy"

        def decide(self, obs):
            j = obs.active
            return Decision(j, np.zeros(j.size, np.int32), np.full(j.size, 2, np.int32))

    fleet = make_fleet(((3,),), n_slots=2)
    jobs = make_jobs(arrival_s=(0.0, 0.0), work_acc_h=(5.0, 5.0), gang=(2, 2))
    sig = make_signals([[1.0, 1.0]])
    with pytest.raises(PlanError, match="over-allocated"):
        simulate(make_world(fleet, jobs, sig), sig, Greedy())


def test_pausing_rigid_job_is_rejected():
    fleet = make_fleet(((1,),), n_slots=3)
    jobs = make_jobs(work_acc_h=(3.0,), interruptible=(False,))
    sig = make_signals([[1.0] * 3])
    with pytest.raises(PlanError, match="non-interruptible"):
        simulate(make_world(fleet, jobs, sig), sig, PauseAt(pause_slot=1))


def test_a_job_placed_twice_in_a_slot_is_rejected():
    class Twice(Policy):
        name = "twice"

        def decide(self, obs):
            j = np.concatenate([obs.active, obs.active[:1]])
            return Decision(j, np.zeros(j.size, np.int32), np.ones(j.size, np.int32))

    fleet = make_fleet(((8,),), n_slots=2)
    jobs = make_jobs(arrival_s=(0.0, 0.0), work_acc_h=(5.0, 5.0), gang=(1, 1))
    sig = make_signals([[1.0, 1.0]])
    with pytest.raises(PlanError, match="placed twice"):
        simulate(make_world(fleet, jobs, sig), sig, Twice())
