"""Demand response as a utility and an operator see it: the ramp limit binds every change of drawn power
(whoever makes it, any policy, any slot length), tiers 1-2 are never paused by an event, the draw after an
event stays within the rebound setting, and each event's cost by tier is measured against a run without it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from gridshift.data.scenario import parse_scenario
from gridshift.errors import GridShiftError
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[2]
CUT25 = ROOT / "examples" / "dr-a100-cut25.yaml"


def _scenario(slot_s: int, ramp: float, start_min: int, length_min: int, notice_s: int, cut: float,
              kind: str = "cut", count: int = 120):
    doc = yaml.safe_load(CUT25.read_text())
    doc["slot_duration_s"] = slot_s
    doc["time_range"] = {"start": "2023-08-15T12:00:00Z", "end": "2023-08-16T06:00:00Z"}
    doc["workloads"]["generate"].update(count=count, max_length_h=8)
    doc["sites"][0]["ramp_mw_per_min"] = ramp
    h, m = divmod(20 * 60 + start_min, 60)
    e = {"id": "ev", "kind": kind, "sites": ["cluster"], "start": f"2023-08-15T{h:02d}:{m:02d}:00Z",
         "notice_s": notice_s, "cut_frac": cut, "baseline_mw": 0.16}
    end = 20 * 60 + start_min + length_min
    e["end"] = f"2023-08-{15 + end // 1440:02d}T{(end % 1440) // 60:02d}:{end % 60:02d}:00Z"
    if kind == "emergency":
        e["respond_within_s"] = 30
    doc["events"] = [e]
    return parse_scenario(yaml.safe_dump(doc), "s.yaml")


def _max_step_mw_per_min(tr):
    t = tr["time"].astype("int64").to_numpy() / 1e9
    w = tr["step_s"].to_numpy()
    a = tr["achieved_mw"].to_numpy()
    consecutive = np.isclose(np.diff(t), w[:-1])
    return (np.abs(np.diff(a)) / (w[1:] / 60.0))[consecutive]


def _cases(n: int, seed: int = 17):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        yield (int(rng.choice([300, 900, 1800, 3600])), float(rng.choice([0.002, 0.005, 0.01])), int(rng.integers(0, 120)),
               int(rng.integers(10, 200)), int(rng.choice([0, 600, 7200])), float(rng.choice([0.1, 0.25, 0.4])),
               str(rng.choice(["asap", "threshold", "blind"])))


@pytest.mark.parametrize("slot_s, ramp, start_min, length_min, notice_s, cut, policy", list(_cases(6)))
def test_no_change_of_drawn_power_exceeds_the_ramp(slot_s, ramp, start_min, length_min, notice_s, cut, policy):
    """Seeded random events, ramp limits, slot lengths and policies: every minute-to-minute change of the
    drawn power in the event's trace is within the ramp limit."""
    asm = assemble(_scenario(slot_s, ramp, start_min, length_min, notice_s, cut))
    spec = PolicySpec(name="asap", label="blind", params={"respect_power_cap": False}) if policy == "blind" \
        else PolicySpec(name=policy)
    (run,) = run_policies(asm, [spec])
    (ev,) = run.metrics["events"]
    steps = _max_step_mw_per_min(run.event_traces["ev"])
    assert steps.size and steps.max() <= ramp * (1 + 1e-6) + 1e-12
    assert ev["max_ramp_mw_per_min"] <= ramp * (1 + 1e-6) + 1e-12


def test_mpc_and_sub_minute_steps_keep_the_ramp_too():
    asm = assemble(_scenario(900, 0.005, 17, 95, 0, 0.4, kind="emergency"))
    (run,) = run_policies(asm, [PolicySpec(name="mpc", params={"forecast": "perfect"})])
    tr = run.event_traces["ev"]
    assert (tr["step_s"] == 5).any()
    assert _max_step_mw_per_min(tr).max() <= 0.005 * (1 + 1e-6)


@pytest.fixture(scope="module")
def cut25():
    doc = yaml.safe_load(CUT25.read_text())
    asm = assemble(parse_scenario(yaml.safe_dump(doc), "s.yaml"))
    return asm, run_policies(asm, [PolicySpec(name="asap"), PolicySpec(name="mpc", params={"forecast": "perfect"})])


def test_tiers_one_and_two_are_never_paused_by_an_event(cut25):
    asm, runs = cut25
    w = asm.world
    ev = w.events
    a, b = int(ev.start_s[0] // w.slot_duration_s), int(np.ceil(ev.end_s[0] / w.slot_duration_s))
    for run in runs:
        pl = run.placements
        t = ((pl["time"] - w.slot_starts[0]).dt.total_seconds() // w.slot_duration_s).astype(int).to_numpy()
        j = pl["job_id"].cat.codes.to_numpy()
        done = run.jobs["completion"].notna().to_numpy()
        for slot in range(a, b):
            before = set(j[(t == slot - 1) & (w.jobs.tier[j] <= 2)])
            now = set(j[t == slot])
            finished = {x for x in before if done[x] and run.jobs["completion"].iloc[x] <= w.slot_starts[slot]}
            assert before - now - finished == set(), (run.policy, slot)
        (e,) = run.metrics["events"]
        assert e["compliance_after_ramp_frac"] >= 0.99
        assert e["tier_throughput_loss_frac"]["0"] == 0.0


def test_cost_by_tier_is_measured_against_a_run_without_the_event(cut25):
    asm, runs = cut25
    for run in runs:
        (e,) = run.metrics["events"]
        c = e["vs_no_event"]["by_tier"]
        assert set(c) == {"0", "1", "2", "3"}
        total = sum(c[k]["acc_h_without_event"] for k in c)
        assert total > 0
        # the event takes power: the tiers together hold fewer accelerator-hours than without it
        assert sum(c[k]["acc_h"] for k in c) < total
        assert e["vs_no_event"]["deadline_miss_frac_without_event"] is not None
    asap = runs[0].metrics["events"][0]["vs_no_event"]["by_tier"]
    assert asap["0"]["acc_h"] >= asap["0"]["acc_h_without_event"] - 1e-9  # the floor allows it: no tier-0 loss
    assert asap["3"]["acc_h_lost_frac"] > asap["1"]["acc_h_lost_frac"]  # paid by the tiers that agreed to pay


def test_cut_is_reported_against_stated_and_measured_baselines():
    asm = assemble(_scenario(3600, 0.01, 0, 180, 7200, 0.25))
    (run,) = run_policies(asm, [PolicySpec(name="asap")])
    e = run.metrics["events"][0]
    b, cut = e["baselines_mw"], e["baseline_cut_frac"]
    assert b["stated"] == 0.16 and b["x_of_y"] is None  # less than 5 days of simulated history
    ts = run.site_timeseries
    hour = ts[ts["time"] == "2023-08-15T17:00:00Z"]["facility_power_mw"].sum()  # notice at 18:00, 1 h before
    assert b["before_notice"] == pytest.approx(hour)
    for k in ("stated", "before_notice"):
        assert cut[k] == pytest.approx(1 - e["mean_mw_during"] / b[k])


def test_tier_zero_is_not_kept_from_starting_by_an_event_under_mpc(cut25):
    """``mpc``'s plan does not tell tiers apart; under a known event its rounding starts waiting tier-0 work
    first, so tier 0 holds no fewer accelerator-hours in the event than in the same run without it."""
    asm, runs = cut25
    c = runs[1].metrics["events"][0]["vs_no_event"]["by_tier"]
    assert c["0"]["acc_h"] >= c["0"]["acc_h_without_event"] - 1e-9
    assert not any("tier-0 work held" in x for x in runs[1].metrics.get("plan_warnings", []))


def test_a_cut_from_a_measured_baseline_gets_its_target_when_issued():
    doc = yaml.safe_load(CUT25.read_text())
    doc["events"][0].update(notice_s=7200, baseline="before_notice")
    del doc["events"][0]["baseline_mw"]
    asm = assemble(parse_scenario(yaml.safe_dump(doc), "s.yaml"))
    assert np.isinf(asm.world.event_cap_mw).all()  # unknown until the event is issued
    (run,) = run_policies(asm, [PolicySpec(name="asap")])
    e = run.metrics["events"][0]
    b = e["baselines_mw"]["before_notice"]
    hour = run.site_timeseries.set_index("time")["facility_power_mw"]
    assert b == pytest.approx(hour[pd.Timestamp("2023-08-15T20:00:00Z")])  # issued 21:00, the hour before
    assert e["target_baseline"] == {"rule": "before_notice", "mw": pytest.approx(b)}
    assert e["requested_mw"] == pytest.approx(0.75 * b)
    assert e["compliance_after_ramp_frac"] >= 0.99
    assert e["baseline_cut_frac"]["before_notice"] >= 0.25 - 1e-9


def test_a_measured_baseline_without_history_is_refused():
    doc = yaml.safe_load(CUT25.read_text())
    doc["events"][0].update(notice_s=23 * 3600 + 1, baseline="before_notice")
    del doc["events"][0]["baseline_mw"]
    with pytest.raises(GridShiftError, match=r"event 'evening-peak': a measured baseline needs simulated draw"):
        assemble(parse_scenario(yaml.safe_dump(doc), "s.yaml"))


def test_the_report_shows_cost_by_tier_and_the_rebound(cut25):
    from gridshift.report.html import render_html

    asm, runs = cut25
    page = render_html("dr", runs)
    assert "acc-h lost % by tier 0/1/2/3 vs no event" in page and "rebound hold" in page
    c = runs[0].metrics["events"][0]["vs_no_event"]["by_tier"]
    row = " / ".join(f"{100 * c[k]['acc_h_lost_frac']:.0f}" for k in sorted(c))
    assert "<td>evening-peak</td><td>asap</td>" in page and f"<td>{row}</td>" in page
