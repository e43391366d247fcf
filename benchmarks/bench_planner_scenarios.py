"""Benchmark: every scenario in ``examples/planner`` (or the named ones), every policy it lists, scored on
the scenario's objective; a markdown table, and ``benchmarks/results/planner_scenarios.json``.

    python benchmarks/bench_planner_scenarios.py [NAME ...] [--policy LABEL ...] [--split auto|none]

NAME is a file stem or a glob (``nightly-de-*``). Each policy is simulated on its own (wall time per
policy); ``saving_vs_asap_frac`` = (asap − policy) / asap and ``oracle_capture_frac`` = (asap − policy) /
(asap − oracle) on ``objective_value`` (gridshift.sim.score).

Splitting (``--split auto``, the default): a scenario whose only workload is recurring jobs and that spans
more than 45 days runs month by month and the months are summed. The oracle is one LP over the whole period
with rows and columns per (work class, period): a year of nightly jobs is 364 classes × 8,760 hourly periods,
an LP of 3.2 M columns × 6.4 M rows that peaks at 8.9 GB RSS (measured at commit e84c96e) — too much for a
shared 2-core machine. Months are cut at local noon on the 1st (in the recurring jobs' time zone), which no
job window crosses, so every job falls whole into one month and, the jobs being independent, the months'
oracles add up to the year's (checked: the same batch carbon to 4 digits for nightly-de-w8).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import os
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from _provenance import git_state  # benchmarks/ is on sys.path when run as a script

from gridshift.data.scenario import load_scenario
from gridshift.model.scenario import PolicySpec, Scenario
from gridshift.plan.mpc import Oracle
from gridshift.plan.registry import make_policy
from gridshift.sim.oracle import adopt_better_schedules
from gridshift.sim.runner import policy_specs, run_policies
from gridshift.world.build import assemble

ROOT = Path(__file__).resolve().parents[1]
SUM = ("objective_value", "batch_carbon_t", "carbon_t", "energy_mwh", "cost_usd", "cap_violation_mwh",
       "jobs_total", "jobs_completed", "jobs_missed_deadline", "plan_time_s", "lp_solves", "lp_bound_objective",
       "preemptions", "batch_energy_mwh")
KEEP_LAST = ("objective", "lp_fallbacks", "lp_solve_s_mean", "rounding_loss_frac", "slo_attainment",
             "peak_power_mw", "avg_jct_h")
# Wiesner et al., "Let's Wait Awhile" (Middleware 2021), nightly jobs, +-8 h window, 2020 data, 5 % error
WIESNER = {"nightly-de-w8": 0.117, "nightly-gb-w8": 0.080}


def recurring_only(sc: Scenario) -> bool:
    w = sc.workloads
    return bool(w.recurring) and not (w.jobs or w.generate or w.workday or w.services)


def nominal_carbon_t(sc: Scenario, job_ids: np.ndarray) -> float:
    """Carbon of the recurring jobs run at their nominal start (``window_h = 0``, asap): the baseline of
    "Let's Wait Awhile" (jobs of ``job_ids`` only, so the job set matches the windowed scenario's)."""
    w = sc.workloads.model_copy(update={"recurring": [r.model_copy(update={"window_h": 0.0})
                                                      for r in sc.workloads.recurring]})
    asm = assemble(sc.model_copy(update={"workloads": w}))
    (run,) = run_policies(asm, [PolicySpec(name="asap")])
    j = run.jobs.set_index("job_id")
    missing = set(job_ids) - set(j.index)
    if missing:
        raise RuntimeError(f"nominal run lacks {len(missing)} job(s), e.g. {sorted(missing)[0]}")
    return float(j.loc[list(job_ids), "carbon_t"].sum())


def month_splits(sc: Scenario) -> list[tuple[datetime, datetime]] | None:
    """Month-long sub-periods cut at local noon on the 1st, or None when the scenario is not split."""
    w, tr = sc.workloads, sc.time_range
    if not recurring_only(sc):
        return None
    if (tr.end - tr.start).days <= 45 or len({r.tz for r in w.recurring}) != 1:
        return None
    for r in w.recurring:  # local noon (12 + 24 k) must lie outside [start - window, end + window]
        lo, hi = r.start_local_h - r.window_h, r.start_local_h + r.run_h + r.window_h
        if any(lo <= 12 + 24 * k <= hi for k in range(-4, 5)):
            return None
    tz = w.recurring[0].tz
    months = pd.date_range(pd.Timestamp(tr.start).tz_convert(tz).normalize() + pd.offsets.MonthBegin(1),
                           pd.Timestamp(tr.end).tz_convert(tz), freq="MS")
    cuts = [(m + pd.Timedelta(hours=12)).tz_convert("UTC").floor("h").to_pydatetime() for m in months]
    week = pd.Timedelta(days=7)
    edges = [tr.start] + [c for c in cuts if tr.start + week < c < tr.end - week] + [tr.end]
    return list(zip(edges[:-1], edges[1:]))


def _known_missed(run, end_s: float, start) -> tuple[int, int]:
    j = run.jobs
    end = pd.Timestamp(start) + pd.Timedelta(seconds=end_s)
    known = j["deadline"].notna() & (j["completion"].notna() | (j["deadline"] <= end))
    return int(known.sum()), int(j["missed_deadline"].sum())


def run_scenario(path: Path, policies: list[str] | None, split: str) -> dict:
    sc = load_scenario(path)
    parts = month_splits(sc) if split == "auto" else None
    chunks = [sc] if parts is None else [
        sc.model_copy(update={"time_range": sc.time_range.model_copy(update={"start": a, "end": b})}) for a, b in parts
    ]
    agg: dict[str, dict] = {}
    errors: dict[str, str] = {}
    info = {"file": os.path.relpath(path, ROOT), "git": git_state(), "start": sc.time_range.start.isoformat(),
            "end": sc.time_range.end.isoformat(), "chunks": len(chunks), "jobs": 0, "work_acc_h": 0.0}
    for ch in chunks:
        t0 = time.perf_counter()
        asm = assemble(ch)
        info["assemble_s"] = info.get("assemble_s", 0.0) + time.perf_counter() - t0
        info["jobs"] += len(asm.world.jobs)
        work = float(asm.world.jobs.work_acc_h.sum())
        info["work_acc_h"] += work
        info.update(sites=len(asm.world.fleet.site_names), accelerators=int(asm.world.fleet.pool_count.sum()),
                    slots=info.get("slots", 0) + asm.world.n_slots, services=len(asm.world.services.names))
        if recurring_only(sc):
            info["nominal_batch_carbon_t"] = info.get("nominal_batch_carbon_t", 0.0) + \
                nominal_carbon_t(ch, asm.world.jobs.job_id)
        done = []
        for spec in policy_specs(asm, policies):
            t0 = time.perf_counter()
            try:
                (run,) = run_policies(asm, [spec])
            except Exception as e:  # a policy that fails is reported, the others still run
                errors[spec.key] = f"{type(e).__name__}: {e}"
                print(f"  {path.stem} {spec.key}: FAILED {errors[spec.key]}", file=sys.stderr, flush=True)
                continue
            done.append((spec, run, time.perf_counter() - t0))
        # the oracle's `policies` candidate: the other policies' schedules of this chunk (gridshift.sim.oracle)
        pols = [make_policy(spec, i, objective=ch.objective) for i, (spec, _, _) in enumerate(done)]
        runs = [run for _, run, _ in done]
        adopt_better_schedules(runs, [p if isinstance(p, Oracle) else None for p in pols], asm.world, asm.signals,
                               ch.objective)
        for (spec, _, wall), run in zip(done, runs):
            m = run.metrics
            a = agg.setdefault(spec.key, {"wall_s": 0.0, "known": 0, "missed": 0, "work_done": 0.0})
            a["wall_s"] += wall
            known, missed = _known_missed(run, asm.world.n_slots * asm.world.slot_duration_s, ch.time_range.start)
            a["known"] += known
            a["missed"] += missed
            a["work_done"] += m.get("work_done_frac", 1.0) * work
            for k in SUM:
                if k in m and m[k] is not None:
                    a[k] = a.get(k, 0.0) + m[k]  # NaN in any month makes the sum NaN
            for k in KEEP_LAST:
                if k in m:
                    a.setdefault(k + "_chunks", []).append(m[k])
            for ref, by_scope in (m.get("savings") or {}).items():  # absolute parts add up over the months
                for scope, d in (by_scope.items() if isinstance(by_scope, dict) else ()):
                    for part in ("reference", "total", "timing", "energy", "work_left"):
                        key = f"{scope}_saving_{ref}_{part}"
                        a[key] = a.get(key, 0.0) + d[part]
            print(f"  {path.stem} [{ch.time_range.start:%Y-%m-%dT%H}] {spec.key}: {wall:.1f} s", file=sys.stderr,
                  flush=True)
    out: dict[str, dict] = {k: {"error": v} for k, v in errors.items()}
    for key, a in agg.items():
        if key in errors:
            continue
        m = {k: v for k, v in a.items() if not k.endswith("_chunks") and k not in ("known", "missed", "work_done")}
        m["deadline_miss_frac"] = a["missed"] / a["known"] if a["known"] else 0.0
        m["work_done_frac"] = a["work_done"] / info["work_acc_h"] if info["work_acc_h"] else 1.0
        for k in KEEP_LAST:
            vals = a.get(k + "_chunks")
            if vals is None:
                continue
            if k == "lp_fallbacks":
                m[k] = int(sum(vals))
            elif k in ("objective",):
                m[k] = vals[0]
            elif k == "peak_power_mw":
                m[k] = float(max(vals))
            else:
                v = [x for x in vals if isinstance(x, (int, float)) and not math.isnan(x)]
                m[k] = float(np.mean(v)) if v else float("nan")
        out[key] = m
    ok = {k: m for k, m in out.items() if "error" not in m}
    asap, oracle = ok.get("asap"), ok.get("oracle")
    nom = info.get("nominal_batch_carbon_t")
    for m in ok.values():
        if nom:
            m["batch_carbon_saving_vs_nominal_frac"] = (nom - m.get("batch_carbon_t", 0.0)) / nom
        ref = m.get("jobs_saving_vs_nominal_reference")
        if ref:  # the jobs' own saving vs the nominal start and its parts (gridshift.sim.attribution)
            for part in ("total", "timing", "energy", "work_left"):
                m[f"jobs_saving_vs_nominal_{part}_frac"] = m[f"jobs_saving_vs_nominal_{part}"] / ref
        if asap:
            av, v = asap["objective_value"], m["objective_value"]
            m["saving_vs_asap_frac"] = (av - v) / av if av else 0.0
            ab = asap.get("batch_carbon_t", 0.0)
            m["batch_carbon_saving_frac"] = (ab - m.get("batch_carbon_t", 0.0)) / ab if ab else 0.0
            if oracle:
                gap = av - oracle["objective_value"]
                m["oracle_capture_frac"] = (av - v) / gap if abs(gap) > 1e-12 else float("nan")
    return {**info, "policies": out}


def flags(name: str, res: dict) -> list[str]:
    """Things that look wrong in the planner, with the numbers."""
    out = [f"{name}/{k}: FAILED {m['error']}" for k, m in res["policies"].items() if "error" in m]
    pol = {k: m for k, m in res["policies"].items() if "error" not in m}
    o = pol.get("oracle")
    for k, m in pol.items():
        if m.get("lp_fallbacks"):
            out.append(f"{name}/{k}: {m['lp_fallbacks']} LP failure(s) (fell back to asap)")
        if o is not None and k != "oracle" and m["deadline_miss_frac"] > 0 and o["deadline_miss_frac"] == 0:
            out.append(f"{name}/{k}: deadline_miss_frac {m['deadline_miss_frac']:.3f} where the oracle has none")
        cap = m.get("oracle_capture_frac", float("nan"))
        if k == "mpc-perfect" and not math.isnan(cap) and cap < 0.98:
            out.append(f"{name}/{k}: oracle capture {cap:.3f} < 0.98 with perfect forecasts")
        if k != "oracle" and not math.isnan(cap) and cap > 1.0 + 1e-6:
            out.append(f"{name}/{k}: beats the oracle (capture {cap:.3f})")
        if m.get("cap_violation_mwh", 0) > 1e-6:
            out.append(f"{name}/{k}: {m['cap_violation_mwh']:.3f} MWh above site caps")
        if m.get("lp_solve_s_mean", 0) > 1.0 and k != "oracle":
            out.append(f"{name}/{k}: mean LP solve {m['lp_solve_s_mean']:.2f} s")
    if o is not None and o["deadline_miss_frac"] > 0:
        out.append(f"{name}/oracle: deadline_miss_frac {o['deadline_miss_frac']:.3f}")
    return out


def _f(v, fmt: str) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def table(results: dict) -> str:
    head = ("| scenario | policy | objective_value | saving_vs_asap | oracle_capture | deadline_miss | "
            "cap_violation_mwh | work_done | batch_carbon_t | batch_carbon_saving | wall_s |")
    lines = [head, "|" + "---|" * 11]
    for name, res in results.items():
        for k, m in res["policies"].items():
            if "error" in m:
                lines.append(f"| {name} | {k} | FAILED: {m['error'][:80]} |" + " |" * 8)
                continue
            lines.append(f"| {name} | {k} | {_f(m['objective_value'], '.4g')}"
                         f" | {_f(m.get('saving_vs_asap_frac'), '.3f')} | {_f(m.get('oracle_capture_frac'), '.3f')}"
                         f" | {_f(m['deadline_miss_frac'], '.3f')}"
                         f" | {_f(m.get('cap_violation_mwh'), '.3f')} | {_f(m['work_done_frac'], '.3f')}"
                         f" | {_f(m.get('batch_carbon_t'), '.4g')} | {_f(m.get('batch_carbon_saving_frac'), '.3f')}"
                         f" | {m['wall_s']:.1f} |")
    nightly = {n: r for n, r in results.items() if n.startswith("nightly-")}
    if nightly:
        pols = ("asap", "threshold", "mpc-perfect", "mpc-seasonal", "mpc-blend", "oracle")
        lines += ["", "Nightly jobs: saving of the jobs' own carbon (batch_carbon_t) vs running each job at its "
                  "nominal 01:00 local start at full power (timing part) / vs asap (start of the window). Power "
                  "capping is on: the rest of a saving vs nominal is energy. Like for like with Wiesner et al. "
                  "(capping off, 01:00 UTC, 5 % i.i.d. error): benchmarks/bench_wait_awhile.py", "",
                  "| scenario | " + " | ".join(pols) + " |",
                  "|---|" + "---|" * len(pols)]
        for n, r in nightly.items():
            p = r["policies"]
            cells = [f"{_f(p[k].get('batch_carbon_saving_vs_nominal_frac'), '.3f')} "
                     f"({_f(p[k].get('jobs_saving_vs_nominal_timing_frac'), '.3f')}) / "
                     f"{_f(p[k].get('batch_carbon_saving_frac'), '.3f')}" if k in p and "error" not in p[k] else "—"
                     for k in pols]
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenario stems or globs (default: all)")
    ap.add_argument("--dir", default=str(ROOT / "examples" / "planner"))
    ap.add_argument("--policy", action="append", default=None, help="run only these policy labels")
    ap.add_argument("--split", choices=("auto", "none"), default="auto")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "planner_scenarios.json"))
    a = ap.parse_args()
    files = sorted(Path(a.dir).glob("*.yaml"))
    if a.names:
        files = [f for f in files if any(fnmatch.fnmatch(f.stem, n) for n in a.names)]
    if not files:
        print("no scenarios matched", file=sys.stderr)
        return 2
    results, t0 = {}, time.perf_counter()
    git_before = git_state()
    prev = Path(a.json)
    old = json.loads(prev.read_text()).get("scenarios", {}) if a.names and prev.exists() else {}

    def write() -> dict:  # after every scenario, so a long run leaves its results even if stopped
        git_after = git_state()
        scen = {**old, **results}  # a subset run updates the file instead of replacing it
        doc = {"benchmark": "planner_scenarios",
               "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
               "git": git_before if git_after == git_before else {"before": git_before, "after": git_after},
               "wall_s": round(time.perf_counter() - t0, 1),
               "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
               "wiesner_2021_batch_carbon_saving_frac": WIESNER, "scenarios": scen,
               "flags": [x for n, r in scen.items() for x in flags(n, r)]}
        prev.parent.mkdir(parents=True, exist_ok=True)
        prev.write_text(json.dumps(doc, indent=2, default=float))
        return doc

    for f in files:
        results[f.stem] = run_scenario(f, a.policy, a.split)
        doc = write()
    all_flags = [x for n, r in results.items() for x in flags(n, r)]
    print(table(results))
    print(f"\nwall {doc['wall_s']} s, peak RSS {doc['peak_rss_mb']} MB, code {doc['git']}")
    for x in all_flags:
        print("FLAG:", x)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
