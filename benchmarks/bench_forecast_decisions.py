"""Benchmark: how much of the perfect-forecast timing saving each forecaster keeps, on 2023 carbon intensity.

Per zone: origins every hour from 2023-02-05 00:00 UTC (35 days of warm-up) to the end of 2023, leads 0–48 h,
models ``persistence``, ``seasonal-naive``, ``blend`` (the default), ``climatology``, ``shape-blend`` and
``gated`` (the blend with the skill gate), the last three with the zone's local calendar and holidays. At every
origin a 30-minute job must start inside a window of 8 h or 24 h starting at the origin; the habit runs it at
the window's start. On hourly data a 30-minute job started on the hour costs its hour's intensity, so a 1-hour
job gives the same figures. Per zone and model: the share of the perfect-forecast saving against the habit
(whole year and per quarter), the timing regret in g/kWh, the share of origins made worse than the habit;
MAPE and MAE per lead and the 80 % interval coverage. ``nightly``: the issue's nightly job (habit 01:00 UTC,
any whole-hour start from 17:00 to 09:00 UTC, decided at 17:00 UTC from that origin's forecast), whole year
(from 5 February) and first quarter: saving against 01:00 in % with this forecast and with a perfect one.

The candidate (``shape-blend``) would replace the default only if it beats ``blend`` on the mean share over
zones in both windows without a MAPE more than 2 % above the blend's at any lead in any zone
(``switch_criteria`` in the results).

    python benchmarks/bench_forecast_decisions.py [--zones DE-LU GB ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.series import available, load_series
from gridshift.forecast.backtest import evaluate
from gridshift.forecast.decision import timing_quality
from gridshift.forecast.registry import DEFAULT_MODEL, make_forecaster

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("persistence", "seasonal-naive", "blend", "climatology", "shape-blend", "gated")
LOCAL = ("climatology", "shape-blend", "gated")  # take the zone's local calendar
CANDIDATE = "shape-blend"
WINDOWS_H = (8, 24)
HORIZON_H = 48
WARMUP_D = 35
NIGHT_ORIGIN_UTC, NIGHT_WINDOW, NIGHT_HABIT = 17, 17, 8  # nightly job: habit 01:00 UTC, starts 17:00 … 09:00


def run(zone: str) -> dict:
    s = load_series(zone, "carbon_intensity")
    y = s.values[None]
    org = np.arange(WARMUP_D * 24, y.shape[1] - 1)
    quarter = s.index[org].quarter.to_numpy()
    hour = s.index[org].hour.to_numpy()
    out = {}
    for name in MODELS:
        t = time.perf_counter()
        m = make_forecaster(name, **({"zone": zone} if name in LOCAL else {}))
        fc = m.forecast_origins(y, org, HORIZON_H + 1)
        secs = time.perf_counter() - t
        met = evaluate(y, fc)
        r = {"seconds": round(secs, 2),
             "mape_by_lead": [round(float(v), 3) for v in met["mape"][0, 1:]],
             "mape24": round(float(met["mape"][0, 24]), 3), "mae24": round(float(met["mae"][0, 24]), 3),
             "mape_mean_1_24": round(float(np.nanmean(met["mape"][0, 1:25])), 3),
             "coverage80": round(float(np.nanmean(met["coverage80"][0, 1:])), 4)}
        for w in WINDOWS_H:
            tq = timing_quality(y[0], fc.point[0], org, w, 1)
            r[f"w{w}"] = {k: round(float(v), 4) for k, v in tq.items()}
            r[f"w{w}"]["share_by_quarter"] = {
                f"Q{q}": round(float(timing_quality(y[0], fc.point[0][quarter == q], org[quarter == q], w, 1)["share"]), 4)
                for q in np.unique(quarter)}
        night = hour == NIGHT_ORIGIN_UTC
        r["nightly"] = {}
        for label, sel in (("year", night), ("Q1", night & (quarter == 1))):
            tq = timing_quality(y[0], fc.point[0][sel], org[sel], NIGHT_WINDOW, 1, habit=NIGHT_HABIT)
            r["nightly"][label] = {k: round(float(v), 4) for k, v in tq.items()}
        out[name] = r
        print(f"{zone} {name}: share8 {r['w8']['share']:.3f} share24 {r['w24']['share']:.3f} "
              f"mape24 {r['mape24']:.2f} {secs:.1f} s", file=sys.stderr, flush=True)
    return out


def criteria(zones: dict) -> dict:
    def mean_share(model, w):
        return float(np.mean([z[model][f"w{w}"]["share"] for z in zones.values()]))

    ratio = {zn: float(np.nanmax(np.array(z[CANDIDATE]["mape_by_lead"]) / np.array(z["blend"]["mape_by_lead"])))
             for zn, z in zones.items()}
    res = {"candidate": CANDIDATE,
           **{f"mean_share{w}_{m}": round(mean_share(m, w), 4) for w in WINDOWS_H for m in MODELS},
           "worst_mape_ratio_to_blend": {k: round(v, 4) for k, v in ratio.items()}}
    res["beats_blend"] = all(mean_share(CANDIDATE, w) > mean_share("blend", w) for w in WINDOWS_H)
    res["within_2pct_mape"] = max(ratio.values()) <= 1.02
    res["switch"] = bool(res["beats_blend"] and res["within_2pct_mape"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", nargs="*", default=None)
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/forecast_decisions.json"))
    a = ap.parse_args()
    zones = a.zones or available("carbon_intensity")
    t = time.perf_counter()
    per_zone = {z: run(z) for z in zones}
    res = {"benchmark": "forecast_decisions", "signal": "carbon_intensity", "year": 2023, "default": DEFAULT_MODEL,
           "horizon_h": HORIZON_H, "stride_h": 1, "first_origin_utc": "2023-02-05T00:00:00Z", "job_h": 0.5,
           "windows_h": list(WINDOWS_H), "habit": "run at the window's start",
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "code": git_state(),
           "seconds": round(time.perf_counter() - t, 1), "switch_criteria": criteria(per_zone), "zones": per_zone}
    print(json.dumps(res["switch_criteria"], indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2, default=str)


if __name__ == "__main__":
    main()
