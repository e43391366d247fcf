"""Benchmark: one simulated year (2023, hourly slots), 8 sites on 8 grids, 10,000 accelerators,
100,000 batch jobs from the Alibaba PAI trace (via GAIA), policy ``asap``.

Target: <= 60 s wall and <= 2 GB peak memory on a 2-core machine.

    python benchmarks/bench_sim_year.py [--policy asap] [--jobs 100000] [--json benchmarks/results/sim_year.json]
    python benchmarks/bench_sim_year.py --policy threshold --json benchmarks/results/sim_year_threshold.json

Wall time covers the whole run: loading data, generating jobs, simulating and building the results
(not writing the report). Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

SITES = [  # (zone, cloud region, accelerator mix)
    ("US-CAL-CISO", "us-west2", {"H100": 1000, "B200": 250}),
    ("US-MIDA-PJM", "us-east4", {"H100": 1000, "A100": 250}),
    ("US-TEX-ERCO", "us-south1", {"H200": 1000, "MI300X": 250}),
    ("US-NY-NYIS", None, {"H100": 1250}),
    ("DE-LU", "europe-west3", {"B200": 1000, "H100": 250}),
    ("CA-ON", "northamerica-northeast2", {"Trainium2": 1250}),
    ("AU-NSW", "australia-southeast1", {"TPU-v5p": 1250}),
    ("JP-TK", "asia-northeast1", {"Ascend-910B": 1000, "A100": 250}),
]


def scenario(n_jobs: int, policy: str) -> Scenario:
    sites = []
    for i, (zone, region, pools) in enumerate(SITES):
        sites.append({"name": f"site{i}-{zone.lower()}", "zone": zone, "region": region, "pue": 1.2,
                      "power_cap_mw": 2.0, "pools": [{"accelerator": a, "count": c} for a, c in pools.items()]})
    return Scenario.model_validate({
        "name": "bench-year",
        "seed": 1,
        "time_range": {"start": "2023-01-01T00:00:00Z", "end": "2024-01-01T00:00:00Z"},
        "slot_duration_s": 3600,
        "zones": [{"id": z} for z, _, _ in SITES],
        "sites": sites,
        "workloads": {"generate": {"trace": "gaia/pai-100k", "count": n_jobs, "load_scale": 20,
                                   "max_length_h": 48}},
        "policies": [{"name": policy}],
    })


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policy", default="asap")
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "sim_year.json"),
                    help="write the figures to this file")
    a = ap.parse_args()
    t0 = time.perf_counter()
    sc = scenario(a.jobs, a.policy)
    asm = assemble(sc)
    t1, c1 = time.perf_counter(), time.process_time()
    (run,) = run_policies(asm, [PolicySpec(name=a.policy)])
    t2, c2 = time.perf_counter(), time.process_time()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res = {
        "benchmark": "sim_year",
        "policy": a.policy,
        "slots": asm.world.n_slots,
        "sites": asm.world.fleet.n_sites,
        "accelerators": int(asm.world.fleet.pool_count.sum()),
        "jobs": len(asm.world.jobs),
        "jobs_completed": run.metrics["jobs_completed"],
        "utilisation_frac": float(run.site_timeseries["busy_accelerators"].sum()
                                  / run.site_timeseries["total_accelerators"].sum()),
        "assemble_s": round(t1 - t0, 2),
        "simulate_s": round(t2 - t1, 2),
        "simulate_cpu_s": round(c2 - c1, 2),  # CPU time: less inflated than wall time on a shared machine
        "wall_s": round(t2 - t0, 2),
        "peak_rss_mb": round(peak_mb, 1),
        "python": platform.python_version(),
        "cpus": __import__("os").cpu_count(),
        "loadavg": [round(x, 2) for x in __import__("os").getloadavg()],  # the machine may be shared
        "commit": git_state()["commit"],
    }
    print(json.dumps(res, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    ok = res["wall_s"] <= 60 and res["peak_rss_mb"] <= 2048
    print("target (<= 60 s, <= 2048 MB):", "met" if ok else "MISSED", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
