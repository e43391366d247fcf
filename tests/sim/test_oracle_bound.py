"""The oracle's relaxed bound (sim.oracle_bound) is a lower bound: on small random worlds it is at most the
exact oracle's objective value and every policy's, and it responds to what it models (caps, clean hours)."""

import pytest

from gridshift.errors import PlanError
from gridshift.model.scenario import Objective
from gridshift.plan.asap import Asap
from gridshift.plan.mpc import Mpc, Oracle
from gridshift.plan.per_job import PerJob
from gridshift.plan.threshold import Threshold
from gridshift.sim.engine import simulate
from gridshift.sim.oracle import run_oracle
from gridshift.sim.oracle_bound import relaxed_bound
from gridshift.sim.score import add_scores
from worldkit import make_signals, random_small_world


def _world(seed: int, cap_lo: float = 0.004):
    return random_small_world(seed, cap_lo_mw=cap_lo, with_price=True)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("kind", ["carbon", "cost"])
def test_bound_below_oracle_and_every_policy(seed, kind):
    world, sig = _world(seed)
    obj = Objective(kind=kind)
    oracle = run_oracle(world, sig, Oracle(objective=obj), obj)
    oracle.policy = "oracle"
    others = [simulate(world, sig, p) for p in (Asap(), Threshold(), Mpc(forecast="perfect"), PerJob())]
    for name, r in zip(("asap", "threshold", "mpc", "per-job"), others):
        r.policy = name
    runs = [*others, oracle]
    add_scores(runs, world, sig, obj)
    rb = relaxed_bound(world, sig, obj)
    coarse = relaxed_bound(world, sig, obj, block_h=6)
    bound = rb["bound_objective"]
    tol = 1e-9 * max(1.0, abs(bound))
    for r in runs:
        if r.metrics["cap_violation_mwh"] <= 1e-12:  # the bound holds for schedules within the caps
            assert bound <= r.metrics["objective_value"] + tol, r.policy
    # longer periods relax further; without caps, further still
    assert coarse["bound_objective"] <= bound + tol
    assert relaxed_bound(world, sig, obj, power_caps=False)["bound_objective"] <= bound + tol
    assert bound >= rb["floor_objective"] + rb["negative_cost_credit"] - tol


def test_bound_places_work_in_the_clean_hours():
    world, sig = _world(3, cap_lo=0.01)
    obj = Objective()
    rb = relaxed_bound(world, sig, obj, power_caps=False)
    # the LP part is work x least energy x unit cost: between the cleanest and the dirtiest hour's price of it
    assert rb["left_work_acc_h"] >= 0.0
    assert rb["lp_objective"] > 0.0
    assert rb["bound_energy_mwh"] > 0.0
    # doubling every carbon intensity doubles the bound (all of it is linear in the unit cost)
    sig2 = make_signals(sig.carbon_g_per_kwh * 2.0, sig.price_usd_per_mwh)
    rb2 = relaxed_bound(world, sig2, obj, power_caps=False)
    assert rb2["bound_objective"] == pytest.approx(2 * rb["bound_objective"], rel=1e-6)


def test_bad_block_is_refused():
    world, sig = _world(0)
    with pytest.raises(PlanError):
        relaxed_bound(world, sig, Objective(), block_h=0)
