"""``mpc``: rolling-horizon planning. At every epoch (default hourly) forecast each zone's carbon intensity
and price over the horizon (default 48 h), solve the planning LP over work classes, pools, periods and
power-cap levels, apply the plan's first period, and plan again at the next epoch.

``oracle``: the same model solved once over the whole period with the actual signals and every job's
release time — the bound every policy is measured against.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast import make_forecaster
from gridshift.forecast.dayahead import DayAhead
from gridshift.forecast.registry import DEFAULT_MODEL
from gridshift.forecast.shared import forecaster_key, shared
from gridshift.forecast.simple import Perfect
from gridshift.model.time import S_PER_H
from gridshift.plan.after_horizon import later_hours
from gridshift.plan.asap import Asap
from gridshift.plan.base import Decision, Observation
from gridshift.plan.classes import build_classes
from gridshift.plan.habit import Q_LEVELS, HabitRecord, PairTrack, ResidualSpread, pair_shift_pays, run_cost, shift_pays
from gridshift.plan.habit_record import DecisionRecord
from gridshift.plan.lp_policy import LpPolicy
from gridshift.plan.start_times import start_slots
from gridshift.world.arrays import Signals, World


def due_starts(obs: Observation, jobs: np.ndarray, slot: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Waiting non-interruptible jobs whose planned start slot has come (or passed), with their pools."""
    due = (slot <= obs.t) & (obs.running_pool[jobs] < 0) & ~obs.has_started[jobs]
    due &= np.isin(jobs, obs.active)
    return jobs[due], pool[due]


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
    a = np.asarray(a, dtype=float)
    lengths = np.asarray(lengths, dtype=np.int64)
    if a.shape[-1] == 0 or lengths.size == 0:
        return np.zeros(a.shape[:-1] + (lengths.size,))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if how == "mean":
        return np.add.reduceat(a, starts, axis=-1) / lengths
    return {"min": np.minimum, "max": np.maximum}[how].reduceat(a, starts, axis=-1)


def _extend(a: np.ndarray, n: int) -> np.ndarray:
    """``a[..., :n]``, holding the last value when ``a`` is shorter."""
    if a.shape[-1] >= n:
        return a[..., :n]
    pad = np.repeat(a[..., -1:], n - a.shape[-1], axis=-1)
    return np.concatenate([a, pad], axis=-1)


# The do-no-harm rule by default: the track record of its own shadow decisions (plan/habit_record.py), z 1 — on
# the nightly ±8 h job under blend it beat the pair rule in every quarter measured out of the 2023Q1 sample
# (Germany and Great Britain, 2022Q1 and 2023Q4; docs/guide/policies.md). The record also judges moves like
# today's (within RECORD_MOVE_H of it) on their own, with a margin of RECORD_MARGIN (0.25 % of the habit's cost):
# across the 128 zone-quarters of benchmarks/bench_nightly_zones.py the pooled record alone lost in 5, on moves
# it had never tested and where following gained too little to be told from noise (docs/guide/policies.md).
HABIT_SPREAD = "record"
HABIT_MARGIN = 0.0  # the other rules' margin
RECORD_MARGIN = 0.0025
RECORD_MOVE_H = 1.0
HABIT_Z = 1.0
# the pair rule's z (and the residual and quantile rules'): of the grid (margin 0, 0.03 × z 0, 0.5, 1, 1.5, 2),
# the point never negative with the best mean timing saving of the nightly ±8 h job in Germany and Great Britain
# over the fourth quarter of 2023 under blend, seasonal-naive, persistence and lead-error
# (benchmarks/bench_nightly_habit.py --part backtest/select)
PAIR_Z = 1.5
HABIT_DAYS = 28  # days of shadow decisions (record) or of past forecasts (pair) the rule learns from
# mpc plans one class per job when at most this many interruptible jobs are active; off by default: where jobs do
# not compete (Scenario II-style jobs, benchmarks/bench_ml_jobs.py) 100 brings mpc within 0.2 point of the per-job
# optimum, but on examples/planner/ml-training.yaml (three weeks) it saved 13.4 % instead of 14.9 % and took 9x as long
PER_JOB_LIMIT = 0
# at most this many waiting non-interruptible jobs (earliest deadlines first) get start-time columns in one plan; the
# rest are class work: with 10,000 active jobs the columns made one epoch 16 s instead of 1.4 s
START_JOB_LIMIT = 200
HABIT_SPREADS = ("record", "pair", "residual", "quantiles")


class Mpc(LpPolicy):
    """Rolling-horizon LP planner. Jobs with a habitual start (``nominal_start_s``) keep it unless the
    forecast has paid: by default (``habit_spread="record"``, :mod:`gridshift.plan.habit_record`) a habit job
    follows the start its first plan chose, and is held to it, only while the shadow decisions of the last
    ``habit_days`` days gained more than ``habit_margin`` by ``habit_z`` standard errors, both over all of them and
    over those that moved the job within ``habit_move_h`` hours of today's move (null: all only); the other rules
    (:mod:`gridshift.plan.habit`) weigh each move's forecast gain against a spread — that of its own past
    forecasts' error of the same move's gain (``"pair"``), the RMS error per lead of its past forecasts
    (``"residual"``) or the forecaster's conformal quantiles (``"quantiles"``, slower); ``habit=False`` turns the
    rule off. Waiting non-interruptible jobs are planned as a choice of start time
    (:mod:`gridshift.plan.start_times`), priced over their whole run from forecasts up to ``start_horizon_h``
    ahead; with at most ``per_job_limit`` interruptible jobs to plan, each is its own class."""

    name = "mpc"
    # HiGHS without presolve: on the rolling LPs (24,000-57,000 columns, 3,200-3,900 rows) it took 13-17 % less
    # CPU (cold solves of the gigawatt fleet's first epochs and of bench_plan_epoch.py's at 100,000 jobs)
    lp_options = {"presolve": "off"}

    def __init__(self, forecast: str = DEFAULT_MODEL, horizon_h: int = 48, epoch_h: int = 1, fine_h: int = 12,
                 block_h: int = 6, forecast_params: dict | None = None, risk_quantile: float | None = None,
                 habit: bool = True, habit_margin: float | None = None, habit_z: float | None = None,
                 habit_spread: str = HABIT_SPREAD, habit_days: int = HABIT_DAYS,
                 habit_move_h: float | None = RECORD_MOVE_H, per_job_limit: int = PER_JOB_LIMIT,
                 start_horizon_h: int = 168, long_horizon_h: int = 96, start_job_limit: int = START_JOB_LIMIT,
                 **params: Any) -> None:
        if horizon_h < 1 or epoch_h < 1 or fine_h < 0 or block_h < 1:
            raise PlanError("horizon_h, epoch_h and block_h must be >= 1 and fine_h >= 0", field="params")
        if risk_quantile is not None and not 0.5 <= risk_quantile < 1:
            raise PlanError("risk_quantile must be in [0.5, 1)", field="params.risk_quantile")
        if habit_z is None:
            habit_z = HABIT_Z if habit_spread == "record" else PAIR_Z
        if habit_margin is None:
            habit_margin = RECORD_MARGIN if habit_spread == "record" else HABIT_MARGIN
        if habit_move_h is not None and not (np.isfinite(habit_move_h) and habit_move_h >= 0):
            raise PlanError("habit_move_h must be finite and >= 0 (or null: the pooled record only)",
                            field="params.habit_move_h")
        if not (np.isfinite(habit_margin) and habit_margin >= 0 and np.isfinite(habit_z) and habit_z >= 0):
            raise PlanError("habit_margin and habit_z must be finite and >= 0", field="params.habit_margin")
        if habit_spread not in HABIT_SPREADS:
            raise PlanError(f"habit_spread must be one of {', '.join(map(repr, HABIT_SPREADS))}",
                            field="params.habit_spread")
        if int(habit_days) < 1:
            raise PlanError("habit_days must be >= 1", field="params.habit_days")
        super().__init__(forecast=forecast, horizon_h=horizon_h, epoch_h=epoch_h, fine_h=fine_h, block_h=block_h,
                         forecast_params=forecast_params, risk_quantile=risk_quantile, habit=habit,
                         habit_margin=habit_margin, habit_z=habit_z, habit_spread=habit_spread, habit_days=habit_days,
                         habit_move_h=habit_move_h, per_job_limit=per_job_limit, start_horizon_h=start_horizon_h,
                         long_horizon_h=long_horizon_h,
                         start_job_limit=start_job_limit, **params)
        self.per_job_limit, self.start_horizon_h = int(per_job_limit), int(start_horizon_h)
        self.long_horizon_h = int(long_horizon_h)
        self.start_job_limit = max(0, int(start_job_limit))
        self.habit, self.habit_margin, self.habit_z = bool(habit), float(habit_margin), float(habit_z)
        self.habit_spread, self.habit_days = habit_spread, int(habit_days)
        self.habit_move_h = None if habit_move_h is None else float(habit_move_h)
        self.forecaster = make_forecaster(forecast, **(forecast_params or {}))
        self.forecast_key = forecaster_key(forecast, forecast_params)
        self.risk_quantile = risk_quantile
        if risk_quantile is not None and not hasattr(self.forecaster, "predict_quantiles"):
            raise PlanError(f"forecaster '{forecast}' gives no quantiles, so risk_quantile cannot be used",
                            field="params.risk_quantile")
        if habit_spread == "quantiles" and not hasattr(self.forecaster, "predict_quantiles"):
            raise PlanError(f"forecaster '{forecast}' gives no quantiles, so habit_spread 'quantiles' cannot be used",
                            field="params.habit_spread")
        self.horizon_h, self.epoch_h, self.fine_h, self.block_h = horizon_h, epoch_h, fine_h, block_h
        self._plan = None

    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        self.signals = signals
        self._plan = None
        self._starts = (np.zeros(0, np.int64),) * 3  # waiting non-interruptible jobs, start slot, pool
        self._fallback = Asap()
        self._fallback.reset(world, signals)
        if isinstance(self.forecaster, Perfect | DayAhead):
            self._actual = {n: getattr(signals, n) for n in ("carbon_g_per_kwh", "price_usd_per_mwh")}
        if isinstance(self.forecaster, DayAhead):  # it reads published day-ahead prices: where and when
            self.forecaster.zones = tuple(signals.zone_ids)
            self.forecaster.slot_s = int(signals.slot_duration_s)
            self.forecaster.t0 = signals.slot_starts[0] - np.timedelta64(
                int(signals.lookback_slots * signals.slot_duration_s), "s")
        nominal = world.jobs.nominal_start_s
        self._habit_jobs = np.flatnonzero(np.isfinite(nominal)) if self.habit else np.zeros(0, np.int64)
        self._record = HabitRecord()
        self._residual = ResidualSpread()
        self._pairs = PairTrack(int(round(24 / world.slot_h)), self.habit_days)
        self._habit_fc = None
        # the pair and residual rules learn from a forecast at every epoch, so only without them is an idle
        # epoch (no active job, no service) skipped
        self._idle_ok = not self._habit_jobs.size or self.habit_spread == "record"
        move = None if self.habit_move_h is None else int(round(self.habit_move_h / world.slot_h))
        self._decisions = DecisionRecord(int(round(24 / world.slot_h)), self.habit_days, self.habit_margin,
                                         self.habit_z, move_slots=move)

    def stats(self) -> dict[str, float]:
        out = super().stats()
        out.update(self._record.stats(int(self._habit_jobs.size)))
        if self.habit_spread == "record" and self._habit_jobs.size:
            out.update(self._decisions.stats())
        return out

    def _pending_habit(self, obs: Observation) -> np.ndarray:
        """Habit jobs waiting to start whose nominal start has not passed."""
        if not self._habit_jobs.size:
            return self._habit_jobs
        jt = obs.world.jobs
        j = np.intersect1d(obs.active, self._habit_jobs)
        j = j[~obs.has_started[j] & (obs.running_pool[j] < 0)]
        if self.habit_spread == "record":  # held to the start decided when first planned, habit or not
            return j
        return j[np.round(jt.nominal_start_s[j] / obs.world.slot_duration_s) >= obs.t]

    def _habit_forecast(self, obs: Observation, H: int, ci: np.ndarray, pr: np.ndarray) -> None:
        """Expected unit cost and its spread per site and slot over the horizon, for the do-no-harm rule."""
        uc = self.unit_cost_sites(ci, pr)
        if self.habit_spread == "pair":
            self._pairs.add(obs.t, uc)
        elif self.habit_spread != "record":
            self._residual.add(obs.t, uc)
        if not self._pending_habit(obs).size:
            self._habit_fc = None
            return
        if self.forecaster.name == "perfect" or self.habit_spread in ("pair", "record"):
            sd = np.zeros_like(uc)  # pair, record: judged in _do_no_harm from a track record
        elif self.habit_spread == "quantiles":
            def quant(name: str, point: np.ndarray) -> np.ndarray:
                if (name == "carbon_g_per_kwh") == (self.objective.kind == "cost"):  # not in the objective
                    return np.repeat(point[:, :, None], len(Q_LEVELS), axis=2)
                return shared(obs.signals, (self.forecast_key, name, H, Q_LEVELS), obs.t,
                              lambda: self.forecaster.predict_quantiles(
                                  obs.signals.history(name, obs.t), H, t_abs=obs.signals.lookback_slots + obs.t,
                                  slots_per_h=self.sph, levels=Q_LEVELS))
            qc, qp = quant("carbon_g_per_kwh", ci), quant("price_usd_per_mwh", pr)
            lo, mid, hi = (self.unit_cost_sites(qc[:, :, i], qp[:, :, i]) for i in range(3))
            sd = (hi - lo) / (2.0 * 1.2815515655446004)
            uc, sd = mid, np.where(sd > 0, sd, np.nan)  # no calibration yet: the spread is unknown
        else:
            L = obs.signals.lookback_slots
            act = self.unit_cost_sites(obs.signals.history("carbon_g_per_kwh", obs.t),
                                       obs.signals.history("price_usd_per_mwh", obs.t))
            sd = self._residual.sd(obs.t, act, L, H)
        self._habit_fc = (obs.t, uc, sd)

    def _habit_site(self, w: World, j: int) -> int:
        f = w.fleet
        pools = np.flatnonzero(w.jobs.speed[j, f.pool_type] > 0)
        return int(f.pool_site[pools[0]]) if pools.size else 0

    def planned_start_slot(self, obs: Observation, j: int) -> int | None:
        """The slot the current plan next gives work to job ``j`` after this one (None: no plan yet, or not
        within the horizon); the live service reports it for jobs left waiting."""
        return None if self._plan is None else self._planned_start(obs, j)

    def _planned_start(self, obs: Observation, j: int) -> int | None:
        """The slot the current plan first gives work to job ``j``'s class after this one (None: not in the
        horizon)."""
        t0, lengths, classes, sol, _ = self._plan
        hit = np.flatnonzero(classes.jobs == j)
        if not hit.size:
            r_jobs, r_slot, _ = self._starts
            at = np.flatnonzero(r_jobs == j)
            return int(r_slot[at[0]]) if at.size and obs.t < r_slot[at[0]] < t0 + lengths.sum() else None
        c = classes.member[hit[0]]
        ends = np.cumsum(lengths)
        per = int(np.searchsorted(ends, obs.t - t0, side="right"))
        work = sol.x[c].sum(axis=(0, 2))  # [T]
        later = np.flatnonzero(work[per + 1:] > 1e-6)
        return None if not later.size else t0 + int(ends[per + later[0]])

    def _do_no_harm(self, obs: Observation, dec: Decision) -> tuple[np.ndarray, np.ndarray]:
        """Habit jobs to hold back now (the plan starts them early without a clear gain) and to start now
        (their nominal start has come and the plan's later start is not clearly better)."""
        pending = self._pending_habit(obs)
        if not pending.size or self._habit_fc is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        if self.habit_spread == "record":
            return self._held_to_record(obs, dec, pending)
        w, f, jt = obs.world, obs.world.fleet, obs.world.jobs
        t_fc, uc, sd = self._habit_fc
        hold, force, act = [], [], None
        pair = self.habit_spread == "pair" and self.forecaster.name != "perfect"
        for j in pending:
            j = int(j)
            n_slot = int(np.round(jt.nominal_start_s[j] / w.slot_duration_s))
            best = float(jt.speed[j].max())
            run_h = float(obs.remaining_acc_h[j]) / max(float(jt.gang_max[j]) * best, 1e-12)
            r = max(1, int(np.ceil(run_h / w.slot_h - 1e-9)))
            if n_slot * w.slot_duration_s + run_h * S_PER_H > jt.deadline_s[j] + 1e-6:
                continue  # the habit cannot meet the deadline: plan freely
            where = np.flatnonzero(dec.job_idx == j)
            started = where.size > 0
            if started and n_slot > obs.t:
                site = int(f.pool_site[dec.job_pool[where[0]]])
                alt = obs.t
            elif not started and n_slot == obs.t:
                site = self._habit_site(w, j)
                alt = self._planned_start(obs, j)
            else:
                continue
            self._record.jobs.add(j)
            e_n, s_n = run_cost(uc, sd, site, n_slot - t_fc, r)
            e_a, s_a = run_cost(uc, sd, site, alt - t_fc, r) if alt is not None else (float("nan"),) * 2
            if pair and alt is not None:
                if act is None:
                    act = self.unit_cost_sites(obs.signals.history("carbon_g_per_kwh", obs.t),
                                               obs.signals.history("price_usd_per_mwh", obs.t))
                p_k, y_k = self._pairs.record(t_fc, site, n_slot, alt, r, act, obs.signals.lookback_slots)
                ok, gain = pair_shift_pays(e_n, e_n - e_a, p_k, y_k, self.habit_margin, self.habit_z)
            else:
                ok, gain = shift_pays(e_n, s_n, e_a, s_a, self.habit_margin, self.habit_z)
            if ok:
                k = int(np.argmax(jt.speed[j, f.pool_type]))
                k = int(f.pool_type[k])
                mwh = float(jt.gang_max[j]) * max(f.board_power_w[k] - f.idle_power_w[k], 0.0) * f.pue[site] / 1e6 \
                    * run_h
                self._record.shifted[j] = (gain / e_n if e_n > 0 else 0.0, gain * mwh)
            else:
                self._record.kept.add(j)
                (hold if started else force).append(j)
        return np.array(hold, np.int64), np.array(force, np.int64)

    def _held_to_record(self, obs: Observation, dec: Decision, pending: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Habit jobs to hold back and to start now under the track-record rule
        (:mod:`gridshift.plan.habit_record`): each waiting habit job is held to the start decided when it was
        first planned — its plan's choice while following the forecast has paid, its habit otherwise."""
        w, f, jt = obs.world, obs.world.fleet, obs.world.jobs
        rec = self._decisions
        act = self.unit_cost_sites(obs.signals.history("carbon_g_per_kwh", obs.t),
                                   obs.signals.history("price_usd_per_mwh", obs.t))
        rec.settle(obs.t, act, obs.signals.lookback_slots)
        t_fc, uc, _ = self._habit_fc
        exact = self.forecaster.name == "perfect"
        hold, force = [], []
        for j in pending:
            j = int(j)
            started = bool(np.any(dec.job_idx == j))
            if j not in rec.target:
                n_slot = int(np.round(jt.nominal_start_s[j] / w.slot_duration_s))
                best = float(jt.speed[j].max())
                run_h = float(obs.remaining_acc_h[j]) / max(float(jt.gang_max[j]) * best, 1e-12)
                r = max(1, int(np.ceil(run_h / w.slot_h - 1e-9)))
                if n_slot < obs.t or n_slot * w.slot_duration_s + run_h * S_PER_H > jt.deadline_s[j] + 1e-6:
                    rec.target[j] = None  # the habit cannot be kept: plan freely
                    continue
                site = self._habit_site(w, j)
                plan = obs.t if started else self._planned_start(obs, j)
                tgt = rec.decide(j, obs.t, site, n_slot, plan, r, exact)
                self._record.jobs.add(j)
                e_n, _ = run_cost(uc, np.zeros_like(uc), site, n_slot - t_fc, r)
                e_a, _ = run_cost(uc, np.zeros_like(uc), site, tgt - t_fc, r)
                if tgt != n_slot and np.isfinite(e_n) and np.isfinite(e_a):
                    k = int(f.pool_type[int(np.argmax(jt.speed[j, f.pool_type]))])
                    mwh = float(jt.gang_max[j]) * max(f.board_power_w[k] - f.idle_power_w[k], 0.0) \
                        * f.pue[site] / 1e6 * run_h
                    self._record.shifted[j] = ((e_n - e_a) / e_n if e_n > 0 else 0.0, (e_n - e_a) * mwh)
                elif tgt == n_slot:
                    self._record.kept.add(j)
            tgt = rec.target[j]
            if tgt is None:
                continue
            if started and tgt > obs.t:
                hold.append(j)
            elif not started and tgt <= obs.t:
                force.append(j)
        return np.array(hold, np.int64), np.array(force, np.int64)

    def _forecast(self, obs: Observation, name: str, H: int) -> np.ndarray:
        if isinstance(self.forecaster, Perfect):
            self.forecaster.actual = self._actual[name]
            return self.forecaster.predict(obs.signals.history(name, obs.t), H,
                                           t_abs=obs.signals.lookback_slots + obs.t, slots_per_h=self.sph)
        if isinstance(self.forecaster, DayAhead):
            self.forecaster.signal, self.forecaster.actual = name, self._actual[name]
        return shared(obs.signals, (self.forecast_key, name, H), obs.t, lambda: self.forecaster.predict(
            obs.signals.history(name, obs.t), H, t_abs=obs.signals.lookback_slots + obs.t, slots_per_h=self.sph))

    def _forecast_long(self, obs: Observation, name: str, H: int, Hs: int) -> np.ndarray:
        """``Hs`` slots ahead for pricing runs past the planning horizon: perfect forecasts read the actual
        series; any other forecaster's ``H``-slot forecast is extended by repeating its last day (beyond two days
        a forecaster knows little more than the daily shape, and forecasting a week every epoch is slow)."""
        if isinstance(self.forecaster, Perfect) or Hs <= H:
            return self._forecast(obs, name, Hs)
        base = self._forecast(obs, name, H)
        day = min(int(round(24 * self.sph)), base.shape[-1])
        reps = -(-(Hs - H) // day)
        return np.concatenate([base, np.tile(base[..., -day:], reps)[..., :Hs - H]], axis=-1)

    def _demand(self, obs: Observation, H: int) -> np.ndarray:
        svc = obs.world.services
        if not svc.n:
            return np.zeros((0, 0, H))
        N, R, T = svc.demand_rps.shape
        flat = svc.demand_rps.reshape(N * R, T)
        if isinstance(self.forecaster, DayAhead):
            self.forecaster.signal = "demand_rps"
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

    def _split(self, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The active jobs as (running jobs that may not be paused or moved — pinned; waiting non-interruptible
        jobs planned as start times — the ``start_job_limit`` earliest deadlines; the rest — class work)."""
        w, act = obs.world, obs.active
        running = act[obs.running_pool[act] >= 0]
        rigid = running[obs.rigid(running)]
        waiting = act[~w.jobs.interruptible[act] & (obs.running_pool[act] < 0)]
        if waiting.size > self.start_job_limit:  # the most urgent as start times, the rest as class work (LP size)
            waiting = np.sort(waiting[np.argsort(w.jobs.deadline_s[waiting], kind="stable")[:self.start_job_limit]])
        return rigid, waiting, np.setdiff1d(act, np.concatenate([rigid, waiting]))

    def _pinned(self, obs: Observation, lengths: np.ndarray, rigid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Accelerators and facility MW held by the pinned running jobs ``rigid`` per pool/site and period."""
        w, f, jt = obs.world, obs.world.fleet, obs.world.jobs
        P, T = f.n_pools, lengths.size
        acc, mw = np.zeros((P, T)), np.zeros((f.n_sites, T))
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
        return acc, mw

    def _replan(self, obs: Observation) -> None:
        w, f = obs.world, obs.world.fleet
        H = self.horizon_h * self.sph
        rigid, waiting, jobs = self._split(obs)
        per_job = jobs.size <= self.per_job_limit
        # with few jobs to plan (each its own class) the LP is small: hourly periods over a horizon that reaches the
        # last of their deadlines (up to long_horizon_h), so an interruptible job sees the cheapest hours of every
        # day it may use, not a block's mean
        fine_h = self.fine_h
        if per_job:
            dl = w.jobs.deadline_s[obs.active]
            dl = dl[np.isfinite(dl)]
            if dl.size:
                need = int(np.ceil((dl.max() - obs.now_s) / w.slot_duration_s - 1e-9))
                H = int(np.clip(need, H, max(self.long_horizon_h, self.horizon_h) * self.sph))
            fine_h = H // self.sph + 1
        lengths = period_slots(H, self.sph, fine_h, self.block_h)
        dur_h = lengths * w.slot_h
        start_s = obs.now_s + np.concatenate([[0], np.cumsum(lengths)[:-1]]) * w.slot_duration_s
        end_s = obs.now_s + np.cumsum(lengths) * w.slot_duration_s
        H0 = min(H, self.horizon_h * self.sph)  # a forecaster is asked for horizon_h at most (_forecast_long)
        ci_fine = self._forecast_long(obs, "carbon_g_per_kwh", H0, H)
        pr_fine = self._forecast_long(obs, "price_usd_per_mwh", H0, H)
        ci, pr = _per_period(ci_fine, lengths, "mean"), _per_period(pr_fine, lengths, "mean")
        if self._habit_jobs.size:
            self._habit_forecast(obs, H, ci_fine, pr_fine)
        uc = self.unit_cost_sites(ci, pr)
        cap = _per_period(_extend(w.site_cap_mw(obs.t, obs.t, H), H), lengths, "min")
        demand = _per_period(self._demand(obs, H), lengths, "max") if w.services.n else np.zeros((0, 0, lengths.size))
        pin_acc, pin_mw = self._pinned(obs, lengths, rigid)
        last = obs.last_pool[jobs]
        home = np.where((last >= 0) & ~w.jobs.migratable[jobs], f.pool_site[np.maximum(last, 0)], -1)
        classes = build_classes(w, jobs, obs.remaining_acc_h, home, self.sig, start_s, end_s, self.max_delay_h,
                                per_job=per_job)
        busy_now = np.bincount(np.maximum(obs.running_pool[jobs], 0), weights=np.where(
            obs.running_pool[jobs] >= 0, obs.running_gang[jobs], 0), minlength=f.n_pools).astype(float)
        inter = jobs[w.jobs.interruptible[jobs]]
        pause_h = float(np.mean(w.jobs.checkpoint_overhead_s[inter] + w.jobs.restart_overhead_s[inter]) / S_PER_H) \
            if inter.size else 0.0
        prob = self.problem(classes, dur_h, uc, cap, demand, pin_acc, pin_mw, busy_now, pause_h, obs.now_s)
        # a start's cost over its whole run, the best start after the horizon and single-job classes' work
        # after it: forecasts up to the last of their deadlines (at most start_horizon_h ahead)
        later = np.concatenate([waiting, jobs if classes.n == jobs.size else jobs[:0]])
        Hs = H
        if later.size:
            dl = w.jobs.deadline_s[later]
            dl = np.where(np.isfinite(dl), dl, w.jobs.arrival_s[later] + self.max_delay_h * S_PER_H)
            Hs = int(np.clip(np.ceil((dl.max() - obs.now_s) / w.slot_duration_s), H, self.start_horizon_h * self.sph))
        if Hs > H:
            ci_fine, pr_fine = self._forecast_long(obs, "carbon_g_per_kwh", H0, Hs), \
                self._forecast_long(obs, "price_usd_per_mwh", H0, Hs)
        uc_fine = self.unit_cost_sites(ci_fine, pr_fine)
        self.add_starts(prob, waiting, obs.remaining_acc_h, obs.now_s, np.arange(H) * w.slot_h, uc_fine)
        prob.later = later_hours(w, classes, obs.now_s, float(dur_h.sum()), uc_fine, w.slot_h)
        sol = self.solve(prob)
        self._starts = start_slots(prob.starts, sol.y, sol.y_left, obs.t, w.slot_h)
        self.note_shortfalls(sol, w.slot_starts[[min(obs.t, w.n_slots - 1)]], range(1))
        k = f.pool_type
        order = np.argsort(uc[f.pool_site, 0] * (f.board_power_w[k] + f.host_power_w[k]) * f.pue[f.pool_site])
        self._plan = (obs.t, lengths, classes, sol, order)
        self._cum_work = self.planned_work(classes, sol, dur_h)

    def decide(self, obs: Observation) -> Decision:
        if not obs.active.size and not obs.world.services.n and self._idle_ok:  # nothing to plan: no LP, no forecast
            self._plan = None
            return self._fallback.decide(obs)
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
        start, pool = due_starts(obs, *self._starts)
        covered = self.covered_jobs(obs, classes, self._cum_work, per)
        dec = self.round_plan(obs, classes, sol.x[:, :, per, :], sol.f[:, :, :, per], order, force=start,
                              force_pool=pool, covered=covered)
        if not self._habit_jobs.size:
            return dec
        hold, force = self._do_no_harm(obs, dec)
        if not hold.size and not force.size:
            return dec
        held = replace(obs, active=np.setdiff1d(obs.active, hold)) if hold.size else obs
        keep = ~np.isin(start, hold) & ~np.isin(start, force)
        return self.round_plan(held, classes, sol.x[:, :, per, :], sol.f[:, :, :, per], order,
                               force=np.concatenate([force, start[keep]]),
                               force_pool=np.concatenate([np.full(force.size, -1), pool[keep]]), covered=covered)


class Oracle(LpPolicy):
    """Perfect foresight of signals and of every job's arrival: one LP over the whole period (periods of
    ``block_h`` hours, default 1), deadlines counted up to the period that contains them (a relaxation)."""

    name = "oracle"

    def __init__(self, block_h: int = 1, bound: bool = True, max_columns: int = 300_000,
                 time_limit_s: float = 600.0,
                 candidates: tuple[str, ...] | list[str] = ("lp", "rolling", "per-job", "policies"),
                 **params: Any) -> None:
        if block_h < 1 or max_columns < 1000:
            raise PlanError("block_h must be >= 1 and max_columns >= 1000", field="params")
        candidates = tuple(candidates)
        if not set(candidates) & {"lp", "rolling", "per-job"} or set(candidates) - {"lp", "rolling", "per-job",
                                                                                     "policies"}:
            raise PlanError("candidates must name one or more of 'lp', 'rolling', 'per-job' (and may add "
                            "'policies')", field="params.candidates")
        super().__init__(forecast="perfect", block_h=block_h, bound=bound, max_columns=max_columns,
                         time_limit_s=time_limit_s, candidates=candidates, **params)
        self.candidates = candidates
        self.block_h = block_h
        self.bound = bound
        self.max_columns = max_columns
        self.lp_bound = float("nan")

    def _layout(self, world: World) -> tuple[np.ndarray, int, bool]:
        """Period lengths, deadline bucket and whether classes are single jobs: hourly periods and one class
        per job unless the LP would exceed ``max_columns``; then jobs are pooled into classes by deadline,
        deadlines are bucketed, and periods lengthened, until it fits. Non-interruptible jobs count as start
        times (one column per job, pool and candidate start)."""
        T = world.n_slots
        jt = world.jobs
        n_pools = np.array([(jt.speed[:, world.fleet.pool_type] > 0).sum(axis=1)]).ravel()  # pools per job
        dl = np.where(np.isfinite(jt.deadline_s), jt.deadline_s, jt.arrival_s + self.max_delay_h * S_PER_H)
        inter = jt.interruptible
        for block_h in (self.block_h, 2 * self.block_h, 3 * self.block_h, 6 * self.block_h, 12 * self.block_h):
            per = max(1, block_h * self.sph)
            lengths = np.full(T // per, per, dtype=np.int64)
            if T % per:
                lengths = np.append(lengths, T % per)
            window = np.minimum((dl - jt.arrival_s) / S_PER_H / block_h, lengths.size)
            rigid_cols = float((window * n_pools)[~inter].sum())
            late = np.minimum(window + self.late_window_h / block_h, lengths.size)
            if block_h == self.block_h and float((late * n_pools)[inter].sum()) * self.levels.size + rigid_cols \
                    <= self.max_columns:
                return lengths, 1, True
            for bucket in (1, 3, 6, 12, 24):
                # columns ~ classes x window x pools x levels; classes ~ distinct (deadline bucket, signature)
                d_per = np.minimum((dl // (per * world.slot_duration_s)) // bucket, 10 ** 9)
                keys = np.unique(np.stack([d_per, self.sig], axis=1)[inter], axis=0).shape[0]
                est = keys * float(np.mean(np.minimum(late + bucket, lengths.size))) * float(n_pools.mean()) \
                    * self.levels.size + rigid_cols
                if est <= self.max_columns:
                    return lengths, bucket, False
        return lengths, bucket, False

    def reset(self, world: World, signals: Signals) -> None:
        super().reset(world, signals)
        f = world.fleet
        T = world.n_slots
        lengths, bucket, per_job = self._layout(world)
        self.layout = {"period_h": float(lengths[0] * world.slot_h), "deadline_bucket_periods": bucket,
                       "class_per_job": per_job}
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
        inter = jobs[world.jobs.interruptible]
        classes = build_classes(world, inter, work, np.full(inter.size, -1), self.sig, start_s, end_s,
                                self.max_delay_h, bucket_periods=bucket, per_job=per_job)
        prob = self.problem(classes, lengths * world.slot_h, uc, cap, demand, *no_pin, None, 0.0, 0.0)
        uc_fine = self.unit_cost_sites(signals.carbon_g_per_kwh[:, L:L + T], signals.price_usd_per_mwh[:, L:L + T])
        self.add_starts(prob, jobs[~world.jobs.interruptible], work, 0.0, start_s / S_PER_H, uc_fine)
        sol = self.solve(prob)
        self._starts = start_slots(prob.starts, sol.y, sol.y_left, 0, world.slot_h)
        self.note_shortfalls(sol, world.slot_starts[start_s.astype(np.int64) // world.slot_duration_s],
                             range(lengths.size))
        if self.bound:
            # the bound: deadlines counted up to the period that contains them, nothing forced into the period
            relaxed = build_classes(world, jobs, work, np.full(jobs.size, -1), self.sig, start_s, end_s,
                                    self.max_delay_h, deadline_rounding="up", bucket_periods=bucket, per_job=per_job)
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
        self._cum_work = self.planned_work(classes, sol, lengths * world.slot_h)

    def stats(self) -> dict[str, float]:
        out = super().stats()
        out["lp_bound_objective"] = self.lp_bound
        out.update({f"oracle_{k}": v for k, v in self.layout.items()})
        return out

    def decide(self, obs: Observation) -> Decision:
        lengths, classes, sol, order = self._plan
        per = int(np.searchsorted(np.cumsum(lengths), obs.t, side="right"))
        start, pool = due_starts(obs, *self._starts)
        return self.round_plan(obs, classes, sol.x[:, :, per, :], sol.f[:, :, :, per], order, force=start,
                               force_pool=pool, covered=self.covered_jobs(obs, classes, self._cum_work, per))
