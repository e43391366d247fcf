"""Do no harm: mpc keeps a job's habitual start unless the forecast, with its uncertainty, clearly beats it."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecaster
from gridshift.forecast.registry import FORECASTERS
from gridshift.model.scenario import RecurringJobs
from gridshift.plan.habit import ResidualSpread, shift_pays
from gridshift.plan.mpc import Mpc
from gridshift.sim.engine import simulate
from gridshift.workloads.templates import recurring_jobs
from worldkit import make_fleet, make_jobs, make_signals, make_world

LOOKBACK = 48
DAYS = 6
H = 24


def _carbon(seed: int = 7, days: int = DAYS) -> np.ndarray:
    """Hourly carbon with a clear evening peak, a cheaper early morning, 01:00 in between; no ties."""
    rng = np.random.default_rng(seed)
    hod = np.arange(LOOKBACK + days * H) % H
    base = np.where((hod >= 17) & (hod <= 22), 160.0, np.where((hod >= 3) & (hod <= 6), 70.0, 110.0))
    return base + rng.uniform(-8, 8, hod.size) + 5 * (np.arange(hod.size) // H % 2)


def _world(carbon: np.ndarray, habit: bool = True, days: int = DAYS):
    """One 30-minute 8-accelerator nightly job per day: nominal 01:00, window ±8 h (like the recurring template)."""
    nominal = np.arange(1, days) * H * 3600.0 + 3600.0  # 01:00 of days 1..days-1
    jobs = make_jobs(arrival_s=nominal - 8 * 3600, work_acc_h=(4.0,) * nominal.size, gang=8,
                     deadline_s=nominal + 8.5 * 3600, interruptible=[False] * nominal.size, migratable=False)
    if habit:
        jobs.nominal_start_s = nominal.copy()
    sig = make_signals(carbon, lookback=LOOKBACK)
    return make_world(make_fleet(((8,),), n_slots=days * H), jobs, sig), sig


def _run(carbon: np.ndarray, forecast: str, habit_jobs: bool = True, days: int = DAYS, **params):
    w, sig = _world(carbon, habit_jobs, days)
    params.setdefault("habit_spread", "pair")  # these tests are about the per-move rules (record: its own file)
    pol = Mpc(forecast=forecast, cap_levels=(1.0,), objective="carbon", **params)
    run = simulate(w, sig, pol)
    start = ((run.jobs["first_start"] - w.slot_starts[0]).dt.total_seconds() // 3600).astype(int).to_numpy()
    nominal = (np.arange(1, days) * H + 1).astype(int)
    ci = carbon[LOOKBACK:]
    return run, start, ci[start], ci[nominal]


class _Inverted(Forecaster):
    """Knows the level but ranks the hours backwards: the actual series mirrored about its mean."""

    name = "inverted"

    def __init__(self, actual: np.ndarray) -> None:
        self.actual = np.atleast_2d(actual)

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        a = self.actual[:, t_abs: t_abs + horizon]
        a = np.concatenate([a, np.repeat(a[:, -1:], horizon - a.shape[1], axis=1)], axis=1)
        return 2 * self.actual.mean() - a


class _OneHourWrong(Forecaster):
    """Exact at every hour but one: the evening hour ``hour`` (actually the dirtiest) is forecast as the cleanest.
    Its error per lead is small on average (one hour in 24), its ranking of that hour against 01:00 always wrong."""

    name = "one-hour-wrong"

    def __init__(self, actual: np.ndarray, hour: int = 18) -> None:
        self.actual, self.hour = np.atleast_2d(actual), hour

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        a = self.actual[:, t_abs: t_abs + horizon]
        a = np.concatenate([a, np.repeat(a[:, -1:], horizon - a.shape[1], axis=1)], axis=1).copy()
        a[:, (t_abs + np.arange(horizon) - LOOKBACK) % H == self.hour] = 5.0
        return a


def test_recurring_jobs_carry_their_nominal_start():
    spec = RecurringJobs(name="n", kind="batch-inference", tz="UTC", start_local_h=1, run_h=0.5, gang=8, window_h=8)
    t = recurring_jobs(spec, start=datetime(2023, 1, 1, tzinfo=UTC),
                       end=datetime(2023, 1, 10, tzinfo=UTC), type_names=("H100",),
                       speed_by_kind=np.ones((3, 1)))
    assert len(t) > 0
    np.testing.assert_allclose(t.nominal_start_s, t.arrival_s + 8 * 3600)
    assert np.all(t.nominal_start_s % 86400 == 3600)
    assert np.isnan(t.take(np.arange(2)).nominal_start_s).sum() == 0
    assert np.isnan(make_jobs(arrival_s=(0.0, 5.0)).nominal_start_s).all()  # no habit by default


def test_bad_nominal_start_is_rejected():
    t = make_jobs(arrival_s=(0.0,))
    t.nominal_start_s = np.array([-5.0])
    with pytest.raises(ValueError, match="nominal_start_s"):
        t.validate()


def test_wrong_ranking_keeps_the_habit_and_never_does_worse(monkeypatch):
    carbon = _carbon()
    monkeypatch.setitem(FORECASTERS, "inverted", lambda **p: _Inverted(carbon))
    run_off, _, got_off, nom = _run(carbon, "inverted", habit=False)
    assert got_off.sum() > nom.sum() * 1.05  # without the rule the backwards forecast costs carbon
    run, start, got, nom = _run(carbon, "inverted")
    assert np.all(got <= nom + 1e-9)  # never worse than the nominal start, job by job
    assert np.all(start % H == 1)  # every job at its habit
    m = run.metrics
    assert m["habit_jobs"] == DAYS - 1 and m["habit_shifted"] == 0 and m["habit_kept"] >= 1


def test_correct_forecast_shifts_and_gains():
    carbon = _carbon()
    run, start, got, nom = _run(carbon, "perfect")
    m = run.metrics
    assert m["habit_shifted"] == DAYS - 1
    assert got.sum() < 0.8 * nom.sum()  # the early-morning dip is found
    claimed = m["habit_expected_gain_frac"]
    actual = 1 - got.sum() / nom.sum()
    assert claimed == pytest.approx(actual, rel=0.1)
    assert m["habit_expected_gain"] > 0


def test_perfect_forecast_results_unchanged_by_the_rule():
    carbon = _carbon(seed=11)
    _, start_on, got_on, _ = _run(carbon, "perfect")
    _, start_off, got_off, _ = _run(carbon, "perfect", habit=False)
    np.testing.assert_array_equal(start_on, start_off)
    np.testing.assert_allclose(got_on, got_off)


def test_jobs_without_a_nominal_start_are_unaffected(monkeypatch):
    carbon = _carbon()
    monkeypatch.setitem(FORECASTERS, "inverted", lambda **p: _Inverted(carbon))
    run_on, start_on, _, _ = _run(carbon, "inverted", habit_jobs=False)
    _, start_off, _, _ = _run(carbon, "inverted", habit_jobs=False, habit=False)
    np.testing.assert_array_equal(start_on, start_off)
    assert run_on.metrics["habit_jobs"] == 0 and run_on.metrics["habit_shifted"] == 0


def test_shift_rule():
    assert shift_pays(100.0, 0.0, 99.0, 0.0, 0.5, 3.0)[0]  # exact forecast: any gain, margin irrelevant
    assert not shift_pays(100.0, 0.0, 100.0, 0.0, 0.0, 0.0)[0]  # no gain, no shift
    assert not shift_pays(100.0, 5.0, 90.0, 5.0, 0.0, 2.0)[0]  # 10 < 2 · 7.07
    assert shift_pays(100.0, 5.0, 90.0, 5.0, 0.0, 1.0)[0]  # 10 > 7.07
    assert not shift_pays(100.0, 5.0, 90.0, 5.0, 0.05, 1.0)[0]  # 10 < 7.07 + 5
    assert not shift_pays(100.0, float("nan"), 50.0, 1.0, 0.0, 0.0)[0]  # spread unknown: keep the habit


def test_residual_spread_from_past_forecasts():
    rs = ResidualSpread()
    actual = np.arange(100.0)[None, :]
    for t in range(30):
        rs.add(t, actual[:, t: t + 5] + np.array([0, 1, 2, 3, 4]))  # error grows with lead
    sd = rs.sd(30, actual[:, :31], 0, 6)
    np.testing.assert_allclose(sd[0, :5], [0, 1, 2, 3, 4])
    assert sd[0, 5] == sd[0, 4]  # beyond the leads seen the last spread holds
    assert np.isnan(ResidualSpread().sd(3, actual[:, :4], 0, 3)).all()


def test_bad_habit_parameters():
    with pytest.raises(PlanError, match="habit_margin"):
        Mpc(forecast="persistence", habit_margin=-1)
    with pytest.raises(PlanError, match="habit_spread"):
        Mpc(forecast="perfect", habit_spread="quantiles")


def test_a_wrongly_ranked_hour_pair_keeps_the_habit(monkeypatch):
    days = 10
    carbon = _carbon(days=days)
    monkeypatch.setitem(FORECASTERS, "one-hour-wrong", lambda **p: _OneHourWrong(carbon))
    _, start_off, got_off, nom = _run(carbon, "one-hour-wrong", days=days, habit=False)
    assert np.all(start_off % H == 18) and got_off.sum() > 1.3 * nom.sum()  # the plan trusts the wrong hour
    # the per-lead spread is too small to stop it: the residual rule (old defaults) still moves jobs there
    _, start_res, got_res, _ = _run(carbon, "one-hour-wrong", days=days, habit_spread="residual",
                                    habit_margin=0.1, habit_z=2.0)
    assert np.any(start_res % H == 18) and got_res.sum() > nom.sum()
    # the pair rule knows how this forecaster ranks 18:00 against 01:00: never worse, job by job
    run, start, got, nom = _run(carbon, "one-hour-wrong", days=days)
    assert not np.any(start % H == 18)
    assert np.all(got <= nom + 1e-9)
    m = run.metrics
    assert m["habit_jobs"] == days - 1 and m["habit_kept"] >= 1
    # where it has been exact (the early-morning dip against 01:00) it shifts once it has a track record
    assert m["habit_shifted"] >= 1 and got.sum() < nom.sum()


def test_pair_track_learns_the_error_of_a_move():
    from gridshift.plan.habit import MIN_PAIRS, PairTrack, pair_shift_pays

    actual = np.tile(np.array([[100.0, 80.0, 120.0, 90.0]]), (1, 10))  # day of 4 slots, repeated
    tr = PairTrack(day_slots=4, days=7)
    for t in range(36):
        f = actual[:, t: t + 4].copy()
        f[:, (t + np.arange(f.shape[1])) % 4 == 2] = 50.0  # slot 2 of each day forecast far too low
        tr.add(t, f)
    assert min(tr.fc) >= 36 - 1 - 8 * 4  # old forecasts dropped
    now = 35
    p_bad, y_bad = tr.record(32, 0, 33, 34, 1, actual[:, : now + 1], 0)  # move 80 -> forecast 50, actually 120
    assert p_bad.size == 7 and np.allclose(p_bad, 80 - 50) and np.allclose(y_bad, 80 - 120)
    p_ok, y_ok = tr.record(32, 0, 32, 33, 1, actual[:, : now + 1], 0)  # exact pair
    assert np.allclose(p_ok, y_ok) and np.allclose(y_ok, 20.0)
    ok, mu = pair_shift_pays(80.0, 30.0, p_bad, y_bad, 0.0, 0.0)
    assert not ok and mu == pytest.approx(-40.0)  # what this forecast gain has been worth: a loss of 40
    assert pair_shift_pays(100.0, 20.0, p_ok, y_ok, 0.5, 3.0)[0]  # exact so far: any gain
    assert not pair_shift_pays(100.0, 20.0, p_ok[: MIN_PAIRS - 1], y_ok[: MIN_PAIRS - 1], 0.0, 0.0)[0]  # too short
    pred = np.array([0.0, 10.0, 20.0, 30.0, 40.0, 50.0])
    act = 0.5 * pred + np.array([1.0, -1.0, 2.0, -2.0, 0.5, -0.5])  # a forecast gain is worth half of itself
    ok, mu = pair_shift_pays(100.0, 40.0, pred, act, 0.02, 1.0)
    assert ok and mu == pytest.approx(20.0, abs=1.5)
    assert not pair_shift_pays(100.0, 40.0, pred, act, 0.19, 1.0)[0]  # 20 − 1.7 < 19
    assert not pair_shift_pays(100.0, 4.0, pred, act, 0.02, 1.0)[0]
