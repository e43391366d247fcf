"""The gigawatt fleet split by site groups, each group simulated on its own (locally or as Ray tasks).

A split run is an approximation of the whole run: each group plans only over its own sites, so no job moves
between groups and no service is served from another group. Its jobs are a draw of their own from the same
trace (count in proportion to the group's accelerators, the same load scale as the whole fleet, so the same
design utilisation), each service's demand is split in proportion to the accelerators that may serve it,
and each event stays with its site (see :func:`gridshift.studies.gigawatt.gigawatt_scenario`). The groups
share nothing while they run, so the state hand-over is trivial: the split is in space, not in time, and the
totals are sums over groups (utilisation: busy over total accelerator-hours). How far the sums are from the
whole run is measured by ``bench_gigawatt.py --split`` (the ``split_vs_whole`` figures).

Ray: ``address=None`` starts a local Ray with one CPU per group; ``address="ray://host:10001"`` (or
``"auto"``) uses a cluster, whose nodes need GridShift installed and the data directory
(``GRIDSHIFT_DATA_DIR``) present, since each task reads the traces and signals through the data registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np

from gridshift.errors import require
from gridshift.model.scenario import PolicySpec
from gridshift.studies.gigawatt import SITES, GigawattSpec, calibrated_scenario, fleet_counts, gigawatt_scenario

SUMMED = ("jobs_completed", "jobs_missed_deadline", "energy_mwh", "carbon_t", "cost_usd", "cap_violation_mwh",
          "busy_acc_h", "total_acc_h", "accelerators", "jobs")


def site_groups(spec: GigawattSpec, n_groups: int) -> list[tuple[int, ...]]:
    """``n_groups`` groups of site indices with nearly equal accelerator counts (largest site first into
    the group with the fewest so far)."""
    if not 1 <= n_groups <= len(SITES):
        raise ValueError(f"n_groups must be in [1, {len(SITES)}], got {n_groups}")
    acc = [sum(p.values()) for p in fleet_counts(spec)]
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    totals = [0] * n_groups
    for i in sorted(range(len(SITES)), key=lambda i: -acc[i]):
        g = int(np.argmin(totals))
        groups[g].append(i)
        totals[g] += acc[i]
    return [tuple(sorted(g)) for g in groups]


def run_group(spec: GigawattSpec, load_scale: float, group: tuple[int, ...] | None, policy: str,
              part: float = 1.0) -> dict:
    """Simulate one group (or the whole fleet with ``group=None``) under ``policy``; its summable figures."""
    from gridshift.sim.runner import run_policies
    from gridshift.studies.gigawatt import first_part
    from gridshift.world.build import assemble

    t0 = time.perf_counter()
    asm = first_part(assemble(gigawatt_scenario(spec, load_scale, group=group)), part)
    t1, c1 = time.perf_counter(), time.process_time()
    (run,) = run_policies(asm, [PolicySpec(name=policy)], nominal_reference=False)
    t2, c2 = time.perf_counter(), time.process_time()
    m, ts = run.metrics, run.site_timeseries
    slot_h = asm.world.slot_h
    return {"group": list(group) if group is not None else None, "pid": os.getpid(),
            "jobs_completed": int(m["jobs_completed"]), "jobs_missed_deadline": int(m.get("jobs_missed_deadline", 0)),
            "energy_mwh": float(m["energy_mwh"]), "carbon_t": float(m["carbon_t"]), "cost_usd": float(m["cost_usd"]),
            "cap_violation_mwh": float(m["cap_violation_mwh"]),
            "busy_acc_h": float(ts["busy_accelerators"].sum() * slot_h),
            "total_acc_h": float(ts["total_accelerators"].sum() * slot_h),
            "accelerators": int(asm.world.fleet.pool_count.sum()), "jobs": len(asm.world.jobs),
            "build_s": round(t1 - t0, 2), "simulate_s": round(t2 - t1, 2), "simulate_cpu_s": round(c2 - c1, 2)}


def combine(parts: list[dict]) -> dict:
    """Totals over groups; utilisation from the summed accelerator-hours."""
    out = {k: sum(p[k] for p in parts) for k in SUMMED}
    out["utilisation_frac"] = out["busy_acc_h"] / out["total_acc_h"] if out["total_acc_h"] else 0.0
    out["groups"] = len(parts)
    return out


def run_split(spec: GigawattSpec, policy: str, n_groups: int, *, part: float = 1.0, address: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict:
    """The run split into ``n_groups`` site groups as Ray tasks; ``progress(done, total)`` after each group.
    Returns the combined figures, each group's, and the wall time of the tasks."""
    ray = require("ray", "ray", "the gigawatt run split over Ray")
    _, load_scale, _ = calibrated_scenario(spec)
    groups = site_groups(spec, n_groups)
    env = {k: os.environ[k] for k in ("GRIDSHIFT_DATA_DIR", "PYTHONPATH") if k in os.environ}
    if not ray.is_initialized():
        if address is None:
            ray.init(num_cpus=n_groups, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env})
        else:
            ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    task = ray.remote(num_cpus=1)(run_group)
    t0 = time.perf_counter()
    pending = [task.remote(spec, load_scale, g, policy, part) for g in groups]
    parts = []
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        parts.extend(ray.get(done))
        if progress is not None:
            progress(len(parts), len(groups))
    wall = time.perf_counter() - t0
    parts.sort(key=lambda p: p["group"])
    return {"combined": combine(parts), "parts": parts, "tasks_wall_s": round(wall, 2), "load_scale": load_scale}
