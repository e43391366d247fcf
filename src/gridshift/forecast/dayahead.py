"""Day-ahead market prices as what they are: known once the auction has published them.

In a day-ahead market the price of every hour of delivery day D is fixed by an auction on day D − 1 and
published the same afternoon, so a forecast of price issued after that publication knows those hours exactly;
issued before it, it knows them only up to the end of day D − 1. ``dayahead`` wraps any forecaster (``base``,
default ``blend``) and, for the price signal of the zones whose shared price data are a day-ahead auction
(:data:`DAY_AHEAD_MARKETS`), replaces the leads already published at the issue time by the published prices;
every other lead, zone and signal is the base model's forecast. A forecast issued at slot ``t`` never reads a
price published after ``t`` (tests/forecast/test_dayahead.py corrupts every later publication).

The shared prices (HewlettPackard/green-dcc's standardised series, ``data/electricity_prices/README.md``):
``DE-LU`` is ENTSO-E's day-ahead price of the bidding zone (the single day-ahead coupling: EPEX SPOT's day-ahead
auction closes at 12:00 CET/CEST and publishes from 12:42, "Day-Ahead auction", epexspot.com, and ENTSO-E
publishes no later than an hour after gate closure — taken here as 13:00 Europe/Berlin); ``JP-TK`` is JEPX's
spot (day-ahead) market, whose bids close at 10:00 JST on the day before delivery (JEPX, "Trading guide",
jepx.jp) — taken here as 11:00 Asia/Tokyo. The other zones' series are real-time or of unstated market, and no
hour of them is treated as known ahead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecaster

# zone -> (the market's time zone, hour of day D − 1 in it by which day D's prices are published)
DAY_AHEAD_MARKETS: dict[str, tuple[str, int]] = {"DE-LU": ("Europe/Berlin", 13), "JP-TK": ("Asia/Tokyo", 11)}
PRICE = "price_usd_per_mwh"


def known_until(issue: pd.Timestamp, tz: str, publish_h: int) -> pd.Timestamp:
    """The end (UTC, exclusive) of the delivery hours whose day-ahead prices are published at ``issue``: the end
    of the next local day once today's auction has published, else the end of today."""
    local = issue.tz_convert(tz)
    day = local.normalize()
    days = 2 if local >= day + pd.Timedelta(hours=publish_h) else 1
    end = (day.tz_localize(None) + pd.Timedelta(days=days)).tz_localize(tz)  # DST-safe local midnight
    return end.tz_convert("UTC")


class DayAhead(Forecaster):
    """Published day-ahead prices for the leads they cover, the ``base`` model's forecast elsewhere.

    The planner tells it, before each call, which signal it forecasts (``signal``), the zones of the rows
    (``zones``), the UTC time of series index 0 (``t0``), the slot length (``slot_s``) and the actual series of
    that signal (``actual``, read only where published)."""

    name = "dayahead"

    def __init__(self, base: str = "blend", base_params: dict[str, Any] | None = None,
                 markets: dict[str, list | tuple] | None = None) -> None:
        from gridshift.forecast.registry import make_forecaster

        if base in ("dayahead", "perfect"):
            raise PlanError("dayahead needs a real base forecaster (not 'perfect' or 'dayahead')",
                            field="forecast_params.base")
        self.base = make_forecaster(base, **(base_params or {}))
        self.markets = {str(z): (str(v[0]), int(v[1])) for z, v in (markets or DAY_AHEAD_MARKETS).items()}
        self.signal: str | None = None
        self.zones: tuple[str, ...] = ()
        self.t0: pd.Timestamp | None = None
        self.slot_s = 3600
        self.actual: np.ndarray | None = None
        self.published_leads = 0  # leads taken from published prices in the last call (all zones)

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        out = np.array(self.base.predict(history, horizon, t_abs=t_abs, slots_per_h=slots_per_h), dtype=float)
        self.published_leads = 0
        if self.signal != PRICE or self.actual is None or self.t0 is None:
            return out
        issue = self.t0 + pd.Timedelta(seconds=t_abs * self.slot_s)
        for z, zone in enumerate(self.zones):
            if zone not in self.markets or z >= out.shape[0]:
                continue
            end = known_until(issue, *self.markets[zone])
            n = int(min(horizon, max(0, (end - issue).total_seconds() // self.slot_s)))
            n = min(n, self.actual.shape[1] - t_abs)
            if n > 0:
                out[z, :n] = self.actual[z, t_abs: t_abs + n]
                self.published_leads += n
        return out

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        """Rolling-origin forecasts of the base model (a backtest hands no published prices: the base alone)."""
        if not hasattr(self.base, "point_origins"):
            raise PlanError(f"base forecaster '{self.base.name}' gives no rolling-origin forecasts",
                            field="forecast_params.base")
        return self.base.point_origins(series, origins, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
