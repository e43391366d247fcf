"""Benchmark: the planners against an independent brute-force optimum on the nightly scenarios.

    python benchmarks/bench_nightly_exact.py [NAME ...]      (default: examples/planner/nightly-*.yaml)

For every nightly scenario (one 30-minute non-interruptible job a day, ±2/4/8 h around a nominal local start;
2023, the project's hourly data), ``oracle`` and ``mpc`` with perfect forecasts (do-no-harm rule off, capping
off: ``cap_levels [1.0]``, so the saving is timing only) are run month by month (cut at local noon, as
bench_planner_scenarios.py does; no job window crosses a cut) and the mean carbon intensity each job saw is
compared with the best any start could give: every start on a 5-minute grid inside the job's window
(arrival ≤ start, start + 30 min ≤ deadline), intensity integrated minute by minute over the run — computed
here in numpy from the scenario's signal, independently of the planners. The gap is in points of the
brute force's mean intensity; the target is < 0.1. Results: ``benchmarks/results/nightly_exact.json``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script
from bench_planner_scenarios import month_splits

from gridshift.data.scenario import load_scenario
from gridshift.model.scenario import PolicySpec
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "nightly_exact.json"
STEP_S = 300.0  # brute-force start grid
POLICIES = {"oracle": PolicySpec(name="oracle", params={"cap_levels": [1.0]}),
            "mpc-perfect": PolicySpec(name="mpc", label="mpc-perfect",
                                      params={"forecast": "perfect", "habit": False, "cap_levels": [1.0]})}


def seen_intensity(ci: np.ndarray, slot_s: float, start_s: np.ndarray, run_s: np.ndarray) -> np.ndarray:
    """Mean intensity over [start, start + run] of a piecewise-constant slot series, minute by minute."""
    out = np.empty(start_s.size)
    for i, (s, r) in enumerate(zip(start_s, run_s)):
        minutes = s + np.arange(0.0, r, 60.0)
        out[i] = ci[(minutes // slot_s).astype(int)].mean()
    return out


def brute_force(ci: np.ndarray, slot_s: float, arrival_s, deadline_s, run_s, horizon_s: float) -> np.ndarray:
    best = np.empty(len(arrival_s))
    for i, (a, d, r) in enumerate(zip(arrival_s, deadline_s, run_s)):
        starts = np.arange(np.ceil(a / STEP_S) * STEP_S, min(d, horizon_s) - r + 1e-6, STEP_S)
        minutes = starts[:, None] + np.arange(0.0, r, 60.0)[None, :]
        best[i] = ci[(minutes // slot_s).astype(int)].mean(axis=1).min()
    return best


def run_scenario(path: Path) -> dict:
    sc = load_scenario(path)
    parts = month_splits(sc) or [(sc.time_range.start, sc.time_range.end)]
    seen = {k: [] for k in POLICIES}
    best, wall, missed = [], dict.fromkeys(POLICIES, 0.0), dict.fromkeys(POLICIES, 0)
    for a, b in parts:
        ch = sc.model_copy(update={"time_range": sc.time_range.model_copy(update={"start": a, "end": b})})
        asm = assemble(ch)
        w, sig, jt = asm.world, asm.signals, asm.world.jobs
        ci = sig.carbon_g_per_kwh[0, sig.lookback_slots:]
        slot_s = float(w.slot_duration_s)
        run_s = jt.work_acc_h / (jt.gang_max * jt.speed.max(axis=1)) * 3600.0
        best.append(brute_force(ci, slot_s, jt.arrival_s, jt.deadline_s, run_s, w.n_slots * slot_s))
        for key, spec in POLICIES.items():
            t0 = time.perf_counter()
            (run,) = run_policies(asm, [spec])
            wall[key] += time.perf_counter() - t0
            js = run.jobs.set_index("job_id").loc[list(jt.job_id)]
            st = (js["first_start"] - w.slot_starts[0]).dt.total_seconds().to_numpy()
            missed[key] += int(js["missed_deadline"].sum())
            seen[key].append(seen_intensity(ci, slot_s, st, run_s))
    b = np.concatenate(best)
    out = {"file": str(path.relative_to(ROOT)), "jobs": int(b.size), "months": len(parts),
           "brute_force_g_per_kwh": float(b.mean())}
    for key in POLICIES:
        s = np.concatenate(seen[key])
        out[key] = {"seen_g_per_kwh": float(s.mean()), "gap_pts": float(100 * (s.mean() - b.mean()) / b.mean()),
                    "jobs_off_optimum": int((s > np.concatenate(best) + 1e-6).sum()), "missed": missed[key],
                    "wall_s": round(wall[key], 1)}
    return out


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in (ROOT / "examples" / "planner").glob("nightly-*.yaml"))
    rows = []
    for n in names:
        r = run_scenario(ROOT / "examples" / "planner" / f"{n}.yaml")
        rows.append(r)
        print(f"{n:18s} jobs {r['jobs']:4d}  brute {r['brute_force_g_per_kwh']:7.2f}  " + "  ".join(
            f"{k} {r[k]['seen_g_per_kwh']:7.2f} ({r[k]['gap_pts']:+.3f} pts, {r[k]['jobs_off_optimum']} off, "
            f"{r[k]['missed']} missed, {r[k]['wall_s']} s)" for k in POLICIES), flush=True)
    OUT.write_text(json.dumps({"git": git_state(), "step_s": STEP_S, "scenarios": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
