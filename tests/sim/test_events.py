"""Grid events: parsing and validation, and the simulated response end to end on real data."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from gridshift.cli import app
from gridshift.data.events import read_events_csv
from gridshift.data.scenario import load_scenario, parse_scenario
from gridshift.errors import ScenarioError
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[2]
CUT25 = ROOT / "examples" / "dr-a100-cut25.yaml"
EMERGENCY = ROOT / "examples" / "dr-a100-emergency.yaml"


def _doc(path=CUT25):
    return yaml.safe_load(path.read_text())


def _parse(doc):
    return parse_scenario(yaml.safe_dump(doc), "s.yaml")


@pytest.mark.parametrize("change, message", [
    ({"start": "2023-08-14T23:00:00Z"}, "not inside the scenario's time range"),
    ({"cut_frac": -0.25}, "greater than 0"),
    ({"baseline_mw": None}, "baseline_mw"),
    ({"sites": ["nowhere"]}, "site 'nowhere'"),
    ({"end": "2023-08-15T22:00:00Z"}, "end must be after start"),
    ({"limit_mw": 0.1}, "exactly one of limit_mw, cut_frac, cut_mw"),
    ({"kind": "emergency"}, "respond_within_s"),
])
def test_bad_events_name_the_field(change, message):
    doc = _doc()
    doc["events"][0].update(change)
    doc["events"][0] = {k: v for k, v in doc["events"][0].items() if v is not None}
    with pytest.raises(ScenarioError) as e:
        _parse(doc)
    assert message in str(e.value) and "s.yaml" in str(e.value)


def test_overlapping_events_are_refused():
    doc = _doc()
    second = dict(doc["events"][0], id="second", start="2023-08-16T01:00:00Z", end="2023-08-16T03:00:00Z")
    doc["events"].append(second)
    with pytest.raises(ScenarioError, match="overlap at site 'cluster'"):
        _parse(doc)
    second.update(start="2023-08-16T02:00:00Z")  # back to back is fine
    assert len(_parse(doc).events) == 2


def test_events_csv(tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text("id,kind,sites,start,end,notice_s,limit_mw\n"
                   "a,limit,cluster,2023-08-15T12:00:00Z,2023-08-15T14:00:00Z,3600,0.1\n")
    doc = _doc()
    doc.pop("events")
    doc["events_file"] = "events.csv"
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    sc = load_scenario(tmp_path / "s.yaml")
    assert [(e.id, e.limit_mw, e.sites) for e in sc.events] == [("a", 0.1, ["cluster"])]
    csv.write_text("id,kind,sites,start,end,limit_mw\nb,limit,cluster,2023-08-15T12:00:00Z,2023-08-15T14:00:00Z,lots\n")
    with pytest.raises(ScenarioError) as e:
        read_events_csv(csv)
    assert str(e.value).count("\n") == 0 and "events.csv" in str(e.value) and "limit_mw" in str(e.value)
    r = CliRunner().invoke(app, ["simulate", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "out"), "-q"])
    assert r.exit_code == 2 and "limit_mw" in r.output and not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def cut25_runs():
    asm = assemble(load_scenario(CUT25))
    return asm, run_policies(asm, [PolicySpec(name="asap"), PolicySpec(name="asap", label="asap-blind",
                                                                       params={"respect_power_cap": False})])


def test_a_planned_cut_is_held_every_minute(cut25_runs):
    asm, runs = cut25_runs
    for run in runs:
        (ev,) = run.metrics["events"]
        tr = run.event_traces["evening-peak"]
        inside = tr["requested_mw"].notna()
        assert ev["compliance_frac"] == 1.0
        assert (tr.loc[inside, "achieved_mw"] <= tr.loc[inside, "requested_mw"] + 1e-12).all()
        assert ev["time_to_target_s"] <= 15 * 60
        assert ev["tier_throughput_loss_frac"]["0"] == 0.0
        assert ev["slo_attainment"] >= 0.999
        # the ramp limit holds between consecutive minutes, both ways
        ramp = asm.scenario.sites[0].ramp_mw_per_min
        minutes = tr[tr["step_s"] == 60]
        gaps = minutes["time"].diff().dt.total_seconds().to_numpy()[1:]
        steps = np.abs(np.diff(minutes["achieved_mw"].to_numpy()))
        assert (steps[gaps == 60] <= ramp + 1e-9).all()
    blind = runs[1].metrics["events"][0]
    # a planner that ignores the limit leaves the whole cut to the in-slot response, which slows more work
    assert blind["energy_shed_mwh"] > runs[0].metrics["events"][0]["energy_shed_mwh"]


def test_an_emergency_is_answered_in_seconds():
    asm = assemble(load_scenario(EMERGENCY))
    (run,) = run_policies(asm, [PolicySpec(name="asap")])
    (ev,) = run.metrics["events"]
    tr = run.event_traces["emergency"]
    assert (tr["step_s"] == 5).any()  # sub-minute steps around the signal
    assert ev["cut_at_response_deadline_frac"] >= 0.30
    assert ev["time_to_target_s"] <= 600 and ev["compliance_frac"] > 0.98
    assert ev["tier_throughput_loss_frac"]["0"] == 0.0 and ev["tier_planner_cap_loss_frac"]["0"] == 0.0
    assert ev["tier_throughput_loss_frac"]["3"] > ev["tier_throughput_loss_frac"]["1"]


def test_an_impossible_target_is_reported_before_it_starts():
    doc = _doc()
    doc["events"][0].update(cut_frac=0.9)
    asm = assemble(_parse(doc))
    (run,) = run_policies(asm, [PolicySpec(name="asap")])
    warnings = run.metrics["plan_warnings"]
    assert any("with every accelerator idle" in w for w in warnings)


def test_flex_command(tmp_path):
    r = CliRunner().invoke(app, ["flex", str(CUT25), "--site", "cluster", "--at", "2023-08-15T22:00:00Z", "--json",
                                 "--durations", "1,24"])
    assert r.exit_code == 0, r.output
    import json

    res = json.loads(r.output)
    c = res["curve"]
    assert [x["duration_h"] for x in c] == [1.0, 24.0]
    assert 0 < c[1]["shed_mw"] <= c[0]["shed_mw"] < res["draw_mw"] - res["floor_mw"] + 1e-9
    assert c[0]["tier0_mw"] == 0.0
    bad = CliRunner().invoke(app, ["flex", str(CUT25), "--site", "nowhere", "--at", "2023-08-15T22:00:00Z"])
    assert bad.exit_code == 2 and "unknown site 'nowhere'" in bad.output
