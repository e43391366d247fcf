"""``job_levers`` in array code (per accelerator type) gives exactly the levers of the per-unit loop it
replaced (kept here as the reference), on random units, curves, tiers and starts."""

from __future__ import annotations

import numpy as np
import pytest

from gridshift.model.events import TIER_MAX_THROUGHPUT_LOSS, TIER_MAY_PAUSE
from gridshift.plan.response import (
    CAP_ACTUATION_S,
    DEFER_COST_WEIGHT,
    DEFERRED,
    TIER_COST_WEIGHT,
    Levers,
    job_levers,
)


def reference_levers(*, gang, cap_frac, curve_x, curve_y, type_idx, board_w, idle_w, pue, tier, interruptible,
                     checkpoint_s, work_rate, max_loss_frac=None, cap_actuation_s=CAP_ACTUATION_S, unit_offset=0,
                     new_start=None):
    """The per-unit loop with scalar ``np.interp`` (the implementation before the array code)."""
    units, saves, losses, ready, costs = [], [], [], [], []
    for u in range(gang.size):
        t = int(tier[u])
        if gang[u] <= 0:
            continue
        xs, ys = curve_x[type_idx[u]], curve_y[type_idx[u]]
        c0 = float(cap_frac[u])
        y0 = float(np.interp(c0, xs, ys))
        if y0 <= 0:
            continue
        limit = TIER_MAX_THROUGHPUT_LOSS[t] if max_loss_frac is None else min(TIER_MAX_THROUGHPUT_LOSS[t],
                                                                               float(max_loss_frac[u]))
        if limit <= 0 or t <= 0:
            if new_start is not None and new_start[u]:
                save = gang[u] * max(board_w[u] * c0 - idle_w[u], 0.0) * pue[u] / 1e6
                if save > 0:
                    units.append(u + unit_offset), saves.append(save), losses.append(1.0), ready.append(DEFERRED)
                    costs.append(DEFER_COST_WEIGHT * max(work_rate[u], 1e-12) / save)
            continue
        y_min = y0 * (1.0 - limit)
        p_min = max(float(np.interp(y_min, ys, xs)), float(xs[0]))
        pts = np.unique(np.concatenate([[c0, p_min], xs[(xs > p_min) & (xs < c0)]]))[::-1]
        w_per_frac = gang[u] * board_w[u] * pue[u] / 1e6
        weight = TIER_COST_WEIGHT[t] * work_rate[u]
        unit_costs = []
        for hi, lo in zip(pts[:-1], pts[1:]):
            save = w_per_frac * (hi - lo)
            loss = (np.interp(hi, xs, ys) - np.interp(lo, xs, ys)) / y0
            units.append(u + unit_offset), saves.append(save), losses.append(loss), ready.append(cap_actuation_s)
            unit_costs.append(weight * loss / save if save > 0 else np.inf)
        pause = TIER_MAY_PAUSE[t] and interruptible[u]
        if pause or (new_start is not None and new_start[u]):
            save = gang[u] * max(board_w[u] * p_min - idle_w[u], 0.0) * pue[u] / 1e6
            if save > 0:
                loss = np.interp(p_min, xs, ys) / y0
                units.append(u + unit_offset), saves.append(save), losses.append(loss)
                ready.append(float(checkpoint_s[u]) if pause else DEFERRED)
                unit_costs.append((weight if pause else DEFER_COST_WEIGHT * work_rate[u]) * loss / save)
        costs.extend(np.maximum.accumulate(unit_costs) if unit_costs else [])
    if not units:
        return Levers.empty(gang.size + unit_offset)
    return Levers(np.asarray(units, np.int64), np.asarray(saves), np.asarray(losses), np.asarray(ready),
                  np.asarray(costs), gang.size + unit_offset)


def _random_case(rng: np.random.Generator, n: int) -> dict:
    curves_x, curves_y = [], []
    for _ in range(3):
        m = int(rng.integers(2, 7))
        x = np.sort(rng.uniform(0.2, 1.0, m))
        x[-1] = 1.0
        y = np.sort(rng.uniform(0.1, 1.0, m))
        y[-1] = 1.0
        curves_x.append(np.unique(x)), curves_y.append(y[: np.unique(x).size])
    cap = rng.choice(np.concatenate([[1.0, 0.9, 0.75, 0.5, 0.1], *curves_x]), n)  # on and off curve points
    gang = np.where(rng.random(n) < 0.2, rng.uniform(0.1, 4.0, n), rng.integers(0, 64, n).astype(float))
    return dict(gang=gang, cap_frac=cap, curve_x=curves_x, curve_y=curves_y, type_idx=rng.integers(0, 3, n),
                board_w=rng.choice([400.0, 700.0, 1000.0], n), idle_w=rng.choice([40.0, 70.0, 100.0], n),
                pue=rng.uniform(1.1, 1.4, n), tier=rng.integers(0, 4, n), interruptible=rng.random(n) < 0.7,
                checkpoint_s=rng.uniform(10, 300, n), work_rate=rng.uniform(0, 64, n),
                max_loss_frac=rng.uniform(0, 0.6, n) if rng.random() < 0.5 else None,
                unit_offset=int(rng.integers(0, 5)), new_start=rng.random(n) < 0.3 if rng.random() < 0.7 else None)


@pytest.mark.parametrize("seed", range(30))
def test_array_code_equals_the_per_unit_loop(seed):
    case = _random_case(np.random.default_rng(seed), int(np.random.default_rng(seed).integers(0, 200)))
    got, want = job_levers(**case), reference_levers(**case)
    assert case["gang"].size == 0 or want.unit.size > 0
    assert got.n_units == want.n_units
    np.testing.assert_array_equal(got.unit, want.unit)
    for name in ("save_mw", "loss_frac", "ready_s", "cost_per_mw"):
        np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-12, atol=0, err_msg=name)


def test_caps_on_the_curve_points_and_below_the_curve():
    xs, ys = np.array([0.3, 0.6, 1.0]), np.array([0.5, 0.8, 1.0])
    case = dict(gang=np.array([8.0, 8.0, 8.0, 2.0]), cap_frac=np.array([0.6, 0.3, 0.2, 1.0]), curve_x=[xs],
                curve_y=[ys], type_idx=np.zeros(4, int), board_w=np.full(4, 700.0), idle_w=np.full(4, 70.0),
                pue=np.full(4, 1.2), tier=np.array([3, 2, 3, 1]), interruptible=np.array([True, True, True, False]),
                checkpoint_s=np.full(4, 60.0), work_rate=np.full(4, 8.0), new_start=np.array([0, 1, 0, 1], bool))
    got, want = job_levers(**case), reference_levers(**case)
    np.testing.assert_array_equal(got.unit, want.unit)
    np.testing.assert_allclose(got.save_mw, want.save_mw, rtol=1e-12)
    np.testing.assert_allclose(got.cost_per_mw, want.cost_per_mw, rtol=1e-12)
