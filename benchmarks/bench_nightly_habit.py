"""The nightly job under ``mpc`` with and without do-no-harm (issue 18): timing saving against the nominal start.

Scenarios: ``benchmarks/scenarios/nightly-habit-{de,gb}-q1.yaml`` — one 30-minute job a day on 8 H100, nominal
start 01:00 UTC, shiftable ±8 h, power capping off (``cap_levels [1.0]``), first quarter of 2023. Each job's
carbon is the carbon intensity of the hourly slot it starts in (30 minutes, equal energy), so the timing saving
is ``1 − Σ CI(start) / Σ CI(01:00)`` over the jobs. "best whole-hour start": the lowest actual carbon intensity
among the hourly slots that lie wholly inside each job's window.

Two parts (``--part``):

* ``backtest``: the same job on the second or fourth quarter of 2023 (``--period q2|q4``; out of the measured
  sample; the fourth quarter ends 31 December so the last job's window stays inside 2023), mpc with do-no-harm
  over a grid of ``habit_margin`` × ``habit_z`` for the forecasters ``blend``, ``seasonal-naive``,
  ``persistence`` and ``lead-error`` (``sigma_rel`` 0.05, i.i.d.). The default is the grid point never negative
  (over forecasters, zones and quarters) with the highest mean saving (if none, the best worst saving).
* ``select``: picks the default from the backtest results in the file (the ``selection`` key).
* ``measure``: the first quarter of 2023 (or ``--period 22q1|q2|q4``, out-of-sample checks stored as
  ``<zone>-<period>``), forecasters ``perfect``, ``lead-error``, ``blend``, ``seasonal-naive``, ``persistence``
  (or ``--forecasts``), without do-no-harm, with it (the default rule, the track record of its own decisions)
  and with the pair rule (``with_pair``).

Results merge into ``benchmarks/results/nightly_habit.json`` (one key per part and zone).

    PYTHONPATH=src python benchmarks/bench_nightly_habit.py --part measure --zone de
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
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.scenario import load_scenario
from gridshift.model.scenario import PolicySpec
from gridshift.plan.mpc import HABIT_DAYS, HABIT_MARGIN, HABIT_SPREAD, HABIT_Z, PAIR_Z, RECORD_MARGIN, RECORD_MOVE_H
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "nightly_habit.json"
FORECASTS = {
    "perfect": {},
    "lead-error": {"sigma_rel": [0.05], "rho": 0.0},
    "blend": {},
    "seasonal-naive": {},
    "persistence": {},
}
BACKTEST_FORECASTS = ("blend", "seasonal-naive", "persistence", "lead-error")
MARGINS = (0.0, 0.03)
ZS = (0.0, 0.5, 1.0, 1.5, 2.0)
PERIODS = {"22q1": ("2022-01-01T00:00:00Z", "2022-04-01T00:00:00Z"),
           "q1": ("2023-01-01T00:00:00Z", "2023-04-01T00:00:00Z"),
           "q2": ("2023-04-01T00:00:00Z", "2023-07-01T00:00:00Z"),
           "q4": ("2023-10-01T00:00:00Z", "2023-12-31T00:00:00Z")}


def _assemble(zone: str, period: tuple[str, str] | None):
    sc = load_scenario(ROOT / "benchmarks" / "scenarios" / f"nightly-habit-{zone}-q1.yaml")
    if period is not None:
        import pandas as pd

        tr = sc.time_range.model_copy(update={"start": pd.Timestamp(period[0]).to_pydatetime(),
                                              "end": pd.Timestamp(period[1]).to_pydatetime()})
        sc = sc.model_copy(update={"time_range": tr})
    return sc, assemble(sc)


def _ci_and_nominal(asm) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    jt, sig, w = asm.world.jobs, asm.signals, asm.world
    ci = sig.carbon_g_per_kwh[0, sig.lookback_slots:]
    nom = (jt.nominal_start_s // w.slot_duration_s).astype(int)
    return ci, nom, jt


def best_hour_saving(asm) -> float:
    ci, nom, jt = _ci_and_nominal(asm)
    s = asm.world.slot_duration_s
    first = np.ceil(jt.arrival_s / s).astype(int)
    last = ((jt.deadline_s - s) // s).astype(int)  # whole slots inside the window (as the planner sees them)
    best = np.array([ci[a:b + 1].min() for a, b in zip(first, last)])
    return float(1 - best.sum() / ci[nom].sum())


def run_one(asm, forecast: str, **params) -> dict:
    ci, nom, jt = _ci_and_nominal(asm)
    fp = FORECASTS.get(forecast) or {}
    spec = PolicySpec(name="mpc", params={"forecast": forecast, "cap_levels": [1.0], **params,
                                           **({"forecast_params": fp} if fp else {})})
    t0 = time.perf_counter()
    (run,) = run_policies(asm, [spec])
    wall = time.perf_counter() - t0
    js = run.jobs.set_index("job_id").loc[list(jt.job_id)]
    started = js["first_start"].notna().to_numpy()
    st = ((js["first_start"][started] - asm.world.slot_starts[0]).dt.total_seconds().to_numpy()
          // asm.world.slot_duration_s).astype(int)
    m = run.metrics
    out = {
        "timing_saving_vs_nominal": float(1 - ci[st].sum() / ci[nom[started]].sum()),
        "jobs": int(len(jt)), "started": int(started.sum()),
        "at_nominal": int((st == nom[started]).sum()),
        "worse_than_nominal": int((ci[st] > ci[nom[started]] + 1e-9).sum()),
        "wall_s": round(wall, 2),
    }
    for k in ("habit_jobs", "habit_shifted", "habit_kept", "habit_expected_gain_frac", "habit_expected_gain",
              "lp_fallbacks"):
        if k in m:
            out[k] = m[k]
    return out


def backtest(zone: str, period: str) -> dict:
    _, asm = _assemble(zone, PERIODS[period])
    res: dict = {"period": list(PERIODS[period]), "best_whole_hour": best_hour_saving(asm), "grid": []}
    for fc in BACKTEST_FORECASTS:
        res.setdefault("without", {})[fc] = run_one(asm, fc, habit=False)["timing_saving_vs_nominal"]
        for margin in MARGINS:
            for z in ZS:
                r = run_one(asm, fc, habit=True, habit_margin=margin, habit_z=z)
                res["grid"].append({"forecast": fc, "habit_margin": margin, "habit_z": z, **r})
                print(f"  {zone} {fc} margin {margin} z {z}: {r['timing_saving_vs_nominal']:+.2%}", file=sys.stderr,
                      flush=True)
    return res


def measure(zone: str, period: str = "q1", forecasts: tuple[str, ...] = tuple(FORECASTS)) -> dict:
    _, asm = _assemble(zone, None if period == "q1" else PERIODS[period])
    res: dict = {"period": list(PERIODS[period]),
                 "best_whole_hour": best_hour_saving(asm), "habit_spread": HABIT_SPREAD,
                 "habit_margin": RECORD_MARGIN if HABIT_SPREAD == "record" else HABIT_MARGIN,
                 "habit_move_h": RECORD_MOVE_H, "habit_z": HABIT_Z, "habit_days": HABIT_DAYS, "pair_z": PAIR_Z,
                 "without": {}, "with": {}, "with_pair": {}}
    for fc in forecasts:
        for key, params in (("without", {"habit": False}), ("with", {"habit": True}),
                            ("with_pair", {"habit": True, "habit_spread": "pair"})):
            r = run_one(asm, fc, **params)
            res[key][fc] = r
            print(f"  {zone} {fc} {key}: {r['timing_saving_vs_nominal']:+.2%}", file=sys.stderr, flush=True)
    return res


def select(doc: dict) -> dict:
    """The backtest's choice: of the (margin, z) never negative over forecasters, zones and quarters, the one
    with the highest mean saving; if none is, the one whose worst saving is highest, ties (within 0.1 point)
    broken by the mean saving."""
    rows: dict[tuple[float, float], list[float]] = {}
    for res in doc.get("backtest", {}).values():
        for r in res["grid"]:
            rows.setdefault((r["habit_margin"], r["habit_z"]), []).append(r["timing_saving_vs_nominal"])
    n = max((len(v) for v in rows.values()), default=0)
    table = [{"habit_margin": m, "habit_z": z, "worst": min(v), "mean": float(np.mean(v))}
             for (m, z), v in sorted(rows.items()) if len(v) == n]
    if not table:
        return {}
    safe = [r for r in table if r["worst"] >= 0.0]
    top = max(r["worst"] for r in table)
    best = max(safe or [r for r in table if r["worst"] >= top - 1e-3], key=lambda r: r["mean"])
    return {"choice": best, "table": table, "cases": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=("backtest", "measure", "select"), required=True)
    ap.add_argument("--zone", choices=("de", "gb"), default="de")
    ap.add_argument("--period", choices=tuple(PERIODS), default=None,
                    help="quarter of 2023 (backtest: default q4; measure: default q1, the measured quarter)")
    ap.add_argument("--forecasts", default=",".join(FORECASTS), help="measure: comma-separated forecasters")
    a = ap.parse_args()
    if a.part == "select":
        doc = json.loads(OUT.read_text())
        doc["selection"] = select(doc)
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, OUT)
        print(json.dumps(doc["selection"]["choice"]))
        for r in doc["selection"]["table"]:
            print(f"margin {r['habit_margin']:.2f} z {r['habit_z']:.1f}: worst {r['worst']:+.2%} mean {r['mean']:+.2%}")
        return
    period = a.period or ("q4" if a.part == "backtest" else "q1")
    res = backtest(a.zone, period) if a.part == "backtest" else measure(a.zone, period, tuple(a.forecasts.split(",")))
    key = a.zone if a.part == "measure" and period == "q1" else f"{a.zone}-{period}"
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / "gridshift-nightly-habit.lock", "w") as lock:  # zones merge in parallel
        fcntl.flock(lock, fcntl.LOCK_EX)
        doc = json.loads(OUT.read_text()) if OUT.exists() else {}
        doc.setdefault(a.part, {})[key] = res
        doc.setdefault("meta", {}).update(git=git_state(), cpus=os.cpu_count())
        tmp = OUT.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
