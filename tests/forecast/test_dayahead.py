"""Day-ahead prices are known once published, never before: the `dayahead` forecaster reads a published price
only after its auction, for the zones whose price data are a day-ahead auction, and nothing else."""

import numpy as np
import pandas as pd
import pytest

from gridshift.errors import PlanError
from gridshift.forecast import make_forecaster
from gridshift.forecast.dayahead import PRICE, known_until

T0 = pd.Timestamp("2023-03-01T00:00:00Z")


@pytest.mark.parametrize("issue, tz, h, end", [
    ("2023-03-10T11:59Z", "Europe/Berlin", 13, "2023-03-10T23:00Z"),  # 12:59 CET: only today is known
    ("2023-03-10T12:00Z", "Europe/Berlin", 13, "2023-03-11T23:00Z"),  # 13:00 CET: tomorrow published
    ("2023-03-25T12:00Z", "Europe/Berlin", 13, "2023-03-26T22:00Z"),  # tomorrow is the 23-hour day (CEST)
    ("2023-10-28T11:00Z", "Europe/Berlin", 13, "2023-10-29T23:00Z"),  # tomorrow is the 25-hour day
    ("2023-06-01T02:00Z", "Asia/Tokyo", 11, "2023-06-02T15:00Z"),  # 11:00 JST
    ("2023-06-01T01:59Z", "Asia/Tokyo", 11, "2023-06-01T15:00Z"),
])
def test_known_until(issue, tz, h, end):
    assert known_until(pd.Timestamp(issue), tz, h) == pd.Timestamp(end)


def _model(actual, zones=("DE-LU", "GB")):
    m = make_forecaster("dayahead", base="persistence")
    m.zones, m.t0, m.slot_s, m.signal, m.actual = zones, T0, 3600, PRICE, actual
    return m


def test_published_hours_are_exact_and_later_ones_are_the_base():
    rng = np.random.default_rng(3)
    actual = rng.uniform(10, 200, (2, 24 * 20))
    t = 24 * 9 + 14  # 2023-03-10 14:00 UTC = 15:00 CET: the 11th is published, up to 2023-03-11 23:00 UTC
    m = _model(actual)
    f = m.predict(actual[:, : t + 1], 48, t_abs=t, slots_per_h=1)
    known = int((pd.Timestamp("2023-03-11T23:00Z") - (T0 + pd.Timedelta(hours=t))) / pd.Timedelta(hours=1))
    assert known == 33 and m.published_leads == known
    np.testing.assert_array_equal(f[0, :known], actual[0, t: t + known])  # DE-LU: published prices
    assert np.all(f[0, known:] == actual[0, t])  # then persistence
    assert np.all(f[1] == actual[1, t])  # GB has no day-ahead series here: persistence throughout


def test_never_reads_a_price_published_after_the_issue():
    rng = np.random.default_rng(4)
    actual = rng.uniform(10, 200, (2, 24 * 20))
    for t in (24 * 9 + 11, 24 * 9 + 12, 24 * 9 + 23):  # before, at and after the DE publication (13:00 CET)
        end = known_until(T0 + pd.Timedelta(hours=t), "Europe/Berlin", 13)
        cut = int((end - T0) / pd.Timedelta(hours=1))
        bad = actual.copy()
        bad[:, cut:] = 1e6  # everything not yet published is garbage
        bad[1, t + 1:] = 1e6  # and so is every GB value after the issue
        a = _model(actual).predict(actual[:, : t + 1], 40, t_abs=t, slots_per_h=1)
        b = _model(bad).predict(bad[:, : t + 1], 40, t_abs=t, slots_per_h=1)
        np.testing.assert_array_equal(a, b)


def test_other_signals_are_the_base_forecast():
    actual = np.arange(2 * 24 * 10, dtype=float).reshape(2, -1)
    m = _model(actual)
    m.signal = "carbon_g_per_kwh"
    f = m.predict(actual[:, :101], 24, t_abs=100, slots_per_h=1)
    assert np.all(f == actual[:, 100:101]) and m.published_leads == 0


def test_bad_base():
    with pytest.raises(PlanError, match="real base"):
        make_forecaster("dayahead", base="perfect")
