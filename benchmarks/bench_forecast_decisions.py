"""Benchmark: how much of the perfect-forecast timing saving each forecaster keeps, on carbon intensity rolled
over 2022–2023 (``--years``), trained on all history before each origin (the series starts on 2021-01-01).

Per zone: origins every hour from 1 January of the first year asked to the end of the last, leads 0–48 h,
models ``persistence``, ``seasonal-naive``, ``blend`` (the default), ``climatology`` and ``shape-blend`` (the last
two with the zone's local calendar and holidays, told the series' start). At every origin a 30-minute job must
start inside a window of 8 h or 24 h starting at the origin; the habit runs it at the window's start. On hourly
data a 30-minute job started on the hour costs its hour's intensity, so a 1-hour job gives the same figures.
``nightly``: the issue's nightly job (habit 01:00 UTC, any whole-hour start from 17:00 to 09:00 UTC, decided at
17:00 UTC from that origin's forecast). Per zone, model and quarter (``2022Q1`` … ``2023Q4``) and over all
origins: the share of the perfect-forecast saving against the habit, the saving in % of the habit's carbon
(forecast and perfect), the timing regret in g/kWh and the share of origins made worse than the habit; per
zone and model MAPE and MAE per lead, 80 % interval coverage. ``negative``: per model and decision, the
zone-quarters whose share is below zero.

``switch_criteria``: ``shape-blend`` replaces the default only if it beats ``blend`` on decision quality (mean
of the 8 h, 24 h and nightly shares over the two years) in most zones, its MAPE is nowhere more than 2 % above
the blend's at any lead, and it keeps the accuracy targets of docs/guide/forecasting.md: no zone more than 2 %
worse than the better naive baseline at any lead, >= 5 % better 24 h MAPE than persistence on average over the
zones where persistence's exceeds 5 %, 80 % intervals covering 75–85 % in every zone.

    python benchmarks/bench_forecast_decisions.py [--zones DE-LU GB ...] [--years 2022,2023] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.series import available, load_series
from gridshift.forecast.backtest import evaluate
from gridshift.forecast.decision import timing_quality
from gridshift.forecast.registry import DEFAULT_MODEL, make_forecaster

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("persistence", "seasonal-naive", "blend", "climatology", "shape-blend")
NAIVE = ("persistence", "seasonal-naive")
LOCAL = ("climatology", "shape-blend")  # take the zone's local calendar and the series start
CANDIDATE = "shape-blend"
WINDOWS_H = (8, 24)
HORIZON_H = 48
HISTORY_FROM = 2021
NIGHT_ORIGIN_UTC, NIGHT_WINDOW, NIGHT_HABIT = 17, 17, 8  # nightly job: habit 01:00 UTC, starts 17:00 … 09:00
DECISIONS = ("w8", "w24", "nightly")


def _tq(y, point, org, window, habit=0) -> dict:
    return {k: round(float(v), 4) for k, v in timing_quality(y, point, org, window, 1, habit=habit).items()}


def run(zone: str, years: list[int]) -> dict:
    s = load_series(zone, "carbon_intensity", years=list(range(HISTORY_FROM, years[-1] + 1)))
    y = s.values[None]
    first = int(s.index.searchsorted(pd.Timestamp(f"{years[0]}-01-01", tz="UTC")))
    org = np.arange(first, y.shape[1] - 1)
    when = s.index[org]
    quarter = np.array([f"{a}Q{b}" for a, b in zip(when.year, when.quarter)])
    night = when.hour.to_numpy() == NIGHT_ORIGIN_UTC
    start = s.index[0].strftime("%Y-%m-%dT%H:%M:%SZ")
    out = {}
    for name in MODELS:
        t = time.perf_counter()
        m = make_forecaster(name, **({"zone": zone, "start": start} if name in LOCAL else {}))
        fc = m.forecast_origins(y, org, HORIZON_H + 1)
        secs = time.perf_counter() - t
        met = evaluate(y, fc)
        r = {"seconds": round(secs, 2),
             "mape_by_lead": [round(float(v), 3) for v in met["mape"][0, 1:]],
             "mae_by_lead": [round(float(v), 3) for v in met["mae"][0, 1:]],
             "mape24": round(float(met["mape"][0, 24]), 3), "mae24": round(float(met["mae"][0, 24]), 3),
             "coverage80": round(float(np.nanmean(met["coverage80"][0, 1:])), 4)}
        p = fc.point[0]
        for w in WINDOWS_H:
            r[f"w{w}"] = {"all": _tq(y[0], p, org, w),
                          "by_quarter": {q: _tq(y[0], p[quarter == q], org[quarter == q], w) for q in np.unique(quarter)}}
        r["nightly"] = {"all": _tq(y[0], p[night], org[night], NIGHT_WINDOW, NIGHT_HABIT),
                        "by_quarter": {q: _tq(y[0], p[night & (quarter == q)], org[night & (quarter == q)],
                                              NIGHT_WINDOW, NIGHT_HABIT) for q in np.unique(quarter)}}
        out[name] = r
        print(f"{zone} {name}: share8 {r['w8']['all']['share']:.3f} share24 {r['w24']['all']['share']:.3f} "
              f"nightly {r['nightly']['all']['share']:.3f} mape24 {r['mape24']:.2f} {secs:.1f} s",
              file=sys.stderr, flush=True)
    return out


def negatives(zones: dict) -> dict:
    """Per model and decision: the zone-quarters whose share of the perfect saving is below zero."""
    res = {}
    for m in MODELS:
        res[m] = {}
        for d in DECISIONS:
            cells = [(zn, q, v["share"]) for zn, z in zones.items() for q, v in z[m][d]["by_quarter"].items()]
            bad = [f"{zn} {q}" for zn, q, sh in cells if np.isfinite(sh) and sh < 0]
            res[m][d] = {"negative": len(bad), "cells": len(cells), "where": bad}
    return res


def criteria(zones: dict) -> dict:
    def share(z, m, d):
        return z[m][d]["all"]["share"]

    def mean_share(m, d):
        return float(np.nanmean([share(z, m, d) for z in zones.values()]))

    ratio_blend, ratio_naive, wins = {}, {}, {}
    for zn, z in zones.items():
        c = np.array(z[CANDIDATE]["mape_by_lead"])
        ratio_blend[zn] = float(np.nanmax(c / np.array(z["blend"]["mape_by_lead"])))
        best = np.minimum(*(np.array(z[n]["mape_by_lead"]) for n in NAIVE))
        ratio_naive[zn] = float(np.nanmax(c / best))
        wins[zn] = float(np.mean([share(z, CANDIDATE, d) for d in DECISIONS])) > \
            float(np.mean([share(z, "blend", d) for d in DECISIONS]))
    hard = [zn for zn, z in zones.items() if z["persistence"]["mape24"] > 5.0]
    gain = {zn: 1 - zones[zn][CANDIDATE]["mape24"] / zones[zn]["persistence"]["mape24"] for zn in hard}
    cov = {zn: z[CANDIDATE]["coverage80"] for zn, z in zones.items()}
    res = {"candidate": CANDIDATE,
           **{f"mean_share_{d}_{m}": round(mean_share(m, d), 4) for d in DECISIONS for m in MODELS},
           "zones_candidate_beats_blend": [zn for zn, w in wins.items() if w],
           "worst_mape_ratio_to_blend": {k: round(v, 4) for k, v in ratio_blend.items()},
           "worst_mape_ratio_to_better_naive": {k: round(v, 4) for k, v in ratio_naive.items()},
           "hard_zones": hard, "hard_mape24_gain_vs_persistence": {k: round(v, 4) for k, v in gain.items()},
           "coverage80": cov}
    res["beats_blend_in_most_zones"] = sum(wins.values()) > len(wins) / 2
    res["within_2pct_mape_of_blend"] = max(ratio_blend.values()) <= 1.02
    res["accuracy_targets"] = bool(max(ratio_naive.values()) <= 1.02 and
                                   (not gain or float(np.mean(list(gain.values()))) >= 0.05) and
                                   all(0.75 <= v <= 0.85 for v in cov.values()))
    res["switch"] = bool(res["beats_blend_in_most_zones"] and res["within_2pct_mape_of_blend"] and
                         res["accuracy_targets"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", nargs="*", default=None)
    ap.add_argument("--years", default="2022,2023")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/forecast_decisions_2022_2023.json"))
    a = ap.parse_args()
    years = sorted(int(v) for v in a.years.split(","))
    zones = a.zones or available("carbon_intensity")
    t = time.perf_counter()
    code = git_state()  # the code the run starts from
    with ProcessPoolExecutor(max(1, a.workers)) as ex:
        per_zone = dict(zip(zones, ex.map(run, zones, [years] * len(zones))))
    res = {"benchmark": "forecast_decisions", "signal": "carbon_intensity", "years": years,
           "history_from_utc": f"{HISTORY_FROM}-01-01T00:00:00Z", "default": DEFAULT_MODEL,
           "horizon_h": HORIZON_H, "stride_h": 1, "first_origin_utc": f"{years[0]}-01-01T00:00:00Z", "job_h": 0.5,
           "windows_h": list(WINDOWS_H), "habit": "run at the window's start; nightly: 01:00 UTC, window 17:00–09:00",
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "code": code,
           "workers": a.workers, "seconds": round(time.perf_counter() - t, 1),
           "switch_criteria": criteria(per_zone), "negative": negatives(per_zone), "zones": per_zone}
    print(json.dumps(res["switch_criteria"], indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2, default=str)


if __name__ == "__main__":
    main()
