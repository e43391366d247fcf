"""The local calendar of a zone (hour, weekday, public holidays in local time) and the LightGBM forecaster's
local-calendar features for load and price."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gridshift.errors import PlanError
from gridshift.forecast import make_forecaster
from gridshift.forecast.calendar import local_calendar
from gridshift.studies.forecast_backtest import build_models

START = "2023-01-01T00:00:00Z"


def at(cal: np.ndarray, when: str) -> tuple[float, float, float]:
    i = int((pd.Timestamp(when) - pd.Timestamp(START)) / pd.Timedelta(hours=1))
    return tuple(cal[:, i])


def test_local_hour_weekday_and_holidays():
    de = local_calendar("DE-LU", START, 0, 24 * 365, 1)
    assert at(de, "2023-01-01T00:00Z") == (1.0, 6.0, 1.0)  # 01:00 CET on a Sunday, New Year's Day
    assert at(de, "2023-07-03T10:00Z") == (12.0, 0.0, 0.0)  # noon CEST on a Monday
    assert at(de, "2023-12-25T12:00Z")[2] == 1.0 and at(de, "2023-12-24T22:59Z")[2] == 0.0
    assert at(de, "2023-12-24T23:00Z")[2] == 1.0  # midnight in Berlin: Christmas Day has begun
    assert de[2].sum() == 9 * 24  # the nine German public holidays of 2023 (national)
    ca = local_calendar("US-CAL-CISO", START, 0, 24 * 365, 1)
    assert at(ca, "2023-07-04T19:00Z") == (12.0, 1.0, 1.0)  # noon PDT, Independence Day, a Tuesday
    assert at(ca, "2023-03-31T19:00Z")[2] == 1.0  # Cesar Chavez Day, a California holiday
    assert not de.flags.writeable


def test_unknown_zone_is_a_plan_error():
    with pytest.raises(PlanError, match="no local calendar for zone 'XX'"):
        make_forecaster("gbm", zone="XX")


def test_gbm_with_a_zone_uses_the_local_calendar():
    t = np.arange(24 * 70)
    local = pd.date_range(START, periods=t.size, freq="h").tz_convert("Europe/Berlin")
    weekday = np.asarray(local.dayofweek < 5)
    y = (1000 + 300 * weekday * np.sin(np.pi * np.clip(np.asarray(local.hour) - 6, 0, 12) / 12)
         + np.random.default_rng(1).normal(0, 5, t.size))[None]
    o = np.arange(24 * 63, t.size - 1, 6)
    plain = make_forecaster("gbm").point_origins(y, o, 25, slots_per_h=1)
    with_cal = make_forecaster("gbm", zone="DE-LU").point_origins(y, o, 25, slots_per_h=1)
    assert with_cal.shape == plain.shape and np.isfinite(with_cal).all()
    assert not np.allclose(with_cal, plain)  # the features changed the model
    again = make_forecaster("gbm", zone="DE-LU").point_origins(y, o, 25, slots_per_h=1)
    np.testing.assert_array_equal(with_cal, again)


def test_backtest_gives_the_calendar_to_load_and_price_models_only():
    for signal, zone in (("load", "US-CAL-CISO"), ("price", "DE-LU"), ("carbon_intensity", "DE-LU")):
        m = build_models(["gbm", "ensemble"], zone=zone, signal=signal)
        want = zone if signal in ("load", "price") else None
        assert m["gbm"].zone == want and m["ensemble"]._models["gbm"].zone == want
    assert build_models(["gbm"], zone="pai-100k", signal="request_rate")["gbm"].zone is None


# -- backtests across years -------------------------------------------------------------------------------------
NEW_YEAR_START = "2022-11-21T00:00:00Z"  # a Monday; 2023-01-01 (a Sunday and a holiday) is slot 41 * 24


def _across_new_year(n=24 * 50, seed=7):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (300 + 60 * np.sin(2 * np.pi * (t % 24) / 24) + np.cumsum(rng.normal(0, 2, n)) +
            rng.normal(0, 5, n))[None]


@pytest.mark.parametrize("name", ["blend", "climatology", "shape-blend", "gated", "gbm", "ensemble"])
def test_no_look_ahead_across_new_year(name):
    """Models built as a multi-year backtest builds them (calendar from the series start, holidays of the zone)
    never read after their origin when the origin and its window straddle New Year."""
    y = _across_new_year()
    t = 41 * 24 + 3  # 2023-01-01 03:00 UTC
    bad = y.copy()
    bad[:, t + 1:] = 1e6
    kw = {"zone": "DE-LU", "signal": "price", "start": NEW_YEAR_START}
    org = np.array([t - 30, t - 5, t])  # 2022-12-31 and the first hours of 2023
    a = build_models([name], **kw)[name].point_origins(y, org, 49, slots_per_h=1, t0_abs=0)
    b = build_models([name], **kw)[name].point_origins(bad, org, 49, slots_per_h=1, t0_abs=0)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)
    assert np.isfinite(a).all()


def test_backtest_years_trains_on_earlier_years(monkeypatch):
    """``years``: the series is loaded from the first data year, origins start on 1 January of the first year
    asked, and the calendar models are told the series' start."""
    import gridshift.studies.forecast_backtest as fb
    from gridshift.data.series import Series

    asked = []

    def fake_load(zone, signal, years=None):
        asked.append(years)
        idx = pd.date_range(NEW_YEAR_START, periods=24 * 50, freq="h", tz="UTC")
        return Series(zone, signal, "g_per_kwh", idx, _across_new_year()[0])

    monkeypatch.setattr(fb, "load_series", fake_load)
    r = fb.run_zone("DE-LU", "carbon_intensity", ["climatology"], 24, warmup_days=7, years=[2023])
    assert asked == [list(range(fb.FIRST_YEAR, 2024))]
    assert r.params["first_origin_utc"] == pd.Timestamp("2023-01-01", tz="UTC")
    assert r.results["climatology"].forecast.origins[0] == 41 * 24
    assert fb.build_models(["climatology"], start=NEW_YEAR_START)["climatology"].start == NEW_YEAR_START
    assert r.params["years"] == [2023]
    # without years: 2023 alone, origins after the warm-up, the models' default calendar start
    asked.clear()
    r = fb.run_zone("DE-LU", "carbon_intensity", ["climatology"], 24, warmup_days=7)
    assert asked == [None] and r.results["climatology"].forecast.origins[0] == 7 * 24
    with pytest.raises(Exception, match="consecutive"):
        fb.run_zone("DE-LU", "carbon_intensity", ["climatology"], 24, years=[2021, 2023])
