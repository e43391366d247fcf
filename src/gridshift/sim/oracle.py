"""The ``oracle``: the best of several plans made with perfect knowledge, so that it bounds every policy.

A single LP over the whole period (:class:`gridshift.plan.mpc.Oracle`, candidate ``lp``) is not always the
best plan one can make knowing everything: its whole gangs and work classes are rounded from a fluid plan
once, and a policy that re-plans may round better. So the oracle runs its candidates through the same
engine and keeps the best: ``lp``; ``rolling``, the rolling-horizon planner with perfect forecasts of the
signals (``mpc`` with ``forecast: perfect``, no do-no-harm rule, the oracle's power-cap levels); and
``per-job`` (:mod:`gridshift.plan.per_job`), every job at its own best timing, exact when jobs do not
compete for accelerators (not used with inference services). Best = fewest missed deadlines, then the
lowest objective value (the same score every policy gets). With ``policies`` among its candidates (the
default), the schedules of the other policies simulated in the same run are candidates too
(:func:`adopt_better_schedules`): each is feasible and, knowing everything, the oracle could have chosen it, so
no policy of a run scores better than its oracle. The LP's relaxed bound is reported beside it
(``lp_bound_objective``), and which candidate won and each candidate's objective value.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

from gridshift.model.scenario import Objective
from gridshift.plan.mpc import Mpc, Oracle
from gridshift.plan.per_job import PerJob
from gridshift.sim.engine import simulate
from gridshift.sim.result import PolicyRun
from gridshift.sim.score import objective_value, terminal_cost_per_work
from gridshift.world.arrays import Signals, World

CANDIDATES = ("lp", "rolling", "per-job", "policies")


def _candidate(name: str, lp: Oracle):
    if name == "lp":
        return lp
    if name == "rolling":
        return Mpc(forecast="perfect", habit=False, objective=lp.objective, cap_levels=tuple(lp.levels),
                   max_delay_h=lp.max_delay_h, late_window_h=lp.late_window_h)
    return PerJob(objective=lp.objective, max_delay_h=lp.max_delay_h)


def run_oracle(world: World, signals: Signals, lp: Oracle, objective: Objective,
               progress: Callable[[int, int], None] | None = None) -> PolicyRun:
    """Simulate each of ``lp.candidates`` and return the best run, labelled as ``lp``'s label."""
    names = [n for n in lp.candidates if n != "policies" and not (n == "per-job" and world.services.n)]
    terminal = terminal_cost_per_work(world, signals, objective)
    runs: dict[str, PolicyRun] = {}
    plan_s = 0.0
    for name in names:
        run = simulate(world, signals, _candidate(name, lp), progress=progress)
        run.metrics["objective_value"] = objective_value(run, world, signals, objective, terminal)
        plan_s += float(run.metrics.get("plan_time_s", 0.0))
        runs[name] = run
    best = min(runs, key=lambda n: (int(runs[n].metrics.get("jobs_missed_deadline", 0)),
                                    runs[n].metrics["objective_value"], names.index(n)))
    out = runs[best]
    out.policy = getattr(lp, "label", None) or lp.name
    out.metrics["oracle_chosen"] = best
    out.metrics["oracle_candidates"] = {n: {"objective_value": r.metrics["objective_value"],
                                            "jobs_missed_deadline": int(r.metrics.get("jobs_missed_deadline", 0))}
                                        for n, r in runs.items()}
    if "lp" in runs:
        out.metrics["lp_bound_objective"] = runs["lp"].metrics.get("lp_bound_objective", float("nan"))
    out.metrics["plan_time_s"] = plan_s
    return out


def _key(run: PolicyRun) -> tuple[int, float, float]:
    m = run.metrics
    return int(m.get("jobs_missed_deadline", 0)), float(m.get("cap_violation_mwh", 0.0)), m["objective_value"]


def adopt_better_schedules(runs: list[PolicyRun], oracles: list[Oracle], world: World, signals: Signals,
                           objective: Objective) -> None:
    """For each oracle run (``runs[i]`` made by ``oracles[i]``, None for other policies) whose candidates include
    ``policies``: if another run of the same world scores better (fewer missed deadlines, then no more cap
    violation, then a lower objective value), the oracle takes that schedule — its run, labelled as the oracle,
    with ``oracle_chosen`` ``policy:<label>``. In place."""
    terminal = terminal_cost_per_work(world, signals, objective)
    for r in runs:
        if "objective_value" not in r.metrics:
            r.metrics["objective_value"] = objective_value(r, world, signals, objective, terminal)
    for i, lp in enumerate(oracles):
        if lp is None or "policies" not in lp.candidates:
            continue
        own = runs[i]
        others = [r for j, r in enumerate(runs) if oracles[j] is None]
        if not others:
            continue
        best = min(others, key=_key)
        cands = dict(own.metrics.get("oracle_candidates", {}))
        for r in others:
            cands[f"policy:{r.policy}"] = {"objective_value": r.metrics["objective_value"],
                                           "jobs_missed_deadline": int(r.metrics.get("jobs_missed_deadline", 0))}
        if _key(best) < _key(own):
            keep = {k: own.metrics[k] for k in ("lp_bound_objective", "plan_time_s") if k in own.metrics}
            adopted = copy.deepcopy(best)
            adopted.policy = own.policy
            adopted.metrics.update(keep)
            adopted.metrics["oracle_chosen"] = f"policy:{best.policy}"
            own = runs[i] = adopted
        own.metrics["oracle_candidates"] = cands
