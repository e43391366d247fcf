"""Benchmark: `gridshift sweep` on a local Ray with 1 and with 2 workers, and the per-cell overhead.

    python benchmarks/bench_sweep.py [SWEEP.yaml] [--trivial-cells N] [--repeat R]

1. The sweep (default ``examples/sweeps/nightly-zones.yaml``: 8 cells, a year of hourly slots each) runs
   from scratch with ``--workers 1`` and ``--workers 2``: wall time (Ray start included), the time from the
   first cell submitted to the last result (``run_s``), the sum of the cells' own compute (``cell_s``, timed
   inside each worker: assemble + simulate) and of their CPU time (``cell_cpu_s``; ``cell_cpu_share`` =
   cpu / wall well below 1 means the cells waited for a core — the machine was busy), and speed-ups.
2. Overhead per cell, two ways: ``(run_s × workers − cell_s) / cells`` of the sweep above (worker time not
   spent computing: scheduling, moving the scenario and result, writing the cell files); and a sweep of N
   trivial cells (one day, one written-out job, asap; one worker), ``run_s / N``.

With ``--repeat R`` each worker count runs R times and the fastest run is kept (the machine may be shared).

Writes ``benchmarks/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.studies.sweep_run import load_sweep, run_sweep

ROOT = Path(__file__).resolve().parents[1]

TRIVIAL_BASE = {
    "name": "trivial", "seed": 0,
    "time_range": {"start": "2023-06-05T00:00:00Z", "end": "2023-06-06T00:00:00Z"},
    "zones": [{"id": "DE-LU"}],
    "sites": [{"name": "s", "zone": "DE-LU", "power_cap_mw": 1.0, "pools": [{"accelerator": "H100", "count": 8}]}],
    "workloads": {"jobs": [{"job_id": "j", "kind": "fine-tuning", "arrival": "2023-06-05T02:00:00Z",
                            "work_acc_h": 4, "gang_min": 1, "gang_max": 1}]},
    "policies": ["asap"],
}


def timed_run(sweep_file: Path, workers: int, tmp: Path) -> dict:
    loaded = load_sweep(sweep_file)
    out = tmp / f"out-w{workers}-{loaded.spec.name}"  # a new directory: every cell runs
    t0 = time.perf_counter()
    res = run_sweep(loaded, out, workers=workers)
    wall = time.perf_counter() - t0
    table = res.table
    cell_s = float(table["wall_s"].sum())
    cpu_s = float(table["cpu_s"].sum())
    end = table["finished_utc"].astype("int64") / 1e9
    events = sorted([(e - w, 1) for e, w in zip(end, table["wall_s"])] + [(e, -1) for e in end])
    running = peak = 0
    for _, step in events:  # the most cells that were running at the same moment
        running += step
        peak = max(peak, running)
    n = len(loaded.cells)
    run_s = res.timing_s["run_s"]
    return {"workers": workers, "cells": n, "failed": len(res.failed), "wall_s": round(wall, 2),
            "ray_start_s": round(res.timing_s["ray_start_s"], 2), "run_s": round(run_s, 2),
            "write_s": round(res.timing_s["write_s"], 2), "cell_s": round(cell_s, 2),
            "cell_s_mean": round(cell_s / n, 3), "cell_cpu_s": round(cpu_s, 2),
            "cell_cpu_share": round(cpu_s / cell_s, 2) if cell_s else None, "max_concurrent_cells": peak,
            "overhead_per_cell_s": round((run_s * workers - cell_s) / n, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sweep", nargs="?", default=str(ROOT / "examples" / "sweeps" / "nightly-zones.yaml"))
    ap.add_argument("--trivial-cells", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=1, help="run each configuration R times, keep the fastest")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "sweep.json"))
    a = ap.parse_args()
    git_before = git_state()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as td:
        tmp = Path(td)
        runs = []
        for w in (1, 2):
            tries = [timed_run(Path(a.sweep), w, tmp / f"try{i}") for i in range(a.repeat)]
            r = min(tries, key=lambda x: x["wall_s"])
            r["wall_s_all"] = [x["wall_s"] for x in tries]
            runs.append(r)
            print(f"workers={w}: wall {r['wall_s']} s (Ray start {r['ray_start_s']} s, cells run {r['run_s']} s, "
                  f"in-cell compute {r['cell_s']} s, of it on CPU {r['cell_cpu_s']} s; up to {r['max_concurrent_cells']} "
                  f"cells at once), overhead {r['overhead_per_cell_s']} s/cell", file=sys.stderr)
        base = tmp / "trivial.yaml"
        base.write_text(yaml.safe_dump(TRIVIAL_BASE))
        sw = tmp / "trivial-sweep.yaml"
        sw.write_text(yaml.safe_dump({"name": "trivial", "base": base.name,
                                      "axes": {"seeds": list(range(a.trivial_cells))}}))
        triv = timed_run(sw, 1, tmp)
        triv["run_s_per_cell"] = round(triv["run_s"] / triv["cells"], 3)
        print(f"trivial: {triv['cells']} cells in {triv['run_s']} s on 1 worker = {triv['run_s_per_cell']} s/cell "
              f"(in-cell {triv['cell_s_mean']} s)", file=sys.stderr)
    one, two = runs
    doc = {
        "benchmark": "sweep",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "git": git_before if git_state() == git_before else {"before": git_before, "after": git_state()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_avg_1_5_15_before": [round(x, 2) for x in load_before],
                    "load_avg_1_5_15_after": [round(x, 2) for x in os.getloadavg()]},
        "sweep": os.path.relpath(a.sweep, ROOT),
        "repeat": a.repeat,
        "runs": runs,
        "speedup_wall": round(one["wall_s"] / two["wall_s"], 2),
        "speedup_run": round(one["run_s"] / two["run_s"], 2),
        "trivial": triv,
    }
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(doc, indent=2) + "\n")
    print("| workers | cells | wall_s | ray_start_s | run_s | cell_s | overhead_per_cell_s |")
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['workers']} | {r['cells']} | {r['wall_s']} | {r['ray_start_s']} | {r['run_s']} | {r['cell_s']} "
              f"| {r['overhead_per_cell_s']} |")
    print(f"\nspeed-up 2 vs 1 worker: {doc['speedup_wall']}× on wall time, {doc['speedup_run']}× on running the cells")
    print(f"trivial cells: {triv['run_s_per_cell']} s per cell on 1 worker (in-cell {triv['cell_s_mean']} s)")
    print(f"load average before/after: {doc['machine']['load_avg_1_5_15_before']} / "
          f"{doc['machine']['load_avg_1_5_15_after']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
