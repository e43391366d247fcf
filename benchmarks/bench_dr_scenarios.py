"""Benchmark: the demand-response scenarios in ``examples/dr-*.yaml``, every policy each lists; per event the
requested limit, compliance, time to target, cut reached, throughput lost per tier and SLO attainment; a
markdown table and ``benchmarks/results/dr_scenarios.json``.

Each scenario also runs without its events (the counterfactual): the difference in energy and carbon per
site, inside the event window and after it, is what the response moved to other hours and sites.

    python benchmarks/bench_dr_scenarios.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.scenario import load_scenario
from gridshift.model.scenario import Scenario
from gridshift.sim.runner import policy_specs, run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("requested_mw", "baseline_mw", "compliance_frac", "time_to_target_s", "achieved_min_cut_frac",
        "cut_at_response_deadline_frac", "tier_throughput_loss_frac", "tier_planner_cap_loss_frac",
        "slo_attainment", "deliverable_mw", "energy_shed_mwh", "sites", "compliance_after_ramp_frac", "ramp_grace_s",
        "max_ramp_mw_per_min", "pre_event_mw", "rebound_s", "rebound_max_over_pre_event_mw", "post_event_max_mw",
        "baselines_mw", "baseline_cut_frac", "mean_mw_during", "vs_no_event")


def _moved(ts: pd.DataFrame, ts_cf: pd.DataFrame, ev) -> dict:
    """Energy and carbon with the event minus without it, per site, during the event and after it."""
    t = pd.to_datetime(ts["time"])
    start, end = pd.Timestamp(ev.start), pd.Timestamp(ev.end)
    out = {}
    for when, m in (("during", (t >= start) & (t < end)), ("after", t >= end)):
        d = ts[m].groupby("site", observed=True)[["energy_mwh", "carbon_t"]].sum() - \
            ts_cf[m.to_numpy()].groupby("site", observed=True)[["energy_mwh", "carbon_t"]].sum()
        out[when] = {s: {"energy_mwh": float(r.energy_mwh), "carbon_t": float(r.carbon_t)} for s, r in d.iterrows()}
    return out


def main() -> int:
    res = {"benchmark": "dr_scenarios", **git_state(), "scenarios": {}}
    rows = []
    for path in sorted((ROOT / "examples").glob("dr-*.yaml")):
        sc0 = load_scenario(path)
        asm = assemble(sc0)
        t0 = time.perf_counter()
        runs = run_policies(asm, policy_specs(asm, None))
        wall = time.perf_counter() - t0
        asm_cf = assemble(Scenario.model_validate({**sc0.model_dump(), "events": []}))
        cf_runs = run_policies(asm_cf, policy_specs(asm_cf, None))
        cf = {r.policy: r for r in cf_runs}
        sc = res["scenarios"][path.stem] = {"wall_s": round(wall, 1), "policies": {}}
        for r in runs:
            evs = [{k: e.get(k) for k in ("id", *KEYS)} for e in r.metrics.get("events", [])]
            for e, ev in zip(evs, [x for x in sc0.events if x.is_power_request]):
                e["moved"] = _moved(r.site_timeseries, cf[r.policy].site_timeseries, ev)
            sc["policies"][r.policy] = {"events": evs, "deadline_miss_frac": r.metrics["deadline_miss_frac"],
                                        "work_done_frac": r.metrics["work_done_frac"],
                                        "plan_warnings": r.metrics.get("plan_warnings", [])}
            for e in evs:
                tl = e["tier_throughput_loss_frac"]
                cut = e["cut_at_response_deadline_frac"]
                slo = e["slo_attainment"]
                cut_s = "—" if cut is None else f"{100 * cut:.1f} %"
                slo_s = "—" if slo is None else f"{100 * slo:.1f} %"
                tiers = " / ".join(f"{100 * tl[k]:.1f}" for k in ("0", "1", "2", "3"))
                bt = e["vs_no_event"]["by_tier"]
                acc = " / ".join(f"{100 * bt[k]['acc_h_lost_frac']:.0f}" for k in ("0", "1", "2", "3"))
                miss = f"{100 * e['vs_no_event']['deadline_miss_frac_without_event']:.1f} → " \
                       f"{100 * e['vs_no_event']['deadline_miss_frac']:.1f} %"
                bc = e["baseline_cut_frac"]
                bn = "—" if bc["before_notice"] is None else f"{100 * bc['before_notice']:.1f} %"
                rb = e["rebound_max_over_pre_event_mw"]
                rows.append(f"| {path.stem} | {r.policy} | {e['requested_mw']:.4g} | {100 * e['compliance_frac']:.1f} % | "
                            f"{100 * e['compliance_after_ramp_frac']:.1f} % | {e['time_to_target_s']:.0f} s | "
                            f"{1000 * e['max_ramp_mw_per_min']:.3g} kW/min | {100 * e['achieved_min_cut_frac']:.1f} % | "
                            f"{100 * bc['stated']:.1f} % / {bn} | {cut_s} | {tiers} | {acc} | {miss} | "
                            f"{'—' if rb is None else f'{1000 * rb:.2g} kW'} | {slo_s} |")
        print(f"{path.stem}: {wall:.1f} s")
    print("| scenario | policy | limit MW | compliance | after the ramp | time to target | largest step | min cut | "
          "mean cut vs stated / before-notice baseline | cut at response deadline | throughput lost % by tier "
          "0/1/2/3 (in-slot) | acc-h lost % by tier vs no event | deadline misses without → with | "
          "rebound over pre-event | SLO |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    out = ROOT / "benchmarks" / "results" / "dr_scenarios.json"
    out.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
