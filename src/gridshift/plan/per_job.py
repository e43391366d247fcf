"""``per-job``: an offline plan that gives every job its own best timing with perfect knowledge of the signals.

Jobs are taken in order of arrival (then deadline). A non-interruptible job gets the start, on a 5-minute grid
(or the slot, if finer) plus its exact latest start, and the pool, that minimise the objective of its run —
the unit cost integrated exactly over [start, start + run time] at the data's resolution — among the starts
where the pool has its gang free and the site has the power for it in every slot the run touches. An
interruptible job gets the cheapest slots of its window (at its full gang) that carry its work, counting the
checkpoint and restart time of every resume. What a job takes is reserved (whole slots, at full power), so
later jobs plan around it. When jobs do not compete for accelerators or power this is the exact optimum of
timing; when they do, it is a good feasible plan. It runs at full power (no power caps) and does not place
inference services; the ``oracle`` takes it as one of its candidates (:mod:`gridshift.sim.oracle`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridshift.errors import PlanError
from gridshift.model.scenario import Objective
from gridshift.model.time import S_PER_H
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.objective import unit_cost
from gridshift.plan.placement import base_site_mw
from gridshift.world.arrays import Signals, World

GRID_S = 300.0  # start grid of non-interruptible jobs


class PerJob(Policy):
    """Each job at its own best time, with perfect signals, reserving capacity in arrival order."""

    name = "per-job"

    def __init__(self, objective: Objective | dict | str | None = None, max_delay_h: float = 24.0,
                 **params: Any) -> None:
        if isinstance(objective, str):
            objective = Objective(kind=objective)
        elif isinstance(objective, dict):
            objective = Objective(**objective)
        if max_delay_h < 0:
            raise PlanError("max_delay_h must be >= 0", field="params.max_delay_h")
        super().__init__(max_delay_h=max_delay_h, **params)
        self.objective = objective or Objective()
        self.max_delay_h = float(max_delay_h)

    # ---- plan
    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        if world.services.n:
            raise PlanError("policy 'per-job' plans batch jobs only; this scenario has inference services")
        f, jt = world.fleet, world.jobs
        T, slot_s = world.n_slots, float(world.slot_duration_s)
        L = signals.lookback_slots
        uc = unit_cost(self.objective, signals.carbon_g_per_kwh[f.site_zone, L:L + T],
                       signals.price_usd_per_mwh[f.site_zone, L:L + T])  # [S, T]
        self._edges_s = np.arange(T + 1) * slot_s
        self._cum = np.concatenate([np.zeros((uc.shape[0], 1)), np.cumsum(uc * slot_s / S_PER_H, axis=1)], axis=1)
        self._uc = uc
        k = f.pool_type
        self._inc_mw = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0.0) * f.pue[f.pool_site] / 1e6  # [P]
        self._free = np.repeat(f.pool_count[:, None].astype(float), T, axis=1)  # [P, T]
        self._head = world.site_cap_mw(0, 0, T, oracle=True) - base_site_mw(world)[:, None]  # [S, T]
        self._sched: dict[int, list[tuple[int, int, int, float]]] = {}  # slot -> [(job, pool, gang, offset_s)]
        self._last_slot = np.full(len(jt), -1)
        self._pool = np.full(len(jt), -1)
        self.late_plans = 0
        order = np.lexsort((np.arange(len(jt)), jt.deadline_s, jt.arrival_s))
        for j in order:
            if jt.interruptible[j]:
                self._plan_slots(int(j))
            else:
                self._plan_start(int(j))

    def _window(self, j: int) -> tuple[float, float]:
        jt, w = self.world.jobs, self.world
        end = jt.deadline_s[j] if np.isfinite(jt.deadline_s[j]) else jt.arrival_s[j] + self.max_delay_h * S_PER_H
        return float(jt.arrival_s[j]), float(min(end, w.n_slots * w.slot_duration_s))

    def _cost(self, s: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Unit cost integrated over [a, b] (seconds), hours × unit."""
        return np.interp(b, self._edges_s, self._cum[s]) - np.interp(a, self._edges_s, self._cum[s])

    def _ok_slots(self, p: int, g: int) -> np.ndarray:
        s = self.world.fleet.pool_site[p]
        return (self._free[p] >= g - 1e-9) & (self._head[s] >= g * self._inc_mw[p] - 1e-12)

    def _reserve(self, p: int, g: int, slots: np.ndarray) -> None:
        s = self.world.fleet.pool_site[p]
        self._free[p, slots] -= g
        self._head[s, slots] -= g * self._inc_mw[p]

    def _plan_start(self, j: int) -> None:
        w, f, jt = self.world, self.world.fleet, self.world.jobs
        slot_s, T = float(w.slot_duration_s), w.n_slots
        g = int(jt.gang_max[j])
        a, end = self._window(j)
        best: tuple[float, float, int, float] | None = None  # (late, cost, pool, start)
        step = min(GRID_S, slot_s)
        for p in np.flatnonzero(jt.speed[j, f.pool_type] > 0):
            run_s = jt.work_acc_h[j] / (g * jt.speed[j, f.pool_type[p]]) * S_PER_H
            bad = np.concatenate([[0], np.cumsum(~self._ok_slots(int(p), g))])
            starts = np.arange(np.ceil(a / step - 1e-9) * step, T * slot_s - run_s + 1e-6, step)
            latest = end - run_s
            if latest >= a:
                starts = np.unique(np.concatenate([starts, [latest], [a]]))
            starts = starts[(starts >= a - 1e-6) & (starts + run_s <= T * slot_s + 1e-6)]
            if not starts.size:
                continue
            t0 = np.floor(starts / slot_s + 1e-9).astype(int)
            t1 = np.minimum(np.ceil((starts + run_s) / slot_s - 1e-9).astype(int), T)
            feas = bad[t1] - bad[t0] == 0
            starts = starts[feas]
            if not starts.size:
                continue
            on_time = starts <= latest + 1e-6
            cost = g * self._inc_mw[p] * self._cost(f.pool_site[p], starts, starts + run_s)
            if on_time.any():
                i = int(np.flatnonzero(on_time)[np.argmin(cost[on_time])])
                cand = (0.0, float(cost[i]), int(p), float(starts[i]))
            else:  # cannot be on time here: as early as possible
                cand = (float(starts[0] + run_s - end), float(cost[0]), int(p), float(starts[0]))
            if best is None or cand[:2] < best[:2]:
                best = cand
        if best is None:
            return
        late, _, p, start = best
        self.late_plans += late > 0
        run_s = jt.work_acc_h[j] / (g * jt.speed[j, f.pool_type[p]]) * S_PER_H
        t0 = int(np.floor(start / slot_s + 1e-9))
        t1 = min(int(np.ceil((start + run_s) / slot_s - 1e-9)), T)
        self._reserve(p, g, np.arange(t0, t1))
        for t in range(t0, t1):
            self._sched.setdefault(t, []).append((j, p, g, start - t0 * slot_s if t == t0 else 0.0))
        self._last_slot[j], self._pool[j] = t1 - 1, p

    def _plan_slots(self, j: int) -> None:
        w, f, jt = self.world, self.world.fleet, self.world.jobs
        slot_s, T = float(w.slot_duration_s), w.n_slots
        g = int(jt.gang_max[j])
        a, end = self._window(j)
        over_h = (jt.checkpoint_overhead_s[j] + jt.restart_overhead_s[j]) / S_PER_H
        t_lo = int(np.floor(a / slot_s + 1e-9))
        best: tuple[float, float, int, np.ndarray] | None = None  # (late, cost, pool, slots)
        for p in np.flatnonzero(jt.speed[j, f.pool_type] > 0):
            rate = g * jt.speed[j, f.pool_type[p]]  # work per hour
            ts = np.arange(t_lo, T)
            avail_h = (np.minimum((ts + 1) * slot_s, T * slot_s) - np.maximum(ts * slot_s, a)) / S_PER_H
            ok = self._ok_slots(int(p), g)[ts] & (avail_h > 1e-9)
            inside = ok & (ts * slot_s < end - 1e-6)
            span_h = np.minimum((ts + 1) * slot_s, end) / S_PER_H - np.maximum(ts * slot_s, a) / S_PER_H
            cost_h = self._uc[f.pool_site[p], ts]
            late = 0.0
            chosen = self._cheapest(ts[inside], np.maximum(span_h[inside], 0.0), cost_h[inside], rate,
                                    jt.work_acc_h[j], over_h)
            if chosen is None:  # not on time here: the earliest slots it can have
                chosen = self._cheapest(ts[ok], avail_h[ok], ts[ok].astype(float), rate, jt.work_acc_h[j], over_h)
                if chosen is None:
                    continue
                late = max(float((chosen.max() + 1) * slot_s - end), 1.0)
            cost = float(g * self._inc_mw[p] * (self._uc[f.pool_site[p], chosen] * slot_s / S_PER_H).sum())
            if best is None or (late, cost) < best[:2]:
                best = (late, cost, int(p), chosen)
        if best is None:
            return
        late, _, p, chosen = best
        self.late_plans += late > 0
        self._reserve(p, g, chosen)
        offsets = self._fraction_offsets(j, p, g, chosen, a, end, over_h)
        for t, o in zip(chosen, offsets):
            self._sched.setdefault(int(t), []).append((j, p, g, float(o)))
        self._last_slot[j], self._pool[j] = int(chosen.max()), p

    def _fraction_offsets(self, j: int, p: int, g: int, chosen: np.ndarray, a: float, end: float,
                          over_h: float) -> np.ndarray:
        """Start offsets per chosen slot: the part of an hour the chosen slots carry beyond the job's work is cut
        from the dearest slot where a start can be moved (the first slot of a run of chosen slots; the engine
        always ends a job in its last one), so the job runs only the tail of that slot."""
        w, f, jt = self.world, self.world.fleet, self.world.jobs
        slot_s = float(w.slot_duration_s)
        arr_off = np.clip(a - chosen * slot_s, 0.0, slot_s)
        off = np.zeros(chosen.size)
        if over_h > 0 or chosen.size < 2 or (chosen.max() + 1) * slot_s > end + 1e-6:
            return off  # (a plan that runs into the slot of its deadline keeps every second it has)
        span_s = np.minimum((chosen + 1) * slot_s, w.n_slots * slot_s) - chosen * slot_s - arr_off
        excess_s = float(span_s.sum()) - jt.work_acc_h[j] / (g * jt.speed[j, f.pool_type[p]]) * S_PER_H
        if excess_s <= 1e-6:
            return off
        seg = np.concatenate([[True], np.diff(chosen) > 1])
        cost = self._uc[f.pool_site[p], chosen]
        elig = np.flatnonzero(seg)
        k = int(elig[np.argmax(cost[elig])])
        if cost[k] > cost[-1] + 1e-12:  # cheaper to leave the fraction in the last slot otherwise
            off[k] = arr_off[k] + max(min(excess_s - 1.0, span_s[k] - 1.0), 0.0)  # a second to spare
        return off

    @staticmethod
    def _cheapest(ts: np.ndarray, avail_h: np.ndarray, key: np.ndarray, rate: float, work: float,
                  over_h: float) -> np.ndarray | None:
        """The slots of ``ts`` with the lowest ``key`` that carry ``work`` at ``rate`` per hour for their
        ``avail_h`` hours, after the time lost at every resume (a gap between chosen slots)."""
        if not ts.size:
            return None
        order = np.lexsort((ts, key))
        cum = np.cumsum(avail_h[order] * rate)
        n = int(np.searchsorted(cum, work - 1e-9)) + 1
        while n <= ts.size:
            chosen = np.sort(ts[order[:n]])
            resumes = int((np.diff(chosen) > 1).sum())
            if cum[n - 1] >= work + resumes * over_h * rate - 1e-9:
                return chosen
            n += 1
        return None

    # ---- run the plan
    def decide(self, obs: Observation) -> Decision:
        f, jt = obs.world.fleet, obs.world.jobs
        active = np.zeros(len(jt), bool)
        active[obs.active] = True
        used = np.zeros(f.n_pools)
        idx, pool, gang, off = [], [], [], []

        def put(j: int, p: int, g: int, o: float) -> None:
            idx.append(j), pool.append(p), gang.append(g), off.append(o)
            used[p] += g

        placed = set()
        # running non-interruptible jobs carry on where they are, whatever the plan says
        for j in obs.active[(obs.running_pool[obs.active] >= 0) & ~jt.interruptible[obs.active]]:
            put(int(j), int(obs.running_pool[j]), int(obs.running_gang[j]), 0.0)
            placed.add(int(j))
        for j, p, g, o in self._sched.get(obs.t, ()):
            if active[j] and j not in placed and used[p] + g <= f.pool_count[p]:
                put(j, p, g, o)
                placed.add(j)
        # work the plan did not foresee (a job still unfinished after its last planned slot) runs where it fits
        for j in obs.active:
            j = int(j)
            if j in placed or self._last_slot[j] >= obs.t:
                continue
            pools = np.flatnonzero(jt.speed[j, f.pool_type] > 0)
            pools = pools[np.argsort(-jt.speed[j, f.pool_type[pools]], kind="stable")]
            for p in pools:
                g = int(min(jt.gang_max[j], f.pool_count[p] - used[p]))
                if g >= jt.gang_min[j]:
                    put(j, int(p), g, 0.0)
                    placed.add(j)
                    break
        return Decision(np.array(idx, np.int64), np.array(pool, np.int32), np.array(gang, np.int32),
                        job_start_offset_s=np.array(off, float))

    def stats(self) -> dict[str, float]:
        return {"per_job_late_plans": int(self.late_plans)}
