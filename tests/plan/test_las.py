"""The ``las`` policy (heterogeneity-aware least attained service) in the fleet simulator: valid placements
under pool sizes, gang bounds and site power caps, and the aware variant ahead of the agnostic one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from gridshift.errors import ScenarioError
from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.plan.las import gang_variants
from gridshift.plan.registry import make_policy
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

SMALL = Path(__file__).resolve().parents[1] / "scenarios" / "small.yaml"


def test_gang_variants_are_the_bounds_and_the_powers_of_two_between():
    pos, gang = gang_variants(np.array([1, 3, 8, 2]), np.array([8, 3, 64, 6]))
    by_job = {i: gang[pos == i].tolist() for i in range(4)}
    assert by_job == {0: [1, 2, 4, 8], 1: [3], 2: [8, 16, 32, 64], 3: [2, 4, 6]}


def test_parameters_are_checked():
    for params, field in (({"carbon_weight": 2}, "params"), ({"stickiness": 0.5}, "params"),
                          ({"fairness": "x"}, "params")):
        with pytest.raises(ScenarioError, match=field):
            make_policy(PolicySpec(name="las", params=params))


CAP_MW = 0.12  # below the peaks on this scenario with 0.2 MW caps (asap 0.18 MW, las 0.16 MW)


@pytest.fixture(scope="module")
def runs():
    doc = yaml.safe_load(SMALL.read_text())
    for site in doc["sites"]:
        site["power_cap_mw"] = CAP_MW
    a = assemble(Scenario.model_validate(doc))
    specs = [PolicySpec(name="las"), PolicySpec(name="las", label="las-agnostic", params={"aware": False}),
             PolicySpec(name="las", label="las-carbon", params={"carbon_weight": 0.3})]
    return a, {r.policy: r for r in run_policies(a, specs)}


def test_placements_respect_pools_gangs_and_power_caps(runs):
    a, by = runs
    f, jt = a.world.fleet, a.world.jobs
    count = {(f.site_names[f.pool_site[p]], f.type_names[f.pool_type[p]]): int(f.pool_count[p])
             for p in range(f.n_pools)}
    row = {j: i for i, j in enumerate(jt.job_id)}
    for name, r in by.items():
        pl = r.placements
        assert len(pl), name
        used = pl.groupby(["time", "site", "accelerator"], observed=True)["gang"].sum()
        assert all(v <= count[(s, acc)] for (_, s, acc), v in used.items()), name
        i = pl["job_id"].map(row).to_numpy()
        assert np.all(pl["gang"].to_numpy() >= jt.gang_min[i]) and np.all(pl["gang"].to_numpy() <= jt.gang_max[i])
        assert r.metrics["cap_violation_mwh"] == pytest.approx(0.0, abs=1e-9), name
        assert max(r.metrics["site_peak_power_mw"].values()) <= CAP_MW + 1e-9, name


def test_knowing_the_types_helps(runs):
    _, by = runs
    aware, agnostic = by["las"].metrics, by["las-agnostic"].metrics
    assert aware["work_done_frac"] > agnostic["work_done_frac"]
    assert aware["avg_jct_h"] < agnostic["avg_jct_h"]
    assert aware["deadline_miss_frac"] < agnostic["deadline_miss_frac"]
