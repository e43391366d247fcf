"""Benchmark: one allocation solve of every heterogeneity policy (aware and agnostic) for 2,048 and 20,000
active jobs on a Gavel-like cluster.

    python benchmarks/bench_hetero_solve.py [--jobs 2048 20000] [--runs 9 5] [--json PATH]

Problems (one per run, seeds 0, 1, ...): three accelerator types, K80, P100 and V100, in one site, with
``jobs / 8`` of each (768 accelerators for 2,048 jobs), so the cluster is about five times oversubscribed
(mean gang 1.9), as Gavel's is in steady state at high load. Gang sizes 1/2/4/8 with probability
0.70/0.10/0.15/0.05 (Gavel's generator); throughputs random but realistic: K80 U(0.5, 5) steps/s, the
V100 1-12x the K80, the P100 in between (30-70 % of the way), times ``gang ** 0.8`` for multi-accelerator
jobs. Work left: Gavel's durations (60 * 10^U(1.5, 3) s w.p. 0.8, else 60 * 10^U(3, 4) s) at the V100
throughput; elapsed U(0, 10 h); 30 % of jobs have a deadline 2-10x their V100 run time (min-cost SLOs);
rent 0.45 / 1.46 / 2.48 USD per accelerator-hour (Google Cloud on-demand GPU prices for K80, P100, V100,
cloud.google.com/compute/gpus-pricing, as SkyPilot's GCP catalog lists them).

Timed: building the :class:`AllocationProblem` plus :func:`allocate` (median and 90th percentile over
the runs). Targets (2 shared cores): max-min fairness <= 50 ms for 2,048 jobs and <= 1 s for 20,000 (Gavel's
cvxpy/ECOS solve: 59 ms). Writes ``benchmarks/results/hetero_solve.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.plan.allocation.policies import POLICIES, allocate
from gridshift.plan.allocation.problem import AllocationProblem

ROOT = Path(__file__).resolve().parents[1]
TARGETS_S = {("max-min-fairness", 2048): 0.05, ("max-min-fairness", 20000): 1.0}
GAVEL_ECOS_S = 0.059
RENT_PER_ACC_H = np.array([0.45, 1.46, 2.48])  # K80, P100, V100: Google Cloud on-demand USD/GPU-hour


def gavel_like(n_jobs: int, seed: int) -> AllocationProblem:
    rng = np.random.default_rng(seed)
    u = rng.random(n_jobs)
    gang = np.select([u <= 0.7, u <= 0.8, u <= 0.95], [1, 2, 4], 8).astype(float)
    k80 = rng.uniform(0.5, 5.0, n_jobs)
    v100 = k80 * rng.uniform(1.0, 12.0, n_jobs)
    p100 = k80 + (v100 - k80) * rng.uniform(0.3, 0.7, n_jobs)
    thr = np.stack([k80, p100, v100], axis=1) * gang[:, None] ** 0.8
    dur_s = np.where(rng.random(n_jobs) < 0.8, 60 * 10 ** rng.uniform(1.5, 3, n_jobs),
                     60 * 10 ** rng.uniform(3, 4, n_jobs))
    rem = dur_s * thr[:, 2]
    deadline = np.where(rng.random(n_jobs) < 0.3, dur_s * rng.uniform(2, 10, n_jobs), np.inf)
    return AllocationProblem(throughput=thr, gang=gang, job_of_row=np.arange(n_jobs),
                             count=np.full(3, max(1, n_jobs // 8)), remaining_steps=rem,
                             elapsed_s=rng.uniform(0, 36000, n_jobs), deadline_s=deadline,
                             cost_per_acc_h=RENT_PER_ACC_H)


def measure(policy: str, aware: bool, n_jobs: int, runs: int) -> dict:
    times, objs, statuses = [], [], set()
    for seed in range(runs):
        t0 = time.perf_counter()
        pr = gavel_like(n_jobs, seed)
        res = allocate(policy, pr, aware=aware, time_limit_s=60.0)
        times.append(time.perf_counter() - t0)
        objs.append(res.objective)
        statuses.add(res.status)
    t = np.array(times)
    case = {"policy": policy, "aware": aware, "jobs": n_jobs, "runs": runs,
            "median_s": round(float(np.median(t)), 4), "p90_s": round(float(np.percentile(t, 90)), 4),
            "min_s": round(float(t.min()), 4), "max_s": round(float(t.max()), 4),
            "objective_median": float(np.median(objs)), "status": sorted(statuses)}
    target = TARGETS_S.get((policy, n_jobs)) if aware else None
    if target is not None:
        case["target_s"], case["met"] = target, case["median_s"] <= target
    return case


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="*", default=[2048, 20000])
    ap.add_argument("--runs", type=int, nargs="*", default=[9, 5], help="runs per size (last repeats)")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "hetero_solve.json")
    a = ap.parse_args()
    git_before = git_state()
    cases = []
    print(f"{'policy':22s} {'variant':9s} {'jobs':>6s} {'median':>9s} {'p90':>9s}  objective")
    for i, n in enumerate(a.jobs):
        runs = a.runs[min(i, len(a.runs) - 1)]
        for policy in POLICIES:
            for aware in (True, False):
                c = measure(policy, aware, n, runs)
                cases.append(c)
                note = f"  target {c['target_s'] * 1e3:.0f} ms: {'met' if c['met'] else 'MISSED'}" if "met" in c else ""
                print(f"{policy:22s} {'aware' if aware else 'agnostic':9s} {n:6d} {c['median_s'] * 1e3:7.1f} ms "
                      f"{c['p90_s'] * 1e3:7.1f} ms  {c['objective_median']:.5g} {','.join(c['status'])}{note}",
                      flush=True)
    git_after = git_state()
    doc = {"benchmark": "hetero_solve", "cases": cases,
           "targets_s": {f"{p} {n}": t for (p, n), t in TARGETS_S.items()}, "gavel_ecos_s": GAVEL_ECOS_S,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
           "code": git_before if git_after == git_before else {"before": git_before, "after": git_after},
           "measured_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
