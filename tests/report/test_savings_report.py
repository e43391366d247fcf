"""The savings split in the run report: console rows, the HTML section, the PNG figure and `explain`'s lines."""

import json

import numpy as np
import pytest

from gridshift.model.scenario import Objective
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Policy
from gridshift.plan.nominal import Nominal
from gridshift.report.explain import saving_lines
from gridshift.report.figures import saving_splits
from gridshift.report.html import render_html
from gridshift.report.png import write_pngs
from gridshift.report.run_report import summary_table
from gridshift.sim.attribution import add_attribution
from gridshift.sim.engine import simulate
from gridshift.sim.score import add_scores, terminal_cost_per_work
from worldkit import make_fleet, make_jobs, make_signals, make_world


class CappedLater(Policy):
    """Every job one slot late on pool 0, capped at half power."""

    name = "capped-later"

    def decide(self, obs):
        if obs.t < 1:
            return Decision.idle(obs.world)
        j = obs.active
        return Decision(j, np.zeros(j.size, np.int32), np.ones(j.size, np.int32), np.full(obs.world.fleet.n_pools, 0.5))


@pytest.fixture
def runs():
    fleet = make_fleet(((2,),), board_w=(1000.0,), idle_w=(100.0,), n_slots=4, curve=((0.5, 1.0), (0.7, 1.0)))
    jobs = make_jobs(arrival_s=(0.0,), work_acc_h=(0.7,))
    jobs.nominal_start_s = np.array([7200.0])
    sig = make_signals([500.0, 100.0, 300.0, 400.0])
    world = make_world(fleet, jobs, sig)
    out = [simulate(world, sig, Asap()), simulate(world, sig, CappedLater())]
    obj = Objective()
    add_scores(out, world, sig, obj)
    add_attribution(out, {"asap": out[0], "nominal": simulate(world, sig, Nominal())}, obj,
                    terminal_cost_per_work(world, sig, obj), nominal_mask=np.array([True]))
    return out


def test_splits_rows_match_the_metrics(runs):
    rows = saving_splits(runs)
    r = next(x for x in rows if x["reference"] == "asap" and x["scope"] == "jobs")
    assert r["policy"] == "capped-later"
    assert r["total"] == pytest.approx(runs[1].metrics["jobs_saving_vs_asap_frac"])
    assert r["timing"] + r["energy"] + r["work_left"] == pytest.approx(r["total"])
    assert not any(x["reference"] == "asap" and x["policy"] == "asap" for x in rows)


def test_console_html_and_png_show_both_savings(tmp_path, runs):
    from rich.console import Console

    con = Console(width=200, record=True)
    con.print(summary_table(runs))
    text = con.export_text()
    assert "saving vs asap (site)" in text and "jobs' own saving vs asap" in text
    assert "jobs' own saving vs nominal" in text and "of which timing / placement" in text
    assert "of which work left" not in text  # no policy left work unfinished
    page = render_html("x", runs)
    assert "Saving vs asap" in page and "Saving vs the nominal start" in page and "jobs&#x27; own: energy" in page
    assert f"{100 * runs[1].metrics['jobs_saving_vs_asap_energy_frac']:+.2f} %" in page
    names = {p.name for p in write_pngs(tmp_path, runs)}
    assert "savings_split.png" in names


def test_explain_lines_give_the_jobs_and_the_sites_saving(tmp_path, runs):
    doc = {"policies": {r.policy: {k: v for k, v in r.metrics.items()} for r in runs}}
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    job = runs[1].jobs.iloc[0]
    lines = saving_lines(tmp_path, "capped-later", job)
    assert len(lines) == 2 and lines[0].startswith("saving vs asap: this job")
    m = runs[1].metrics
    kg = job["saving_vs_asap_energy"] * 1000
    assert f"energy {kg:+.2f} kg CO2" in lines[0]
    assert f"all the run's jobs {m['jobs_saving_vs_asap_frac']:+.2%}" in lines[0]
    assert f"the site {m['saving_vs_asap_frac']:+.2%}" in lines[0]
    assert lines[1].startswith("saving vs its nominal start")
    # the reference itself gets no line against itself
    assert all(not x.startswith("saving vs asap") for x in saving_lines(tmp_path, "asap", runs[0].jobs.iloc[0]))
