"""Benchmark: Gavel's published experiments at full size, three seeds (OSDI 2020, §7).

    python benchmarks/bench_gavel.py [--seeds 3] [--workers 2] [--only las-single-5.6,...]
                                     [--mechanics gavel|gridshift] [--json PATH]

Runs `gridshift hetero reproduce-gavel` in-process (the same code path), prints ours beside the published
figures and writes ``benchmarks/results/gavel.json`` (the command's ``gavel.json`` plus the machine and
the code it ran on, and the aware/agnostic ratios).
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

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.studies.gavel import reproduce_gavel

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default=None)
    ap.add_argument("--no-gang-choice", action="store_true")
    ap.add_argument("--mechanics", default="gavel", choices=("gavel", "gridshift"))
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/gavel.json")
    a = ap.parse_args()
    only = [x for x in a.only.split(",")] if a.only else None
    t0 = time.perf_counter()
    rows = reproduce_gavel(quick=False, seeds=list(range(a.seeds)), gang_choice=not a.no_gang_choice,
                           workers=a.workers, only=only, mechanics=a.mechanics, fifo_fastest_free=True)
    wall = time.perf_counter() - t0
    by = {(r["name"], r["policy"]): r for r in rows}
    ratios = {}
    for name in {r["name"] for r in rows}:
        ag, aw = by.get((name, "agnostic")), by.get((name, "aware"))
        if ag and aw:
            key = "makespan_h" if name.startswith("makespan") else "avg_jct_h"
            ratios[name] = ag[key] / aw[key]
    base, gc = by.get(("las-multi-2.8", "aware")), by.get(("las-multi-2.8-gang-choice", "aware"))
    if base and gc:
        ratios["gang-choice-gain-multi-2.8"] = base["avg_jct_h"] / gc["avg_jct_h"]
    for r in rows:
        print(f"{r['name']:28s} {r['policy_detail']:32s} jct {r['avg_jct_h']:8.2f} h (pub {r['published_avg_jct_h']}) "
              f"makespan {r['makespan_h']:8.2f} h (pub {r['published_makespan_h']})  wall {r['wall_s']:.0f} s")
    print("ratios:", json.dumps(ratios, indent=1))
    doc = {"experiments": rows, "ratios": ratios, "wall_s": wall, "seeds": a.seeds, "workers": a.workers,
           "mechanics": a.mechanics,
           "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()},
           "code": git_state(), "measured_utc": datetime.now(UTC).isoformat(timespec="seconds")}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    if a.only and a.json.exists():  # keep the experiments not re-run
        old = json.loads(a.json.read_text())
        keep = [r for r in old.get("experiments", []) if r["name"] not in set(only) | {f"{n}-gang-choice" for n in only}]
        doc["experiments"] = keep + rows
        doc["ratios"] = {**old.get("ratios", {}), **ratios}
        # where each experiment's figures come from: earlier runs keep their own code, time and wall
        prev = old.get("runs") or [{k: old.get(k) for k in ("code", "measured_utc", "wall_s", "seeds", "workers")}
                                   | {"experiments": sorted({r["name"] for r in keep})}]
        doc["runs"] = [r | {"experiments": [n for n in r["experiments"] if n in {k["name"] for k in keep}]}
                       for r in prev] + [{k: doc[k] for k in ("code", "measured_utc", "wall_s", "seeds", "workers")}
                                         | {"experiments": sorted({r["name"] for r in rows})}]
    a.json.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    print(f"wrote {a.json} in {wall:.0f} s")


if __name__ == "__main__":
    main()
