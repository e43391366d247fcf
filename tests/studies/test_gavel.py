"""Gavel's experiments at reduced size (the full size is benchmarks/bench_gavel.py), the job generator and
the `gridshift hetero reproduce-gavel` command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from gridshift.sim.rounds import RoundSimulator, SimConfig
from gridshift.studies.gavel import GANG_SIZES, experiments, generate_jobs, reproduce_gavel
from gridshift.studies.gavel import gavel_inputs as _gavel_inputs


@pytest.fixture(scope="module")
def gavel():
    return _gavel_inputs()


def test_generator_follows_gavels_distributions(gavel):
    thr, _ = gavel
    jobs = generate_jobs(thr, n_jobs=20000, jobs_per_h=5.6, multi_gpu=True, seed=1)
    share = np.array([np.mean(jobs.gang == g) for g in GANG_SIZES])
    assert np.allclose(share, [0.70, 0.10, 0.15, 0.05], atol=0.015)
    gi = np.searchsorted(GANG_SIZES, jobs.gang)
    dur_s = jobs.steps / thr[jobs.job_type, gi, 2]  # steps = duration x V100 throughput
    assert dur_s.min() >= 60 * 10**1.5 - 1e-6 and dur_s.max() <= 60 * 10**4 + 1e-6
    assert abs(np.mean(dur_s > 60 * 10**3) - 0.2) < 0.015
    gaps_h = np.diff(jobs.arrival_s) / 3600
    assert abs(gaps_h.mean() - 1 / 5.6) < 0.01
    # multi-GPU jobs only of configurations measured at that size
    assert np.all(thr[jobs.job_type, gi, 2] > 0)
    single = generate_jobs(thr, n_jobs=500, jobs_per_h=5.6, multi_gpu=False, seed=1)
    assert np.all(single.gang == 1)


@pytest.fixture(scope="module")
def quick_rows():
    return reproduce_gavel(quick=True, seeds=[0], gang_choice=True, workers=1)


def _row(rows, name, policy):
    return next(r for r in rows if r["name"] == name and r["policy"] == policy)


def test_aware_beats_agnostic_and_fifo_at_reduced_size(quick_rows):
    for name in ("las-single-5.6", "las-multi-2.8"):
        ag, aw = _row(quick_rows, name, "agnostic"), _row(quick_rows, name, "aware")
        assert aw["avg_jct_h"] < ag["avg_jct_h"]
        assert aw["jobs_measured"] == ag["jobs_measured"] == 100
    ag, aw = _row(quick_rows, "makespan-500", "agnostic"), _row(quick_rows, "makespan-500", "aware")
    assert ag["policy_detail"].startswith("fifo") and aw["policy_detail"].startswith("min-makespan")
    assert aw["makespan_h"] < ag["makespan_h"]
    # the fluid LP bound holds for every schedule of the same jobs, and the round mechanism stays near it
    bound = aw["makespan_lp_bound_h"]
    assert bound == ag["makespan_lp_bound_h"] and bound > 0
    assert bound <= aw["makespan_h"] * (1 + 1e-6) and bound <= ag["makespan_h"]  # LP tolerance 1e-7
    assert aw["makespan_h"] <= 1.15 * bound
    assert _row(quick_rows, "las-single-5.6", "aware")["makespan_lp_bound_h"] is None


def test_choosing_the_gang_size_helps_on_the_multi_gpu_stream(quick_rows):
    fixed = _row(quick_rows, "las-multi-2.8", "aware")
    chosen = _row(quick_rows, "las-multi-2.8-gang-choice", "aware")
    assert chosen["avg_jct_h"] < fixed["avg_jct_h"]
    # more gang sizes to choose from can only lower the makespan bound
    mk_fixed = _row(quick_rows, "makespan-500", "aware")
    mk_chosen = _row(quick_rows, "makespan-500-gang-choice", "aware")
    assert mk_chosen["makespan_lp_bound_h"] <= mk_fixed["makespan_lp_bound_h"] + 1e-9
    assert mk_chosen["makespan_lp_bound_h"] <= mk_chosen["makespan_h"] * (1 + 1e-6)


def test_pools_never_over_allocated_in_a_simulation(gavel):
    thr, cluster = gavel
    exp = experiments(quick=True)[1]
    jobs = generate_jobs(thr, n_jobs=120, jobs_per_h=4.0, multi_gpu=True, seed=3, choose_gang=True)
    sim = RoundSimulator(jobs, cluster, thr, GANG_SIZES, SimConfig(policy="max-min-fairness", choose_gang=True,
                                                                   stop_after=(0, 120)))
    res = sim.run()
    assert np.all(np.isfinite(res.completion_s))
    # busy accelerators never exceed the pool: site power never above everything busy
    full_w = float((cluster.count * cluster.busy_power_w).sum())
    assert res.site_power_w.max() <= full_w + 1e-6
    assert np.all(res.gang_run <= jobs.gang_max) and np.all(res.gang_run >= jobs.gang_min)
    assert exp.name == "las-multi-2.8"


def test_cli_writes_gavel_json(tmp_path):
    out = tmp_path / "g"
    r = subprocess.run([sys.executable, "-m", "gridshift.cli", "hetero", "reproduce-gavel", "--quick", "--seeds", "1",
                        "--no-gang-choice", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "gavel.json").read_text())
    names = {(e["name"], e["policy"]) for e in doc["experiments"]}
    assert names == {(n, p) for n in ("las-single-5.6", "las-multi-2.8", "makespan-500") for p in ("agnostic", "aware")}
    for e in doc["experiments"]:
        assert set(e) >= {"name", "policy", "jobs_per_h", "avg_jct_h", "makespan_h", "published_avg_jct_h",
                          "published_makespan_h"}
    las = next(e for e in doc["experiments"] if e["name"] == "las-single-5.6" and e["policy"] == "aware")
    assert las["published_avg_jct_h"] == 28.96 and las["jobs_per_h"] == 5.6
    mk = next(e for e in doc["experiments"] if e["name"] == "makespan-500" and e["policy"] == "aware")
    assert mk["published_makespan_h"] == 169.4
    assert "28.96" in r.stdout  # published figure printed beside ours


@pytest.mark.parametrize("args, field", [(["--seeds", "0"], "seeds"), (["--only", "nope"], "only"),
                                         (["--workers", "0"], "workers")])
def test_cli_bad_input_is_one_line_exit_2(args, field):
    r = subprocess.run([sys.executable, "-m", "gridshift.cli", "hetero", "reproduce-gavel", "--quick", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and field in lines[0]
