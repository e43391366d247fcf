"""``mpc``: rolling-horizon planning. At every epoch (default hourly) forecast each zone's carbon intensity
and price over the horizon (default 48 h), solve the planning LP over work classes, pools, periods and
power-cap levels, apply the plan's first period, and plan again at the next epoch.

``oracle``: the same model solved once over the whole period with the actual signals and every job's
release time — the bound every policy is measured against.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast import make_forecaster
from gridshift.forecast.registry import DEFAULT_MODEL
from gridshift.forecast.shared import forecaster_key, shared
from gridshift.forecast.simple import Perfect
from gridshift.model.time import S_PER_H
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Observation
from gridshift.plan.classes import build_classes
from gridshift.plan.lp_policy import LpPolicy
from gridshift.world.arrays import Signals, World


def period_slots(horizon_slots: int, sph: int, fine_h: int, block_h: int) -> np.ndarray:
    """Lengths (in slots) of the planning periods: hourly for the first ``fine_h`` hours, then blocks of
    ``block_h`` hours, covering ``horizon_slots``."""
    out, used = [], 0
    while used < horizon_slots:
        n = sph if used < fine_h * sph else block_h * sph
        n = min(n, horizon_slots - used)
        out.append(n)
        used += n
    return np.array(out, dtype=np.int64)


def _per_period(a: np.ndarray, lengths: np.ndarray, how: str) -> np.ndarray:
    """Aggregate the last axis of ``a`` over consecutive periods of ``lengths`` slots."""
    edges = np.concatenate([[0], np.cumsum(lengths)])
    parts = [a[..., edges[i]:edges[i + 1]] for i in range(lengths.size)]
    fn = {"mean": np.mean, "min": np.min, "max": np.max}[how]
    return np.stack([fn(x, axis=-1) for x in parts], axis=-1)


def _extend(a: np.ndarray, n: int) -> np.ndarray:
    """``a[..., :n]``, holding the last value when ``a`` is shorter."""
    if a.shape[-1] >= n:
        return a[..., :n]
    pad = np.repeat(a[..., -1:], n - a.shape[-1], axis=-1)
    return np.concatenate([a, pad], axis=-1)


class Mpc(LpPolicy):
    name = "mpc"

    def __init__(self, forecast: str = DEFAULT_MODEL, horizon_h: int = 48, epoch_h: int = 1, fine_h: int = 12,
                 block_h: int = 6, forecast_params: dict | None = None, risk_quantile: float | None = None,
                 **params: Any) -> None:
        if horizon_h < 1 or epoch_h < 1 or fine_h < 0 or block_h < 1:
            raise PlanError("horizon_h, epoch_h and block_h must be >= 1 and fine_h >= 0", field="params")
        if risk_quantile is not None and not 0.5 <= risk_quantile < 1:
            raise PlanError("risk_quantile must be in [0.5, 1)", field="params.risk_quantile")
        super().__init__(forecast=forecast, horizon_h=horizon_h, epoch_h=epoch_h, fine_h=fine_h, block_h=block_h,
                         forecast_params=forecast_params, risk_quantile=risk_quantile, **params)
        self.forecaster = make_forecaster(forecast, **(forecast_params or {}))
        self.forecast_key = forecaster_key(forecast, forecast_params)
        self.risk_quantile = risk_quantile
        if risk_quantile is not None and not hasattr(self.forecaster, "predict_quantiles"):
            raise PlanError(f"forecaster '{forecast}' gives no quantiles, so risk_quantile cannot be used",
                            field="params.risk_quantile")
        self.horizon_h, self.epoch_h, self.fine_h, self.block_h = horizon_h, epoch_h, fine_h, block_h
        self._plan = None

    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        self.signals = signals
        self._plan = None
        self._fallback = Asap()
        self._fallback.reset(world, signals)
        if isinstance(self.forecaster, Perfect):
            self._actual = {n: getattr(signals, n) for n in ("carbon_g_per_kwh", "price_usd_per_mwh")}

    def _forecast(self, obs: Observation, name: str, H: int) -> np.ndarray:
        if isinstance(self.forecaster, Perfect):
            self.forecaster.actual = self._actual[name]
            return self.forecaster.predict(obs.signals.history(name, obs.t), H,
                                           t_abs=obs.signals.lookback_slots + obs.t, slots_per_h=self.sph)
        return shared(obs.signals, (self.forecast_key, name, H), obs.t, lambda: self.forecaster.predict(
            obs.signals.history(name, obs.t), H, t_abs=obs.signals.lookback_slots + obs.t, slots_per_h=self.sph))

    def _demand(self, obs: Observation, H: int) -> np.ndarray:
        svc = obs.world.services
        if not svc.n:
            return np.zeros((0, 0, H))
        N, R, T = svc.demand_rps.shape
        flat = svc.demand_rps.reshape(N * R, T)
        if isinstance(self.forecaster, Perfect):
            out = _extend(flat[:, obs.t:], H)
        elif self.risk_quantile is not None:  # plan batch work around the demand services may reach
            q = (self.risk_quantile,)
            out = shared(svc, (self.forecast_key, "demand", H, q), obs.t, lambda: self.forecaster.predict_quantiles(
                flat[:, : obs.t + 1], H, t_abs=obs.t, slots_per_h=self.sph, levels=q)[:, :, 0])
        else:
            out = shared(svc, (self.forecast_key, "demand", H), obs.t, lambda: self.forecaster.predict(
                flat[:, : obs.t + 1], H, t_abs=obs.t, slots_per_h=self.sph))
        return out.reshape(N, R, H)

    def _pinned(self, obs: Observation, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Accelerators and facility MW held by running non-interruptible jobs per pool/site and period."""
        w, f, jt = obs.world, obs.world.fleet, obs.world.jobs
        P, T = f.n_pools, lengths.size
        acc, mw = np.zeros((P, T)), np.zeros((f.n_sites, T))
        running = obs.active[obs.running_pool[obs.active] >= 0]
        rigid = running[obs.rigid(running)]
        if rigid.size:
            p = obs.running_pool[rigid]
            rate = obs.running_gang[rigid] * jt.speed[rigid, f.pool_type[p]]
            slots_left = np.ceil(obs.remaining_acc_h[rigid] / np.maximum(rate, 1e-12) / w.slot_h)
            starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
            on = starts[None, :] < slots_left[:, None]  # [J, T]
            g = obs.running_gang[rigid][:, None] * on
            np.add.at(acc, p, g)
            k = f.pool_type[p]
            inc = np.maximum(f.board_power_w[k] - f.idle_power_w[k], 0) * f.pue[f.pool_site[p]] / 1e6
            np.add.at(mw, f.pool_site[p], g * inc[:, None])
        return acc, mw, rigid

    def _replan(self, obs: Observation) -> None:
        w, f = obs.world, obs.world.fleet
        H = self.horizon_h * self.sph
        lengths = period_slots(H, self.sph, self.fine_h, self.block_h)
        dur_h = lengths * w.slot_h
        start_s = obs.now_s + np.concatenate([[0], np.cumsum(lengths)[:-1]]) * w.slot_duration_s
        end_s = obs.now_s + np.cumsum(lengths) * w.slot_duration_s
        ci = _per_period(self._forecast(obs, "carbon_g_per_kwh", H), lengths, "mean")
        pr = _per_period(self._forecast(obs, "price_usd_per_mwh", H), lengths, "mean")
        uc = self.unit_cost_sites(ci, pr)
        cap = _per_period(_extend(w.site_cap_mw(obs.t, obs.t, H), H), lengths, "min")
        demand = _per_period(self._demand(obs, H), lengths, "max") if w.services.n else np.zeros((0, 0, lengths.size))
        pin_acc, pin_mw, rigid = self._pinned(obs, lengths)
        jobs = np.setdiff1d(obs.active, rigid)
        last = obs.last_pool[jobs]
        home = np.where((last >= 0) & ~w.jobs.migratable[jobs], f.pool_site[np.maximum(last, 0)], -1)
        classes = build_classes(w, jobs, obs.remaining_acc_h, home, self.sig, start_s, end_s, self.max_delay_h)
        busy_now = np.bincount(np.maximum(obs.running_pool[jobs], 0), weights=np.where(
            obs.running_pool[jobs] >= 0, obs.running_gang[jobs], 0), minlength=f.n_pools).astype(float)
        inter = jobs[w.jobs.interruptible[jobs]]
        pause_h = float(np.mean(w.jobs.checkpoint_overhead_s[inter] + w.jobs.restart_overhead_s[inter]) / S_PER_H) \
            if inter.size else 0.0
        prob = self.problem(classes, dur_h, uc, cap, demand, pin_acc, pin_mw, busy_now, pause_h, obs.now_s)
        sol = self.solve(prob)
        self.note_shortfalls(sol, w.slot_starts[[min(obs.t, w.n_slots - 1)]], range(1))
        k = f.pool_type
        order = np.argsort(uc[f.pool_site, 0] * (f.board_power_w[k] + f.host_power_w[k]) * f.pue[f.pool_site])
        self._plan = (obs.t, lengths, classes, sol, order)

    def decide(self, obs: Observation) -> Decision:
        if self._plan is None or obs.t - self._plan[0] >= self.epoch_h * self.sph:
            try:
                self._replan(obs)
            except PlanError as e:
                self.lp_fallbacks += 1
                self._note(f"planning failed ({e.message}); the slot ran asap".replace("{", "{{").replace("}", "}}"),
                           obs.world.slot_starts[obs.t])
                self._plan = None
                return self._fallback.decide(obs)
        t0, lengths, classes, sol, order = self._plan
        per = int(np.searchsorted(np.cumsum(lengths), obs.t - t0, side="right"))
        return self.round_plan(obs, classes, sol.x[:, :, per, :], sol.f[:, :, :, per], order)


class Oracle(LpPolicy):
    """Perfect foresight of signals and of every job's arrival: one LP over the whole period (periods of
    ``block_h`` hours, default 1), deadlines counted up to the period that contains them (a relaxation)."""

    name = "oracle"

    def __init__(self, block_h: int = 1, bound: bool = True, max_columns: int = 300_000,
                 time_limit_s: float = 600.0, **params: Any) -> None:
        if block_h < 1 or max_columns < 1000:
            raise PlanError("block_h must be >= 1 and max_columns >= 1000", field="params")
        super().__init__(forecast="perfect", block_h=block_h, bound=bound, max_columns=max_columns, time_limit_s=time_limit_s, **params)
        self.block_h = block_h
        self.bound = bound
        self.max_columns = max_columns
        self.lp_bound = float("nan")

    def _layout(self, world: World) -> tuple[np.ndarray, int]:
        """Period lengths and deadline bucket: hourly periods and exact deadlines unless the LP would exceed
        ``max_columns``; then deadlines are bucketed, and periods lengthened, until it fits."""
        T = world.n_slots
        jt = world.jobs
        n_pools = np.array([(jt.speed[:, world.fleet.pool_type] > 0).sum(axis=1)]).ravel()  # pools per job
        for block_h in (self.block_h, 2 * self.block_h, 3 * self.block_h, 6 * self.block_h, 12 * self.block_h):
            per = max(1, block_h * self.sph)
            lengths = np.full(T // per, per, dtype=np.int64)
            if T % per:
                lengths = np.append(lengths, T % per)
            for bucket in (1, 3, 6, 12, 24):
                # columns ~ classes x window x pools x levels; classes ~ distinct (deadline bucket, signature)
                dl = np.where(np.isfinite(jt.deadline_s), jt.deadline_s, jt.arrival_s + self.max_delay_h * S_PER_H)
                d_per = np.minimum((dl // (per * world.slot_duration_s)) // bucket, 10 ** 9)
                keys = np.unique(np.stack([d_per, self.sig], axis=1), axis=0).shape[0]
                window = (dl - jt.arrival_s) / S_PER_H / block_h + self.late_window_h / block_h + bucket
                est = keys * float(np.mean(np.minimum(window, lengths.size))) * float(n_pools.mean()) * self.levels.size
                if est <= self.max_columns:
                    return lengths, bucket
        return lengths, bucket

    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        f = world.fleet
        T = world.n_slots
        lengths, bucket = self._layout(world)
        self.layout = {"period_h": float(lengths[0] * world.slot_h), "deadline_bucket_periods": bucket}
        L = signals.lookback_slots
        ci = _per_period(signals.carbon_g_per_kwh[:, L:L + T], lengths, "mean")
        pr = _per_period(signals.price_usd_per_mwh[:, L:L + T], lengths, "mean")
        uc = self.unit_cost_sites(ci, pr)
        cap = _per_period(world.site_cap_mw(0, 0, T, oracle=True), lengths, "min")
        demand = _per_period(world.services.demand_rps[:, :, :T], lengths, "max") if world.services.n else \
            np.zeros((0, 0, lengths.size))
        start_s = np.concatenate([[0], np.cumsum(lengths)[:-1]]) * world.slot_duration_s
        end_s = np.cumsum(lengths) * world.slot_duration_s
        jobs = np.arange(len(world.jobs))
        work = world.jobs.work_acc_h.astype(float)
        P, nT = f.n_pools, lengths.size
        no_pin = (np.zeros((P, nT)), np.zeros((f.n_sites, nT)))
        classes = build_classes(world, jobs, work, np.full(jobs.size, -1), self.sig, start_s, end_s,
                                self.max_delay_h, bucket_periods=bucket)
        prob = self.problem(classes, lengths * world.slot_h, uc, cap, demand, *no_pin, None, 0.0, 0.0)
        sol = self.solve(prob)
        self.note_shortfalls(sol, world.slot_starts[start_s.astype(np.int64) // world.slot_duration_s],
                             range(lengths.size))
        if self.bound:
            # the bound: deadlines counted up to the period that contains them, nothing forced into the period
            relaxed = build_classes(world, jobs, work, np.full(jobs.size, -1), self.sig, start_s, end_s,
                                    self.max_delay_h, deadline_rounding="up", bucket_periods=bucket)
            relaxed.min_work[:] = 0.0
            bp = self.problem(relaxed, lengths * world.slot_h, uc, cap, demand, *no_pin, None, 0.0, 0.0)
            bp.deadline_h = bp.run_h = None  # lateness by period only: a relaxation
            bs = self.solve(bp)
            beyond = bp.deadline_period >= nT
            ok = bs.late_work_h < 1e-6 and bs.left[~beyond].sum() < 1e-6 and bs.over_mw.sum() < 1e-9 \
                and bs.unserved.sum() < 1e-9
            const = float((uc * self.base_mw[:, None] * bp.dur_h).sum())
            self.lp_bound = bs.energy_objective + float(bs.left[beyond] @ bp.terminal_cost[beyond]) + const \
                if ok else float("nan")
        k = f.pool_type
        order = np.argsort(uc[f.pool_site].mean(axis=1) * (f.board_power_w[k] + f.host_power_w[k]))
        self._plan = (lengths, classes, sol, order)

    def stats(self) -> dict[str, float]:
        out = super().stats()
        out["lp_bound_objective"] = self.lp_bound
        out.update({f"oracle_{k}": v for k, v in self.layout.items()})
        return out

    def decide(self, obs: Observation) -> Decision:
        lengths, classes, sol, order = self._plan
        per = int(np.searchsorted(np.cumsum(lengths), obs.t, side="right"))
        return self.round_plan(obs, classes, sol.x[:, :, per, :], sol.f[:, :, :, per], order)
