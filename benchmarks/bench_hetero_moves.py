"""Benchmark: what moving jobs between accelerator types costs, and what stickiness saves.

    python benchmarks/bench_hetero_moves.py [--seed 0] [--workers 2] [--restart-s 30]

Gavel's mechanism realises a fractional allocation (a job 40 % on V100, 60 % on K80) by moving jobs
between types from round to round, and Gavel's simulator charges nothing for a move. Here the
full-size least-attained-service experiment with single-GPU jobs at 5.6 jobs/h (`las-single-5.6`,
heterogeneity-aware) runs with a checkpoint-and-restart cost per move (``--restart-s`` of the round is
lost) and several stickiness factors (the priority bonus of a job's current pool), beside the free-move
reference. Reported per variant: average JCT over jobs 4000-5000, moves, moves per placement. Writes
``benchmarks/results/hetero_moves.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]


def _run(args: tuple[float, float, int]) -> dict:
    from gridshift.sim.rounds import RoundSimulator, SimConfig
    from gridshift.studies.gavel import GANG_SIZES, experiments, gavel_inputs, generate_jobs

    stickiness, restart_s, seed = args
    thr, cluster = gavel_inputs()
    exp = next(e for e in experiments(False) if e.name == "las-single-5.6")
    jobs = generate_jobs(thr, n_jobs=exp.n_jobs, jobs_per_h=exp.jobs_per_h, multi_gpu=False, seed=seed)
    cfg = SimConfig(policy="max-min-fairness", aware=True, stickiness=stickiness, restart_s=restart_s,
                    stop_after=exp.window, seed=seed)
    t0 = time.perf_counter()
    res = RoundSimulator(jobs, cluster, thr, GANG_SIZES, cfg).run()
    w = res.window(*exp.window)
    rounds = len(res.round_start_s)
    return {"stickiness": stickiness, "restart_s": restart_s, "seed": seed, "avg_jct_h": w["avg_jct_h"],
            "jobs_measured": w["jobs"], "moves": res.moves, "preemptions": res.preemptions, "rounds": rounds,
            "moves_per_round": res.moves / max(rounds, 1), "wall_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--restart-s", type=float, default=30.0)
    ap.add_argument("--stickiness", type=float, nargs="+", default=[1.0, 1.2, 2.0, 5.0])
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/hetero_moves.json")
    a = ap.parse_args()
    tasks = [(1.2, 0.0, a.seed)] + [(s, a.restart_s, a.seed) for s in a.stickiness]
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=a.workers) as pool:
        rows = list(pool.map(_run, tasks))
    for r in rows:
        print(f"stickiness {r['stickiness']:4.1f} restart {r['restart_s']:4.0f} s: avg JCT {r['avg_jct_h']:7.2f} h, "
              f"moves {r['moves']:8d} ({r['moves_per_round']:.1f} per round), wall {r['wall_s']:.0f} s")
    doc = {"benchmark": "hetero_moves", "experiment": "las-single-5.6 (aware), full size", "rows": rows,
           "wall_s": time.perf_counter() - t0,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
           "code": git_state(), "measured_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
