"""Forecast models: the interface, no look-ahead, ordered quantiles, the blend's fall-back, registry."""

import numpy as np
import pytest

from gridshift.errors import PlanError
from gridshift.forecast import (
    DEFAULT_MODEL,
    FORECASTERS,
    ProbForecaster,
    make_forecaster,
)
from gridshift.forecast.ensemble import fit_weights
from gridshift.forecast.members import naive_members

H = 25


def synthetic(n=24 * 60, zones=2, seed=0):
    """Daily cycle + slow random walk + noise, strictly positive."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    walk = np.cumsum(rng.normal(0, 2, (zones, n)), axis=1)
    return 300 + 80 * np.sin(2 * np.pi * t / 24)[None] + walk - walk.mean() + rng.normal(0, 5, (zones, n))


CHEAP = ["persistence", "seasonal-naive", "seasonal-naive-week", "blend"]


@pytest.mark.parametrize("name", CHEAP)
def test_no_look_ahead_corrupting_the_future_changes_nothing(name):
    y = synthetic()
    t = 24 * 45 + 7
    bad = y.copy()
    bad[:, t + 1:] = 1e6  # the future is garbage
    m = make_forecaster(name)
    a = m.forecast_origins(y, [t - 30, t], H)
    b = make_forecaster(name).forecast_origins(bad, [t - 30, t], H)
    np.testing.assert_array_equal(a.point, b.point)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    # and predict() on the truncated history equals the rolling-origin forecast at that origin
    p = make_forecaster(name).predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1)
    np.testing.assert_allclose(p, a.point[:, 1], rtol=0, atol=1e-9)


def test_no_look_ahead_model_members():
    """LightGBM and MSTL refit weekly; a corrupted future must not reach any origin at or before t."""
    y = synthetic(n=24 * 50, zones=1)
    t = 24 * 44 + 3
    bad = y.copy()
    bad[:, t + 1:] = -1e6
    for name in ("gbm", "mstl"):
        a = make_forecaster(name).point_origins(y, np.array([t - 100, t]), H, slots_per_h=1, t0_abs=0)
        b = make_forecaster(name).point_origins(bad, np.array([t - 100, t]), H, slots_per_h=1, t0_abs=0)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
        assert np.isfinite(a).all()
        assert not np.allclose(a[0, 1, 1:], y[0, t])  # it did more than persistence


def test_quantiles_are_ordered_and_bracket_the_point():
    y = synthetic()
    for name in CHEAP:
        f = make_forecaster(name).forecast_origins(y, np.arange(24 * 40, 24 * 50), H, levels=(0.1, 0.25, 0.5, 0.9))
        assert (np.diff(f.quantiles, axis=-1) >= 0).all(), name
        lo, hi = f.interval(0.8)
        assert (lo <= f.point + 1e-9).all() and (hi >= f.point - 1e-9).all()
        np.testing.assert_array_equal(lo[:, :, 0], f.point[:, :, 0])  # the current slot is known
        q = make_forecaster(name).predict_quantiles(y, H, t_abs=y.shape[1] - 1, slots_per_h=1)
        assert q.shape == (2, H, 3) and (np.diff(q, axis=-1) >= 0).all()


def test_intervals_cover_about_80_percent_on_stationary_noise():
    rng = np.random.default_rng(3)
    y = 100 + rng.normal(0, 10, (1, 24 * 120))
    f = make_forecaster("blend").forecast_origins(y, np.arange(24 * 40, 24 * 119), H)
    idx = f.origins[:, None] + np.arange(H)[None]
    ok = idx < y.shape[1]
    lo, hi = f.interval(0.8)
    act = y[0, np.minimum(idx, y.shape[1] - 1)]
    inside = ((act >= lo[0]) & (act <= hi[0]))[:, 1:][ok[:, 1:]]
    assert 0.75 <= inside.mean() <= 0.85


def test_seasonal_naive_rolling_matches_the_planner_path():
    y = synthetic(zones=3)
    for season in (24, 168):
        m = make_forecaster("seasonal-naive", season_h=season)
        for t in (10, 200, 24 * 20 + 5):
            a = m.predict(y[:, : t + 1], 60, t_abs=t, slots_per_h=1)
            b = m.point_origins(y, np.array([t]), 60, slots_per_h=1)[:, 0]
            np.testing.assert_array_equal(a, b)


def test_naive_members_by_hand():
    y = np.arange(24 * 8, dtype=float)[None]  # y[t] = t
    o = np.array([24 * 7 + 5])  # origin 173
    m = naive_members(y, o, 26, 1, ("persistence", "day", "week", "day-mean", "shape", "mean-24h"), days=7)
    pers, day, week, dmean, shape, m24 = m[:, 0, 0, :]
    assert pers[3] == 173
    assert day[3] == 173 + 3 - 24 and day[25] == 173 + 25 - 48 and day[0] == 173
    assert week[3] == 173 + 3 - 168
    # 7 most recent values at the hour of slot 176 are 176-24·d, d=1..7
    assert dmean[3] == np.mean([176 - 24 * d for d in range(1, 8)])
    # shape: now + mean over the target hour - mean over the origin hour (173-24·d, d=0..6)
    assert shape[3] == pytest.approx(173 + dmean[3] - np.mean([173 - 24 * d for d in range(7)]))
    assert m24[5] == np.mean(np.arange(150, 174))


def test_blend_falls_back_to_the_best_member_and_fits_a_mix():
    rng = np.random.default_rng(1)
    t = rng.normal(0, 1, 500)
    good, bad = t + rng.normal(0, 0.1, 500), rng.normal(0, 1, 500)
    w, _ = fit_weights(np.column_stack([bad, good]), t)
    assert w[1] > 0.95 and w.sum() == pytest.approx(1)
    a, b = t + rng.normal(0, 1, 500), t + rng.normal(0, 1, 500)  # two independent unbiased members: average
    w, mae = fit_weights(np.column_stack([a, b]), t)
    assert 0.3 < w[0] < 0.7 and mae < min(np.abs(a - t).mean(), np.abs(b - t).mean())


def test_blend_is_persistence_when_the_series_is_a_random_walk():
    rng = np.random.default_rng(2)
    y = 500 + np.cumsum(rng.normal(0, 5, (1, 24 * 100)), axis=1)
    b = make_forecaster("blend")
    f = b.forecast_origins(y, np.arange(24 * 70, 24 * 99), H)
    p = make_forecaster("persistence").forecast_origins(y, np.arange(24 * 70, 24 * 99), H)
    err = lambda fc: np.abs(fc.point[0, :, 1:] - y[0, np.minimum(fc.origins[:, None] + np.arange(1, H), y.shape[1] - 1)])
    assert err(f).mean() <= 1.05 * err(p).mean()


def test_registry_and_errors():
    assert DEFAULT_MODEL == "blend" and DEFAULT_MODEL in FORECASTERS
    for name in ("persistence", "seasonal-naive", "seasonal-naive-week", "blend", "ensemble", "gbm", "mstl"):
        m = make_forecaster(name)
        assert isinstance(m, ProbForecaster) and m.name == name
        out = m.predict(synthetic(n=24 * 3, zones=2), 6, t_abs=100, slots_per_h=1)
        assert out.shape == (2, 6)
    with pytest.raises(PlanError, match="unknown forecaster"):
        make_forecaster("crystal-ball")
    with pytest.raises(PlanError, match="bad parameters"):
        make_forecaster("blend", wndow_days=3)
    with pytest.raises(PlanError, match="member"):
        make_forecaster("blend", members=["persistence", "oracle"])


def test_lead_error_replay_grows_with_lead_and_is_reproducible():
    y = synthetic(n=24 * 30, zones=1)
    m = make_forecaster("lead-error", seed=4)
    m.actual = y
    errs = []
    for t in range(24 * 5, 24 * 25):
        f = m.predict(y[:, : t + 1], 49, t_abs=t, slots_per_h=1)
        errs.append(f[0] - y[0, t: t + 49])
    e = np.abs(np.array(errs))
    assert (e[:, 0] == 0).all()
    assert e[:, 1].mean() < e[:, 24].mean() < e[:, 48].mean() * 1.1
    again = make_forecaster("lead-error", seed=4)
    again.actual = y
    np.testing.assert_array_equal(again.predict(y[:, :201], 49, t_abs=200, slots_per_h=1),
                                  m.predict(y[:, :201], 49, t_abs=200, slots_per_h=1))


def test_lead_error_model_fit_recovers_a_known_error_profile():
    from gridshift.forecast.errormodel import LeadErrorModel
    from gridshift.forecast.interface import Forecast

    rng = np.random.default_rng(8)
    y = np.full((1, 2000), 100.0)
    o = np.arange(0, 1900)
    z = rng.normal(0, 1, o.size)
    h = np.arange(10)
    point = (100.0 + z[:, None] * h[None, :] + 2.0)[None]  # error = 2 + h·z: bias 2, sd h, fully correlated
    point[:, :, 0] = 100.0
    em = LeadErrorModel.fit(y, Forecast(o, point, np.repeat(point[..., None], 3, -1), (0.1, 0.5, 0.9)))
    assert em.sigma_rel[0] == 0 and em.bias_rel[0] == 0
    np.testing.assert_allclose(em.sigma_rel[1:], h[1:] * z.std() / 100, rtol=1e-9)
    np.testing.assert_allclose(em.bias_rel[1:], (2 + h[1:] * z.mean()) / 100, rtol=1e-9)
    assert em.rho > 0.99
    assert LeadErrorModel.from_dict(em.to_dict()) == em


def test_forecasts_are_shared_between_consumers():
    """Two planners with the same forecaster get the very same forecast array for a slot (computed once)."""
    from gridshift.forecast.shared import shared

    class Owner:
        pass

    owner, calls = Owner(), []

    def compute():
        calls.append(1)
        return np.arange(3.0)

    a = shared(owner, ("blend{}", "carbon_g_per_kwh", 48), 7, compute)
    b = shared(owner, ("blend{}", "carbon_g_per_kwh", 48), 7, compute)
    c = shared(owner, ("blend{}", "carbon_g_per_kwh", 48), 8, compute)
    assert a is b and len(calls) == 2 and c is not a
    assert not a.flags.writeable
