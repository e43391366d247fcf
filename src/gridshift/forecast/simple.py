"""Reference forecasters: perfect foresight, persistence and seasonal-naive.

All predict ``horizon`` slots ahead for every zone from a history array ``[Z, n]`` whose last column is the
current slot; values are returned as ``[Z, horizon]`` for the slots t, t+1, …, t+horizon−1, starting with
the current one (whose value is known), because a plan made at the start of slot t covers slot t first.

``persistence`` and ``seasonal-naive`` are also :class:`~gridshift.forecast.interface.ProbForecaster`: they
forecast many origins at once and carry conformal quantiles, so backtests treat them like any other model.
The registry of every model is in :mod:`gridshift.forecast.registry` (``make_forecaster``).
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecaster, ProbForecaster

__all__ = ["Forecaster", "Perfect", "Persistence", "SeasonalNaive", "SeasonalNaiveWeek",
           "seasonal_index"]


def seasonal_index(origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """Indices ``[K, horizon]`` of "the same slot one season ago" for each origin and lead: slot o+h maps to
    o+h−season·ceil(h/season) (never after o); lead 0 is the origin itself. Origins with less than one
    season of history (o < season − 1) fall back to persistence for every lead."""
    origins = np.asarray(origins, dtype=int)
    h = np.arange(horizon)
    k = np.maximum(1, -(-h // season))
    idx = origins[:, None] + h[None, :] - season * k[None, :]
    idx[:, 0] = origins
    short = origins < season - 1
    idx[short] = origins[short, None]
    return idx


class Persistence(ProbForecaster):
    """Every future slot equals the current value."""

    name = "persistence"

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        return np.repeat(history[:, -1:], horizon, axis=1)

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        return np.repeat(series[:, origins][:, :, None], horizon, axis=2)


class SeasonalNaive(ProbForecaster):
    """Same slot one season ago (default 24 h; ``season_h=168`` for a week), repeated as needed. The current
    slot keeps its known value."""

    name = "seasonal-naive"

    def __init__(self, season_h: int = 24) -> None:
        if season_h <= 0:
            raise PlanError("season_h must be > 0", field="forecast.season_h")
        self.season_h = season_h

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        n = history.shape[1]
        season = self.season_h * slots_per_h
        if n < season:
            return Persistence().predict(history, horizon, t_abs=t_abs, slots_per_h=slots_per_h)
        h = np.arange(1, horizon)
        out = np.empty((history.shape[0], horizon))
        out[:, 0] = history[:, -1]  # the current slot is known
        out[:, 1:] = history[:, n - season + (h - 1) % season]  # slot t+h looks like slot t+h-season
        return out

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        return series[:, seasonal_index(origins, horizon, self.season_h * slots_per_h)]


class SeasonalNaiveWeek(SeasonalNaive):
    """Same slot one week ago."""

    name = "seasonal-naive-week"

    def __init__(self, season_h: int = 168) -> None:
        super().__init__(season_h)


class Perfect(Forecaster):
    """The actual future: an oracle for upper bounds, never for deployment."""

    name = "perfect"

    def __init__(self, actual: np.ndarray | None = None) -> None:
        self.actual = actual  # [Z, L + T] full series, set by the policy at reset

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        if self.actual is None:
            raise PlanError("perfect forecaster used without the actual series")
        a = self.actual[:, t_abs: t_abs + horizon]
        if a.shape[1] < horizon:  # beyond the data: hold the last value
            a = np.concatenate([a, np.repeat(a[:, -1:], horizon - a.shape[1], axis=1)], axis=1)
        return a


def __getattr__(name: str):  # the full registry lives in registry.py (it imports the heavier models)
    if name in ("FORECASTERS", "make_forecaster"):
        from gridshift.forecast import registry

        return getattr(registry, name)
    raise AttributeError(name)
