"""Scenario I of Wiesner et al., "Let's Wait Awhile: How Temporal Workload Shifting Can Reduce Carbon Emissions
in the Cloud" (Middleware 2021), like for like on the project's own data.

The paper's nightly job: 30 minutes, nominally at 01:00 UTC, shiftable within ±8 h (here: it arrives at 17:00
UTC the day before and is due at 09:30 UTC), power capping off (``cap_levels [1.0]``: the job always runs at
full power, as in the paper), i.i.d. 5 % forecast error (the ``lead-error`` forecaster with ``sigma_rel
[0.05]`` and ``rho 0``: a Gaussian error of 5 % of the series' mean level, drawn independently per slot and
forecast; lead 0 exact), and perfect forecasts. The paper reports, on 2020 data, 11.7 % less carbon than at
01:00 for Germany and 8.0 % for Great Britain (its Fig. 7; France is not in the project's data, California
is, without a paper figure for this scenario). Here: Electricity Maps life-cycle intensities (``carbon/<zone>``
from the data registry), hourly slots, 2021–2023.

For every zone and year, over the period (default: January–March, ``--period q1``; ``--period year`` runs
the whole year quarter by quarter, about four times longer):

* ``oracle``, ``mpc-perfect`` (mpc, perfect forecasts) and ``mpc-lead-error`` (mpc, 5 % i.i.d. error), each
  with do-no-harm off (``habit: false``, as the paper shifts to the forecast's best hour) and with capping off;
  the jobs' own carbon saving against the nominal 01:00 start (``jobs_saving_vs_nominal_frac`` of
  ``gridshift.sim.attribution``: the reference is the ``nominal`` policy, every job at 01:00 at full power)
  split into timing and energy — energy is 0 here: capping is off and the energy of a 30-minute job does not
  depend on when it runs;
* an independent brute force (pandas/numpy on the registry's CSV, no GridShift code): per day, the hourly
  intensity at 01:00 and the best in the window, two ways: every whole-hour start 17:00–09:00 UTC (the exact
  optimum: the job fits inside any hour, so no start at a minute offset does better on hourly data) and only
  starts whose whole hourly slot lies inside the window (17:00–08:00: the simulator's current convention,
  issue 16 item 1). The saving is ``1 − Σ best / Σ CI(01:00)`` (the job's energy is the same every day).

Results in ``benchmarks/results/wait_awhile.json`` (under ``runs.<period>``); a markdown table on stdout (for
benchmarks/RESULTS.md). About 1–2 minutes per zone and year for ``q1`` (2 shared cores), four times that for ``year``.

    PYTHONPATH=src python benchmarks/bench_wait_awhile.py [--zones DE-LU GB US-CAL-CISO] [--years 2021 2022 2023]
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.registry import resolve
from gridshift.data.scenario import parse_scenario
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "wait_awhile.json"
ZONES = ("DE-LU", "GB", "US-CAL-CISO")
YEARS = (2021, 2022, 2023)
# Wiesner et al. 2021, Scenario I (nightly jobs, ±8 h, 2020 data, 5 % forecast error), vs 01:00 UTC
PAPER = {"DE-LU": 0.117, "GB": 0.080}
NOMINAL_H, RUN_H, WINDOW_H = 1, 0.5, 8
LEAD_ERROR = {"sigma_rel": [0.05], "rho": 0.0}
POLICIES = (
    ("oracle", {"name": "oracle", "params": {"cap_levels": [1.0]}}),
    ("mpc-perfect", {"name": "mpc", "params": {"forecast": "perfect", "cap_levels": [1.0], "habit": False}}),
    ("mpc-lead-error", {"name": "mpc", "params": {"forecast": "lead-error", "forecast_params": LEAD_ERROR,
                                                  "cap_levels": [1.0], "habit": False}}),
)
QUARTERS = (("01-01", "04-01"), ("04-01", "07-01"), ("07-01", "10-01"), ("10-01", "12-31"))


def scenario_text(zone: str, start: str, end: str) -> str:
    """The nightly scenario (benchmarks/scenarios/nightly-habit-*-q1.yaml) for one zone and period."""
    return f"""
name: wait-awhile-{zone}
seed: 2021
time_range: {{start: {start}, end: {end}}}
slot_duration_s: 3600
objective: carbon
zones: [{{id: {zone}, price_usd_per_mwh: 100.0}}]  # the objective is carbon; not every zone has prices
sites:
  - {{name: dc, zone: {zone}, pue: 1.2, power_cap_mw: 0.05, pools: [{{accelerator: H100, count: 8}}]}}
workloads:
  recurring:
    - {{name: nightly, kind: batch-inference, tz: UTC, start_local_h: {NOMINAL_H}, run_h: {RUN_H}, gang: 8,
       window_h: {WINDOW_H}, interruptible: false}}
"""


def periods(year: int, period: str) -> list[tuple[str, str]]:
    quarters = QUARTERS[:1] if period == "q1" else QUARTERS
    return [(f"{year}-{a}T00:00:00Z", f"{year}-{b}T00:00:00Z") for a, b in quarters]


def brute_force(zone: str, year: int, start: str, end: str) -> dict:
    """Independent of GridShift's code: the registry's CSV read with pandas, every day's nominal and best start."""
    csv = pd.read_csv(resolve(f"carbon/{zone}", year=year))
    ci = pd.Series(csv["Carbon Intensity gCO₂eq/kWh (LCA)"].to_numpy(float),
                   index=pd.to_datetime(csv["Datetime (UTC)"], utc=True)).sort_index()
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    days = pd.date_range(lo.normalize(), hi.normalize(), freq="D", tz="UTC")
    nominal = days + pd.Timedelta(hours=NOMINAL_H)
    arrival = nominal - pd.Timedelta(hours=WINDOW_H)
    deadline = nominal + pd.Timedelta(hours=RUN_H + WINDOW_H)
    keep = (arrival >= lo) & (deadline <= hi)
    nominal, arrival = nominal[keep], arrival[keep]
    # hourly starts 17:00 ... 09:00 (exact: the 30-minute job fits inside the hour of its start)
    n_exact = int(np.floor(2 * WINDOW_H)) + 1  # any start up to deadline − 30 min: 17:00 .. 09:00 = 17 starts
    starts = arrival.tz_convert(None).to_numpy()[:, None] + np.arange(n_exact)[None, :] * np.timedelta64(3600, "s")
    vals = ci.reindex(pd.DatetimeIndex(starts.ravel()).tz_localize("UTC")).to_numpy().reshape(starts.shape)
    at_nominal = ci.reindex(nominal).to_numpy()
    if np.isnan(vals).any() or np.isnan(at_nominal).any():
        raise RuntimeError(f"{zone} {year}: gaps in the hourly series inside a job's window")
    best_exact = vals.min(axis=1)
    best_whole_slot = vals[:, : n_exact - 1].min(axis=1)  # 17:00 .. 08:00: the slot ends by the deadline
    return {"jobs": int(keep.sum()), "nominal_ci_sum": float(at_nominal.sum()),
            "best_exact_ci_sum": float(best_exact.sum()), "best_whole_slot_ci_sum": float(best_whole_slot.sum()),
            "exact_last_hour_best_days": int((vals.argmin(axis=1) == n_exact - 1).sum())}


def simulate(zone: str, start: str, end: str) -> dict:
    asm = assemble(parse_scenario(scenario_text(zone, start, end), source=f"wait-awhile {zone}"))
    specs = [PolicySpec(label=label, **spec) for label, spec in POLICIES]
    out = {"jobs": len(asm.world.jobs)}
    for spec in specs:
        t0 = time.perf_counter()
        (run,) = run_policies(asm, [spec])
        s = run.metrics["savings"]["vs_nominal"]["jobs"]
        out[spec.key] = {**{k: s[k] for k in ("reference", "policy", "timing", "energy", "work_left")},
                         "wall_s": time.perf_counter() - t0,
                         "deadline_misses": int(run.metrics["jobs_missed_deadline"])}
    return out


def measure(zone: str, year: int, period: str) -> dict:
    parts = []
    for start, end in periods(year, period):
        bf = brute_force(zone, year, start, end)
        sim = simulate(zone, start, end)
        if sim["jobs"] != bf["jobs"]:
            raise RuntimeError(f"{zone} {start}: the simulator has {sim['jobs']} jobs, the brute force {bf['jobs']}")
        parts.append((bf, sim))
        print(f"  {zone} {start[:10]}: {bf['jobs']} jobs", file=sys.stderr, flush=True)
    total = {k: sum(p[0][k] for p in parts) for k in parts[0][0]}
    res = {"period": [periods(year, period)[0][0], periods(year, period)[-1][1]], "jobs": total["jobs"],
           "brute_force": {"saving_exact": 1 - total["best_exact_ci_sum"] / total["nominal_ci_sum"],
                           "saving_whole_slot": 1 - total["best_whole_slot_ci_sum"] / total["nominal_ci_sum"],
                           "days_best_in_last_hour": total["exact_last_hour_best_days"]}}
    for label, _ in POLICIES:
        agg = {k: sum(p[1][label][k] for p in parts) for k in ("reference", "policy", "timing", "energy",
                                                                  "work_left", "wall_s", "deadline_misses")}
        ref = agg["reference"]
        res[label] = {"saving": (ref - agg["policy"]) / ref, "timing": agg["timing"] / ref,
                      "energy": agg["energy"] / ref, "work_left": agg["work_left"] / ref,
                      "wall_s": round(agg["wall_s"], 2), "deadline_misses": agg["deadline_misses"]}
    return res


def table(doc: dict, period: str) -> str:
    lines = ["| zone | year | jobs | oracle: saving (timing / energy) | mpc-perfect | mpc-lead-error 5 % | "
             "brute force: whole slots 17–08 h / exact 17–09 h | Wiesner et al. (2020) |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in sorted(doc.get("runs", {}).get(period, {}).items()):
        zone, year = key.rsplit("-", 1)

        def cell(x: dict) -> str:
            return f"{100 * x['saving']:.1f} % ({100 * x['timing']:.1f} / {100 * x['energy']:.1f})"

        paper = f"{100 * PAPER[zone]:.1f} %" if zone in PAPER else "—"
        bf = r["brute_force"]
        lines.append(f"| {zone} | {year} | {r['jobs']} | {cell(r['oracle'])} | {cell(r['mpc-perfect'])} | "
                     f"{cell(r['mpc-lead-error'])} | {100 * bf['saving_whole_slot']:.1f} % / "
                     f"{100 * bf['saving_exact']:.1f} % | {paper} |")
    return "\n".join(lines)


def _merge(update) -> dict:
    """Read the results file, apply ``update(doc)`` and write it back atomically, under a lock (zones may run
    in parallel processes); returns the document."""
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "gridshift-wait-awhile.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(OUT.read_text()) if OUT.exists() else {}
        update(doc)
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, OUT)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zones", nargs="+", default=list(ZONES))
    ap.add_argument("--years", nargs="+", type=int, default=list(YEARS))
    ap.add_argument("--period", choices=("q1", "year"), default="q1")
    a = ap.parse_args()
    t0 = time.perf_counter()
    for zone in a.zones:
        for year in a.years:
            res = measure(zone, year, a.period)
            doc = _merge(lambda d, k=f"{zone}-{year}", r=res: d.setdefault("runs", {}).setdefault(a.period, {})
                         .__setitem__(k, r))
    doc = _merge(lambda d: d.setdefault("meta", {}).update({
        a.period: {"git": git_state(), "cpus": os.cpu_count(), "wall_s": round(time.perf_counter() - t0, 1)},
        "conventions": "nominal 01:00 UTC, window ±8 h (arrival 17:00 UTC, due 09:30 UTC), 30-minute job on 8 H100, "
                       "hourly slots and data (Electricity Maps LCA), capping off, do-no-harm off, lead-error "
                       "sigma_rel 0.05 rho 0 (i.i.d.)",
        "paper": "Wiesner et al., Let's Wait Awhile, Middleware 2021, Scenario I, 2020 data"}))
    print(table(doc, a.period))


if __name__ == "__main__":
    main()
