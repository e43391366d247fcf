"""Power, energy, carbon and cost accounting against hand-computed cases."""

import numpy as np
import pytest

from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Policy
from gridshift.sim.engine import simulate
from gridshift.world.arrays import ServiceArrays
from worldkit import PauseAt, make_fleet, make_jobs, make_signals, make_world


class Fixed(Policy):
    """Runs the given jobs on pool 0 at the given gang and cap in every slot while they are active."""

    name = "fixed"

    def __init__(self, gang=1, cap=1.0, replicas=None):
        super().__init__()
        self.gang, self.cap, self.replicas = gang, cap, replicas

    def decide(self, obs):
        j = obs.active
        n = obs.world.fleet.n_pools
        return Decision(j, np.zeros(j.size, np.int32), np.full(j.size, self.gang, np.int32),
                        np.full(n, self.cap), self.replicas)


def test_one_job_one_hour_energy_carbon_cost():
    # 4 accelerators: board 700 W, idle 100 W, host 50 W; PUE 1.5; one job on 2 of them for 1 h.
    T = 3
    fleet = make_fleet(((4,),), board_w=(700.0,), idle_w=(100.0,), host_w=(50.0,), pue=[1.5], n_slots=T)
    jobs = make_jobs(work_acc_h=(2.0,), gang=(2,))
    sig = make_signals([[200.0, 400.0, 100.0]], [[30.0, -10.0, 50.0]])
    run = simulate(make_world(fleet, jobs, sig), sig, Asap())
    ts = run.site_timeseries
    # slot 0: 2 busy × 700 + 2 idle × 100 + 4 × 50 host = 1800 W IT; × 1.5 = 2700 W facility
    # slots 1, 2: 4 idle × 100 + 200 host = 600 W IT; 900 W facility
    assert ts["it_power_mw"].to_numpy() == pytest.approx([1800e-6, 600e-6, 600e-6])
    assert ts["facility_power_mw"].to_numpy() == pytest.approx([2700e-6, 900e-6, 900e-6])
    e = np.array([2.7e-3, 0.9e-3, 0.9e-3])  # MWh
    assert ts["energy_mwh"].to_numpy() == pytest.approx(e)
    # carbon: MWh × g/kWh / 1000 = t
    assert run.metrics["carbon_t"] == pytest.approx((2.7e-3 * 200 + 0.9e-3 * 400 + 0.9e-3 * 100) / 1000)
    assert run.metrics["cost_usd"] == pytest.approx(2.7e-3 * 30 - 0.9e-3 * 10 + 0.9e-3 * 50)
    assert run.metrics["energy_mwh"] == pytest.approx(e.sum())
    assert run.metrics["jobs_completed"] == 1
    assert run.metrics["avg_jct_h"] == pytest.approx(1.0)
    # the job's own energy: 2 × (700 + 50) W × 1.5 × 1 h
    assert run.jobs["energy_mwh"].iloc[0] == pytest.approx(2 * 750 * 1.5 / 1e6)
    # ... and its carbon at slot 0's 200 g/kWh: 2.25 kWh × 200 g = 450 g
    assert run.jobs["carbon_t"].iloc[0] == pytest.approx(450e-6)
    assert run.metrics["batch_carbon_kg_per_acc_h"] == pytest.approx(0.45 / 2.0)


def test_partial_slot_completion_and_idle_remainder():
    # work 0.5 acc-h on 1 accelerator: busy for half of a 1-h slot, idle the other half
    fleet = make_fleet(((1,),), board_w=(400.0,), idle_w=(40.0,), host_w=(0.0,), n_slots=1)
    run = simulate(make_world(fleet, make_jobs(work_acc_h=(0.5,)), make_signals([[100.0]])),
                   make_signals([[100.0]]), Asap())
    assert run.site_timeseries["it_power_mw"].iloc[0] == pytest.approx((0.5 * 400 + 0.5 * 40) / 1e6)
    assert run.jobs["jct_h"].iloc[0] == pytest.approx(0.5)


def test_power_cap_slows_work_and_lowers_power():
    # curve: at 50 % power the accelerator keeps 70 % of its throughput
    fleet = make_fleet(((2,),), board_w=(1000.0,), idle_w=(100.0,), host_w=(0.0,), n_slots=2,
                       curve=((0.5, 1.0), (0.7, 1.0)))
    jobs = make_jobs(work_acc_h=(2.0,), gang=(2,))
    sig = make_signals([[100.0, 100.0]])
    run = simulate(make_world(fleet, jobs, sig), sig, Fixed(gang=2, cap=0.5))
    ts = run.site_timeseries
    # slot 0: 2 × 1000 × 0.5 = 1000 W, progress 2 × 0.7 = 1.4 acc-h; slot 1: 0.6 acc-h left → 0.6/1.4 h busy
    busy = 0.6 / 1.4
    assert ts["it_power_mw"].to_numpy() == pytest.approx([1000e-6, (2 * 500 * busy + 2 * 100 * (1 - busy)) / 1e6])
    assert run.jobs["jct_h"].iloc[0] == pytest.approx(1 + busy)


def test_cap_violation_energy_counted():
    # 3 accelerators at 1000 W each = 3 kW while the cap is 2 kW; a rigid job cannot be stopped
    fleet = make_fleet(((3,),), board_w=(1000.0,), idle_w=(100.0,), host_w=(0.0,), n_slots=2,
                       cap_mw=[[1e-2, 2e-3]])
    jobs = make_jobs(work_acc_h=(6.0,), gang=(3,), interruptible=(False,))
    sig = make_signals([[100.0, 100.0]])
    run = simulate(make_world(fleet, jobs, sig), sig, Asap())
    assert run.site_timeseries["facility_power_mw"].to_numpy() == pytest.approx([3e-3, 3e-3])
    assert run.metrics["cap_violation_mwh"] == pytest.approx(1e-3)
    assert run.metrics["peak_power_mw"] == pytest.approx(3e-3)


def test_asap_respects_site_power_cap_when_starting_work():
    # cap allows idle (4 × 100 W) + 2 busy accelerators (2 × 600 W extra) = 1.6 kW
    fleet = make_fleet(((4,),), board_w=(700.0,), idle_w=(100.0,), host_w=(0.0,), n_slots=4, cap_mw=[[1.6e-3] * 4])
    jobs = make_jobs(arrival_s=(0.0, 0.0, 0.0, 0.0), work_acc_h=(1.0,) * 4, gang=(1,) * 4)
    sig = make_signals([[100.0] * 4])
    run = simulate(make_world(fleet, jobs, sig), sig, Asap())
    assert run.site_timeseries["facility_power_mw"].max() <= 1.6e-3 + 1e-12
    assert run.metrics["cap_violation_mwh"] == 0
    assert run.metrics["jobs_completed"] == 4
    assert run.jobs["jct_h"].max() == pytest.approx(2.0)


def test_restart_overhead_after_pause():
    fleet = make_fleet(((1,),), n_slots=4)
    jobs = make_jobs(work_acc_h=(2.0,), ckpt_s=600.0, restart_s=1200.0)
    sig = make_signals([[100.0] * 4])
    run = simulate(make_world(fleet, jobs, sig), sig, PauseAt(pause_slot=1))
    # 1 h of work in slot 0, paused in slot 1, then 30 min lost at resume: done at 2 h + 0.5 h + 1 h
    assert run.jobs["jct_h"].iloc[0] == pytest.approx(3.5)
    assert run.jobs["preemptions"].iloc[0] == 1


def test_service_power_and_slo():
    # one service, one region, capacity 10 rps per accelerator at 500 W; demand 15 rps, 2 replicas
    T = 2
    fleet = make_fleet(((4,),), board_w=(700.0,), idle_w=(100.0,), host_w=(0.0,), n_slots=T)
    svc = ServiceArrays(("chat",), (("r0",),), np.array([[[15.0, 30.0]]]), np.array([[10.0]]),
                        np.array([[500.0]]), np.ones((1, 1, 1), bool), np.zeros((1, 1, 1)), np.array([0.0]))
    reps = np.full((1, 1, 1), 2)
    sig = make_signals([[100.0] * T])
    world = make_world(fleet, make_jobs(arrival_s=(1e9 - 1,), work_acc_h=(1.0,)), sig, svc)
    run = simulate(world, sig, Fixed(replicas=reps))
    # slot 0: 15 of 20 rps → util 0.75 → 2 × (100 + 400 × 0.75) = 800 W + 2 idle × 100 = 1000 W
    assert run.site_timeseries["it_power_mw"].iloc[0] == pytest.approx(1000e-6)
    # slot 1: 30 rps demand, 20 served → attainment (15 + 20) / (15 + 30)
    assert run.metrics["slo_attainment"] == pytest.approx(35 / 45)
    assert run.site_timeseries["it_power_mw"].iloc[1] == pytest.approx((2 * 500 + 2 * 100) / 1e6)


def test_asap_can_ignore_the_power_cap():
    fleet = make_fleet(((4,),), board_w=(700.0,), idle_w=(100.0,), host_w=(0.0,), n_slots=2, cap_mw=[[1.6e-3] * 2])
    jobs = make_jobs(arrival_s=(0.0,) * 4, work_acc_h=(1.0,) * 4, gang=(1,) * 4)
    sig = make_signals([[100.0] * 2])
    run = simulate(make_world(fleet, jobs, sig), sig, Asap(respect_power_cap=False))
    # all four start at once: 4 × 700 W = 2.8 kW against a 1.6 kW cap for one hour
    assert run.metrics["cap_violation_mwh"] == pytest.approx(1.2e-3)
