"""The rolling backtest that says whether a provider's forecast beats the project's own: scored on the same
hours, from history known at each issue time, preferred only when fresh and better."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from gridshift.service.forecast_skill import rolling_skill

T0 = pd.Timestamp("2023-06-01", tz="UTC")


def world(days: int = 12, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    idx = pd.date_range(T0, periods=24 * days, freq="h")
    hours = np.arange(len(idx))
    # a daily cycle whose level drifts from day to day: hard for the project's model, known to the provider
    level = np.repeat(rng.normal(300, 60, days), 24)
    return pd.Series(level + 80 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 5, len(idx)), index=idx)


def issued(actual: pd.Series, error: float, days=(8, 9, 10, 11), seed: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for d in days:
        issue = T0 + pd.Timedelta(days=d) + pd.Timedelta(minutes=5)
        for h in range(24):
            t = issue.floor("h") + pd.Timedelta(hours=h)
            if t in actual.index:
                rows.append({"issue_time": issue, "target_time": t, "value": actual[t] + rng.normal(0, error)})
    return pd.DataFrame(rows)


def test_a_good_fresh_provider_is_preferred_and_a_poor_one_is_not():
    actual = world()
    now = (T0 + pd.Timedelta(days=11, hours=6)).to_pydatetime()
    good = rolling_skill(issued(actual, 10.0), actual, zone="Z", provider="p", signal="s", now=now,
                         stale_after_s=86400)
    assert good.forecasts_scored == 4 and good.hours_scored > 60
    assert good.provider_mae < good.own_mae and good.fresh and good.preferred
    poor = rolling_skill(issued(actual, 10.0).assign(value=lambda d: d["value"] + 250), actual, zone="Z",
                         provider="p", signal="s", now=now, stale_after_s=86400)
    assert poor.provider_mae > poor.own_mae and not poor.preferred
    stale = rolling_skill(issued(actual, 10.0), actual, zone="Z", provider="p", signal="s",
                          now=now + timedelta(days=3), stale_after_s=86400)
    assert stale.provider_mae == good.provider_mae and not stale.fresh and not stale.preferred


def test_no_look_ahead_and_too_little_history_scores_nothing():
    actual = world(days=3)
    f = issued(actual, 0.0, days=(1,))
    sk = rolling_skill(f, actual, zone="Z", provider="p", signal="s", now=datetime(2023, 6, 3, tzinfo=UTC),
                       stale_after_s=86400)
    assert sk.forecasts_scored == 0 and sk.provider_mae is None and not sk.preferred  # < 48 h of history
    # the own model's history ends before the issue hour: changing later actuals does not change its forecast
    a = world()
    f = issued(a, 10.0, days=(9,))
    kw = dict(zone="Z", provider="p", signal="s", now=datetime(2023, 6, 10, 6, tzinfo=UTC), stale_after_s=86400)
    base = rolling_skill(f, a, **kw)
    b = a.copy()
    b[b.index >= T0 + pd.Timedelta(days=9)] += 1000  # the future moves; the provider's errors grow by 1000
    moved = rolling_skill(f, b, **kw)
    assert moved.own_mae > base.own_mae + 900 and moved.provider_mae > base.provider_mae + 900
