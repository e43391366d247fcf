"""Benchmark: GridShift's round simulator with Gavel's mechanics on Gavel's own job streams (issue 23).

    python benchmarks/bench_gavel_traces.py --traces DIR [--seeds 0 1 2] [--workers 3] [--only NAME ...]
                                            [--no-gang-weights] [--json PATH]

``DIR`` holds Gavel-format traces (:func:`gridshift.data.gavel.load_gavel_trace`) named
``single_s{seed}.trace`` (LAS, single-GPU, 5.6 jobs/h), ``multi_s{seed}.trace`` (LAS, multi-GPU, 2.8
jobs/h) and ``static_s{seed}.trace`` (makespan, 500 multi-GPU jobs at t = 0), each 9,000 jobs (500 for
the static one). They are Gavel's exact generated streams: written by running Gavel's own
``utils.generate_job`` (stanford-futuredata/gavel, scheduler/ at c4fa400, with its
``simulation_throughputs.json``) seeded as its ``Scheduler.simulate`` seeds them (job generator
``random.Random(seed + 2)``, inter-arrival generator ``random.Random(seed + 3)``, first arrival at 0, each
next ``-log(1 - u) * 3600 / jobs_per_h`` s later; 0 for the static stream), one ``str(job)`` and arrival
time a line. GridShift does not ship that script (it runs Gavel's code); ``docs/guide/heterogeneity.md``
gives it.

Each task runs one experiment variant of :mod:`gridshift.studies.gavel` on one trace with
``mechanics="gavel"`` (and LAS weights 1 / gang, Gavel's; ``--no-gang-weights``: weight 1, GridShift's), averaging JCT over jobs 4000-4999 (all 500 for the
makespan). Gavel's simulator figures on the same streams, where known, are printed beside ours
(``GAVEL_SIM``: as reported in GridShift issue 23 from runs of Gavel's simulator at c4fa400 on these
streams). Writes ``benchmarks/results/gavel_traces.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import UTC, datetime
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
FILES = {"las-single-5.6": "single", "las-multi-2.8": "multi", "makespan-500": "static"}
VARIANTS = {"las-single-5.6": ("agnostic", "aware"), "las-multi-2.8": ("agnostic", "aware"),
            "makespan-500": ("agnostic-fastest-free", "agnostic")}
# Gavel's simulator on these streams (issue 23), average JCT over jobs 4000-4999, h, seeds 0, 1, 2
GAVEL_SIM = {("las-single-5.6", "agnostic"): [98.26, 96.35, 80.69], ("las-single-5.6", "aware"): [29.42, 27.05, 22.73]}


def _one(task: tuple) -> dict:
    name, variant, seed, trace, gang_weights = task
    from gridshift.catalog.accelerators import load_catalog
    from gridshift.studies.gavel import (
        experiments,
        gavel_inputs,
        gavel_table,
        gavel_tensor,
        jobs_from_trace,
        run_experiment,
    )

    exp = next(e for e in experiments(False) if e.name == name)
    thr, cluster = gavel_inputs()
    types, _ = gavel_tensor(gavel_table(catalog=load_catalog()))
    t0 = time.perf_counter()
    row = run_experiment(exp, variant, thr, cluster, seed, jobs=jobs_from_trace(trace, types, thr), mechanics="gavel",
                         gang_weights=gang_weights)
    row["wall_s"] = time.perf_counter() - t0
    row["trace"] = Path(trace).name
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=list(FILES), choices=list(FILES))
    ap.add_argument("--no-gang-weights", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gavel_traces.json")
    a = ap.parse_args()
    git_before = git_state()
    tasks = [(n, v, s, str(a.traces / f"{FILES[n]}_s{s}.trace"), not a.no_gang_weights)
             for n in a.only for s in a.seeds for v in VARIANTS[n]]
    missing = sorted({t[3] for t in tasks if not Path(t[3]).exists()})
    if missing:
        print(f"error: trace file not found: {missing[0]}", file=sys.stderr)
        return 2
    rows = []
    t0 = time.perf_counter()
    with ProcessPoolExecutor(a.workers) as pool:
        futs = [pool.submit(_one, t) for t in tasks]
        for f in as_completed(futs):
            r = f.result()
            rows.append(r)
            print(f"{r['name']:16s} {r['policy']:22s} seed {r['seed']} jct {r['avg_jct_h']:8.2f} h "
                  f"makespan {r['makespan_h']:8.2f} h  wall {r['wall_s']:.0f} s", flush=True)
    rows.sort(key=lambda r: (r["name"], r["policy"], r["seed"]))
    summary = []
    for (name, variant) in {(r["name"], r["policy"]) for r in rows}:
        g = [r for r in rows if r["name"] == name and r["policy"] == variant]
        key = "makespan_h" if name.startswith("makespan") else "avg_jct_h"
        ours = [r[key] for r in g]
        s = {"name": name, "policy": variant, "metric": key, "seeds": [r["seed"] for r in g], "ours_by_seed": ours,
             "ours_mean": sum(ours) / len(ours)}
        gav = GAVEL_SIM.get((name, variant)) if not a.no_gang_weights or name != "las-multi-2.8" else None
        if gav is not None and len(g) == 3:
            s["gavel_sim_by_seed"] = gav
            s["gavel_sim_mean"] = sum(gav) / 3
            s["diff_pct"] = 100 * (s["ours_mean"] / s["gavel_sim_mean"] - 1)
        summary.append(s)
    git_after = git_state()
    doc = {"benchmark": "gavel_traces", "summary": sorted(summary, key=lambda s: (s["name"], s["policy"])), "runs": rows,
           "wall_s": time.perf_counter() - t0, "workers": a.workers, "gang_weights": not a.no_gang_weights,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                       "load_avg_1min": os.getloadavg()[0]},
           "code": git_before if git_after == git_before else {"before": git_before, "after": git_after},
           "measured_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    for s in doc["summary"]:
        print(json.dumps(s))
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
