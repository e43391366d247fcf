"""Benchmark: what grid events cost the simulator. The bundled demo (4 weeks, 4 sites, 3,000 jobs) under
``asap`` and ``threshold``, without events and with eight (six planned cuts at the four sites, two
emergencies with a 30-second response, 5-second steps), wall time of the simulation alone (signals and
workloads assembled once). Slots without an event cost nothing extra; each slot an event touches is
stepped at 1 minute (or 5 s).

    python benchmarks/bench_dr.py [--json benchmarks/results/dr.json]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import resources
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.scenario import parse_scenario
from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.sim.runner import run_policies
from gridshift.world.build import assemble

EVENTS = [
    {"id": f"cut-{s}-{d}", "kind": "cut", "sites": [s], "start": f"2023-03-{d:02d}T16:00:00Z",
     "end": f"2023-03-{d:02d}T20:00:00Z", "notice_s": 3600 * 4, "cut_frac": 0.3, "baseline_mw": 0.3}
    for s, d in (("california", 6), ("virginia", 8), ("frankfurt", 13), ("toronto", 15), ("california", 20),
                 ("virginia", 22))
] + [
    {"id": f"emergency-{s}", "kind": "emergency", "sites": [s], "start": f"2023-03-{d:02d}T13:20:00Z",
     "end": f"2023-03-{d:02d}T15:20:00Z", "respond_within_s": 30, "cut_frac": 0.3, "baseline_mw": 0.3}
    for s, d in (("frankfurt", 24), ("toronto", 26))
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "dr.json"))
    a = ap.parse_args()
    base = parse_scenario(resources.files("gridshift").joinpath("scenarios/demo.yaml").read_text(), "demo.yaml")
    specs = [PolicySpec(name="asap"), PolicySpec(name="threshold")]
    res = {"benchmark": "demand_response", **git_state(), "runs": {}}
    for label, events in (("no events", []), ("8 events", EVENTS)):
        sc = Scenario.model_validate({**base.model_dump(), "events": events})
        asm = assemble(sc)
        t0 = time.perf_counter()
        runs = run_policies(asm, specs)
        wall = time.perf_counter() - t0
        ev = {r.policy: r.metrics.get("events", []) for r in runs}
        res["runs"][label] = {"sim_wall_s": round(wall, 2), "slots": asm.world.n_slots * len(specs),
                              "events": {p: [{k: e[k] for k in ("id", "compliance_frac", "time_to_target_s")}
                                             for e in v] for p, v in ev.items()}}
        print(f"{label:>10}: {wall:.1f} s for {len(specs)} policies × {asm.world.n_slots} slots")
    a0, a1 = res["runs"]["no events"]["sim_wall_s"], res["runs"]["8 events"]["sim_wall_s"]
    res["overhead_frac"] = round((a1 - a0) / a0, 3)
    print(f"overhead of 8 events: {100 * res['overhead_frac']:.1f} %")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
