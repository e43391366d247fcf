"""The nightly job in every zone, rolling over 2022–2023: what `mpc` with the default forecaster keeps of the
perfect-forecast timing saving, and whether any zone-quarter ends up worse than not shifting (issue 18's target).

The job of ``benchmarks/scenarios/nightly-habit-de-q1.yaml`` (one 30-minute job a day on 8 H100, nominal start
01:00 UTC, shiftable ±8 h — window 17:00–09:30 UTC, power capping off) in each of the 16 zones with carbon data,
each quarter of 2022 and 2023 run on its own (the fourth quarter of 2023 ends 31 December so the last window stays
inside the data). `mpc` with its defaults (forecaster, do-no-harm rule), history before each quarter as the
scenario attaches it. Carbon: life-cycle intensity (Electricity Maps, ODbL), hourly.

- ``saving``: ``1 − Σ CI(policy) / Σ CI(01:00)`` over the quarter's jobs, each job's carbon intensity averaged
  over its 30 minutes as it ran (to the minute; equal energy, so only the timing differs);
- ``perfect``: the same with each job at its best start (any start from its arrival to 30 minutes before its
  deadline; on hourly data the cheapest whole hour of the window, 17:00–09:00 UTC) — what `mpc` with perfect
  forecasts and the oracle reach (benchmarks/bench_nightly_exact.py);
- ``share``: per zone, the two years' summed saving over the summed perfect saving.

Targets: mean share ≥ 0.70 over the zones whose perfect saving exceeds 3 %, and no zone-quarter negative.

    PYTHONPATH=src python benchmarks/bench_nightly_zones.py --workers 2 [--zones GB,DE-LU] [--params '{...}']
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "nightly_zones.json"
TEMPLATE = ROOT / "benchmarks" / "scenarios" / "nightly-habit-de-q1.yaml"
QUARTERS = [(f"{y}Q{q}", f"{y}-{3 * q - 2:02d}-01T00:00:00Z",
             f"{y}-{3 * q + 1:02d}-01T00:00:00Z" if q < 4 else (f"{y + 1}-01-01T00:00:00Z" if y < 2023
                                                                 else "2023-12-31T00:00:00Z"))
            for y in (2022, 2023) for q in (1, 2, 3, 4)]
RUN_S = 1800.0


def _scenario(zone: str, start: str, end: str):
    import pandas as pd

    from gridshift.data.scenario import load_scenario

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(TEMPLATE.read_text().replace("DE-LU", zone))
    try:
        sc = load_scenario(fh.name)
    finally:
        os.unlink(fh.name)
    from gridshift.data.grid import available_price_zones

    tr = sc.time_range.model_copy(update={"start": pd.Timestamp(start).to_pydatetime(),
                                          "end": pd.Timestamp(end).to_pydatetime()})
    zones = [z if z.id in available_price_zones() else z.model_copy(update={"price_usd_per_mwh": 100.0})
             for z in sc.zones]  # no price file (GB): a constant, which a carbon objective never reads
    return sc.model_copy(update={"time_range": tr, "zones": zones})


def _mean_ci(ci: np.ndarray, start_s: np.ndarray, slot_s: float) -> np.ndarray:
    """Mean carbon intensity over [start, start + 30 min] per job, to the minute."""
    minutes = start_s[:, None] + np.arange(0.0, RUN_S, 60.0)[None, :]
    return ci[np.minimum((minutes // slot_s).astype(int), ci.size - 1)].mean(axis=1)


def run_case(zone: str, quarter: str, start: str, end: str, params: dict, warmup_days: int = 0) -> dict:
    """One zone-quarter. With ``warmup_days``, the run starts that many days before the quarter and only the
    quarter's jobs are scored: the planner's state (the do-no-harm rule's 28-day record of shadow decisions)
    is then what continuous operation would have at the quarter's start, not empty."""
    import pandas as pd

    from gridshift.model.scenario import PolicySpec
    from gridshift.sim.runner import run_policies
    from gridshift.world.build import assemble

    sim_start = pd.Timestamp(start) - pd.Timedelta(days=warmup_days)
    asm = assemble(_scenario(zone, sim_start.isoformat(), end))
    w, jt, sig = asm.world, asm.world.jobs, asm.signals
    scored = jt.nominal_start_s >= (pd.Timestamp(start) - sim_start).total_seconds()
    ci = sig.carbon_g_per_kwh[0, sig.lookback_slots:]
    S = float(w.slot_duration_s)
    nominal = _mean_ci(ci, jt.nominal_start_s, S)
    # the best start: on hourly data the cheapest hour whose start lies in [arrival, deadline − 30 min]
    first = np.ceil(jt.arrival_s / S).astype(int)
    last = np.floor((jt.deadline_s - RUN_S) / S).astype(int)
    best = np.array([ci[a:b + 1].min() for a, b in zip(first, np.minimum(last, ci.size - 1))])
    spec = PolicySpec(name="mpc", params={"cap_levels": [1.0], **params})
    t0 = time.perf_counter()
    (run,) = run_policies(asm, [spec])
    wall = time.perf_counter() - t0
    js = run.jobs.set_index("job_id").loc[list(jt.job_id)]
    ok = js["first_start"].notna().to_numpy() & scored
    st = (js["first_start"][ok] - w.slot_starts[0]).dt.total_seconds().to_numpy()
    got = _mean_ci(ci, st, S)
    m = run.metrics
    return {"zone": zone, "quarter": quarter, "jobs": int(scored.sum()), "started": int(ok.sum()),
            "nominal_g_per_kwh": float(nominal[ok].sum()), "policy_g_per_kwh": float(got.sum()),
            "best_g_per_kwh": float(best[ok].sum()),
            "saving": float(1 - got.sum() / nominal[ok].sum()),
            "perfect": float(1 - best[ok].sum() / nominal[ok].sum()),
            "worse_than_nominal": int((got > nominal[ok] + 1e-9).sum()),
            "at_nominal": int((np.abs(st - jt.nominal_start_s[ok]) < 1).sum()),
            "habit_followed": m.get("habit_followed"), "deadline_miss_frac": m.get("deadline_miss_frac"),
            "wall_s": round(wall, 1)}


def summarise(rows: list[dict]) -> dict:
    zones: dict[str, dict] = {}
    for r in rows:
        z = zones.setdefault(r["zone"], {"nominal": 0.0, "policy": 0.0, "best": 0.0})
        z["nominal"] += r["nominal_g_per_kwh"]
        z["policy"] += r["policy_g_per_kwh"]
        z["best"] += r["best_g_per_kwh"]
    per_zone = {}
    for name, z in sorted(zones.items()):
        perfect = 1 - z["best"] / z["nominal"]
        saving = 1 - z["policy"] / z["nominal"]
        per_zone[name] = {"perfect": perfect, "saving": saving, "share": saving / perfect if perfect > 0 else None}
    big = [v["share"] for v in per_zone.values() if v["perfect"] > 0.03]
    neg = [f"{r['zone']} {r['quarter']}" for r in rows if r["saving"] < -1e-12]
    return {"per_zone": per_zone, "mean_share_perfect_over_3pct": float(np.mean(big)) if big else None,
            "zones_over_3pct": len(big), "negative_zone_quarters": neg, "zone_quarters": len(rows),
            "worst_zone_quarter_saving": min(r["saving"] for r in rows)}


def rule_defaults() -> dict:
    """The do-no-harm rule's defaults the run was made with (a run under other defaults is not resumed)."""
    from gridshift.plan import mpc

    return {k: getattr(mpc, k) for k in ("HABIT_SPREAD", "HABIT_Z", "HABIT_DAYS", "RECORD_MARGIN", "RECORD_MOVE_H")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zones", default=None, help="comma-separated zones (default: every zone with carbon data)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--params", default="{}", help="extra mpc parameters as JSON (default: mpc's defaults)")
    ap.add_argument("--label", default="default", help="key of this run in the results file")
    ap.add_argument("--warmup-days", type=int, default=0,
                    help="start each quarter's run this many days early and score only the quarter's jobs")
    a = ap.parse_args()
    from gridshift.data.grid import available_zones

    zones = a.zones.split(",") if a.zones else available_zones()
    params = json.loads(a.params)
    rule = rule_defaults()
    prev = json.loads(OUT.read_text()).get(a.label, {}) if OUT.exists() else {}
    if prev and prev.get("rule") != rule:  # measured under other defaults: kept beside, under its commit
        _write(f"{a.label}@{prev.get('git', {}).get('commit', 'unknown')}", prev)
        prev = {}
    same = prev.get("params") == params and prev.get("warmup_days", 0) == a.warmup_days
    rows: list[dict] = prev.get("rows", []) if same else []  # resume a stopped run
    done = {(r["zone"], r["quarter"]) for r in rows}
    cases = [(z, q, s, e, params, a.warmup_days) for z in zones for q, s, e in QUARTERS if (z, q) not in done]
    t0 = time.perf_counter()
    git = git_state()
    with ProcessPoolExecutor(max_workers=max(1, a.workers)) as ex:
        for r in ex.map(run_case, *zip(*cases)):
            rows.append(r)
            print(f"{r['zone']:>12} {r['quarter']}: saving {r['saving']:+.2%} perfect {r['perfect']:.2%} "
                  f"({r['wall_s']} s)", file=sys.stderr, flush=True)
            _write(a.label, {"params": params, "rule": rule, "warmup_days": a.warmup_days, "rows": rows,
                             "summary": summarise(rows),
                             "complete": len(rows) == len(cases) + len(done), "wall_s": round(time.perf_counter() - t0, 1),
                             "workers": a.workers, "git": git, "cpus": os.cpu_count()})
    print(json.dumps(summarise(rows), indent=1))


def _write(label: str, entry: dict) -> None:
    """Merge one run's entry into the results file (after every case, so a partial run is kept)."""
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc[label] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, OUT)


if __name__ == "__main__":
    main()
