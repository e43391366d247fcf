"""How the simulator's and the planner's measured figures grow with fleet size: a markdown table on stdout
and a log-log plot, from the results files only (nothing is re-run or estimated here).

    python benchmarks/plot_scaling.py [--png docs/img/gigawatt_scaling.png]

Reads ``results/bench_gigawatt.json`` (every run: seconds per simulated slot under each policy, by
accelerators), ``results/scaling_sim_year.json`` (``bench_sim_year.py``) and
``results/scaling_plan_epoch.json`` (``bench_plan_epoch.py``: seconds per ``mpc`` epoch by active jobs).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks" / "results"


def _read(name: str) -> dict:
    p = RES / name
    return json.loads(p.read_text()) if p.exists() else {}


def _commit(git: dict | None) -> str | None:
    if not git:
        return None
    return git.get("commit") or (git.get("before") or {}).get("commit")


def rows() -> tuple[list[dict], list[dict]]:
    """(per-slot simulator rows by accelerators, per-epoch planner rows by active jobs)."""
    sim = []
    for key, r in sorted(_read("bench_gigawatt.json").get("runs", {}).items(), key=lambda kv: kv[1]["accelerators"]):
        for pol in ("asap", "mpc", "oracle"):
            if pol in r:
                x = r[pol]
                sim.append({"bench": f"bench_gigawatt {key}", "policy": pol, "accelerators": r["accelerators"],
                            "jobs": r["jobs_in_part"], "slots": r["slots_run"], "seconds": x["simulate_s"],
                            "cpu_s": x.get("simulate_cpu_s"),
                            "ms_per_slot": 1000 * x.get("simulate_cpu_s", x["simulate_s"]) / r["slots_run"],
                            "commit": r.get("commit"), "part": r.get("part", 1.0),
                            "load": x["loadavg_before"]})
    sy = _read("scaling_sim_year.json")
    if sy:
        sim.append({"bench": "bench_sim_year", "policy": sy["policy"], "accelerators": sy["accelerators"],
                    "jobs": sy["jobs"], "slots": sy["slots"], "seconds": sy["simulate_s"],
                    "cpu_s": sy.get("simulate_cpu_s"), "part": 1.0,
                    "ms_per_slot": 1000 * sy.get("simulate_cpu_s", sy["simulate_s"]) / sy["slots"],
                    "commit": sy.get("commit"),
                    "load": sy.get("loadavg")})
    plan = []
    pe = _read("scaling_plan_epoch.json")
    for n, r in sorted(pe.get("epochs", {}).items(), key=lambda kv: int(kv[0])):
        plan.append({"bench": "bench_plan_epoch", "accelerators": r["accelerators"], "active_jobs": int(n),
                     "epoch_s": r["mean_epoch_s"], "solve_s": r["mean_solve_s"], "classes": r["epochs"][0]["classes"],
                     "commit": _commit(pe.get("git")), "load": pe.get("loadavg")})
    return sim, plan


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--png", default=str(ROOT / "docs" / "img" / "gigawatt_scaling.png"))
    a = ap.parse_args()
    sim, plan = rows()
    print("| benchmark | policy | accelerators | jobs | slots (part of 2023) | simulate, s wall | CPU s | "
          "ms per slot (CPU if measured) | commit | load (1/5/15 min) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in sim:
        cpu = "—" if r["cpu_s"] is None else f"{r['cpu_s']:.1f}"
        print(f"| {r['bench']} | {r['policy']} | {r['accelerators']:,} | {r['jobs']:,} | {r['slots']:,} "
              f"({r['part']:.0%}) | {r['seconds']:.1f} | {cpu} | {r['ms_per_slot']:.2f} | {r['commit']} | {r['load']} |")
    print()
    print("| benchmark | accelerators | active jobs | mean epoch, s | LP solve, s | classes | commit | load |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for r in plan:
        print(f"| {r['bench']} | {r['accelerators']:,} | {r['active_jobs']:,} | {r['epoch_s']:.3f} | "
              f"{r['solve_s']:.3f} | {r['classes']} | {r['commit']} | {r['load']} |")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for pol, mark in (("asap", "o"), ("mpc", "s"), ("oracle", "^")):
        gw = [r for r in sim if r["policy"] == pol and r["cpu_s"] is not None and r["bench"].startswith("bench_gigawatt")]
        full = sorted((r["accelerators"], r["ms_per_slot"]) for r in gw if r["part"] >= 1)
        if full:
            ax1.loglog(*zip(*full), marker=mark, label=f"{pol}, gigawatt fleet, whole year")
        part = [r for r in gw if r["part"] < 1]
        if part:
            ax1.scatter([r["accelerators"] for r in part], [r["ms_per_slot"] for r in part], marker=mark,
                        facecolors="none", edgecolors="C1", label=f"{pol}, first part of the year")
            for r in part:
                ax1.annotate(f"{r['part']:.0%}", (r["accelerators"], r["ms_per_slot"]), fontsize=7,
                             xytext=(4, -3), textcoords="offset points")
    sy = [r for r in sim if r["bench"] == "bench_sim_year" and r["cpu_s"] is not None]
    if sy:
        ax1.scatter([r["accelerators"] for r in sy], [r["ms_per_slot"] for r in sy], marker="D", color="C2",
                    label="bench_sim_year (8 sites, 100k jobs)")
    ax1.set_xlabel("accelerators")
    ax1.set_ylabel("CPU ms per simulated hour")
    ax1.set_title("simulator: cost per hourly slot")
    ax1.grid(True, which="both", alpha=0.3)
    ax1.legend()
    if plan:
        ax2.loglog([r["active_jobs"] for r in plan], [r["epoch_s"] for r in plan], marker="o", label="epoch")
        ax2.loglog([r["active_jobs"] for r in plan], [r["solve_s"] for r in plan], marker="s", label="LP solve")
        ax2.legend()
    ax2.set_xlabel("active jobs (10,000 accelerators)")
    ax2.set_ylabel("wall s (load in the table)")
    ax2.set_title("mpc: one planning epoch")
    ax2.grid(True, which="both", alpha=0.3)
    fig.suptitle("Measured on a shared 2-core machine (load averages in the table)", fontsize=9)
    fig.tight_layout()
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
