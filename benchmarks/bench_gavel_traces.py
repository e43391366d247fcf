"""Benchmark: GridShift's round simulator with Gavel's mechanics on Gavel's own job streams (issue 23).

    python benchmarks/bench_gavel_traces.py --traces DIR [--seeds 0 1 2] [--workers 3] [--only NAME ...]
                                            [--no-gang-weights] [--json PATH]
    python benchmarks/bench_gavel_traces.py --resummarise benchmarks/results/gavel_traces.json

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
(``GAVEL_SIM``: runs of Gavel's own simulator at c4fa400 on these streams; how each was produced is noted
there), compared on the seeds both have. Writes ``benchmarks/results/gavel_traces.json``.
``--resummarise RESULTS`` only recomputes the summary of an earlier results file against ``GAVEL_SIM``
(its runs and their provenance kept; for when Gavel's side was run after ours and our code is unchanged).
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
# Gavel's simulator on these streams, average JCT over jobs 4000-4999, h, by seed. Single-GPU: as reported in
# issue 23 (rerun 2026-12-07 on single_s0.trace as below: aware 29.42 h again, agnostic 95.52 h). Multi-GPU: Gavel's own simulator
# (stanford-futuredata/gavel c4fa400, scheduler/scripts/drivers/simulate_scheduler_with_trace.py, unchanged code;
# only its unused RPC and matrix-completion imports stubbed) run 2026-12-07 on multi_s{seed}.trace with
# -c 36:36:36 --num_gpus_per_server 1:1:1 --time_per_iteration 360 -s 4000 -e 5000 --seed {seed}, cvxpy 1.9.3
# with ECOS 2.0.14 (Gavel's default solver), Python 3.11. A seed missing here was not run.
GAVEL_SIM = {("las-single-5.6", "agnostic"): {0: 98.26, 1: 96.35, 2: 80.69},
             ("las-single-5.6", "aware"): {0: 29.42, 1: 27.05, 2: 22.73},
             ("las-multi-2.8", "agnostic"): {0: 113.11, 1: 113.37, 2: 93.44},
             ("las-multi-2.8", "aware"): {0: 46.93, 1: 36.66, 2: 35.33}}


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
    ap.add_argument("--traces", type=Path)
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    ap.add_argument("--workers", type=int, default=3)
    ap.add_argument("--only", nargs="*", default=list(FILES), choices=list(FILES))
    ap.add_argument("--no-gang-weights", action="store_true")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "gavel_traces.json")
    ap.add_argument("--resummarise", type=Path, metavar="RESULTS",
                    help="only recompute the summary of RESULTS (an earlier run's file) against GAVEL_SIM")
    a = ap.parse_args()
    if a.resummarise is not None:
        return resummarise(a.resummarise)
    if a.traces is None:
        ap.error("--traces is required (unless --resummarise)")
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
    git_after = git_state()
    doc = {"benchmark": "gavel_traces", "summary": summarise(rows, not a.no_gang_weights), "runs": rows,
           "wall_s": time.perf_counter() - t0, "workers": a.workers, "gang_weights": not a.no_gang_weights,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform(),
                       "load_avg_1min": os.getloadavg()[0]},
           "code": git_before if git_after == git_before else {"before": git_before, "after": git_after},
           "measured_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    return _write(doc, a.json)


def summarise(rows: list[dict], gang_weights: bool) -> list[dict]:
    """Mean over seeds per (experiment, variant); beside it Gavel's simulator where known (``GAVEL_SIM``),
    compared on the seeds both have (``diff_pct``: ours / Gavel's - 1 on the means over those seeds)."""
    summary = []
    for (name, variant) in {(r["name"], r["policy"]) for r in rows}:
        g = [r for r in rows if r["name"] == name and r["policy"] == variant]
        key = "makespan_h" if name.startswith("makespan") else "avg_jct_h"
        ours = [r[key] for r in g]
        s = {"name": name, "policy": variant, "metric": key, "seeds": [r["seed"] for r in g], "ours_by_seed": ours,
             "ours_mean": sum(ours) / len(ours)}
        gav = GAVEL_SIM.get((name, variant)) if gang_weights or name != "las-multi-2.8" else None
        both = [r for r in g if gav is not None and r["seed"] in gav]
        if both:
            s["gavel_sim_seeds"] = [r["seed"] for r in both]
            s["gavel_sim_by_seed"] = [gav[r["seed"]] for r in both]
            s["gavel_sim_mean"] = sum(s["gavel_sim_by_seed"]) / len(both)
            s["ours_mean_same_seeds"] = sum(r[key] for r in both) / len(both)
            s["diff_pct"] = 100 * (s["ours_mean_same_seeds"] / s["gavel_sim_mean"] - 1)
            s["diff_pct_by_seed"] = [100 * (r[key] / gav[r["seed"]] - 1) for r in both]
        summary.append(s)
    return sorted(summary, key=lambda s: (s["name"], s["policy"]))


def resummarise(path: Path) -> int:
    """Recompute the summary of an existing results file (its runs and provenance kept) against GAVEL_SIM."""
    try:
        doc = json.loads(path.read_text())
        rows = doc["runs"]
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {path}: not a gavel_traces results file ({exc})", file=sys.stderr)
        return 2
    multi = [r.get("gang_weights", True) for r in rows if r["name"] == "las-multi-2.8"]  # older files: per run only
    doc["summary"] = summarise(rows, doc["gang_weights"] if doc.get("gang_weights") is not None else all(multi))
    doc["summarised_utc"] = datetime.now(UTC).isoformat(timespec="seconds")
    return _write(doc, path)


def _write(doc: dict, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    for s in doc["summary"]:
        print(json.dumps(s))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
