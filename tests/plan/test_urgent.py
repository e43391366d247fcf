"""Urgent jobs placed by groups (``plan/urgent.py``) take exactly the pools and gangs, and leave exactly the
free accelerators and site headroom, of placing them one at a time with ``first_fit_jobs`` on each job's
pools fastest first (the loop ``LpPolicy._safety_net`` ran before, kept here as the reference), on random
fleets, caps, jobs and starting states."""

from __future__ import annotations

import numpy as np
import pytest

from gridshift.plan.base import Observation
from gridshift.plan.placement import PlacementState, first_fit_jobs
from gridshift.plan.urgent import place_urgent, pool_orders
from worldkit import make_fleet, make_jobs, make_signals, make_world


def reference(st: PlacementState, obs: Observation, order: np.ndarray, tp_pool: np.ndarray) -> None:
    jt, fl = obs.world.jobs, obs.world.fleet
    for j in order:
        fast = np.argsort(-jt.speed[j, fl.pool_type] * tp_pool, kind="stable")
        first_fit_jobs(st, obs, np.array([j]), fast[jt.speed[j, fl.pool_type[fast]] > 0])


def _case(rng: np.random.Generator, n_jobs: int, tight: float):
    S, K = int(rng.integers(1, 5)), int(rng.integers(1, 4))
    counts = rng.integers(0, 40, (S, K))
    counts[:, 0] = np.maximum(counts[:, 0], 1)
    board = rng.uniform(200, 1000, K)
    idle = board * rng.uniform(0.05, 0.3, K)
    pue = rng.uniform(1.0, 1.5, S)
    full_mw = (counts * board[None, :]).sum(axis=1) * pue / 1e6
    fleet = make_fleet(tuple(tuple(int(c) for c in row) for row in counts), board_w=board, idle_w=idle,
                       host_w=np.zeros(K), pue=pue, cap_mw=full_mw * tight, n_slots=4)
    # few distinct speed rows, so jobs share groups; some types not allowed (speed 0)
    rows = rng.choice([0.0, 0.5, 1.0, 1.3], (int(rng.integers(1, 5)), K))
    rows[rows.sum(axis=1) == 0, 0] = 1.0
    speed = rows[rng.integers(0, rows.shape[0], n_jobs)]
    gmax = rng.choice([1, 2, 4, 8, 16], n_jobs)
    gmin = np.maximum(1, gmax // rng.choice([1, 2, 4], n_jobs))
    jobs = make_jobs(K, arrival_s=np.zeros(n_jobs), work_acc_h=rng.uniform(1, 50, n_jobs), gang=gmax,
                     gang_min=gmin, speed=speed, priority=rng.integers(0, 3, n_jobs))
    w = make_world(fleet, jobs, make_signals(np.full(4, 300.0)))
    z = np.zeros(n_jobs, np.int64)
    obs = Observation(0, w, None, np.arange(n_jobs), jobs.work_acc_h.copy(), z - 1, z, z.astype(bool), z - 1,
                      np.zeros((0, 0)))
    cap = rng.choice([0.7, 1.0], fleet.n_pools)
    return obs, cap


def _state(obs: Observation, cap: np.ndarray, rng: np.random.Generator) -> PlacementState:
    st = PlacementState(obs, cap)
    st.free -= rng.integers(0, np.maximum(st.free, 1)) * (rng.random(st.free.size) < 0.5)  # some already taken
    st.free = np.maximum(st.free, 0)
    return st


@pytest.mark.parametrize("seed", range(40))
def test_grouped_placement_equals_one_at_a_time(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 5, 60, 400]))
    obs, cap = _case(rng, n, tight=float(rng.choice([0.3, 0.6, 0.9, 2.0])))
    order = rng.permutation(n)[: int(rng.integers(1, n + 1))]
    tp = obs.world.fleet.throughput_frac(cap)
    a = _state(obs, cap, np.random.default_rng(seed + 1000))
    b = _state(obs, cap, np.random.default_rng(seed + 1000))
    a.enforce_power = b.enforce_power = bool(rng.random() < 0.85)
    reference(a, obs, order, tp)
    place_urgent(b, obs, order, tp)
    ja, pa, ga = a.result()
    jb, pb, gb = b.result()
    np.testing.assert_array_equal(ja, jb)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(ga, gb)
    np.testing.assert_array_equal(a.free, b.free)
    assert a.headroom_mw.tobytes() == b.headroom_mw.tobytes()  # bit for bit: the same subtractions in order


def test_some_cases_fill_pools_and_power():
    """The random cases above reach the interesting states: pools and sites full, minimum gangs taken."""
    full = gmin_taken = unplaced = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        n = int(rng.choice([1, 5, 60, 400]))
        obs, cap = _case(rng, n, tight=float(rng.choice([0.3, 0.6, 0.9, 2.0])))
        order = rng.permutation(n)[: int(rng.integers(1, n + 1))]
        st = _state(obs, cap, np.random.default_rng(seed + 1000))
        place_urgent(st, obs, order, obs.world.fleet.throughput_frac(cap))
        j, _, g = st.result()
        full += int((st.free == 0).any())
        gmin_taken += int(((g < obs.world.jobs.gang_max[j]) & (g == obs.world.jobs.gang_min[j])).any())
        unplaced += int(j.size < order.size)
    assert full > 5 and gmin_taken > 3 and unplaced > 5


def test_pool_orders_fastest_first_without_disallowed_pools():
    rng = np.random.default_rng(3)
    obs, cap = _case(rng, 30, tight=1.0)
    tp = obs.world.fleet.throughput_frac(cap)
    jobs = np.arange(30)
    group, orders = pool_orders(obs, jobs, tp)
    fl, jt = obs.world.fleet, obs.world.jobs
    for j in jobs:
        order = orders[group[j]]
        rate = jt.speed[j, fl.pool_type[order]] * tp[order]
        assert (rate > 0).all() and (np.diff(rate) <= 0).all()
        assert set(order) == set(np.flatnonzero(jt.speed[j, fl.pool_type] > 0))
