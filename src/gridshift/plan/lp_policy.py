"""Shared machinery of the LP-based policies (``mpc`` and ``oracle``): building the planning problem from
the world, forecasts and the jobs at hand, and turning the LP's fluid plan into whole placements."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridshift.errors import PlanError
from gridshift.model.scenario import Objective
from gridshift.model.time import S_PER_H, slots_per_hour
from gridshift.plan.base import Decision, Observation, Policy
from gridshift.plan.classes import Classes, signature_ids
from gridshift.plan.event_tiers import tier0_first
from gridshift.plan.lp import PlanProblem, PlanSolution, PlanSolver
from gridshift.plan.objective import unit_cost
from gridshift.plan.placement import (
    PlacementState,
    base_site_mw,
    first_fit_jobs,
    keep_running,
    latest_start_passed,
    place_services,
    priority_order,
    replica_increment_mw,
)
from gridshift.plan.start_times import build_start_times
from gridshift.plan.urgent import place_urgent
from gridshift.world.arrays import Signals, World


def slack_s(obs: Observation, jobs: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Seconds to spare before each job's deadline if it ran from now at ``rate`` reference
    accelerator-hours per hour (inf without a deadline)."""
    w = obs.world
    return w.jobs.deadline_s[jobs] - obs.now_s - obs.remaining_acc_h[jobs] / np.maximum(rate, 1e-12) * S_PER_H


def terminal_value(cpw: np.ndarray, dur_h: np.ndarray) -> np.ndarray:
    """Value per unit of work left for later: the mean over periods of the cost per unit of work on the
    dearest pool the class may use. On a busy fleet, work put off displaces other work later, so its price
    is the marginal (dearest) pool's, not the cheapest's, whose capacity is limited; valuing it lower would
    let a planner leave accelerators idle and call it a saving. ``cpw[P, C, T]`` (inf = not allowed)."""
    ok = np.isfinite(cpw)
    worst = np.where(ok.any(axis=0), np.where(ok, cpw, -np.inf).max(axis=0), 0.0)  # [C, T]
    return (worst * dur_h).sum(axis=1) / dur_h.sum()


def _gang_to_finish(obs: Observation, j: int, rate_per_acc_h: float) -> int:
    """Accelerators job ``j`` needs from now on, at ``rate_per_acc_h`` reference accelerator-hours per hour
    each, to finish its remaining work by its deadline (after a restart); a large number if it cannot."""
    jt = obs.world.jobs
    left_h = (jt.deadline_s[j] - obs.now_s - jt.restart_overhead_s[j]) / S_PER_H
    if not np.isfinite(left_h):
        return 0
    if left_h <= 0 or rate_per_acc_h <= 0:
        return 1 << 30
    return int(np.ceil(obs.remaining_acc_h[j] / (rate_per_acc_h * left_h) - 1e-9))


class LpPolicy(Policy):
    """Base of the LP planners. Parameters: ``objective`` (from the scenario unless given), ``cap_levels``
    (power-cap fractions the plan may use), ``max_delay_h`` (window of jobs without a deadline),
    ``time_limit_s`` per LP solve. Work may be planned up to ``late_window_h`` past a deadline.
    ``lp_warm_by_key``: warm-start each LP from the last one's basis matched by key (plan/lp_warm.py)."""

    lp_options: dict = {}  # HiGHS options of every solve

    def __init__(self, objective: Objective | dict | str | None = None, cap_levels: tuple[float, ...] = (0.7, 1.0),
                 max_delay_h: float = 24.0, time_limit_s: float = 60.0, late_window_h: float = 24.0,
                 lp_warm_by_key: bool = False, **params: Any) -> None:
        if isinstance(objective, str):
            objective = Objective(kind=objective)
        elif isinstance(objective, dict):
            objective = Objective(**objective)
        levels = np.array(sorted(set(float(x) for x in cap_levels) | {1.0}))
        if (levels <= 0).any() or (levels > 1).any():
            raise PlanError("cap_levels must lie in (0, 1]", field="params.cap_levels")
        if max_delay_h < 0:
            raise PlanError("max_delay_h must be >= 0", field="params.max_delay_h")
        super().__init__(cap_levels=tuple(levels), max_delay_h=max_delay_h, **params)
        if lp_warm_by_key:
            self.params["lp_warm_by_key"] = True
        self.objective = objective or Objective()
        self.levels = levels
        self.max_delay_h = max_delay_h
        self.late_window_h = late_window_h
        self.solver = PlanSolver(time_limit_s, dict(self.lp_options), warm=bool(lp_warm_by_key))
        self.n_solves = 0
        self.solve_s = 0.0
        self.planned_acc = 0.0
        self.placed_acc = 0.0
        self.lp_fallbacks = 0
        self._notes: dict[str, tuple[int, pd.Timestamp, pd.Timestamp, float]] = {}

    # ---- set-up
    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        f = world.fleet
        self.sig = signature_ids(world)
        self.sph = slots_per_hour(world.slot_duration_s)
        tp = np.zeros((len(f.type_names), self.levels.size))
        for k in range(len(f.type_names)):
            xs, ys = f.cap_curve_power_frac[k], f.cap_curve_throughput_frac[k]
            tp[k] = np.where(self.levels >= xs[0] - 1e-9, np.interp(self.levels, xs, ys), 0.0)
        self.level_tp = tp
        self.base_mw = base_site_mw(world)
        svc = world.services
        k = np.arange(len(f.type_names))
        cap = svc.capacity_rps
        with np.errstate(divide="ignore", invalid="ignore"):
            self.svc_acc_per_rps = np.where(cap > 0, (1 + svc.headroom_frac[:, None]) / cap, 0.0)
            self.svc_mw_per_rps = np.where(cap > 0, np.maximum(svc.power_w - f.idle_power_w[k][None, :], 0)
                                           / cap / 1e6, 0.0)

    def note_shortfalls(self, sol: PlanSolution, times: pd.DatetimeIndex, periods: range) -> None:
        """Record, in words, what the inputs make impossible in ``periods`` of a plan: a site whose power
        cap cannot be met, demand that cannot be served within its latency bound."""
        w = self.world
        for t in periods:
            for s in np.flatnonzero(sol.over_mw[:, t] > 1e-9):
                self._note(f"site '{w.fleet.site_names[s]}': its power cap cannot be met (idle, host and "
                           f"non-interruptible load exceed it; up to {{:.3f}} MW over)", times[t], sol.over_mw[s, t])
            if sol.unserved.size:
                for n, r in zip(*np.nonzero(sol.unserved[:, :, t] > 1e-6)):
                    self._note(f"service '{w.services.names[n]}', users in '{w.services.regions[n][r]}': "
                               f"demand cannot be served by sites within the latency bound (accelerators or power "
                               f"short; up to {{:.1f}} requests/s)", times[t], sol.unserved[n, r, t])

    def _note(self, what: str, when: pd.Timestamp, amount: float = 0.0) -> None:
        n, first, last, most = self._notes.get(what, (0, when, when, 0.0))
        self._notes[what] = (n + 1, min(first, when), max(last, when), max(most, float(amount)))

    def plan_warnings(self) -> list[str]:
        return [f"{what.format(most)} in {n} period(s) between {a:%Y-%m-%d %H:%M} and {b:%Y-%m-%d %H:%M} UTC"
                for what, (n, a, b, most) in sorted(self._notes.items(), key=lambda kv: kv[1][1])]

    def stats(self) -> dict[str, float]:
        return {
            "plan_warnings": self.plan_warnings(),
            "lp_solves": self.n_solves,
            "lp_solve_s_mean": self.solve_s / self.n_solves if self.n_solves else 0.0,
            "rounding_loss_frac": 1.0 - self.placed_acc / self.planned_acc if self.planned_acc > 0 else 0.0,
            "lp_fallbacks": self.lp_fallbacks,
        }

    # ---- problem
    def unit_cost_sites(self, carbon_z: np.ndarray, price_z: np.ndarray) -> np.ndarray:
        z = self.world.fleet.site_zone
        return unit_cost(self.objective, carbon_z[z], price_z[z])

    def problem(self, classes: Classes, dur_h: np.ndarray, uc: np.ndarray, cap_mw: np.ndarray,
                demand: np.ndarray, pinned_acc: np.ndarray, pinned_mw: np.ndarray,
                busy_now: np.ndarray | None, pause_h: float, start_s: float) -> PlanProblem:
        """The LP for ``classes`` over periods of ``dur_h`` starting at ``start_s`` (seconds since the
        scenario start), with objective per MWh ``uc[S, T]`` and power caps ``cap_mw[S, T]``."""
        w, f = self.world, self.world.fleet
        k, s = f.pool_type, f.pool_site
        inc_full = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0) * f.pue[s] / 1e6  # [P]
        cpw = uc[s][:, None, :] * inc_full[:, None, None] / np.maximum(classes.speed[:, k].T[:, :, None], 1e-12)
        cpw = np.where(classes.allowed.T[:, :, None], cpw, np.inf)  # [P, C, T] cost per unit of work
        best = cpw.min(axis=0)  # [C, T]
        best = np.where(np.isfinite(best), best, 0.0)
        terminal = terminal_value(cpw, dur_h)
        late_cost = 100.0 * float(max(best.max(initial=0.0), 1e-6)) + 1.0
        pause_cost = None
        if busy_now is not None:
            pause_cost = pause_h * uc[s] * inc_full[:, None]
        return PlanProblem(
            dur_h=dur_h, unit_cost=uc, pool_site=s, pool_type=k,
            pool_free=np.maximum(f.pool_count[:, None] - pinned_acc, 0).astype(float), pue=f.pue,
            headroom_mw=cap_mw - self.base_mw[:, None] - pinned_mw, levels=self.levels, level_tp=self.level_tp,
            board_w=f.board_power_w, idle_w=f.idle_power_w, work=classes.work, speed=classes.speed,
            allowed=classes.allowed, max_acc=classes.max_acc, release=classes.release,
            deadline_period=classes.deadline_period, min_work=classes.min_work, terminal_cost=terminal,
            late_cost=late_cost, deadline_h=(classes.deadline_s - start_s) / S_PER_H, run_h=classes.run_h,
            last_period=np.searchsorted(np.cumsum(dur_h) - dur_h, (classes.deadline_s - start_s) / S_PER_H
                                        + self.late_window_h, side="left"),
            demand=demand, svc_allowed=w.services.allowed[:, :, s] if w.services.n else
            np.zeros((0, 0, f.n_pools), bool), svc_acc_per_rps=self.svc_acc_per_rps,
            svc_mw_per_rps=self.svc_mw_per_rps, busy_now=busy_now, pause_cost=pause_cost, start_h=start_s / S_PER_H)

    def add_starts(self, pr: PlanProblem, jobs: np.ndarray, remaining: np.ndarray, now_s: float,
                   grid_h: np.ndarray, uc_fine: np.ndarray) -> PlanProblem:
        """Start-time columns (plan/start_times.py) for the waiting non-interruptible ``jobs`` of ``pr``,
        a plan from ``now_s``: candidate starts ``grid_h`` (hours from it), their energy at the objective
        per MWh ``uc_fine[S, slots]``, slot by slot (as far as it reaches, also past the plan's horizon)."""
        pr.starts = build_start_times(self.world, jobs, remaining, now_s, grid_h, float(pr.dur_h.sum()), uc_fine,
                                      self.world.slot_h, pr.late_cost, self.max_delay_h)
        return pr

    def planned_work(self, classes: Classes, sol: PlanSolution, dur_h: np.ndarray) -> np.ndarray:
        """[C, T + 1] work the plan gives each class before each period (cumulative)."""
        k = self.world.fleet.pool_type
        rate = classes.speed[:, k][:, :, None] * self.level_tp[k][None, :, :]  # [C, P, L]
        work = np.einsum("cptl,cpl->ct", sol.x, rate) * dur_h[None, :]
        return np.concatenate([np.zeros((classes.n, 1)), np.cumsum(work, axis=1)], axis=1)

    def covered_jobs(self, obs: Observation, classes: Classes, cum_work: np.ndarray, per: int) -> np.ndarray:
        """bool [n_jobs]: jobs alone in their class to which the plan gives, from period ``per`` to their
        deadline, at least the work they have left (their plan, not a margin, keeps them on time)."""
        out = np.zeros(len(obs.world.jobs), bool)
        if not classes.n:
            return out
        alone = np.bincount(classes.member, minlength=classes.n) == 1
        T = cum_work.shape[1] - 1
        ahead = cum_work[np.arange(classes.n), np.clip(classes.deadline_period, per, T)] - cum_work[:, min(per, T)]
        c = classes.member
        out[classes.jobs] = alone[c] & (ahead[c] >= obs.remaining_acc_h[classes.jobs] - 1e-6)
        return out

    def solve(self, pr: PlanProblem) -> PlanSolution:
        sol = self.solver.solve(pr)
        self.n_solves += 1
        self.solve_s += sol.solve_s
        return sol

    # ---- plan -> placements
    def round_plan(self, obs: Observation, classes: Classes, x: np.ndarray, f_rps: np.ndarray,
                   cost_order: np.ndarray, force: np.ndarray | None = None,
                   force_pool: np.ndarray | None = None, covered: np.ndarray | None = None) -> Decision:
        """Whole placements for slot ``obs.t`` from the plan of its period: ``x[C, P, L]`` busy accelerators
        per class, pool and cap level; ``f_rps[N, R, P]`` served requests/s. Jobs ``force`` (waiting jobs that
        start now whatever the plan says) are placed first, each on its planned pool ``force_pool`` (-1: none),
        else on the pool where it runs fastest. Running jobs ``covered`` (bool over all jobs: their own plan
        still holds all their remaining work before their deadline, :meth:`covered_jobs`) are paused as the
        plan says even close to their deadline."""
        w, fl, jt = obs.world, obs.world.fleet, obs.world.jobs
        busy = x.sum(axis=2)  # [C, P]
        tot = busy.sum(axis=0)
        cap = np.where(tot > 1e-9, (x * self.levels).sum(axis=(0, 2)) / np.maximum(tot, 1e-12), 1.0)
        cap = np.clip(cap, fl.min_cap_frac(), 1.0)
        # deadline pressure: pools that could run a job with little slack left run at full power
        act = obs.active
        if act.size:
            best = jt.speed[act][:, fl.pool_type].max(axis=1)
            slack = slack_s(obs, act, jt.gang_max[act] * best)
            tight = act[slack < 4 * w.slot_duration_s + jt.checkpoint_overhead_s[act] + jt.restart_overhead_s[act]]
            if tight.size:
                cap[(jt.speed[tight][:, fl.pool_type] > 0).any(axis=0)] = 1.0
        st = PlacementState(obs, cap)
        tp_pool = fl.throughput_frac(st.cap)  # the caps stay as set until _protect_deadlines
        active = obs.active
        running = active[obs.running_pool[active] >= 0]
        is_rigid = obs.rigid(running)
        keep_running(st, obs, running[is_rigid], force=True)
        for i, j in enumerate(() if force is None else force):
            fast = np.argsort(-jt.speed[j, fl.pool_type] * tp_pool, kind="stable")
            if force_pool is not None and force_pool[i] >= 0:  # the planned pool first
                fast = np.concatenate([[force_pool[i]], fast[fast != force_pool[i]]])
            first_fit_jobs(st, obs, np.array([j]), fast[jt.speed[j, fl.pool_type[fast]] > 0])
        reps = None
        if w.services.n:
            reps = np.zeros((w.services.n, w.services.demand_rps.shape[1], fl.n_pools), np.int64)
            want = np.ceil(f_rps * self.svc_acc_per_rps[:, fl.pool_type][:, None, :] - 1e-6).astype(np.int64)
            for p in range(fl.n_pools):
                for n, r in zip(*np.nonzero(want[:, :, p])):
                    inc = replica_increment_mw(w, int(n), int(p), float(st.cap[p]))
                    got = min(int(want[n, r, p]), int(st.free[p]), st.power_limit(p, inc))
                    if got > 0:
                        reps[n, r, p] += got
                        st.take(p, got, inc)
            have = (reps * w.services.capacity_rps[:, fl.pool_type][:, None, :] * tp_pool).sum(axis=2)
            need = obs.demand_rps * (1 + w.services.headroom_frac[:, None])
            residual = np.maximum(need - have, 0.0) / (1 + w.services.headroom_frac[:, None])
            reps = place_services(st, obs, demand_rps=residual, reps=reps)
        tier0_first(obs, st, tp_pool)  # under a known event tier-0 work is not kept from starting
        # running jobs close to their deadline are not paused: a pause costs checkpoint and restart time
        flex = running[~is_rigid]
        if flex.size:
            p_run = obs.running_pool[flex]
            slack = slack_s(obs, flex, obs.running_gang[flex] * jt.speed[flex, fl.pool_type[p_run]] * tp_pool[p_run])
            guard_s = 2 * (jt.checkpoint_overhead_s[flex] + jt.restart_overhead_s[flex]) + 2 * w.slot_duration_s
            tight = flex[(slack < guard_s) & (True if covered is None else ~covered[flex])]
            if tight.size:
                keep_running(st, obs, tight[np.argsort(jt.deadline_s[tight], kind="stable")], force=False)
        # power held by running non-interruptible work per site, at full power (it cannot be paused)
        rigid_run = running[is_rigid]
        rp = obs.running_pool[rigid_run]
        rigid_mw = np.bincount(fl.pool_site[rp], weights=obs.running_gang[rigid_run] * np.maximum(
            fl.board_power_w[fl.pool_type[rp]] - fl.idle_power_w[fl.pool_type[rp]], 0) * fl.pue[fl.pool_site[rp]] / 1e6,
            minlength=fl.n_sites)
        placed = np.zeros(len(jt), bool)
        if st.jobs:
            placed[np.concatenate(st.jobs)] = True
        # jobs whose latest start has come claim their accelerators before the plan is rounded
        self._safety_net(obs, st, active[~placed[active]], tp_pool)
        if st.jobs:
            placed[np.concatenate(st.jobs)] = True
        in_class = np.full(len(jt), -1)
        in_class[classes.jobs] = classes.member
        eff_dl = np.full(len(jt), np.inf)
        eff_dl[classes.jobs] = classes.eff_deadline_s
        cand_all = active[(in_class[active] >= 0) & ~placed[active]]
        planned = float(busy.sum())
        got_acc = 0.0
        for c in np.argsort(classes.deadline_period, kind="stable"):
            pools = np.flatnonzero(busy[c] > 1e-6)  # a finishing job may need only a sliver of a slot
            if not pools.size:
                continue
            members = cand_all[in_class[cand_all] == c]
            if not members.size:
                continue
            for p in pools[np.argsort(-busy[c, pools])]:
                s = fl.pool_site[p]
                ok = jt.speed[members, fl.pool_type[p]] > 0
                last = obs.last_pool[members]
                home = np.where(last >= 0, fl.pool_site[np.maximum(last, 0)], -1)
                ok &= jt.migratable[members] | (home < 0) | (home == s)
                ok &= ~placed[members]
                js = members[ok]
                if not js.size:
                    continue
                # jobs that can meet their deadline on this pool first; among them, jobs already here, then
                # jobs not running, then jobs moving from another pool; earliest deadline first
                rank = np.where(obs.running_pool[js] == p, 0, np.where(obs.running_pool[js] < 0, 1, 2))
                late_here = slack_s(obs, js, jt.gang_max[js] * jt.speed[js, fl.pool_type[p]] * tp_pool[p]) < 0
                js = js[np.lexsort((js, eff_dl[js], rank, late_here))]
                unit = jt.speed[js, fl.pool_type[p]] * tp_pool[p] * w.slot_h  # work per accelerator-slot
                rem_w = busy[c, p] * float(np.median(unit))  # the plan's work for this class and pool
                # the smallest gang of the jobs still to try: once the pool's room is below it, none fits
                gmin_rest = np.minimum.accumulate(jt.gang_min[js][::-1])[::-1]
                for j, u, gmin in zip(js, unit, gmin_rest):
                    if rem_w <= 1e-12:
                        break
                    lim = min(int(st.free[p]), st.power_limit(int(p), float(st.inc_mw[p])))
                    if lim < gmin:
                        break
                    g = int(np.clip(np.floor(rem_w / u + 0.5), jt.gang_min[j], jt.gang_max[j]))
                    # never fewer accelerators than the job needs here to meet its deadline
                    g_need = min(int(jt.gang_max[j]), _gang_to_finish(obs, j, u / w.slot_h))
                    g = min(max(g, g_need), lim)
                    if g < jt.gang_min[j]:
                        continue
                    cover = min(obs.remaining_acc_h[j], g * u)
                    if cover > 2.0 * rem_w + 1e-12 and g > g_need:  # much more than the plan asked for here
                        continue
                    if not jt.interruptible[j] and obs.running_pool[j] < 0:
                        # a job that cannot be paused starts only where it can still meet its deadline,
                        # and only if it stays under the site's power cap for as long as it runs
                        run_slots = obs.remaining_acc_h[j] / (g * u)
                        if obs.now_s + run_slots * w.slot_duration_s > jt.deadline_s[j]:
                            continue
                        if g * st.inc_mw[p] > self._future_headroom_mw(obs, int(p), run_slots, rigid_mw):
                            continue
                    st.place_jobs(np.array([j]), int(p), np.array([g]))
                    placed[j] = True
                    rem_w -= cover
                    got_acc += g
        # second pass: fill what each pool still has planned with jobs of the classes planned there
        placed_on = np.zeros(fl.n_pools)
        for _jobs, pools_, gangs_ in zip(st.jobs, st.pools, st.gangs):
            np.add.at(placed_on, pools_, gangs_)
        for p in np.flatnonzero(busy.sum(axis=0) - placed_on >= 0.5):
            deficit = busy[:, p].sum() - placed_on[p]
            cls = np.flatnonzero(busy[:, p] > 0.05)
            members = cand_all[np.isin(in_class[cand_all], cls) & ~placed[cand_all]]
            members = members[(jt.speed[members, fl.pool_type[p]] > 0) & jt.interruptible[members]]
            last = obs.last_pool[members]
            home = np.where(last >= 0, fl.pool_site[np.maximum(last, 0)], -1)
            members = members[jt.migratable[members] | (home < 0) | (home == fl.pool_site[p])]
            members = members[np.argsort(eff_dl[members], kind="stable")]
            gmin_rest = np.minimum.accumulate(jt.gang_min[members][::-1])[::-1]
            for j, gmin in zip(members, gmin_rest):
                if deficit < 0.5:
                    break
                room = min(int(st.free[p]), st.power_limit(int(p), float(st.inc_mw[p])))
                if room < gmin:  # no job left fits in what the pool still has
                    break
                g = int(min(jt.gang_max[j], np.floor(deficit + 0.5), room))
                need = _gang_to_finish(obs, j, jt.speed[j, fl.pool_type[p]] * tp_pool[p])
                if g < jt.gang_min[j] or g < min(need, jt.gang_max[j]):  # too few to stay on time here
                    continue
                st.place_jobs(np.array([j]), int(p), np.array([g]))
                placed[j] = True
                deficit -= g
                got_acc += g
        self.planned_acc += planned
        self.placed_acc += min(got_acc, planned)
        self._safety_net(obs, st, active[~placed[active]], tp_pool)
        idx, pool, gang = st.result()
        self._protect_deadlines(obs, st, idx, pool, gang)
        return Decision(idx, pool, gang, st.cap, reps)

    def _safety_net(self, obs: Observation, st: PlacementState, waiting: np.ndarray, tp_pool: np.ndarray) -> None:
        """Jobs whose latest start has come (one slot of margin: the plan may put a job in its last feasible
        slot) run wherever they fit, each on the pool where it runs fastest."""
        if not waiting.size:
            return
        urgent = waiting[latest_start_passed(obs, waiting, self.max_delay_h, margin_slots=1.0)]
        place_urgent(st, obs, priority_order(obs, urgent), tp_pool)  # by groups, as one at a time would

    def _future_headroom_mw(self, obs: Observation, p: int, run_slots: float, rigid_mw: np.ndarray) -> float:
        """Facility MW left at pool p's site, over the next ``run_slots`` slots, under the lowest power cap
        there, after idle and host load and running non-interruptible work."""
        fl = obs.world.fleet
        s = fl.pool_site[p]
        n = max(1, int(np.ceil(run_slots - 1e-9)))
        caps = obs.world.site_cap_mw(obs.t, obs.t, n)[s]
        return float(caps.min()) - float(self.base_mw[s]) - float(rigid_mw[s])

    def _protect_deadlines(self, obs: Observation, st: PlacementState, idx: np.ndarray, pool: np.ndarray,
                           gang: np.ndarray) -> None:
        """Run a capped pool at full power when a job on it would miss its deadline at the cap but not at
        full power, if the site's power cap allows."""
        fl, jt = obs.world.fleet, obs.world.jobs
        capped = np.flatnonzero(st.cap < 1.0 - 1e-9)
        if not capped.size or not idx.size:
            return
        tp_now = fl.throughput_frac(st.cap)
        for p in capped:
            on = pool == p
            if not on.any():
                continue
            j, g = idx[on], gang[on]
            rate = g * jt.speed[j, fl.pool_type[p]]
            if ((slack_s(obs, j, rate * tp_now[p]) < 0) & (slack_s(obs, j, rate) >= 0)).any():
                k = fl.pool_type[p]
                busy = float(g.sum())
                extra_mw = busy * fl.board_power_w[k] * (1.0 - st.cap[p]) * fl.pue[fl.pool_site[p]] / 1e6
                if extra_mw <= st.headroom_mw[fl.pool_site[p]] + 1e-12:
                    st.headroom_mw[fl.pool_site[p]] -= extra_mw
                    st.cap[p] = 1.0
