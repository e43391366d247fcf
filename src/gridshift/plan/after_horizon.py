"""Work a planner leaves for after its horizon, valued hour by hour where the signals are known that far.

A class's work left at the horizon's end is valued at one price (``terminal_cost``: the mean over the horizon
of the dearest pool's cost). For a job alone in its class whose deadline lies beyond the horizon, a forecast
that reaches further prices it better: its work may go into each hour after the horizon and before its
deadline, at most a full gang's work an hour, at that hour's cost on its cheapest pool. These are extra
columns of the class's work balance (``Σ work + left + Σ later = W``), each bounded by an hour's work, so
the plan leaves for later exactly the work the cheapest later hours can take, and does now what they
cannot. Capacity after the horizon is not modelled (as for ``left``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gridshift.model.time import S_PER_H
from gridshift.plan.classes import Classes
from gridshift.world.arrays import World


@dataclass
class LaterHours:
    cls: np.ndarray  # [M] class
    cost: np.ndarray  # [M] objective per unit of work
    upper: np.ndarray  # [M] work the hour can take

    def add_to(self, b, balance_rows: np.ndarray) -> np.ndarray:
        """Columns in builder ``b`` (lp._Builder) on the classes' work-balance rows."""
        cols = b.add_cols(self.cost, self.upper)
        b.add_coef(balance_rows[self.cls], cols, 1.0)
        return cols


def later_hours(world: World, classes: Classes, now_s: float, horizon_h: float, uc_fine: np.ndarray,
                step_h: float) -> LaterHours | None:
    """Later-hour columns for the single-job classes of a plan from ``now_s`` over ``horizon_h`` hours;
    ``uc_fine[S, H]``: objective per facility MWh at steps of ``step_h`` hours from ``now_s`` (None when it
    reaches no further than the horizon, or no such class has a deadline beyond it)."""
    f, jt = world.fleet, world.jobs
    H = uc_fine.shape[1]
    h0 = int(np.ceil(horizon_h / step_h - 1e-9))
    if H <= h0 or not classes.n:
        return None
    alone = np.flatnonzero(np.bincount(classes.member, minlength=classes.n) == 1)
    pos = np.full(classes.n, -1)
    pos[classes.member] = np.arange(classes.member.size)
    j = classes.jobs[pos[alone]]
    dl_h = (classes.eff_deadline_s[pos[alone]] - now_s) / S_PER_H
    n = np.clip(np.floor(dl_h / step_h + 1e-9).astype(np.int64), h0, H) - h0  # whole steps ending by it
    keep = n > 0
    alone, j, n = alone[keep], j[keep], n[keep]
    if not alone.size:
        return None
    m = np.repeat(np.arange(alone.size), n)
    h = h0 + np.arange(m.size) - np.repeat(np.cumsum(n) - n, n)
    k, s = f.pool_type, f.pool_site
    inc_mw = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0.0) * f.pue[s] / 1e6  # [P]
    sp = classes.speed[alone][:, k]  # [A, P]
    ok = (sp > 0) & classes.allowed[alone]
    per_work = np.where(ok[m], uc_fine[s][:, h].T * inc_mw[None, :] / np.maximum(sp[m], 1e-12), np.inf)  # [M, P]
    best = np.argmin(per_work, axis=1)
    cost = per_work[np.arange(m.size), best]
    fin = np.isfinite(cost)
    upper = jt.gang_max[j[m]] * sp[m, best] * step_h
    return LaterHours(alone[m][fin], cost[fin], upper[fin])
