"""Reference forecasters: perfect foresight, persistence and seasonal-naive.

All predict ``horizon`` slots ahead for every zone from a history array ``[Z, n]`` whose last column is the
current slot; values are returned as ``[Z, horizon]`` for the slots t, t+1, …, t+horizon−1, starting with
the current one (whose value is known), because a plan made at the start of slot t covers slot t first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from gridshift.errors import PlanError


class Forecaster(ABC):
    name = "forecaster"

    @abstractmethod
    def predict(self, history: np.ndarray, horizon: int, *, t_abs: int, slots_per_h: int) -> np.ndarray:
        """``history[:, -1]`` is the current slot (index ``t_abs`` in the full series); return
        ``[Z, horizon]`` for slots t_abs … t_abs + horizon − 1."""


class Persistence(Forecaster):
    """Every future slot equals the current value."""

    name = "persistence"

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        return np.repeat(history[:, -1:], horizon, axis=1)


class SeasonalNaive(Forecaster):
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


FORECASTERS = {"perfect": Perfect, "persistence": Persistence, "seasonal-naive": SeasonalNaive}


def make_forecaster(name: str, **params) -> Forecaster:
    cls = FORECASTERS.get(name)
    if cls is None:
        raise PlanError(f"unknown forecaster '{name}' (known: {', '.join(FORECASTERS)})", field="forecast")
    return cls(**params)
