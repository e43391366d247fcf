"""statsforecast MSTL (daily and weekly seasonality, AutoETS trend), re-fitted on a rolling window.

Every ``retrain_h`` hours of absolute time the model is fitted on the last ``train_days`` days and forecasts
the slots until the next re-fit plus the horizon. An origin ``o`` between re-fits reads that path and anchors
it on the value it observes: ``f(o, h) = F(o + h) + (y[o] − F(o))``, where ``F`` is the fitted (in-sample) or
forecast path of the last fit at or before ``o``. So the model supplies the daily and weekly shape and the
current observation supplies the level (a fit costs about 0.3 s, too much to repeat every hour).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from gridshift.errors import PlanError, require
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.refit import refresh_points


class MstlForecaster(ProbForecaster):
    name = "mstl"

    def __init__(self, train_days: float = 28.0, retrain_h: int = 168, seasons_h=(24, 168),
                 trend: str = "ZZN", calib_days: float = 28.0, refit_h: int = 24) -> None:
        seasons_h = tuple(int(s) for s in seasons_h)
        if train_days <= 0 or retrain_h < 1 or not seasons_h or min(seasons_h) < 1:
            raise PlanError("train_days > 0, retrain_h >= 1 and seasons_h >= 1 needed", field="forecast")
        self.train_days, self.retrain_h, self.seasons_h, self.trend = float(train_days), int(retrain_h), seasons_h, trend
        self.calib_days, self.refit_h = float(calib_days), int(refit_h)
        self._cache: OrderedDict = OrderedDict()

    def _path(self, y: np.ndarray, sph: int, steps: int, key) -> np.ndarray:
        """Fitted values over ``y`` followed by ``steps`` forecast values."""
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        import warnings

        models = require("statsforecast.models", "forecast", "the 'mstl' forecaster")
        MSTL, AutoETS = models.MSTL, models.AutoETS

        seasons = [s * sph for s in self.seasons_h if 2 * s * sph <= y.size]
        if not seasons:
            path = np.concatenate([y, np.full(steps, y[-1])])
        else:
            m = MSTL(season_length=seasons, trend_forecaster=AutoETS(model=self.trend))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    r = m.forecast(y=y, h=steps, fitted=True)
                    path = np.concatenate([np.asarray(r["fitted"], float), np.asarray(r["mean"], float)])
                except (ValueError, ArithmeticError, np.linalg.LinAlgError):  # a degenerate window: last value
                    path = np.concatenate([y, np.full(steps, y[-1])])
        if not np.isfinite(path).all():
            path = np.where(np.isfinite(path), path, y[-1])
        self._cache[key] = path
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        return path

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y_all = np.asarray(series, dtype=float)
        Z, _n = y_all.shape
        org = np.asarray(origins, dtype=int)
        H = horizon
        out = np.repeat(y_all[:, org][:, :, None], H, axis=2)
        W = round(self.train_days * 24 * slots_per_h)
        R = self.retrain_h * slots_per_h
        rp = refresh_points(org, R, t0_abs)
        hh = np.arange(H)
        for z in range(Z):
            for r in np.unique(rp):
                r = int(r)
                a = max(0, r - W + 1)
                if r + 1 - a < 48 * slots_per_h:
                    continue
                seg = y_all[z, a: r + 1]
                key = (r + t0_abs, slots_per_h, R + H, hashlib.blake2b(seg.tobytes(), digest_size=16).hexdigest())
                path = self._path(seg, slots_per_h, R + H, key)  # index i <-> slot a + i
                sel = np.flatnonzero(rp == r)
                o = org[sel]
                f_at = path[np.minimum(o[:, None] + hh[None, :] - a, path.size - 1)]
                out[z, sel] = f_at + (y_all[z, o] - path[o - a])[:, None]
                out[z, sel, 0] = y_all[z, o]
        return out
