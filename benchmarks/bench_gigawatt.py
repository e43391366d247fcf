"""Benchmark: a year (2023, hourly UTC slots) of the 1 GW fleet of ``gridshift.studies.gigawatt`` — 24 sites
in 16 zones, ~806,000 accelerators of 7 types sized from the catalog's power figures, 1,000,000 PAI-trace
batch jobs scaled to a design utilisation of 72 %, 20 Azure-LLM-shaped inference services in 10 user regions,
site power caps and four grid events — under ``asap``, ``mpc`` (default forecaster, hourly re-planning,
48 h horizon) and ``oracle``.

Targets (issue 22; 2-core, 24 GiB machine, at scale 1): asap <= 5 min, mpc <= 30 min, oracle <= 30 min, peak
memory <= 8 GB.

    python benchmarks/bench_gigawatt.py --scale 0.01 --policies asap
    python benchmarks/bench_gigawatt.py --scale 0.1 --policies asap mpc --part 0.25 --json PATH

``oracle`` is by default its relaxed bound (``--oracle-kind relaxed-bound``, ``gridshift.sim.oracle_bound``): a
lower bound on the objective (and on cost) any cap-respecting schedule can reach, one LP over job classes ×
hours × pools, timed as ``oracle_s`` with ``oracle_kind`` naming what was run; ``--oracle-kind exact``
simulates the exact oracle's candidate plans instead.

``--scale`` multiplies facility power, accelerators, jobs and service demand (1.0 = 1 GW). ``--part`` runs
the first fraction of the year (the fleet and jobs are built for the whole year; the run stops early: the
figures say which part was run). Each policy runs in its own child process so its peak RSS is its own. The
machine is shared: every result carries the 1-, 5- and 15-minute load averages before and after the run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = {"asap": 300, "mpc": 1800, "oracle": 1800}
POLICY_SPECS = {"asap": {"name": "asap"}, "mpc": {"name": "mpc"}, "oracle": {"name": "oracle"}}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def bound_child(scale: float, part: float, block_h: int) -> dict:
    """The oracle's relaxed bound (``gridshift.sim.oracle_bound``) for carbon and for cost: one LP each, no
    simulation."""
    from gridshift.model.scenario import Objective
    from gridshift.sim.oracle_bound import relaxed_bound
    from gridshift.studies.gigawatt import GigawattSpec, build_gigawatt, first_part

    load0 = _load()
    t0 = time.perf_counter()
    asm, fig = build_gigawatt(GigawattSpec(scale=scale))
    asm = first_part(asm, part)
    t1, c1 = time.perf_counter(), time.process_time()
    obj = asm.scenario.objective
    bounds = {obj.kind: relaxed_bound(asm.world, asm.signals, obj, block_h=block_h)}
    t2, c2 = time.perf_counter(), time.process_time()
    if obj.kind != "cost":
        bounds["cost"] = relaxed_bound(asm.world, asm.signals, Objective(kind="cost"), block_h=block_h)
    return {
        **fig, "policy": "oracle", "oracle_kind": "relaxed-bound", "part": part, "slots_run": asm.world.n_slots,
        "jobs_in_part": len(asm.world.jobs),
        "build_s": round(t1 - t0, 2), "simulate_s": round(t2 - t1, 2), "wall_s": round(t2 - t0, 2),
        "simulate_cpu_s": round(c2 - c1, 2),  # the bound on the scenario's objective: what oracle_s times
        "cost_bound_s": round(time.perf_counter() - t2, 2),
        "metrics": {"objective": obj.kind, "bound_objective": bounds[obj.kind]["bound_objective"],
                    "cost_bound_usd": bounds["cost"]["bound_objective"]},
        "bounds": bounds,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "loadavg_before": load0, "loadavg_after": _load(),
    }


def child(scale: float, policy: str, part: float, progress: bool) -> dict:
    from gridshift.model.scenario import PolicySpec
    from gridshift.sim.runner import run_policies
    from gridshift.studies.gigawatt import GigawattSpec, build_gigawatt, first_part

    load0 = _load()
    t0 = time.perf_counter()
    asm, fig = build_gigawatt(GigawattSpec(scale=scale))
    asm = first_part(asm, part)
    t1 = time.perf_counter()
    cb = None
    bar = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=asm.world.n_slots, desc=f"{policy} x{scale:g}", unit="slot", file=sys.stderr,
                       mininterval=2.0)

            def cb(_name: str, t: int, T: int) -> None:
                bar.update(t - bar.n)
        except ImportError:
            cb = None
    c1 = time.process_time()
    (run,) = run_policies(asm, [PolicySpec(**POLICY_SPECS[policy])], cb, nominal_reference=False)
    t2, c2 = time.perf_counter(), time.process_time()
    if bar is not None:
        bar.close()
    m = run.metrics
    ts = run.site_timeseries
    keys = ("jobs_completed", "work_done_frac", "deadline_miss_frac", "energy_mwh", "carbon_t", "cost_usd",
            "cap_violation_mwh", "objective_value", "plan_time_s", "lp_solves", "lp_solve_s_mean", "lp_fallbacks",
            "lp_bound_objective", "oracle_chosen")
    return {
        **fig, "policy": policy, "part": part, "slots_run": asm.world.n_slots,
        "jobs_in_part": len(asm.world.jobs),
        "build_s": round(t1 - t0, 2), "simulate_s": round(t2 - t1, 2), "wall_s": round(t2 - t0, 2),
        "simulate_cpu_s": round(c2 - c1, 2),  # CPU time of the process: less inflated by a shared machine
        "utilisation_frac": round(float(ts["busy_accelerators"].sum() / ts["total_accelerators"].sum()), 4),
        "metrics": {k: m[k] for k in keys if k in m},
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "loadavg_before": load0, "loadavg_after": _load(),
    }


def split_child(scale: float, policy: str, part: float, groups: int, address: str | None, progress: bool) -> dict:
    from gridshift.studies.gigawatt import GigawattSpec
    from gridshift.studies.gigawatt_split import run_split

    load0 = _load()
    bar = None
    cb = None
    if progress:
        try:
            from tqdm import tqdm
            bar = tqdm(total=groups, desc=f"{policy} x{scale:g} split {groups}", unit="group", file=sys.stderr)

            def cb(done: int, total: int) -> None:
                bar.update(done - bar.n)
        except ImportError:
            cb = None
    t0, c0 = time.perf_counter(), time.process_time()
    r = run_split(GigawattSpec(scale=scale), policy, groups, part=part, address=address, progress=cb)
    if bar is not None:
        bar.close()
    r["wall_s"] = round(time.perf_counter() - t0, 2)
    r["driver_cpu_s"] = round(time.process_time() - c0, 2)
    r["groups"], r["address"] = groups, address or "local"
    r["peak_rss_gb_driver"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3)
    r["loadavg_before"], r["loadavg_after"] = load0, _load()
    return r


def compare(whole: dict, split: dict) -> dict:
    """Relative difference of the split run's totals from the whole run's (same scale and part)."""
    m, c = whole["metrics"], split["combined"]
    out = {}
    for k in ("energy_mwh", "carbon_t", "cost_usd", "jobs_completed"):
        if k in m and m[k]:
            out[f"{k}_rel_diff"] = round(c[k] / m[k] - 1.0, 5)
    out["utilisation_abs_diff"] = round(c["utilisation_frac"] - whole["utilisation_frac"], 5)
    out["speedup"] = round(whole["wall_s"] / split["tasks_wall_s"], 3) if split["tasks_wall_s"] else None
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="1.0 = the 1 GW fleet; 0.01 for quick checks")
    ap.add_argument("--policies", nargs="+", default=["asap", "mpc", "oracle"], choices=list(POLICY_SPECS))
    ap.add_argument("--part", type=float, default=1.0, help="run the first fraction of the year (0 < part <= 1)")
    ap.add_argument("--progress", action="store_true", help="a progress bar with ETA on stderr (tqdm)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bench_gigawatt.json"))
    ap.add_argument("--split", type=int, default=0, help="also run split into this many site groups on Ray")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    ap.add_argument("--oracle-kind", default="relaxed-bound", choices=["relaxed-bound", "exact"],
                    help="oracle: the relaxed lower bound (one LP, gridshift.sim.oracle_bound; default) or the exact "
                         "oracle (simulates its candidate plans)")
    ap.add_argument("--bound-block-h", type=int, default=24,
                    help="relaxed bound: period length in hours (24: days, the measured default; 1: hourly, tighter, "
                         "an LP of 858,000 columns for the year)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--split-child", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not (0 < a.part <= 1):
        print("--part: must be in (0, 1]", file=sys.stderr)
        return 2
    if a.child and a.split_child:
        print(json.dumps(split_child(a.scale, a.child, a.part, a.split, a.address, a.progress)))
        return 0
    if a.child == "oracle" and a.oracle_kind == "relaxed-bound":
        print(json.dumps(bound_child(a.scale, a.part, a.bound_block_h)))
        return 0
    if a.child:
        print(json.dumps(child(a.scale, a.child, a.part, a.progress)))
        return 0
    git_before = git_state()
    out = Path(a.json)
    res: dict = json.loads(out.read_text()) if out.exists() else {}
    res.setdefault("benchmark", "gigawatt")
    res.setdefault("runs", {})
    res["python"], res["cpus"] = platform.python_version(), os.cpu_count()
    key = f"x{a.scale:g}" + ("" if a.part >= 1 else f"-part{a.part:g}")
    entry = res["runs"].setdefault(key, {})
    for pol in a.policies:
        cmd = [sys.executable, __file__, "--child", pol, "--scale", str(a.scale), "--part", str(a.part)]
        if a.progress:
            cmd.append("--progress")
        if pol == "oracle":
            cmd += ["--oracle-kind", a.oracle_kind, "--bound-block-h", str(a.bound_block_h)]
        r = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
        fig = json.loads(r.stdout.strip().splitlines()[-1])
        for k in ("scale", "sites", "zones", "accelerators", "accelerators_by_type", "full_load_facility_mw",
                  "cap_mw", "jobs", "services", "user_regions", "slots", "load_scale", "design_utilisation_frac",
                  "grid_events", "part", "slots_run", "jobs_in_part"):
            entry[k] = fig.pop(k)
        fig.pop("policy")
        entry[f"{pol}_s"] = fig["simulate_s"]
        fig["commit"] = git_before["commit"]  # each policy's own: runs of one scale may be at different commits
        if pol == "oracle":
            entry["oracle_kind"] = fig.get("oracle_kind", "exact")
            if entry["oracle_kind"] == "relaxed-bound":
                entry["oracle_block_h"] = a.bound_block_h
        entry[pol] = fig
        entry["peak_rss_gb"] = max(entry.get("peak_rss_gb", 0.0), fig["peak_rss_gb"])
        if pol == "oracle" and fig.get("oracle_kind") == "relaxed-bound":
            b = fig["bounds"][fig["metrics"]["objective"]]
            print(f"{key} oracle (relaxed bound, {b['columns']} columns, {b['rows']} rows): "
                  f"{fig['metrics']['bound_objective']:.6g} ({fig['metrics']['objective']}); "
                  f"cost bound {fig['metrics']['cost_bound_usd']:.6g} USD; LP {fig['simulate_s']} s wall, "
                  f"{fig['simulate_cpu_s']} s CPU (build {fig['build_s']} s), peak RSS {fig['peak_rss_gb']} GB, "
                  f"load {fig['loadavg_before']} -> {fig['loadavg_after']}", file=sys.stderr)
        else:
            print(f"{key} {pol}: {entry['accelerators']} accelerators, {entry['jobs_in_part']} jobs, "
                  f"{entry['slots_run']} slots: simulate {fig['simulate_s']} s wall, {fig['simulate_cpu_s']} s CPU "
                  f"(build {fig['build_s']} s), "
                  f"utilisation {fig['utilisation_frac']:.3f}, peak RSS {fig['peak_rss_gb']} GB, "
                  f"load {fig['loadavg_before']} -> {fig['loadavg_after']}", file=sys.stderr)
        if a.split:
            cmd = [*cmd, "--split-child", "--split", str(a.split)] + (["--address", a.address] if a.address else [])
            r = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
            sp = json.loads(r.stdout.strip().splitlines()[-1])
            sp["split_vs_whole"] = compare(fig, sp)
            entry[f"{pol}_split{a.split}"] = sp
            print(f"{key} {pol} split into {a.split} site groups ({sp['address']}): tasks {sp['tasks_wall_s']} s "
                  f"vs whole {fig['simulate_s']} s; {sp['split_vs_whole']}", file=sys.stderr)
    git_after = git_state()
    entry["git"] = git_before if git_after == git_before else {"before": git_before, "after": git_after}
    entry["commit"] = git_before["commit"]
    if a.scale == 1.0 and a.part >= 1:
        entry["targets_s"] = TARGET_S
    res["latest"] = key
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
