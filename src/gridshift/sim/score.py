"""Score a simulated run on the scenario's objective, valuing work left unfinished at the end, so that
policies that do different amounts of work compare fairly; and the savings relative to ``asap`` and the
share of the oracle's saving a policy captures."""

from __future__ import annotations

import numpy as np

from gridshift.model.scenario import Objective
from gridshift.plan.classes import signature_ids
from gridshift.plan.lp_policy import terminal_value
from gridshift.plan.objective import unit_cost
from gridshift.sim.result import PolicyRun
from gridshift.world.arrays import Signals, World


def terminal_cost_per_work(world: World, signals: Signals, obj: Objective) -> np.ndarray:
    """Per job: objective per unit of work (reference accelerator-hour) of running it later — the period
    mean of the dearest usable pool's cost per unit of work at full power (the LP's terminal value)."""
    f, jt = world.fleet, world.jobs
    L, T = signals.lookback_slots, world.n_slots
    uc = unit_cost(obj, signals.carbon_g_per_kwh[f.site_zone, L:L + T], signals.price_usd_per_mwh[f.site_zone, L:L + T])
    k, s = f.pool_type, f.pool_site
    inc = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0) * f.pue[s] / 1e6  # [P]
    sig = signature_ids(world)
    out = np.zeros(len(jt))
    for g in np.unique(sig):
        rows = np.flatnonzero(sig == g)
        sp = jt.speed[rows[0], k]  # [P]
        with np.errstate(divide="ignore"):
            cpw = np.where(sp[:, None] > 0, uc[s] * inc[:, None] / sp[:, None], np.inf)  # [P, T]
        out[rows] = terminal_value(cpw[:, None, :], np.ones(T))[0]
    return out


def objective_value(run: PolicyRun, world: World, signals: Signals, obj: Objective,
                    terminal: np.ndarray | None = None) -> float:
    ts = run.site_timeseries
    uc = unit_cost(obj, ts["carbon_g_per_kwh"].to_numpy(), ts["price_usd_per_mwh"].to_numpy())
    drawn = float((uc * ts["energy_mwh"].to_numpy()).sum())
    if terminal is None:
        terminal = terminal_cost_per_work(world, signals, obj)
    left = np.maximum(run.jobs["work_acc_h"].to_numpy() - run.jobs["done_acc_h"].to_numpy(), 0.0)
    return drawn + float(left @ terminal)


def add_scores(runs: list[PolicyRun], world: World, signals: Signals, obj: Objective) -> None:
    """Add ``objective_value`` to every run, ``saving_vs_asap_frac`` when an ``asap`` run is present, and
    ``oracle_capture_frac`` = (asap − policy) / (asap − oracle) when an ``oracle`` run is present too."""
    terminal = terminal_cost_per_work(world, signals, obj)
    for r in runs:
        r.metrics["objective"] = obj.kind
        r.metrics["objective_value"] = objective_value(r, world, signals, obj, terminal)
    by = {r.policy: r for r in runs}
    asap = by.get("asap")
    oracle = by.get("oracle")
    if asap is None:
        return
    a = asap.metrics["objective_value"]
    for r in runs:
        v = r.metrics["objective_value"]
        r.metrics["saving_vs_asap_frac"] = (a - v) / a if a else 0.0
        if oracle is not None:
            gap = a - oracle.metrics["objective_value"]
            r.metrics["oracle_capture_frac"] = (a - v) / gap if abs(gap) > 1e-12 else float("nan")
