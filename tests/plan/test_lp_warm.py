"""Warm starts of the planning LP matched by key (plan/lp_warm.py): each epoch's LP, solved from the basis the
previous epoch's statuses give it, reaches the same optimum as solved cold; the keys match what the columns
and rows stand for across a shift of the periods."""

from __future__ import annotations

import highspy
import numpy as np
import pytest

from gridshift.plan import lp as lp_mod
from gridshift.plan.lp_warm import Keyed, basis_from, key, match_periods, pkey
from gridshift.plan.mpc import Mpc
from gridshift.sim.engine import simulate
from worldkit import make_fleet, make_jobs, make_signals, make_world


def _world(seed: int):
    rng = np.random.default_rng(seed)
    T = 30
    fleet = make_fleet(((6, 4), (3, 5)), board_w=(700.0, 500.0), idle_w=(70.0, 60.0), host_w=(30.0, 30.0),
                       cap_mw=[[0.006] * T, [0.005] * T], n_slots=T)
    n = 14
    arrival = np.sort(rng.uniform(0, 12 * 3600, n))
    work = rng.uniform(0.5, 6.0, n)
    gang = rng.choice([1, 2], n)
    dl = arrival + work / gang * 3600 * rng.uniform(1.5, 4.0, n) + 2 * 3600
    jobs = make_jobs(2, arrival_s=arrival, work_acc_h=work, gang=gang, deadline_s=dl,
                     speed=np.column_stack([np.ones(n), rng.choice([0.0, 0.8], n)]))
    sig = make_signals(rng.uniform(50, 600, (2, T)))
    return make_world(fleet, jobs, sig), sig


def _problems(world, sig, monkeypatch) -> list:
    """The LPs of an ``mpc`` run, epoch by epoch."""
    probs = []
    solve = lp_mod.PlanSolver.solve

    def rec(self, pr):
        probs.append(pr)
        return solve(self, pr)

    monkeypatch.setattr(lp_mod.PlanSolver, "solve", rec)
    simulate(world, sig, Mpc(forecast="perfect", habit=False))
    monkeypatch.undo()
    return probs


@pytest.mark.parametrize("seed", [0, 1])
def test_warm_started_epochs_reach_the_cold_optimum(seed, monkeypatch):
    world, sig = _world(seed)
    probs = _problems(world, sig, monkeypatch)
    assert len(probs) > 10 and all(p.start_h is not None for p in probs)
    alien = []
    set_basis = highspy.Highs.setBasis

    def rec_basis(self, b):
        alien.append(bool(b.alien))
        return set_basis(self, b)

    monkeypatch.setattr(highspy.Highs, "setBasis", rec_basis)
    warm, cold = lp_mod.PlanSolver(warm=True), lp_mod.PlanSolver(warm=False)
    for pr in probs:
        a, b = warm.solve(pr), cold.solve(pr)
        assert a.objective == pytest.approx(b.objective, rel=1e-7, abs=1e-9)
    assert sum(alien) >= len(probs) // 2  # most epochs did start from a matched basis


def test_periods_match_the_previous_plan_by_start():
    prev = Keyed(np.zeros(0, np.int64), np.zeros(0, np.int64), np.array([0.0, 1.0, 2.0, 8.0]), 14.0)
    # one hour later: hourly periods at 1, 2; a block from 3 (inside the old [2, 8)); 9 inside [8, 14); 14 past it
    got = match_periods(prev, np.array([1.0, 2.0, 3.0, 9.0, 14.0]))
    np.testing.assert_array_equal(got, [60, 120, 120, 480, -1])
    np.testing.assert_array_equal(match_periods(None, np.array([0.0, 1.0])), [-1, -1])


def test_keys_and_statuses_carry_over():
    k_old = key(1, np.array([0, 1, 2]), np.array([5, 5, 5]))
    assert (k_old >= 0).all() and np.unique(k_old).size == 3
    assert (pkey(1, np.array([-1, 3]), np.array([0, 0])) == [-1, key(1, 0, 3)]).all()
    prev = Keyed(k_old, np.array([7, 8], np.int64), np.zeros(1), 1.0, col_status=np.array([1, 0, 2], np.int8),
                 row_status=np.array([0, 1], np.int8))
    # new LP: columns 2, 0 and an unknown one; rows: 8, an unknown one, 7 (whose lower bound is now -inf)
    b = basis_from(prev, np.array([k_old[2], k_old[0], -1]), np.array([8, -1, 7], np.int64),
                   row_lower=np.array([0.0, 0.0, -np.inf]), col_upper=np.array([np.inf, 1.0, 1.0]))
    S = highspy.HighsBasisStatus
    # column 0 was at an upper bound that is now infinite: at its lower bound instead; unknown: at zero
    assert b.col_status == [S.kLower, S.kBasic, S.kLower]
    assert b.row_status == [S.kBasic, S.kBasic, S.kUpper]
    assert b.alien
    # too little matched: no basis
    assert basis_from(prev, np.array([-1, -1, -1, k_old[0]]), np.array([8], np.int64), np.zeros(1),
                      np.ones(4)) is None


def test_matching_is_a_policy_option_off_by_default():
    assert not Mpc().solver.warm
    assert Mpc(lp_warm_by_key=True).solver.warm
