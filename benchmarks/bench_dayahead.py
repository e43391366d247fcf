"""Published day-ahead prices as a forecast input: the nightly job planned on cost in Germany.

The job of ``benchmarks/scenarios/nightly-habit-de-q1.yaml`` (30 minutes on 8 H100 a day, nominal 01:00 UTC,
shiftable ±8 h, capping off) with the objective ``cost`` instead of carbon, first and second quarter of 2023,
under `mpc` with the forecasters ``perfect``, ``blend`` and ``dayahead`` (``blend`` plus the published
day-ahead prices: DE-LU's auction publishes day D's prices by 13:00 Berlin time on D − 1, so when the job arrives
at 17:00 UTC every hour of its window is known; src/gridshift/forecast/dayahead.py), without the do-no-harm rule
(the forecast alone). ``saving``: ``1 − Σ price(start) / Σ price(01:00)`` over the jobs (USD/MWh of the hourly
day-ahead price, equal energy).

    PYTHONPATH=src python benchmarks/bench_dayahead.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "dayahead.json"
PERIODS = {"2023Q1": ("2023-01-01T00:00:00Z", "2023-04-01T00:00:00Z"),
           "2023Q2": ("2023-04-01T00:00:00Z", "2023-07-01T00:00:00Z")}
FORECASTS = ("perfect", "blend", "dayahead")


def run(period: tuple[str, str], forecast: str) -> dict:
    import pandas as pd

    from gridshift.data.scenario import load_scenario
    from gridshift.model.scenario import Objective, PolicySpec
    from gridshift.sim.runner import run_policies
    from gridshift.world.build import assemble

    sc = load_scenario(ROOT / "benchmarks" / "scenarios" / "nightly-habit-de-q1.yaml")
    tr = sc.time_range.model_copy(update={"start": pd.Timestamp(period[0]).to_pydatetime(),
                                          "end": pd.Timestamp(period[1]).to_pydatetime()})
    sc = sc.model_copy(update={"time_range": tr, "objective": Objective(kind="cost")})
    asm = assemble(sc)
    w, jt, sig = asm.world, asm.world.jobs, asm.signals
    price = sig.price_usd_per_mwh[0, sig.lookback_slots:]
    nom = (jt.nominal_start_s // w.slot_duration_s).astype(int)
    t0 = time.perf_counter()
    (r,) = run_policies(asm, [PolicySpec(name="mpc", params={"forecast": forecast, "habit": False,
                                                              "cap_levels": [1.0]})])
    js = r.jobs.set_index("job_id").loc[list(jt.job_id)]
    st = ((js["first_start"] - w.slot_starts[0]).dt.total_seconds().to_numpy() // w.slot_duration_s).astype(int)
    first = np.ceil(jt.arrival_s / w.slot_duration_s).astype(int)
    last = np.floor((jt.deadline_s - 1800) / w.slot_duration_s).astype(int)
    best = np.array([price[a:b + 1].min() for a, b in zip(first, last)])
    return {"saving": float(1 - price[st].sum() / price[nom].sum()),
            "best": float(1 - best.sum() / price[nom].sum()),
            "worse_than_nominal": int((price[st] > price[nom] + 1e-9).sum()), "jobs": int(len(jt)),
            "wall_s": round(time.perf_counter() - t0, 1)}


def main() -> None:
    doc = {"zone": "DE-LU", "objective": "cost", "results": {}, "git": git_state(), "cpus": os.cpu_count()}
    for q, period in PERIODS.items():
        for fc in FORECASTS:
            r = run(period, fc)
            doc["results"].setdefault(q, {})[fc] = r
            print(f"{q} {fc}: saving {r['saving']:+.2%} (best {r['best']:.2%})", file=sys.stderr, flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
