"""Time to the second: jobs run from their arrival, may start anywhere inside a slot, and may use the part of a
slot before their deadline; the planners and the oracle see the same, so on hourly data a short job's best start
is found exactly (checked against a brute force on a 5-minute grid)."""

import numpy as np
import pytest

from gridshift.model.scenario import PolicySpec
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Policy
from gridshift.plan.registry import make_policy
from gridshift.sim.engine import simulate
from worldkit import make_fleet, make_jobs, make_signals, make_world

H = 3600.0


def _run(world, signals, name, **params):
    if name == "per-job":
        return simulate(world, signals, make_policy(PolicySpec(name=name, params=params)))
    pol = make_policy(PolicySpec(name=name, params={"cap_levels": [1.0], **params}))
    return simulate(world, signals, pol)


def _starts(run, world):
    js = run.jobs.set_index("job_id").loc[list(world.jobs.job_id)]
    return (js["first_start"] - world.slot_starts[0]).dt.total_seconds().to_numpy()


@pytest.mark.parametrize("name,params", [("oracle", {}), ("mpc", {"forecast": "perfect", "habit": False}),
                                         ("per-job", {})])
def test_a_short_job_uses_the_slot_that_holds_its_deadline(name, params):
    # a 30-minute job on 8 accelerators, due at 09:30: the 09:00-10:00 hour is the cleanest it can use
    T = 24
    carbon = np.full(T, 500.0)
    carbon[9], carbon[3] = 100.0, 300.0
    fleet = make_fleet(((8,),), n_slots=T)
    jobs = make_jobs(arrival_s=[0.0], work_acc_h=[4.0], gang=[8], deadline_s=[9.5 * H], interruptible=[False])
    sig = make_signals(carbon)
    w = make_world(fleet, jobs, sig)
    run = _run(w, sig, name, **params)
    assert _starts(run, w)[0] == pytest.approx(9 * H)
    comp = (run.jobs["completion"] - w.slot_starts[0]).dt.total_seconds().iloc[0]
    assert comp == pytest.approx(9.5 * H)
    assert run.metrics["deadline_miss_frac"] == 0.0


def test_a_job_runs_from_its_arrival_inside_a_slot():
    T = 6
    fleet = make_fleet(((2,),), n_slots=T)
    jobs = make_jobs(arrival_s=[2.5 * H], work_acc_h=[0.25], gang=[1])
    sig = make_signals(np.full(T, 300.0))
    w = make_world(fleet, jobs, sig)
    assert w.arrival_slot[0] == 2
    run = simulate(w, sig, Asap())
    assert _starts(run, w)[0] == pytest.approx(2.5 * H)
    comp = (run.jobs["completion"] - w.slot_starts[0]).dt.total_seconds().iloc[0]
    assert comp == pytest.approx(2.75 * H)
    # the accelerator is busy for 15 minutes of slot 2 and idle otherwise: energy follows
    busy = run.site_timeseries["busy_accelerators"].to_numpy()
    assert busy[2] == pytest.approx(0.25) and busy[3] == 0.0


class StartAt(Policy):
    """Starts every job ``offset_s`` seconds into slot ``slot`` and lets it run on."""

    name = "start-at"

    def __init__(self, slot: int, offset_s: float):
        super().__init__()
        self.slot, self.offset_s = slot, offset_s

    def decide(self, obs):
        if obs.t < self.slot:
            return Decision.idle(obs.world)
        j = obs.active
        return Decision(j, np.zeros(j.size, np.int32), np.ones(j.size, np.int32),
                        job_start_offset_s=np.full(j.size, self.offset_s))


def test_a_decision_may_start_a_job_inside_a_slot():
    T = 4
    fleet = make_fleet(((1,),), board_w=(700.0,), idle_w=(100.0,), n_slots=T)
    jobs = make_jobs(arrival_s=[0.0], work_acc_h=[0.5], gang=[1])
    sig = make_signals(np.full(T, 200.0))
    w = make_world(fleet, jobs, sig)
    run = simulate(w, sig, StartAt(1, 1800.0))
    assert _starts(run, w)[0] == pytest.approx(1.5 * H)
    comp = (run.jobs["completion"] - w.slot_starts[0]).dt.total_seconds().iloc[0]
    assert comp == pytest.approx(2.0 * H)
    # half an hour busy at 700 W, the rest of the slot idle at 100 W (pue 1, no host power)
    e = run.jobs["energy_mwh"].iloc[0]
    assert e == pytest.approx((0.5 * 700 + 0.5 * 100) / 1e6)


def _brute_force(carbon, arrival_s, deadline_s, run_s, step_s=300.0):
    """Mean intensity a run of ``run_s`` sees at its best start on a ``step_s`` grid inside the window."""
    out = []
    for a, d in zip(arrival_s, deadline_s):
        starts = np.arange(np.ceil(a / step_s) * step_s, d - run_s + 1e-6, step_s)
        minutes = starts[:, None] + np.arange(0, run_s, 60.0)[None, :]
        out.append(carbon[(minutes // H).astype(int)].mean(axis=1).min())
    return np.array(out)


@pytest.mark.parametrize("name,params", [("oracle", {}), ("mpc", {"forecast": "perfect", "habit": False}),
                                         ("per-job", {})])
def test_nightly_jobs_match_a_brute_force_optimum(name, params):
    rng = np.random.default_rng(7)
    days, window_h = 6, 8
    T = 24 * (days + 2)
    carbon = rng.uniform(100, 600, T)
    nominal = np.array([(24 * (d + 1) + 1) * H for d in range(days)])
    arrival = nominal - window_h * H
    deadline = nominal + 0.5 * H + window_h * H
    # on every other day the hour that holds the deadline is the cleanest of the window
    carbon[(deadline[::2] // H).astype(int)] = 50.0
    fleet = make_fleet(((8,),), n_slots=T)
    jobs = make_jobs(arrival_s=arrival, work_acc_h=[4.0] * days, gang=[8] * days, deadline_s=deadline,
                     interruptible=[False] * days)
    sig = make_signals(carbon)
    w = make_world(fleet, jobs, sig)
    run = _run(w, sig, name, **params)
    st = _starts(run, w)
    seen = np.array([carbon[((s + np.arange(0, 1800, 60)) // H).astype(int)].mean() for s in st])
    best = _brute_force(carbon, arrival, deadline, 1800.0)
    assert 100 * (seen.mean() - best.mean()) / best.mean() < 0.1
    assert run.metrics["deadline_miss_frac"] == 0.0


def test_per_job_cuts_the_spare_part_of_an_hour_from_its_dearest_movable_slot():
    # 1.5 h of interruptible work due in 4 h; hours cost 100, 500, 50, 300 g/kWh: the cheapest hours are 2 and 0,
    # and the half hour not needed is cut from hour 0 (the job starts at 00:30), not from hour 2
    fleet = make_fleet(((1,),), board_w=(1000.0,), idle_w=(0.0,), n_slots=6)
    jobs = make_jobs(arrival_s=[0.0], work_acc_h=[1.5], gang=[1], deadline_s=[4 * H])
    sig = make_signals([100.0, 500.0, 50.0, 300.0, 900.0, 900.0])
    w = make_world(fleet, jobs, sig)
    run = simulate(w, sig, make_policy(PolicySpec(name="per-job")))
    assert _starts(run, w)[0] == pytest.approx(0.5 * H, abs=2.0)
    # 0.5 h × 1 kW × 100 g + 1 h × 1 kW × 50 g = 100 g (idle power 0, pue 1)
    assert run.jobs["carbon_t"].iloc[0] == pytest.approx(100e-6, rel=1e-3)
    assert run.metrics["jobs_missed_deadline"] == 0
