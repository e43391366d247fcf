"""The oracle is the best of several perfect-knowledge plans: no policy may beat it (on random small worlds),
and it never scores below the LP's relaxed bound."""

import numpy as np
import pytest

from gridshift.errors import ScenarioError
from gridshift.model.scenario import Objective, PolicySpec
from gridshift.plan.asap import Asap
from gridshift.plan.mpc import Mpc, Oracle
from gridshift.plan.per_job import PerJob
from gridshift.plan.registry import make_policy
from gridshift.plan.threshold import Threshold
from gridshift.sim.engine import simulate
from gridshift.sim.oracle import run_oracle
from gridshift.sim.score import add_scores
from worldkit import random_small_world


def _world(seed: int):
    return random_small_world(seed)


@pytest.mark.parametrize("seed", range(12))
def test_no_policy_beats_the_oracle(seed):
    world, sig = _world(seed)
    obj = Objective()
    oracle = run_oracle(world, sig, Oracle(), obj)
    others = [simulate(world, sig, p) for p in (Asap(), Threshold(), Mpc(forecast="perfect"), PerJob())]
    for name, r in zip(("asap", "threshold", "mpc", "per-job"), others):
        r.policy = name
    runs = [*others, oracle]
    add_scores(runs, world, sig, obj)
    best = oracle.metrics["objective_value"]
    assert oracle.metrics["oracle_chosen"] in ("lp", "rolling", "per-job")
    assert set(oracle.metrics["oracle_candidates"]) == {"lp", "rolling", "per-job"}
    for r in others:
        if r.metrics["jobs_missed_deadline"] <= oracle.metrics["jobs_missed_deadline"]:
            assert r.metrics["objective_value"] >= best - 1e-9 * max(1.0, abs(best)), r.policy
    bound = oracle.metrics["lp_bound_objective"]
    if np.isfinite(bound) and oracle.metrics["jobs_missed_deadline"] == 0:
        assert best >= bound - 1e-9 * max(1.0, abs(bound))


def test_oracle_candidates_are_checked():
    with pytest.raises(ScenarioError) as e:
        make_policy(PolicySpec(name="oracle", params={"candidates": ["lp", "guess"]}))
    assert e.value.field == "policies[0].params"


def test_oracle_with_one_candidate_is_that_plan():
    world, sig = _world(3)
    out = run_oracle(world, sig, Oracle(candidates=["per-job"]), Objective())
    alone = simulate(world, sig, PerJob())
    assert out.metrics["oracle_chosen"] == "per-job"
    assert out.metrics["carbon_t"] == pytest.approx(alone.metrics["carbon_t"])


def test_a_better_schedule_of_the_same_run_is_adopted():
    """With ``policies`` among its candidates the oracle takes any better schedule simulated in the same run:
    limited to the ``asap``-like single LP of a coarse layout it is beaten by ``per-job``, and then adopts it."""
    from gridshift.sim.oracle import adopt_better_schedules

    obj = Objective()
    for seed in range(12):
        world, sig = _world(seed)
        weak = Oracle(candidates=["lp", "policies"], block_h=3)
        runs = [run_oracle(world, sig, weak, obj), simulate(world, sig, PerJob())]
        runs[1].policy = "per-job"
        add_scores(runs, world, sig, obj)
        before = runs[0].metrics["objective_value"]
        beaten = (runs[1].metrics["jobs_missed_deadline"], runs[1].metrics["objective_value"]) < \
            (runs[0].metrics["jobs_missed_deadline"], before)
        adopt_better_schedules(runs, [weak, None], world, sig, obj)
        assert "policy:per-job" in runs[0].metrics["oracle_candidates"]
        if beaten:
            break
        assert runs[0].metrics["oracle_chosen"] == "lp"
    else:
        raise AssertionError("the coarse LP was never beaten on these seeds")
    got = runs[0].metrics
    assert got["oracle_chosen"] == "policy:per-job" and runs[0].policy != "per-job"
    assert got["objective_value"] == pytest.approx(runs[1].metrics["objective_value"])
    assert got["carbon_t"] == pytest.approx(runs[1].metrics["carbon_t"])


def test_without_policies_the_oracle_keeps_its_own_plan():
    from gridshift.sim.oracle import adopt_better_schedules

    world, sig = _world(5)
    obj = Objective()
    own = Oracle(candidates=["lp"], block_h=3)
    runs = [run_oracle(world, sig, own, obj), simulate(world, sig, PerJob())]
    runs[1].policy = "per-job"
    before = dict(runs[0].metrics)
    adopt_better_schedules(runs, [own, None], world, sig, obj)
    assert runs[0].metrics["oracle_chosen"] == before["oracle_chosen"] == "lp"
    assert runs[0].metrics["carbon_t"] == before["carbon_t"]
