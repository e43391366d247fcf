"""Benchmark: the cost of one ``predict`` as the planner calls it (every hour, on a growing history).

DE-LU carbon intensity, history from 2022-01-01 (two years of data, as a planner started on 2022 would hold by
the end of 2023), 48 consecutive hourly calls from 2023-06-01 00:00 UTC, horizon 49 slots. Per model:

- ``uncached``: a fresh model at every call (what every call cost before fits were kept between calls);
- ``cached``: one model for all 48 calls (the first call fits the whole trailing window; later calls refit only
  a new refresh point, once per day of origins, and otherwise reuse the fits): mean, median, first call and the
  slowest later call (a daily refit).

Targets: ``shape-blend`` and ``gated`` cost about what ``blend`` does per call when cached.

    python benchmarks/bench_forecast_predict.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.series import load_series
from gridshift.forecast.registry import make_forecaster

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("blend", "shape-blend", "gated")
CALLS, H, ZONE = 48, 49, "DE-LU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/forecast_predict.json"))
    a = ap.parse_args()
    s = load_series(ZONE, "carbon_intensity", years=[2022, 2023])
    y = s.values[None]
    t0 = int(s.index.get_loc(pd.Timestamp("2023-06-01", tz="UTC")))
    ts = range(t0, t0 + CALLS)
    res = {}
    for name in MODELS:
        kw = {} if name == "blend" else {"zone": ZONE, "start": "2022-01-01T00:00:00Z"}
        unc = []
        for t in list(ts)[:6]:  # a fresh model per call: every call refits
            m = make_forecaster(name, **kw)
            c = time.perf_counter()
            m.predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1)
            unc.append(time.perf_counter() - c)
        m = make_forecaster(name, **kw)
        cached = []
        for t in ts:
            c = time.perf_counter()
            m.predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1)
            cached.append(time.perf_counter() - c)
        res[name] = {"uncached_mean_s": round(float(np.mean(unc)), 4),
                     "cached_mean_s": round(float(np.mean(cached)), 4),
                     "cached_first_s": round(cached[0], 4), "cached_max_after_first_s": round(float(np.max(cached[1:])), 4),
                     "cached_median_s": round(float(np.median(cached)), 4)}
        print(name, res[name], flush=True)
    out = {"benchmark": "forecast_predict", "zone": ZONE, "signal": "carbon_intensity",
           "history_from_utc": "2022-01-01T00:00:00Z", "first_call_utc": "2023-06-01T00:00:00Z", "calls": CALLS,
           "horizon_slots": H, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "code": git_state(), "models": res}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
