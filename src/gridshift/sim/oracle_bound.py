"""The oracle's relaxed bound: a lower bound on the objective value any schedule of a world can reach,
computed as one transportation LP over job classes × periods × pools (HiGHS), whatever the number of jobs.

The exact ``oracle`` (:mod:`gridshift.sim.oracle`) simulates several perfect-knowledge plans, each a pass
of the engine over every slot; at the 1 GW fleet that is hours. This bound needs no simulation. Every
schedule the engine can run (that keeps to the sites' contractual power caps) is feasible for the LP
below, and the LP's cost never exceeds the schedule's objective value, so the LP optimum is a lower bound:

- **Classes**: jobs with the same per-type speed row (:func:`gridshift.plan.classes.signature_ids`) and the
  same arrival period are one class; its work is a single stock that may run on any pool where the class
  has speed, in any period from its arrival to the end of the horizon, or be left over at the objective's
  terminal value per unit of work (:func:`gridshift.sim.score.terminal_cost_per_work`, the same figure the
  objective charges every policy). Within a class jobs are interchangeable, so pooling them loses nothing.
- **Relaxed**: deadlines (late work costs nothing extra in the objective), gangs and whole accelerators
  (work is fluid), non-interruptibility, a job's own rate limit (gang × speed), checkpoint / restart /
  data-move overheads (they only add energy), inference services (they take neither accelerators nor
  power in the LP; their power above idle is ≥ 0), grid events (only the contractual caps bind) and the
  part of the arrival slot before the arrival.
  Assumed, not checked: a grid event's shedding saves no more energy per unit of work than the best
  power-cap level.
- **Energy**: the floor every accelerator draws whether busy or not, ``(idle + host) × PUE``, is exact
  and fixed. Work adds ``(board × c − idle) × PUE`` per accelerator-hour at a power-cap level ``c`` that
  keeps ``throughput(c)`` of the speed; the LP charges each unit of work the least energy over all levels
  (the ratio is monotone between the knots of the piecewise-linear throughput curve, so the knots and the
  ends suffice), and counts its accelerator-hours at full throughput (``c = 1``, the fewest) — each a
  relaxation of its own.
- **Periods** of ``block_h`` slots (1 = hourly, exact in time): a longer period pools its slots' capacity
  and power headroom, charges the period's least unit cost per site, and lets work arriving in it run from
  its start — all relaxations, so the bound stays a bound, only looser.
- **Negative unit costs** (prices below zero, objective ``cost``): the LP charges them as zero and the bound
  adds, per site and slot, the unit cost × the most energy above the floor the site could draw (its
  full-load power), a lower bound on what any schedule gains there.

The LP is solved by HiGHS's interior-point method with crossover (on these LPs 2.7× faster than its dual
simplex at a tenth of the year, the same optimum). ``relaxed_bound`` returns the bound and its parts; ``tests/sim/test_oracle_bound.py`` checks on small random
worlds that it is at most the exact oracle's objective value and every policy's.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from gridshift.errors import PlanError
from gridshift.model.scenario import Objective
from gridshift.plan.classes import signature_ids
from gridshift.plan.objective import unit_cost
from gridshift.sim.score import terminal_cost_per_work
from gridshift.world.arrays import Signals, World


def least_energy_per_acc_h(world: World) -> np.ndarray:
    """[K] least ``(board × c − idle) / throughput(c)`` in W per accelerator-hour of full-throughput work,
    over the power-cap levels ``c`` of each type's throughput curve (knots and ends)."""
    f = world.fleet
    out = np.empty(len(f.type_names))
    for k in range(out.size):
        xs, ys = np.asarray(f.cap_curve_power_frac[k], float), np.asarray(f.cap_curve_throughput_frac[k], float)
        c = np.unique(np.clip(np.concatenate([xs, [xs[0], 1.0]]), xs[0], 1.0))
        tp = np.interp(c, xs, ys)
        ok = tp > 0
        out[k] = float(np.min((f.board_power_w[k] * c[ok] - f.idle_power_w[k]) / tp[ok]))
    return out


def _blocks(T: int, block_h: int, slot_h: float) -> np.ndarray:
    per = max(1, int(round(block_h / slot_h)))
    return np.arange(T) // per


def relaxed_bound(world: World, signals: Signals, objective: Objective, *, block_h: int = 1,
                  power_caps: bool = True, time_limit_s: float = 1800.0) -> dict:
    """The relaxed lower bound on ``objective_value`` (see the module docstring) for ``world``.

    Returns ``bound_objective`` (same units as ``objective_value``), ``floor_objective`` (the idle + host
    floor), ``lp_objective`` (the LP's part: work and left-over work), ``negative_cost_credit``, the LP's size
    (``classes``, ``columns``, ``rows``), ``solve_s`` and ``build_s``."""
    t0 = time.perf_counter()
    f, jt = world.fleet, world.jobs
    T, S, P = world.n_slots, f.n_sites, f.n_pools
    if block_h < 1:
        raise PlanError("block_h must be >= 1", field="block_h")
    L = signals.lookback_slots
    uc = unit_cost(objective, signals.carbon_g_per_kwh[f.site_zone, L:L + T],
                   signals.price_usd_per_mwh[f.site_zone, L:L + T])  # [S, T] per MWh
    k = f.pool_type
    floor_mw = np.bincount(f.pool_site, weights=f.pool_count * (f.idle_power_w[k] + f.host_power_w[k])
                           * f.pue[f.pool_site], minlength=S) / 1e6  # [S]
    full_mw = np.bincount(f.pool_site, weights=f.pool_count * (f.board_power_w[k] + f.host_power_w[k])
                          * f.pue[f.pool_site], minlength=S) / 1e6
    slot_h = world.slot_h
    floor_obj = float((uc * floor_mw[:, None]).sum() * slot_h)
    neg_credit = float((np.minimum(uc, 0.0) * np.maximum(full_mw - floor_mw, 0.0)[:, None]).sum() * slot_h)
    ucp = np.maximum(uc, 0.0)
    # periods
    b = _blocks(T, block_h, slot_h)
    nB = int(b[-1]) + 1
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    uc_b = np.minimum.reduceat(ucp, starts, axis=1)  # [S, nB] the period's least unit cost per site
    acc_h = f.pool_count[:, None] * (np.diff(np.r_[starts, T]) * slot_h)[None, :]  # [P, nB]
    head_mwh = np.add.reduceat(np.maximum(f.power_cap_mw[:, :T] - floor_mw[:, None], 0.0) * slot_h, starts, axis=1)
    # classes: signature × arrival period
    sig = signature_ids(world)
    G = int(sig.max()) + 1 if sig.size else 0
    arr_b = b[np.minimum(world.arrival_slot, T - 1)]
    work = np.zeros((G, nB))
    np.add.at(work, (sig, arr_b), jt.work_acc_h.astype(float))
    rows_g = np.zeros(G, np.int64)
    rows_g[sig] = np.arange(sig.size)  # one job per signature: its speed row and terminal value
    speed = jt.speed[rows_g][:, k] if G else np.zeros((0, P))  # [G, P] reference work per acc-hour
    term = terminal_cost_per_work(world, signals, objective)[rows_g] if G else np.zeros(0)
    e_acc = least_energy_per_acc_h(world)[k] * f.pue[f.pool_site] / 1e6  # [P] MWh per acc-hour of work
    # columns: x[g, p, period] for speed > 0 (work done), then stock s[g, period] (left after the period)
    gi, pi = np.nonzero(speed > 0)
    nx = gi.size * nB
    xg = np.repeat(gi, nB)
    xp = np.repeat(pi, nB)
    xt = np.tile(np.arange(nB), gi.size)
    sp_x = speed[xg, xp]
    e_work = e_acc[xp] / sp_x  # MWh per unit of work
    site = f.pool_site[xp]
    c_x = uc_b[site, xt] * e_work
    c_s = np.zeros((G, nB))
    c_s[:, -1] = term
    cost = np.concatenate([c_x, c_s.ravel()])
    ns = G * nB
    # balance: x[g,·,t] summed + s[g,t] − s[g,t−1] = work[g,t]
    r_bal = xg * nB + xt
    rows = [r_bal, np.arange(ns), np.arange(ns)[np.arange(ns) % nB > 0]]
    cols = [np.arange(nx), nx + np.arange(ns), nx + np.arange(ns)[np.arange(ns) % nB > 0] - 1]
    vals = [np.ones(nx), np.ones(ns), -np.ones(int((np.arange(ns) % nB > 0).sum()))]
    a_eq = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(ns, nx + ns))
    # capacity per pool and period (acc-hours at full throughput), power headroom per site and period
    ub_rows = [xp * nB + xt]
    ub_vals = [1.0 / sp_x]
    b_ub = [acc_h.ravel()]
    n_ub = P * nB
    if power_caps:
        ub_rows.append(n_ub + site * nB + xt)
        ub_vals.append(e_work)
        b_ub.append(head_mwh.ravel())
        n_ub += S * nB
    a_ub = sp.csr_matrix((np.concatenate(ub_vals), (np.concatenate(ub_rows), np.tile(np.arange(nx), len(ub_rows)))),
                         shape=(n_ub, nx + ns))
    t1 = time.perf_counter()
    res = linprog(cost, A_ub=a_ub, b_ub=np.concatenate(b_ub), A_eq=a_eq, b_eq=work.ravel(), bounds=(0, None),
                  method="highs-ipm", options={"time_limit": float(time_limit_s), "presolve": True})
    t2 = time.perf_counter()
    if res.status != 0:
        raise PlanError(f"relaxed bound LP: {res.message}", field="oracle_bound")
    lp_obj = float(res.fun)
    x = res.x[:nx]
    drawn_mwh = float(floor_mw.sum() * T * slot_h + (x * e_work).sum())
    return {"bound_objective": floor_obj + lp_obj + neg_credit, "floor_objective": floor_obj,
            "lp_objective": lp_obj, "negative_cost_credit": neg_credit, "objective": objective.kind,
            "bound_energy_mwh": drawn_mwh, "left_work_acc_h": float(res.x[nx:].reshape(G, nB)[:, -1].sum()),
            "classes": int((work > 0).sum()), "signatures": G, "periods": nB, "block_h": block_h,
            "columns": int(nx + ns), "rows": int(ns + n_ub), "power_caps": power_caps,
            "build_s": round(t1 - t0, 3), "solve_s": round(t2 - t1, 3)}
