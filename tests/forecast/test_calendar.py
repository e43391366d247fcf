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
