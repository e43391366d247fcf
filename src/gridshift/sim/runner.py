"""Run every policy of a scenario through the simulator and collect the results (no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gridshift.model.scenario import PolicySpec
from gridshift.plan.registry import make_policy
from gridshift.sim.counterfactual import attach, without_events
from gridshift.sim.engine import simulate
from gridshift.sim.result import PolicyRun
from gridshift.sim.score import add_scores
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


def run_policies(assembled: Assembled, specs: list[PolicySpec],
                 progress: Callable[[str, int, int], None] | None = None) -> list[PolicyRun]:
    obj = assembled.scenario.objective
    policies = [make_policy(s, i, objective=obj) for i, s in enumerate(specs)]  # bad params fail before runs
    runs = []
    for pol in policies:
        cb = None if progress is None else (lambda t, T, _n=pol.label: progress(_n, t, T))
        runs.append(simulate(assembled.world, assembled.signals, pol, progress=cb))
    ev = assembled.world.events
    if ev is not None and ev.counterfactual:  # each event's cost by tier against a run without the events
        bare = without_events(assembled.world)
        for i, (s, run) in enumerate(zip(specs, runs)):
            attach(assembled.world, run, simulate(bare, assembled.signals, make_policy(s, i, objective=obj)))
    add_scores(runs, assembled.world, assembled.signals, obj)
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
    }
