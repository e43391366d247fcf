"""Benchmark: rolling-origin backtests of the default forecaster on 2023 carbon intensity, all 16 zones.

Per zone: origins every hour from 2023-02-05 00:00 UTC (35 days of warm-up) to the end of 2023, leads 1–48 h;
models ``persistence``, ``seasonal-naive`` and the default ``blend`` (plus, with ``--ensemble ZONE``, the
``ensemble`` with LightGBM and MSTL members on that one zone, timed separately). Reports per zone the targets
of the forecasting issue and the wall time of each one-zone-year backtest (target <= 60 s on 2 cores), and
fits the lead-time error model of every zone (the median profile is ``errormodel.DEFAULT_SIGMA_REL``).

Targets: the default model is never worse than the better naive baseline by more than 2 % at any lead time in
any zone; over the zones where persistence's 24 h MAPE exceeds 5 % it is at least 5 % better at 24 h and at
least 10 % better in 24 h-window decision quality; 80 % intervals cover 75–85 % in every zone.

    python benchmarks/bench_forecast.py [--zones GB SG ...] [--ensemble DE-LU] [--json PATH]
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
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.series import available
from gridshift.forecast.errormodel import LeadErrorModel
from gridshift.forecast.registry import DEFAULT_MODEL
from gridshift.studies.forecast_backtest import aggregate_targets, run_zone, targets_table

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zones", nargs="*", default=None)
    ap.add_argument("--signal", default="carbon_intensity")
    ap.add_argument("--ensemble", default=None, help="also backtest 'ensemble' on this zone")
    ap.add_argument("--json", default=str(ROOT / "benchmarks/results/forecast.json"))
    a = ap.parse_args()
    zones = a.zones or available(a.signal)
    metrics, decision, times, sig, rho = [], [], {}, [], []
    for z in zones:
        t = time.perf_counter()
        r = run_zone(z, a.signal, [DEFAULT_MODEL], 48)
        times[z] = round(time.perf_counter() - t, 2)  # load + all three models + metrics
        metrics.append(r.metrics)
        decision.append(r.decision)
        em = LeadErrorModel.fit(r.series.values[None], r.results[DEFAULT_MODEL].forecast)
        sig.append(em.sigma_rel)
        rho.append(em.rho)
        print(f"{z}: {times[z]} s", file=sys.stderr, flush=True)
    m, d = pd.concat(metrics, ignore_index=True), pd.concat(decision, ignore_index=True)
    tt = targets_table(m, d, DEFAULT_MODEL)
    res = {
        "benchmark": "forecast", "signal": a.signal, "model": DEFAULT_MODEL, "horizon_h": 48, "stride_h": 1,
        "first_origin_utc": "2023-02-05T00:00:00Z", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "code": git_state(),
        "aggregate": aggregate_targets(tt),
        "seconds_per_zone_year": times,
        "zones": json.loads(tt.round(4).to_json(orient="records")),
        "mape_by_lead": {z: {mod: [round(v, 3) for v in g.sort_values("lead_h").mape] for mod, g in gz.groupby("model")}
                         for z, gz in m.groupby("zone")},
        "errormodel": {"sigma_rel_median": [round(float(x), 3) for x in np.median(np.array(sig), axis=0)],
                       "rho_median": round(float(np.median(rho)), 3)},
    }
    if a.ensemble:
        t = time.perf_counter()
        r = run_zone(a.ensemble, a.signal, ["ensemble", DEFAULT_MODEL], 48)
        te = targets_table(r.metrics, r.decision, "ensemble")
        res["ensemble"] = {"zone": a.ensemble, "seconds": round(time.perf_counter() - t, 2),
                           "seconds_per_model": r.params["seconds_per_model"],
                           "targets": json.loads(te.round(4).to_json(orient="records")),
                           "blend_targets": json.loads(targets_table(r.metrics, r.decision, DEFAULT_MODEL)
                                                       .round(4).to_json(orient="records"))}
    print(json.dumps(res["aggregate"], indent=2))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2, default=str)


if __name__ == "__main__":
    main()
