"""Decision-aimed forecasting: the climatological prior, shape-blend, the skill gate, scenario paths, timing
metrics, and no look-ahead for every forecaster in the registry."""

import numpy as np
import pandas as pd
import pytest

from gridshift.errors import PlanError
from gridshift.forecast import FORECASTERS, make_forecaster
from gridshift.forecast.climatology import grouped_median, slot_classes
from gridshift.forecast.decision import timing_quality
from gridshift.forecast.external import issue_forecasts

H = 25
START = "2023-01-02T00:00:00Z"  # a Monday


def daily(n=24 * 70, zones=1, seed=0, weekend=0.0, walk=2.0, noise=5.0):
    """A daily cycle (lower on weekends by ``weekend``), a random-walk level and noise; hour 0 is a Monday."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    wk = ((t // 24) % 7 >= 5) * weekend
    lvl = np.cumsum(rng.normal(0, walk, (zones, n)), axis=1)
    return 300 + 60 * np.sin(2 * np.pi * (t % 24) / 24)[None] - wk[None] + lvl - lvl.mean() + \
        rng.normal(0, noise, (zones, n))


# -- no look-ahead, every forecaster in the registry -----------------------------------------------------------
ORACLES = ("perfect", "lead-error")  # handed the actual future on purpose


def _model(name, y):
    if name == "external":  # the published table: forecasts issued at every slot by seasonal-naive
        sn = make_forecaster("seasonal-naive").forecast_origins(y, np.arange(y.shape[1]), 6)
        table = issue_forecasts(sn, pd.date_range(START, periods=y.shape[1], freq="h"))
        return make_forecaster("external", table=table, start=START), table
    return make_forecaster(name), None


@pytest.mark.parametrize("name", [n for n in FORECASTERS if n not in ORACLES])
def test_no_forecaster_reads_after_its_origin(name):
    y = daily(n=24 * 50, zones=1, seed=5)
    t = 24 * 44 + 7
    bad = y.copy()
    bad[:, t + 1:] = 1e6  # what happens after t is garbage
    m, table = _model(name, y)
    if table is not None:  # and so is everything issued after t
        late = table["issue_time"] > pd.Timestamp(START) + pd.Timedelta(hours=t)
        table = table.assign(value=np.where(late, 1e6, table["value"]))
        m_bad = make_forecaster("external", table=table, start=START)
    else:
        m_bad = make_forecaster(name)
    org = np.array([t - 30, t])
    a = m.point_origins(y, org, H, slots_per_h=1, t0_abs=0)
    b = m_bad.point_origins(bad, org, H, slots_per_h=1, t0_abs=0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert np.isfinite(a).all()


# -- climatological prior ---------------------------------------------------------------------------------------
def test_grouped_median_by_hand():
    v = np.array([5.0, 1.0, 3.0, 10.0, np.nan, 2.0, 4.0])
    c = np.array([0, 0, 0, 2, 2, 2, 2])
    np.testing.assert_array_equal(grouped_median(v, c, 4), [3.0, np.nan, 4.0, np.nan])


def test_slot_classes_local_time_and_holidays():
    cls, day = slot_classes("DE-LU", "2023-04-06T22:00:00Z", 0, 48, 1)  # 00:00 Berlin, Good Friday 2023-04-07
    assert cls[0] == 2 * 0 + 1  # local midnight of a public holiday
    assert cls[24] == 2 * 0 + 1  # Saturday
    cls_utc, _ = slot_classes(None, "2023-04-06T22:00:00Z", 0, 48, 1)
    assert cls_utc[0] == 2 * 22  # UTC: Thursday 22:00, a working day
    assert day[1] == day[0] and day[23] == day[0] and day[24] == day[0] + 1


def test_climatology_learns_weekday_and_weekend_profiles():
    y = daily(n=24 * 60, walk=0.0, noise=1.0, weekend=80.0)
    m = make_forecaster("climatology", start=START, weeks=4)
    o = 24 * 55 + 23  # Sunday 23:00 (day 55): the next 24 h are a Monday
    f = m.point_origins(y, np.array([o - 24, o]), H, slots_per_h=1)
    t = np.arange(1, H)
    true = 300 + 60 * np.sin(2 * np.pi * ((o + t) % 24) / 24) - 80 * (((o + t) // 24) % 7 >= 5)
    assert np.abs(f[0, 1, 1:] - true).max() < 4  # Monday, from working days
    assert np.abs(f[0, 0, 1:2] - (300 + 60 * np.sin(0) - 80)).max() < 4  # Sunday 00:00, from weekends
    lvl, shp = m.profiles(y, np.array([o]), 24, slots_per_h=1)
    assert abs(shp[0, 0].mean()) < 2  # a shape: each day's mean removed
    assert np.corrcoef(shp[0, 0, 1:], true[:23])[0, 1] > 0.99


def test_climatology_blends_last_years_season():
    n = 24 * 400
    t = np.arange(n)
    amp = np.where(t < 24 * 200, 100.0, 20.0)  # a deep daily cycle a year ago, a shallow one now
    y = (300 + amp * np.sin(2 * np.pi * (t % 24) / 24))[None]
    o = 24 * 380
    _, s0 = make_forecaster("climatology", prev_year_weight=0.0).profiles(y, np.array([o]), 24, slots_per_h=1)
    _, s1 = make_forecaster("climatology", prev_year_weight=0.5).profiles(y, np.array([o]), 24, slots_per_h=1)
    assert np.ptp(s0) == pytest.approx(40, rel=0.05)  # only the last 4 weeks
    assert np.ptp(s1) == pytest.approx(120, rel=0.05)  # half last year's season


# -- timing metrics ----------------------------------------------------------------------------------------------
def test_timing_quality_by_hand():
    a = np.array([10.0, 8.0, 4.0, 6.0, 9.0, 9.0])
    good = np.array([[10, 8, 4, 6], [8, 4, 6, 9]], dtype=float)  # perfect
    bad = np.array([[10, 8, 9, 1], [8, 9, 9, 1]], dtype=float)  # picks slot 3 both times
    p = timing_quality(a, good, np.array([0, 1]), 4, 1)
    assert p["share"] == 1.0 and p["regret"] == 0.0 and p["worse_than_habit"] == 0.0
    b = timing_quality(a, bad, np.array([0, 1]), 4, 1)
    # origin 0: habit 10, chose 6 (best 4); origin 1: habit 8, chose 9 (best 4)
    assert b["regret"] == pytest.approx((2 + 5) / 2)
    assert b["share"] == pytest.approx((4 - 1) / (6 + 4))
    assert b["worse_than_habit"] == 0.5
    assert b["saving_pct"] == pytest.approx(100 * 3 / 18)
    two = timing_quality(a, good, np.array([0, 1]), 4, 2)  # two slots: run means 9,6,5 and 6,5,7.5
    assert two["regret"] == 0.0 and two["saving_perfect_pct"] == pytest.approx(100 * (4 + 1) / (9 + 6))
    late = timing_quality(a, bad, np.array([0, 1]), 4, 1, habit=2)  # the habit: slot 2 of each window
    # origin 0: habit 4, chose 6, best 4; origin 1: habit 6, chose 9, best 4
    assert late["share"] == pytest.approx((-2 - 3) / (0 + 2)) and late["worse_than_habit"] == 1.0
    with pytest.raises(PlanError):
        timing_quality(a, good, np.array([0, 1]), 5, 1)
    with pytest.raises(PlanError):
        timing_quality(a, good, np.array([0, 1]), 4, 1, habit=4)


# -- shape-blend and the gate ------------------------------------------------------------------------------------
def _share(name, y, org, w=8, **kw):
    fc = make_forecaster(name, **kw).forecast_origins(y, org, H)
    return timing_quality(y[0], fc.point[0], org, w, 1)["share"], fc


def test_shape_blend_ranks_a_noisy_daily_shape_at_least_as_well_as_the_blend():
    y = daily(n=24 * 150, seed=3, walk=6.0, noise=25.0)
    org = np.arange(24 * 100, 24 * 149)
    s_blend, fb = _share("blend", y, org)
    s_shape, fs = _share("shape-blend", y, org)
    assert s_shape >= s_blend - 0.02 and s_shape > 0.5
    err = lambda fc: np.abs(fc.point[0, :, 1:] - y[0, org[:, None] + np.arange(1, H)]).mean()
    assert err(fs) <= 1.05 * err(fb)


def test_gate_falls_back_to_the_prior_where_the_base_cannot_rank():
    y = daily(n=24 * 80, seed=4, walk=1.0, noise=5.0)
    org = np.arange(24 * 60, 24 * 79)
    s_pers, _ = _share("persistence", y, org)
    g = make_forecaster("gated", base="persistence")
    fc = g.forecast_origins(y, org, H)
    s_gate = timing_quality(y[0], fc.point[0], org, 8, 1)["share"]
    assert abs(s_pers) < 0.05 and s_gate > 0.7
    assert g.last_gate[:, :, 1:].mean() > 0.9  # the flat forecast has no ranking skill at any lead
    assert g.last_gate[:, :, 0].sum() == 0  # lead 0 (known) is never gated
    np.testing.assert_array_equal(fc.point[0, :, 0], y[0, org])


# -- scenario paths ----------------------------------------------------------------------------------------------
def _ar_series(n=24 * 90, phi=0.9, seed=7):
    rng = np.random.default_rng(seed)
    e = np.zeros(n)
    for i in range(1, n):
        e[i] = phi * e[i - 1] + rng.normal(0, 10)
    return 300 + 50 * np.sin(2 * np.pi * np.arange(n) / 24) + e


def test_sample_paths_match_the_quantiles_and_keep_lead_correlation():
    y = _ar_series()
    o = y.size - 1
    m = make_forecaster("seasonal-naive")
    rng = np.random.default_rng(0)
    s = m.sample_paths(y, o, H, 4000, rng)
    assert s.shape == (4000, H)
    np.testing.assert_array_equal(s[:, 0], y[o])  # now is known
    q = m.predict_quantiles(y[None], H, t_abs=o, slots_per_h=1, levels=(0.1, 0.5, 0.9))[0]  # [H, 3]
    sq = np.quantile(s, (0.1, 0.5, 0.9), axis=0).T
    width = q[1:, 2] - q[1:, 0]
    assert np.abs(sq[1:] - q[1:]).max(axis=1).max() < 0.15 * width.mean()
    # lead-to-lead correlation of the model's past errors is kept (AR(1) errors: strong), independent draws lose it
    W = 28 * 24
    past = np.arange(o - H + 1 - W + 1, o - H + 2)
    pt = m.point_origins(y[None], past, H, slots_per_h=1)[0]
    err = y[past[:, None] + np.arange(H)] - pt
    for h in (3, 12):
        want = np.corrcoef(err[:, h], err[:, h + 1])[0, 1]
        got = np.corrcoef(s[:, h], s[:, h + 1])[0, 1]
        assert want > 0.5 and abs(got - want) < 0.1
    assert m.sample_paths(y, o, H, 10, np.random.default_rng(1)).shape == (10, H)
    with pytest.raises(PlanError):
        m.sample_paths(y, 30, H, 10, rng)


def test_sample_paths_never_read_after_the_origin():
    y = _ar_series(n=24 * 60)
    o = 24 * 50
    bad = y.copy()
    bad[o + 1:] = -1e6
    m = make_forecaster("blend")
    a = m.sample_paths(y, o, H, 50, np.random.default_rng(3))
    b = m.sample_paths(bad, o, H, 50, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)


# -- cached fits ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["blend", "shape-blend", "gated"])
def test_cached_fits_give_the_uncached_forecast(name):
    """Hourly predict calls on a growing history (crossing a refresh point) reuse the fits of earlier calls and
    give exactly what a fresh model gives; a changed past is refitted, not served from the cache."""
    y = daily(n=24 * 40, zones=2, seed=3)
    m = make_forecaster(name, window_days=10.0, calib_days=7.0)
    for t in range(24 * 35 + 20, 24 * 35 + 30):  # 20:00 … 05:00: a refresh point at midnight
        got = m.predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1)
        want = make_forecaster(name, window_days=10.0, calib_days=7.0).predict(y[:, : t + 1], H, t_abs=t,
                                                                                slots_per_h=1)
        np.testing.assert_array_equal(got, want)
    assert m._cache.hits >= 8  # refitted at the first call and after midnight only
    changed = y.copy()
    changed[:, 24 * 30] += 500.0  # a past value the fit reads
    t = 24 * 35 + 29
    got = m.predict(changed[:, : t + 1], H, t_abs=t, slots_per_h=1)
    want = make_forecaster(name, window_days=10.0, calib_days=7.0).predict(changed[:, : t + 1], H, t_abs=t,
                                                                            slots_per_h=1)
    np.testing.assert_array_equal(got, want)
    # and the rolling-origin path agrees with the cached predict
    fc = m.forecast_origins(y, [t], H)
    np.testing.assert_array_equal(fc.point[:, 0], m.predict(y[:, : t + 1], H, t_abs=t, slots_per_h=1))
