"""Do no harm by track record: a habit job follows its plan only while following the forecast has paid."""

from __future__ import annotations

import numpy as np
import pytest
from test_habit import LOOKBACK, H, _carbon, _Inverted, _OneHourWrong, _run

from gridshift.errors import PlanError
from gridshift.forecast.registry import FORECASTERS
from gridshift.plan.habit_record import MIN_DECISIONS, DecisionRecord
from gridshift.plan.mpc import Mpc


def _record(**kw) -> DecisionRecord:
    return DecisionRecord(day_slots=4, days=kw.pop("days", 3), margin=kw.pop("margin", 0.0), z=kw.pop("z", 1.0),
                          min_decisions=kw.pop("min_decisions", 3), **kw)


def test_outcomes_come_true_only_after_both_runs_and_age_out():
    actual = np.array([[100.0, 80.0, 120.0, 90.0] * 6])  # [S=1, 24 slots]
    rec = _record()
    rec.pending.append((0, 0, 1, 2, 1))  # habit slot 1 (80), plan slot 2 (120): following loses 50 %
    rec.settle(1, actual[:, :2], 0)  # slot 2 not yet happened
    assert rec.outcomes == [] and len(rec.pending) == 1
    rec.settle(2, actual[:, :3], 0)
    assert rec.outcomes == [(0, pytest.approx(-0.5))] and rec.pending == []
    rec.settle(13, actual[:, :14], 0)  # more than days · day_slots = 12 slots later
    assert rec.outcomes == []


def test_follows_only_on_a_clear_record():
    rec = _record()
    assert not rec.follows()  # nothing known
    rec.outcomes = [(0, 0.1), (1, 0.12)]
    assert not rec.follows()  # fewer than min_decisions
    rec.outcomes.append((2, 0.11))
    assert rec.follows()
    rec.outcomes = [(0, 0.3), (1, -0.25), (2, 0.02)]  # positive mean, but not clear of its spread
    assert not rec.follows()
    rec.outcomes = [(0, -0.1), (1, -0.12), (2, -0.11)]
    assert not rec.follows()
    assert _record(margin=0.2).follows() is False


def test_decide_holds_to_the_plan_or_the_habit():
    rec = _record()
    assert rec.decide(7, now=0, site=0, habit=5, plan=2, run_slots=1, exact=False) == 5  # no record: habit
    assert rec.decide(8, now=0, site=0, habit=5, plan=2, run_slots=1, exact=True) == 2  # exact forecast: plan
    assert rec.decide(9, now=0, site=0, habit=5, plan=None, run_slots=1, exact=True) == 5  # beyond the horizon
    assert rec.followed == {7: False, 8: True, 9: True} and len(rec.pending) == 3  # shadows noted either way
    rec.outcomes = [(0, 0.1), (1, 0.12), (2, 0.11)]
    assert rec.decide(10, now=0, site=0, habit=5, plan=3, run_slots=1, exact=False) == 3


def test_a_backwards_forecast_never_costs_carbon(monkeypatch):
    days = 12
    carbon = _carbon(days=days)
    monkeypatch.setitem(FORECASTERS, "inverted", lambda **p: _Inverted(carbon))
    _, _, got_off, nom = _run(carbon, "inverted", days=days, habit=False)
    assert got_off.sum() > nom.sum() * 1.05
    run, start, got, nom = _run(carbon, "inverted", days=days, habit_spread="record")
    assert np.all(got <= nom + 1e-9) and np.all(start % H == 1)  # the record never lets it follow
    m = run.metrics
    assert m["habit_followed"] == 0 and m["habit_record_decisions"] >= 7
    assert m["habit_record_mean_gain_frac"] < 0  # the shadow decisions show what following would have cost


def test_a_forecast_that_pays_is_followed_once_its_record_is_clear(monkeypatch):
    days = 14
    carbon = _carbon(days=days)
    # exact except one evening hour that it wrongly calls the cleanest: its choices are wrong every day
    monkeypatch.setitem(FORECASTERS, "one-hour-wrong", lambda **p: _OneHourWrong(carbon))
    run, start, got, nom = _run(carbon, "one-hour-wrong", days=days, habit_spread="record")
    assert not np.any(start % H == 18) and np.all(got <= nom + 1e-9)
    # the level off by 30 g/kWh but the hours ranked right: not exact, so it must earn its record first
    monkeypatch.setitem(FORECASTERS, "biased", lambda **p: _Biased(carbon))
    run, start, got, nom = _run(carbon, "biased", days=days, habit_spread="record")
    m = run.metrics
    assert np.all(start[:MIN_DECISIONS] % H == 1)  # at the habit until enough shadow decisions came true
    assert m["habit_followed"] >= days - 1 - MIN_DECISIONS - 1 and got.sum() < 0.85 * nom.sum()
    run, _, got_exact, _ = _run(carbon, "perfect", days=days, habit_spread="record")
    assert run.metrics["habit_followed"] == days - 1  # an exact forecast always follows
    assert got_exact.sum() <= got.sum() + 1e-9


class _Biased(_Inverted):
    name = "biased"

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        return 2 * self.actual.mean() - super().predict(history, horizon, t_abs=t_abs, slots_per_h=slots_per_h) + 30.0


def test_record_rule_is_validated():
    with pytest.raises(PlanError, match="habit_spread"):
        Mpc(forecast="perfect", habit_spread="nonsense")
    Mpc(forecast="blend", habit_spread="record")


def test_a_move_is_followed_only_on_the_record_of_moves_like_it():
    rec = _record(move_slots=1, days=5)
    actual = np.array([[100.0, 100.0, 60.0, 100.0] * 8])  # slot 2 of each day 40 % cleaner than the habit slot 1
    for day in range(4):  # the plan moved one slot later (habit 1 -> 2) and it paid, every day
        rec.pending.append((4 * day, 0, 4 * day + 1, 4 * day + 2, 1))
    rec.settle(15, actual[:, :16], 0)
    assert len(rec.outcomes) == 4 and rec.moves == [1, 1, 1, 1]
    assert rec.follows() and rec.follows(1) and rec.follows(2)  # pooled; this move; one slot further (within 1)
    assert not rec.follows(-1) and not rec.follows(3)  # moves the record never tested: the habit
    assert rec.decide(20, now=16, site=0, habit=17, plan=15, run_slots=1, exact=False) == 17
    assert rec.decide(21, now=16, site=0, habit=17, plan=18, run_slots=1, exact=False) == 18
    pooled, strict = _record(days=5), _record(move_slots=1, days=5, margin=0.5)
    for r in (pooled, strict):
        r.outcomes, r.moves = list(rec.outcomes), list(rec.moves)
    assert pooled.follows(-1) and not strict.follows(1)  # without move_slots: the pooled record only; the margin
    few = _record(move_slots=1, days=5, min_decisions=2)
    few.outcomes, few.moves = rec.outcomes[:2], rec.moves[:2]  # too few moves like it (min_move_decisions 3)
    assert few.follows() and not few.follows(1)


class _SeasonSwitch(_Inverted):
    """Ranks the hours right (its level 30 g/kWh high, so not exact) until ``switch`` (absolute slot); from then on
    calls the evening hour 18:00 — actually among the dirtiest — the cleanest: a forecaster whose skill is lost
    when the season turns."""

    name = "season-switch"

    def __init__(self, actual: np.ndarray, switch: int) -> None:
        super().__init__(actual)
        self.switch = switch

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        a = self.actual[:, t_abs: t_abs + horizon]
        a = np.concatenate([a, np.repeat(a[:, -1:], horizon - a.shape[1], axis=1)], axis=1) + 30.0
        if t_abs >= self.switch:
            a[:, (t_abs + np.arange(horizon) - LOOKBACK) % H == 18] = 5.0
        return a


def test_a_record_earned_in_one_season_does_not_license_the_next_seasons_moves(monkeypatch):
    days, switch_day = 18, 11
    carbon = _carbon(days=days)
    switch = LOOKBACK + switch_day * H
    monkeypatch.setitem(FORECASTERS, "season-switch", lambda **p: _SeasonSwitch(carbon, switch))
    later = np.arange(1, days) > switch_day  # jobs decided after the switch (each arrives 17:00 the day before)
    # the pooled record alone: what the early-morning moves earned carries it into the new season's evening moves
    _, start, got, nom = _run(carbon, "season-switch", days=days, habit_spread="record", habit_move_h=None)
    assert np.any(start[later] % H == 18) and got[later].sum() > nom[later].sum()
    # judged on the record of moves like today's: an evening move was never tested, so the habit is kept
    run, start, got, nom = _run(carbon, "season-switch", days=days, habit_spread="record")
    assert not np.any(start % H == 18) and np.all(got <= nom + 1e-9)
    assert np.all(start[later] % H == 1)  # back at the habit from the first day of the new season
    # while, before the switch, the early-morning moves were followed once their record was clear, and paid
    assert (got[~later] < nom[~later] - 20).sum() >= switch_day - MIN_DECISIONS - 2


def test_record_move_width_is_validated():
    with pytest.raises(PlanError, match="habit_move_h"):
        Mpc(forecast="blend", habit_move_h=-1.0)
    Mpc(forecast="blend", habit_move_h=None)
