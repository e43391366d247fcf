"""ML training jobs shaped like Scenario II of Wiesner et al., "Let's Wait Awhile: How Temporal Workload Shifting
Can Reduce Carbon Emissions in the Cloud", Middleware 2021 (issue 16, item 2): the saving vs ``asap`` of the
jobs' own carbon under ``oracle`` and ``mpc`` (perfect forecasts, do-no-harm off), next to the exact per-job
optimum computed here, independently, in numpy.

Scenarios ``benchmarks/scenarios/ml-jobs-{de,gb}-q2.yaml`` (2023 data through the data registry; FR is not among
the project's datasets): jobs arriving on workdays 09:00–16:30 UTC, 4–89.5 h on one H100, due at 09:00 of the
workday after their immediate finish. Conventions: UTC, hourly slots and hourly carbon intensity (actual values;
perfect forecasts), arrivals moved to the start of their hour (the paper's 30-minute steps at the data's hourly
resolution), no checkpoint or restart overheads (as in the paper), power capping off (``cap_levels [1.0]``), one
site with room for every job at once. Two modes: non-interrupting (one start, then run through) and
interrupting (any split into slots).

The jobs' own carbon is the simulator's per-job carbon (its accelerator's board power while busy, idle power for
the rest of a slot it finishes in, host power, × PUE, × the slot's carbon intensity). The per-job optimum uses
the same power formula on the same slot grid: non-interrupting, the best start slot in each job's window;
interrupting, its cheapest whole slots and, for the fraction of an hour left, the next cheapest. Saving =
1 − Σ carbon / Σ carbon of asap.

    PYTHONPATH=src python benchmarks/bench_ml_jobs.py [--zone de gb] [--mode rigid interruptible]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.files import write_text_atomic
from gridshift.data.scenario import load_scenario
from gridshift.sim.runner import run_policies
from gridshift.world.arrays import World
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "ml_jobs.json"
MODES = ("rigid", "interruptible")


def assemble_mode(zone: str, mode: str):
    """The scenario with every job non-interruptible (``rigid``) or interruptible; arrivals on the hour, no
    overheads."""
    sc = load_scenario(ROOT / "benchmarks" / "scenarios" / f"ml-jobs-{zone}-q2.yaml")
    asm = assemble(sc)
    w = asm.world
    jt = w.jobs
    n = len(jt)
    inter = np.full(n, mode == "interruptible")
    jt = replace(jt, arrival_s=np.floor(jt.arrival_s / w.slot_duration_s) * w.slot_duration_s,
                 interruptible=inter, migratable=inter.copy(), checkpoint_overhead_s=np.zeros(n),
                 restart_overhead_s=np.zeros(n), data_move_gb=np.zeros(n))
    world = World.build(w.fleet, jt, w.services, w.slot_duration_s, w.slot_starts, w.events)
    return sc, replace(asm, world=world)


def per_job_optimum(asm, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(optimum, asap) carbon per job, t: the exact per-job optimum on the slot grid, and the job run at once."""
    w, sig = asm.world, asm.signals
    f, jt = w.fleet, w.jobs
    slot_h = w.slot_h
    k = int(f.pool_type[0])
    s = int(f.pool_site[0])
    board, idle, host = f.board_power_w[k], f.idle_power_w[k], f.host_power_w[k]
    ci = sig.carbon_g_per_kwh[f.site_zone[s], sig.lookback_slots:sig.lookback_slots + w.n_slots]
    to_t = jt.gang_max * f.pue[s] * slot_h / 1e6 / 1000.0  # W × slot → MWh; g/kWh × MWh / 1000 → t
    run_slots = jt.work_acc_h / (jt.gang_max * jt.speed[:, k]) / slot_h
    n_full = np.floor(run_slots + 1e-9).astype(np.int64)
    frac = np.clip(run_slots - n_full, 0.0, 1.0)
    w_full = board + host
    w_part = frac * board + (1 - frac) * idle + host
    first = w.arrival_slot
    end = np.floor(jt.deadline_s / w.slot_duration_s + 1e-9).astype(np.int64)  # slots ending by the deadline
    cum = np.concatenate([[0.0], np.cumsum(ci)])
    opt, asap = np.zeros(len(jt)), np.zeros(len(jt))
    for j in range(len(jt)):
        a, nf, fr = first[j], n_full[j], frac[j]
        part = w_part[j] if fr > 1e-12 else 0.0
        asap[j] = (w_full * (cum[a + nf] - cum[a]) + part * (ci[a + nf] if fr > 1e-12 else 0.0)) * to_t[j]
        if mode == "rigid":
            last = end[j] - nf - (1 if fr > 1e-12 else 0)  # latest start slot that ends by the deadline
            st = np.arange(a, last + 1)
            cost = w_full * (cum[st + nf] - cum[st]) + (part * ci[st + nf] if fr > 1e-12 else 0.0)
            opt[j] = cost.min() * to_t[j]
        else:
            c = np.sort(ci[a:end[j]])
            opt[j] = (w_full * c[:nf].sum() + (part * c[nf] if fr > 1e-12 else 0.0)) * to_t[j]
    return opt, asap


def run_zone_mode(zone: str, mode: str) -> dict:
    sc, asm = assemble_mode(zone, mode)
    opt, asap_ref = per_job_optimum(asm, mode)
    out: dict = {"jobs": len(asm.world.jobs), "per_job_optimum_saving": float(1 - opt.sum() / asap_ref.sum())}
    t0 = time.perf_counter()
    runs = run_policies(asm, list(sc.policies))
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    by = {r.policy: r for r in runs}
    base = float(by["asap"].jobs["carbon_t"].sum())
    out["asap_carbon_t"] = base
    out["asap_vs_independent"] = base / float(asap_ref.sum()) - 1.0  # the simulator's asap against the numpy one
    for name, r in by.items():
        if name == "asap":
            continue
        m = r.metrics
        out[name] = {
            "saving_own": float(1 - r.jobs["carbon_t"].sum() / base),
            "gap_points": float(100 * (out["per_job_optimum_saving"] - (1 - r.jobs["carbon_t"].sum() / base))),
            "saving_site": float(m.get("saving_vs_asap_frac", float("nan"))),
            "missed_deadlines": int(r.jobs["missed_deadline"].sum()),
            "preemptions": int(r.jobs["preemptions"].sum()),
            "started_at_arrival": int((r.jobs["first_start"] == r.jobs["arrival"]).sum()),
            "plan_time_s": round(float(m.get("plan_time_s", float("nan"))), 1),
            **{k: m[k] for k in ("oracle_class_per_job", "oracle_period_h", "lp_solves", "rounding_loss_frac")
               if k in m},
        }
    opt_starts = None
    if mode == "rigid":
        w = asm.world
        opt_starts = int((per_job_best_start(asm) == w.arrival_slot).sum())
    out["per_job_optimum_started_at_arrival"] = opt_starts
    return out


def per_job_best_start(asm) -> np.ndarray:
    """Start slot of each job's best start (non-interrupting)."""
    w, sig = asm.world, asm.signals
    f, jt = w.fleet, w.jobs
    s = int(f.pool_site[0])
    ci = sig.carbon_g_per_kwh[f.site_zone[s], sig.lookback_slots:sig.lookback_slots + w.n_slots]
    k = int(f.pool_type[0])
    board, idle, host = f.board_power_w[k], f.idle_power_w[k], f.host_power_w[k]
    run_slots = jt.work_acc_h / (jt.gang_max * jt.speed[:, k]) / w.slot_h
    nf = np.floor(run_slots + 1e-9).astype(np.int64)
    fr = run_slots - nf
    cum = np.concatenate([[0.0], np.cumsum(ci)])
    end = np.floor(jt.deadline_s / w.slot_duration_s + 1e-9).astype(np.int64)
    out = np.zeros(len(jt), np.int64)
    for j in range(len(jt)):
        part = fr[j] > 1e-12
        st = np.arange(w.arrival_slot[j], end[j] - nf[j] - int(part) + 1)
        cost = (board + host) * (cum[st + nf[j]] - cum[st]) + (
            (fr[j] * board + (1 - fr[j]) * idle + host) * ci[st + nf[j]] if part else 0.0)
        out[j] = st[np.argmin(cost)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--zone", nargs="+", default=["de", "gb"])
    ap.add_argument("--mode", nargs="+", default=list(MODES), choices=MODES)
    args = ap.parse_args()
    doc = json.loads(OUT.read_text()) if OUT.exists() else {}
    doc["conventions"] = ("2023-04-01 to 2023-07-01 UTC, hourly slots and carbon intensity, actual signals (perfect "
                          "forecasts), capping off (cap_levels [1.0]), jobs' own carbon, saving vs asap; arrivals on "
                          "the hour, no checkpoint/restart overheads; mpc with habit off, defaults otherwise")
    doc["source"] = ("Wiesner et al., \"Let's Wait Awhile: How Temporal Workload Shifting Can Reduce Carbon "
                     "Emissions in the Cloud\", Middleware 2021, Scenario II")
    for z in args.zone:
        for mode in args.mode:
            res = run_zone_mode(z, mode)
            doc.setdefault("results", {}).setdefault(z, {})[mode] = res
            print(z, mode, json.dumps(res, default=float))
    doc["git"] = git_state()
    write_text_atomic(OUT, json.dumps(doc, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
