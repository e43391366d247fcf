"""The forecaster interface: point forecasts for the planner, rolling-origin forecasts with quantiles for
backtests.

Every forecaster answers ``predict(history [Z, n], horizon, *, t_abs, slots_per_h) -> [Z, horizon]``: column 0
is the current slot ``t_abs`` (its value is known, ``history[:, -1]``), column h the slot ``t_abs + h``.

A :class:`ProbForecaster` also answers :meth:`ProbForecaster.forecast_origins`: the forecasts it would have
made at many origins of one series at once, each origin ``o`` seeing only ``series[:, : o + 1]``, with
quantiles. Its ``predict`` is that same computation at the last slot of the history, so a backtest measures
exactly what a planner gets. Models refit on a fixed grid of absolute slots (``t_abs`` multiples of
``refit_h``), so the forecast at an origin does not depend on how much later data the array holds.

Quantiles are conformal: for each lead time, the empirical quantiles of the model's own out-of-sample errors
(actual minus forecast) over a trailing window of past origins whose targets are already observed
(:mod:`gridshift.forecast.quantile`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.quantile import conformal_quantiles

DEFAULT_LEVELS: tuple[float, ...] = (0.1, 0.5, 0.9)


class Forecaster(ABC):
    name = "forecaster"

    @abstractmethod
    def predict(self, history: np.ndarray, horizon: int, *, t_abs: int, slots_per_h: int) -> np.ndarray:
        """``history[:, -1]`` is the current slot (index ``t_abs`` in the full series); return
        ``[Z, horizon]`` for slots t_abs … t_abs + horizon − 1."""


@dataclass
class Forecast:
    """Forecasts at K origins of a Z-row series: ``point[z, k, h]`` is the forecast made at slot
    ``origins[k]`` for slot ``origins[k] + h``; ``quantiles[z, k, h, i]`` the ``levels[i]`` quantile."""

    origins: np.ndarray  # [K] slot indices into the series
    point: np.ndarray  # [Z, K, H]
    quantiles: np.ndarray  # [Z, K, H, Q]
    levels: tuple[float, ...]

    def interval(self, coverage: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
        """Central interval bounds ``(lo, hi)`` [Z, K, H] for ``coverage`` (its quantiles must be present)."""
        lo_q, hi_q = round((1 - coverage) / 2, 6), round(1 - (1 - coverage) / 2, 6)
        lv = [round(x, 6) for x in self.levels]
        if lo_q not in lv or hi_q not in lv:
            raise PlanError(f"quantiles {lo_q} and {hi_q} are needed for a {coverage:.0%} interval "
                            f"(have {self.levels})", field="levels")
        return self.quantiles[..., lv.index(lo_q)], self.quantiles[..., lv.index(hi_q)]


def check_levels(levels) -> tuple[float, ...]:
    lv = tuple(float(x) for x in levels)
    if not lv or any(not 0 < x < 1 for x in lv) or list(lv) != sorted(set(lv)):
        raise PlanError(f"quantile levels must be increasing and inside (0, 1), got {levels}", field="levels")
    return lv


def as_2d(series: np.ndarray) -> np.ndarray:
    y = np.asarray(series, dtype=float)
    if y.ndim == 1:
        y = y[None, :]
    if y.ndim != 2 or y.shape[1] == 0:
        raise PlanError(f"series must be [Z, n] with n >= 1, got shape {np.shape(series)}", field="history")
    return y


class ProbForecaster(Forecaster):
    """A forecaster with a vectorised rolling-origin path and conformal quantiles.

    Subclasses implement :meth:`point_origins`. ``calib_days`` is the trailing window of the conformal
    quantiles, ``refit_h`` how often (in hours of absolute time) quantiles and fitted weights are refreshed.
    """

    name = "prob"
    calib_days: float = 28.0
    refit_h: int = 24

    @abstractmethod
    def point_origins(self, series: np.ndarray, origins: np.ndarray, horizon: int, *, slots_per_h: int,
                      t0_abs: int = 0, exog: np.ndarray | None = None) -> np.ndarray:
        """Point forecasts ``[Z, K, horizon]`` at ``origins`` (indices into ``series`` [Z, n]); the row for
        origin ``o`` may read ``series[:, : o + 1]`` (and ``exog[:, :, : o + 1]``) only. ``t0_abs`` is the
        absolute slot of ``series[:, 0]``. Column 0 is the known current value."""

    # -- public API -------------------------------------------------------------------------------------
    def forecast_origins(self, series: np.ndarray, origins, horizon: int, *, slots_per_h: int = 1,
                         t0_abs: int = 0, levels=DEFAULT_LEVELS, exog: np.ndarray | None = None) -> Forecast:
        """Forecasts with quantiles at every origin in ``origins`` (each sees only data up to itself)."""
        y = as_2d(series)
        lv = check_levels(levels)
        org = np.asarray(origins, dtype=int).ravel()
        if horizon < 1:
            raise PlanError("horizon must be >= 1 slot", field="horizon")
        if org.size and (org.min() < 0 or org.max() >= y.shape[1]):
            raise PlanError("origins must index the series", field="origins")
        if org.size == 0:
            Z = y.shape[0]
            return Forecast(org, np.zeros((Z, 0, horizon)), np.zeros((Z, 0, horizon, len(lv))), lv)
        W = round(self.calib_days * 24 * slots_per_h)
        lo = max(0, int(org.min()) - W - horizon)
        ext = np.arange(lo, int(org.max()) + 1)
        pt_ext = self.point_origins(y, ext, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
        q = conformal_quantiles(y, ext, pt_ext, org, horizon, levels=lv, window=W,
                                refresh=self.refit_h * slots_per_h, t0_abs=t0_abs)
        point = pt_ext[:, org - lo, :]
        quant = point[..., None] + q
        return Forecast(org, point, self.bound(quant), lv)

    def predict(self, history, horizon, *, t_abs, slots_per_h):
        y = as_2d(history)
        n = y.shape[1]
        return self.point_origins(y, np.array([n - 1]), horizon, slots_per_h=slots_per_h,
                                  t0_abs=t_abs - (n - 1))[:, 0, :]

    def predict_quantiles(self, history: np.ndarray, horizon: int, *, t_abs: int, slots_per_h: int,
                          levels=DEFAULT_LEVELS) -> np.ndarray:
        """Quantiles ``[Z, horizon, Q]`` for slots t_abs … t_abs + horizon − 1 (ordered along Q)."""
        y = as_2d(history)
        n = y.shape[1]
        f = self.forecast_origins(y, [n - 1], horizon, slots_per_h=slots_per_h, t0_abs=t_abs - (n - 1),
                                  levels=levels)
        return f.quantiles[:, 0]

    def sample_paths(self, series: np.ndarray, origin: int, horizon: int, n: int, rng: np.random.Generator, *,
                     slots_per_h: int = 1, t0_abs: int = 0) -> np.ndarray:
        """``n`` coherent joint sample paths ``[n, horizon]`` of the forecast at ``origin`` (whole past residual
        trajectories; see :mod:`gridshift.forecast.paths`)."""
        from gridshift.forecast.paths import sample_paths

        return sample_paths(self, series, origin, horizon, n, rng, slots_per_h=slots_per_h, t0_abs=t0_abs)

    def bound(self, quant: np.ndarray) -> np.ndarray:
        """Hook for range limits (none by default); quantiles stay ordered."""
        return quant
