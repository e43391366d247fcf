"""Benchmark: curtailment-enabled headroom for the 13 EIA regions and CONUS, 2020–2024 hourly load, at the
four default curtailment limits (0.25, 0.5, 1, 5 %), with and without a 6-hour event limit and a tier depth.

    python benchmarks/bench_headroom.py [--repeat 3] [--json benchmarks/results/headroom.json]

Loading (parsing the 14 CSV files) and solving are timed separately; solving is the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from _provenance import git_state

from gridshift.data.grid import available_load_regions, load_grid_load
from gridshift.studies import headroom as hr


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=str(Path(__file__).resolve().parent / "results" / "headroom.json"),
                    help="write the figures to this file")
    a = ap.parse_args()

    t0 = time.perf_counter()
    regions = {r: hr.prepare_region(r, load_grid_load(r)["load_mw"], range(2020, 2025))
               for r in available_load_regions()}
    load_s = time.perf_counter() - t0

    def best(**kw) -> tuple[float, object]:
        times, table = [], None
        for _ in range(max(a.repeat, 1)):
            t = time.perf_counter()
            table, _ = hr.headroom_table(regions, hr.DEFAULT_FRACTIONS, **kw)
            times.append(time.perf_counter() - t)
        return min(times), table

    solve_s, table = best()
    solve_event_s, _ = best(max_event_h=6)
    solve_depth_s, _ = best(depth_frac=0.29)
    sums = table[table["region"] == hr.SUM_REGION].set_index("curtailment_frac")["headroom_gw"]
    conus = table[table["region"] == hr.CONUS].set_index("curtailment_frac")["headroom_gw"]
    res = {
        "regions": len(regions), "hours_per_region": int(next(iter(regions.values())).load_mw.size),
        "fractions": list(hr.DEFAULT_FRACTIONS),
        "load_s": round(load_s, 3), "solve_s": round(solve_s, 4), "solve_with_event_limit_s": round(solve_event_s, 4),
        "solve_with_depth_s": round(solve_depth_s, 4),
        "sum_of_regions_gw": {str(k): round(v, 2) for k, v in sums.items()},
        "conus_one_region_gw": {str(k): round(v, 2) for k, v in conus.items()},
        "python": sys.version.split()[0], "machine": platform.machine(), "code": git_state(),
    }
    print(f"load {res['load_s']:.2f} s; solve {len(regions)} regions x {len(hr.DEFAULT_FRACTIONS)} limits: "
          f"{res['solve_s']:.3f} s (with a 6 h event limit {res['solve_with_event_limit_s']:.3f} s, "
          f"with a depth {res['solve_with_depth_s']:.3f} s)")
    print("sum of regions, GW:", res["sum_of_regions_gw"])
    print("CONUS as one region, GW:", res["conus_one_region_gw"])
    if a.json:
        with open(a.json, "w", encoding="utf-8") as fh:
            json.dump(res, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
