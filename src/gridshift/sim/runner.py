"""Run every policy of a scenario through the simulator and collect the results (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gridshift.model.scenario import PolicySpec
from gridshift.plan.mpc import Oracle
from gridshift.plan.registry import make_policy
from gridshift.sim.attribution import add_attribution
from gridshift.sim.counterfactual import attach, without_events
from gridshift.sim.engine import simulate
from gridshift.sim.oracle import adopt_better_schedules, run_oracle
from gridshift.sim.result import PolicyRun
from gridshift.sim.score import add_scores, terminal_cost_per_work
from gridshift.world.assembled import Assembled

METRIC_KEYS = ("energy_mwh", "carbon_t", "cost_usd", "jobs_completed", "deadline_miss_frac", "avg_jct_h",
               "slo_attainment", "peak_power_mw", "cap_violation_mwh", "plan_time_s")


def policy_specs(assembled: Assembled, names: list[str] | None) -> list[PolicySpec]:
    """The scenario's policies, or the named ones (a name matching a scenario label keeps its params)."""
    specs = assembled.scenario.policies
    if not names:
        return list(specs)
    by_key = {s.key: s for s in specs}
    return [by_key.get(n, PolicySpec(name=n)) for n in names]


def _simulate(world, signals, pol, obj, cb) -> PolicyRun:
    if isinstance(pol, Oracle):  # the best of several perfect-knowledge plans (sim.oracle)
        return run_oracle(world, signals, pol, obj, progress=cb)
    return simulate(world, signals, pol, progress=cb)


def run_policies(assembled: Assembled, specs: list[PolicySpec],
                 progress: Callable[[str, int, int], None] | None = None, *,
                 nominal_reference: bool = True) -> list[PolicyRun]:
    """Simulate each policy and score the runs. Savings are split (:mod:`gridshift.sim.attribution`)
    against ``asap`` when it is among the runs, and — when jobs have a nominal start and
    ``nominal_reference`` — against ``nominal``, simulated here as a reference unless it is among the runs."""
    obj = assembled.scenario.objective
    world, signals = assembled.world, assembled.signals
    policies = [make_policy(s, i, objective=obj) for i, s in enumerate(specs)]  # bad params fail before runs
    runs = []
    for pol in policies:
        cb = None if progress is None else (lambda t, T, _n=pol.label: progress(_n, t, T))
        runs.append(_simulate(world, signals, pol, obj, cb))
    oracles = [p if isinstance(p, Oracle) else None for p in policies]
    adopt_better_schedules(runs, oracles, world, signals, obj)
    ev = world.events
    if ev is not None and ev.counterfactual:  # each event's cost by tier against a run without the events
        bare = without_events(world)
        bare_runs = [_simulate(bare, signals, make_policy(s, i, objective=obj), obj, None) for i, s in enumerate(specs)]
        adopt_better_schedules(bare_runs, oracles, bare, signals, obj)  # the oracle is the best there too
        for run, b in zip(runs, bare_runs):
            attach(world, run, b)
    add_scores(runs, world, signals, obj)
    by = {r.policy: r for r in runs}
    refs = {"asap": by["asap"]} if "asap" in by else {}
    has_nominal = np.isfinite(world.jobs.nominal_start_s)
    if nominal_reference and has_nominal.any():
        refs["nominal"] = by.get("nominal") or simulate(world, signals, make_policy(PolicySpec(name="nominal")))
    if refs:
        add_attribution(runs, refs, obj, terminal_cost_per_work(world, signals, obj), nominal_mask=has_nominal)
    return runs


def metrics_doc(assembled: Assembled, runs: list[PolicyRun]) -> dict[str, Any]:
    s = assembled.scenario
    return {
        "scenario": {
            "name": s.name,
            "start": s.time_range.start.isoformat(),
            "end": s.time_range.end.isoformat(),
            "slot_duration_s": s.slot_duration_s,
            "seed": s.seed,
            "objective": s.objective.model_dump(),
            "sites": [x.name for x in s.sites],
            "zones": [z.id for z in s.zones],
            "accelerator_types": list(assembled.world.fleet.type_names),
            "accelerators": int(assembled.world.fleet.pool_count.sum()),
            "batch_jobs": len(assembled.world.jobs),
            "services": list(assembled.world.services.names),
            "notes": assembled.notes,
        },
        "policies": {r.policy: r.metrics for r in runs},
        "carbon_signal": dict(assembled.carbon_basis),
        "carbon_t_by_basis": {r.policy: carbon_by_basis(assembled, r) for r in runs},
    }


def carbon_by_basis(assembled: Assembled, run: PolicyRun) -> dict[str, float]:
    """The run's facility energy, slot by slot and site by site, at each basis's intensity (t CO2e): the same
    decisions accounted under life-cycle, direct and marginal signals where every zone has them."""
    ts = run.site_timeseries
    if ts.empty or not assembled.carbon_bases:
        return {}
    zone_of = {z.id: i for i, z in enumerate(assembled.scenario.zones)}
    slot = {t: k for k, t in enumerate(assembled.signals.slot_starts)}
    zi = ts["zone"].map(zone_of).to_numpy()
    ti = ts["time"].map(slot).to_numpy()
    ok = ~(np.isnan(zi.astype(float)) | np.isnan(ti.astype(float)))
    e = ts["energy_mwh"].to_numpy(dtype=float)[ok]
    zi, ti = zi[ok].astype(int), ti[ok].astype(int)
    return {b: float((e * c[zi, ti]).sum() / 1000.0) for b, c in assembled.carbon_bases.items()}
