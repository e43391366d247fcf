"""Savings split into timing/placement, energy and work left (gridshift.sim.attribution), on worlds built by
hand where each part can be computed independently."""

import numpy as np
import pytest

from gridshift.model.scenario import Objective
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Policy
from gridshift.plan.nominal import Nominal
from gridshift.plan.threshold import Threshold
from gridshift.sim.attribution import add_attribution, split_parts
from gridshift.sim.engine import simulate
from gridshift.sim.score import add_scores, terminal_cost_per_work
from worldkit import make_fleet, make_jobs, make_signals, make_world

CARBON = [500.0, 100.0, 300.0, 400.0]  # g/kWh per hourly slot
PRICE = [80.0, 20.0, 40.0, 60.0]  # USD/MWh


class RunAt(Policy):
    """Every active job on pool 0 (one accelerator) from slot ``start`` on, all accelerators capped at ``cap``."""

    name = "run-at"

    def __init__(self, start: int = 1, cap: float = 1.0):
        super().__init__()
        self.start, self.cap = start, cap

    def decide(self, obs):
        if obs.t < self.start:
            return Decision.idle(obs.world)
        j = obs.active
        n_pools = obs.world.fleet.n_pools
        return Decision(j, np.zeros(j.size, np.int32), np.ones(j.size, np.int32), np.full(n_pools, self.cap))


def _world(*, count=1, idle_w=0.0, work=0.7, nominal=None):
    # 1 kW board, no host power, PUE 1; at a 50 % power cap the accelerator still does 70 % of its work
    fleet = make_fleet(((count,),), board_w=(1000.0,), idle_w=(idle_w,), n_slots=len(CARBON),
                       curve=((0.5, 1.0), (0.7, 1.0)))
    jobs = make_jobs(arrival_s=(0.0,), work_acc_h=(work,))
    if nominal is not None:
        jobs.nominal_start_s = np.array([nominal], float)
    sig = make_signals(CARBON, PRICE)
    return make_world(fleet, jobs, sig), sig


def _attribute(world, sig, runs, refs, obj=Objective()):
    add_scores(runs, world, sig, obj)
    mask = np.isfinite(world.jobs.nominal_start_s)
    add_attribution(runs, refs, obj, terminal_cost_per_work(world, sig, obj), nominal_mask=mask)


def test_capped_job_in_a_cleaner_hour_splits_by_hand():
    world, sig = _world()
    asap = simulate(world, sig, Asap())
    pol = simulate(world, sig, RunAt(start=1, cap=0.5))
    _attribute(world, sig, [asap, pol], {"asap": asap})
    # asap: 0.7 h at 1 kW in slot 0 (500 g/kWh) = 0.7 kWh, 350 g. Policy: 1 h at 0.5 kW in slot 1 (100 g/kWh)
    # = 0.5 kWh, 50 g. Timing: the policy's 0.5 kWh at asap's 500 g/kWh minus at its own 100 g/kWh = 200 g;
    # energy: the 0.2 kWh it did not draw, at asap's 500 g/kWh = 100 g.
    assert asap.jobs["energy_mwh"].iloc[0] == pytest.approx(0.7e-3)
    assert pol.jobs["energy_mwh"].iloc[0] == pytest.approx(0.5e-3)
    s = pol.metrics["savings"]["vs_asap"]["jobs"]
    assert s["reference"] == pytest.approx(350e-6) and s["policy"] == pytest.approx(50e-6)
    assert s["timing"] == pytest.approx(200e-6)
    assert s["energy"] == pytest.approx(100e-6)
    assert s["work_left"] == 0.0
    assert pol.metrics["jobs_saving_vs_asap_timing_frac"] == pytest.approx(200 / 350)
    assert pol.metrics["jobs_saving_vs_asap_energy_frac"] == pytest.approx(100 / 350)
    # per-job columns carry the same numbers
    assert pol.jobs["saving_vs_asap_timing"].iloc[0] == pytest.approx(200e-6)
    assert pol.jobs["saving_vs_asap_energy"].iloc[0] == pytest.approx(100e-6)
    # one accelerator, no idle or host power: the site's saving is the job's, and equals the score's
    assert pol.metrics["saving_vs_asap_frac"] == pytest.approx(300 / 350)
    assert pol.metrics["saving_vs_asap_timing_frac"] == pytest.approx(200 / 350)
    assert asap.metrics["jobs_saving_vs_asap_frac"] == 0.0


def test_uncapped_shift_is_all_timing_and_cap_alone_is_all_energy():
    world, sig = _world()
    asap = simulate(world, sig, Asap())
    shifted = simulate(world, sig, RunAt(start=1, cap=1.0))
    capped = simulate(world, sig, RunAt(start=0, cap=0.5))
    _attribute(world, sig, [asap, shifted, capped], {"asap": asap})
    m = shifted.metrics
    assert m["jobs_saving_vs_asap_energy_frac"] == pytest.approx(0.0, abs=1e-12)
    assert m["jobs_saving_vs_asap_timing_frac"] == pytest.approx(1 - 100 / 500)
    # capped in the same hour: 0.5 kWh instead of 0.7 kWh at 500 g/kWh, no timing effect
    c = capped.metrics
    assert c["jobs_saving_vs_asap_timing_frac"] == pytest.approx(0.0, abs=1e-12)
    assert c["jobs_saving_vs_asap_energy_frac"] == pytest.approx(0.2 / 0.7)


def test_cost_objective_splits_dollars():
    world, sig = _world()
    obj = Objective(kind="cost")
    asap = simulate(world, sig, Asap())
    pol = simulate(world, sig, RunAt(start=1, cap=0.5))
    _attribute(world, sig, [asap, pol], {"asap": asap}, obj)
    assert pol.jobs["cost_usd"].iloc[0] == pytest.approx(0.5e-3 * 20.0)
    s = pol.metrics["savings"]["vs_asap"]["jobs"]
    assert pol.metrics["savings"]["unit"] == "USD"
    assert s["timing"] == pytest.approx(0.5e-3 * (80.0 - 20.0))
    assert s["energy"] == pytest.approx(0.2e-3 * 80.0)


def test_weighted_objective_prices_carbon_in():
    world, sig = _world()
    obj = Objective(kind="weighted", carbon_price_usd_per_t=100.0)
    asap = simulate(world, sig, Asap())
    pol = simulate(world, sig, RunAt(start=1, cap=0.5))
    _attribute(world, sig, [asap, pol], {"asap": asap}, obj)
    s = pol.metrics["savings"]["vs_asap"]["jobs"]
    u0, u1 = 80.0 + 100.0 * 0.5, 20.0 + 100.0 * 0.1  # USD per MWh with carbon at 100 USD/t
    assert s["timing"] == pytest.approx(0.5e-3 * (u0 - u1))
    assert s["energy"] == pytest.approx(0.2e-3 * u0)


def test_site_saving_counts_idle_power_and_splits_on_fleet_totals():
    # two accelerators drawing 100 W idle: the site draws their idle power whatever the plan
    world, sig = _world(count=2, idle_w=100.0)
    asap = simulate(world, sig, Asap())
    pol = simulate(world, sig, RunAt(start=1, cap=0.5))
    _attribute(world, sig, [asap, pol], {"asap": asap})
    e_ref = asap.site_timeseries["energy_mwh"].to_numpy()
    e_pol = pol.site_timeseries["energy_mwh"].to_numpy()
    ci = np.asarray(CARBON) / 1000.0
    u_ref, u_pol = (e_ref * ci).sum() / e_ref.sum(), (e_pol * ci).sum() / e_pol.sum()
    s = pol.metrics["savings"]["vs_asap"]["site"]
    assert s["timing"] == pytest.approx(e_pol.sum() * (u_ref - u_pol))
    assert s["energy"] == pytest.approx((e_ref.sum() - e_pol.sum()) * u_ref)
    assert s["total"] == pytest.approx(s["timing"] + s["energy"], rel=1e-12)
    assert pol.metrics["saving_vs_asap_frac"] == pytest.approx(
        (asap.metrics["objective_value"] - pol.metrics["objective_value"]) / asap.metrics["objective_value"],
        rel=1e-12)
    # the site's saving is diluted by the idle power; the jobs' own saving is not
    assert pol.metrics["saving_vs_asap_frac"] < pol.metrics["jobs_saving_vs_asap_frac"]


def test_nominal_reference_starts_at_the_habit():
    world, sig = _world(nominal=2 * 3600.0)  # habit: slot 2 (300 g/kWh)
    nominal = simulate(world, sig, Nominal())
    assert nominal.jobs["first_start"].iloc[0] == world.slot_starts[2]
    pol = simulate(world, sig, RunAt(start=1, cap=0.5))
    _attribute(world, sig, [pol], {"nominal": nominal})
    s = pol.metrics["savings"]["vs_nominal"]["jobs"]
    # nominal: 0.7 kWh at 300 g/kWh = 210 g; policy: 0.5 kWh at 100 g/kWh = 50 g
    assert s["reference"] == pytest.approx(210e-6)
    assert s["timing"] == pytest.approx(0.5e-3 * (300 - 100) / 1000)
    assert s["energy"] == pytest.approx(0.2e-3 * 300 / 1000)
    assert pol.jobs["saving_vs_nominal"].iloc[0] == pytest.approx(160e-6)


def test_nominal_split_covers_only_jobs_with_a_habit():
    fleet = make_fleet(((2,),), board_w=(1000.0,), idle_w=(0.0,), n_slots=4)
    jobs = make_jobs(arrival_s=(0.0, 0.0), work_acc_h=(0.5, 0.5))
    jobs.nominal_start_s = np.array([3600.0, np.nan])
    sig = make_signals(CARBON, PRICE)
    world = make_world(fleet, jobs, sig)
    nominal = simulate(world, sig, Nominal())
    assert list(nominal.jobs["first_start"]) == [world.slot_starts[1], world.slot_starts[0]]
    asap = simulate(world, sig, Asap())
    _attribute(world, sig, [asap], {"nominal": nominal})
    # asap runs the habitual job at 500 instead of 100 g/kWh; the other job is not counted
    assert asap.metrics["jobs_saving_vs_nominal_frac"] == pytest.approx(1 - 500 / 100)
    assert np.isnan(asap.jobs["saving_vs_nominal"].iloc[1])


def test_work_left_unfinished_is_its_own_part():
    world, sig = _world()
    asap = simulate(world, sig, Asap())
    never = simulate(world, sig, RunAt(start=len(CARBON)))  # never runs the job
    _attribute(world, sig, [asap, never], {"asap": asap})
    s = never.metrics["savings"]["vs_asap"]["jobs"]
    terminal = terminal_cost_per_work(world, sig, Objective())[0]
    assert s["timing"] == 0.0
    assert s["energy"] == pytest.approx(350e-6)  # drew none of asap's energy
    assert s["work_left"] == pytest.approx(-0.7 * terminal)  # but left all the work for later
    assert s["total"] == pytest.approx(s["timing"] + s["energy"] + s["work_left"], rel=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_parts_sum_to_the_total_on_random_worlds(seed):
    rng = np.random.default_rng(seed)
    T, n = 30, 12
    fleet = make_fleet(((3, 2), (2, 0)), board_w=(700.0, 400.0), idle_w=(70.0, 40.0), host_w=(30.0, 20.0),
                       pue=[1.1, 1.3], n_slots=T)
    jobs = make_jobs(2, arrival_s=np.sort(rng.uniform(0, T * 1800, n)), work_acc_h=rng.uniform(0.2, 4, n),
                     gang=rng.integers(1, 3, n), speed=rng.choice([0.5, 1.0, 2.0], (n, 2)),
                     ckpt_s=60.0, restart_s=120.0)
    jobs.nominal_start_s = np.where(rng.random(n) < 0.5, jobs.arrival_s + 3600.0, np.nan)
    sig = make_signals(rng.uniform(50, 700, (2, T)), rng.uniform(10, 150, (2, T)))
    world = make_world(fleet, jobs, sig)
    runs = [simulate(world, sig, p) for p in (Asap(), Threshold(percentile=30, window_h=6, max_delay_h=4))]
    refs = {"asap": runs[0], "nominal": simulate(world, sig, Nominal())}
    for kind in ("carbon", "cost"):
        _attribute(world, sig, runs, refs, Objective(kind=kind))
        for r in runs:
            for ref in ("asap", "nominal"):
                for who in ("site", "jobs"):
                    s = r.metrics["savings"][f"vs_{ref}"][who]
                    assert s["timing"] + s["energy"] + s["work_left"] == pytest.approx(s["total"], rel=1e-12,
                                                                                        abs=1e-15)
                key = f"jobs_saving_vs_{ref}"
                assert sum(r.metrics[f"{key}_{p}_frac"] for p in ("timing", "energy", "work_left")) == \
                    pytest.approx(r.metrics[f"{key}_frac"], rel=1e-12, abs=1e-15)
            assert r.metrics["saving_vs_asap_frac"] == pytest.approx(
                1 - r.metrics["objective_value"] / runs[0].metrics["objective_value"], rel=1e-9, abs=1e-12)


def test_split_parts_prices_jobs_the_reference_never_ran_at_its_average():
    # element 1: the reference drew nothing; priced at the reference's average (300 / 2 = 150 per unit)
    t, e, w = split_parts([300.0, 0.0], [2.0, 0.0], [100.0, 50.0], [1.0, 1.0])
    assert t.tolist() == pytest.approx([150.0 - 100.0, 150.0 - 50.0])
    assert e.tolist() == pytest.approx([300.0 - 150.0, -150.0])
    assert (t + e + w).tolist() == pytest.approx([200.0, -50.0])
