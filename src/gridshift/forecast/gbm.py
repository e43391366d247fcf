"""LightGBM forecaster: one direct multi-horizon model per zone, re-trained on a rolling window.

Each training row is an (origin ``o``, lead ``h``) pair; the label is the change ``y[o + h] − y[o]`` and the
features are all known at ``o``:

- calendar: lead, hour of day and hour of week of the target, hour of day of the origin (counted from the
  absolute slot index, so they are consistent within a series whatever its start);
- local calendar (when ``zone`` is given; meant for load and price, which follow people's days): the
  target's hour of day and day of week in the zone's local time and whether its local date is a public
  holiday there (:mod:`gridshift.forecast.calendar`; ``start`` is the UTC time of absolute slot 0);
- lags: the current value, its change over the last hour and the last day, and the naive members of the
  blend (same hour yesterday / last week, 7-day same-hour mean, daily shape anchored now, 24 h mean), each
  relative to the current value;
- cross-signal (when ``exog [Z, E, n]`` is given, e.g. clean share, load, price of the same zone): each
  signal's current value, its change over the last day, and its same-hour-yesterday value at the target.

The model is re-trained every ``retrain_h`` hours of absolute time on the origins of the last ``train_days``
days whose targets are observed (every ``origin_stride_h``-th origin, to bound the training set), and
predicts every origin until the next re-training. Trained models are cached by their training data, so a
planner calling ``predict`` every hour trains once a week.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np

from gridshift.errors import PlanError, require
from gridshift.forecast.calendar import local_calendar, zone_calendar
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.members import naive_members
from gridshift.forecast.refit import refresh_points
from gridshift.forecast.simple import seasonal_index

MIN_ROWS = 500
_MEMBERS = ("day", "week", "day-mean", "shape", "mean-24h")


class GbmForecaster(ProbForecaster):
    name = "gbm"

    def __init__(self, train_days: float = 56.0, retrain_h: int = 168, origin_stride_h: int = 6,
                 n_estimators: int = 60, learning_rate: float = 0.1, num_leaves: int = 15,
                 min_child_samples: int = 40, objective: str = "l2", num_threads: int = 2, seed: int = 0,
                 calib_days: float = 28.0, refit_h: int = 24, zone: str | None = None,
                 start: str = "2023-01-01T00:00:00Z") -> None:
        if zone is not None:
            zone_calendar(zone)  # unknown zone: PlanError now, not at the first forecast
        self.zone, self.start = zone, str(start)
        if train_days <= 0 or retrain_h < 1 or origin_stride_h < 1 or n_estimators < 1:
            raise PlanError("train_days > 0, retrain_h >= 1, origin_stride_h >= 1, n_estimators >= 1 needed",
                            field="forecast")
        self.train_days, self.retrain_h, self.origin_stride_h = float(train_days), int(retrain_h), int(origin_stride_h)
        self.params = {"objective": objective, "learning_rate": learning_rate, "num_leaves": num_leaves,
                       "min_child_samples": min_child_samples, "num_threads": num_threads, "seed": seed,
                       "deterministic": True, "verbose": -1, "force_row_wise": True, "max_bin": 63}
        self.n_estimators = int(n_estimators)
        self.calib_days, self.refit_h = float(calib_days), int(refit_h)
        self._cache: OrderedDict = OrderedDict()

    def _features(self, y: np.ndarray, ex: np.ndarray | None, o: np.ndarray, H: int, sph: int,
                  t0_abs: int, cal: np.ndarray | None = None) -> np.ndarray:
        """Features ``[K, H, F]`` for one zone (``y [n]``, ``ex [E, n]``) at origins ``o``; ``cal [3, n + H]``
        the local calendar of the series' slots (see :func:`~gridshift.forecast.calendar.local_calendar`)."""
        day = 24 * sph
        K = o.size
        h = np.arange(H)
        tgt_abs = (t0_abs + o[:, None] + h[None, :]) // sph
        now = y[o][:, None]
        cols = [np.broadcast_to(h[None, :].astype(float), (K, H)),
                (tgt_abs % 24).astype(float), (tgt_abs % 168).astype(float),
                np.broadcast_to((((t0_abs + o) // sph) % 24)[:, None].astype(float), (K, H)),
                np.broadcast_to(now, (K, H)),
                np.broadcast_to((y[o] - y[np.maximum(o - 1, 0)])[:, None], (K, H)),
                np.broadcast_to((y[o] - y[np.maximum(o - day, 0)])[:, None], (K, H))]
        mem = naive_members(y[None], o, H, sph, _MEMBERS)[:, 0]  # [M, K, H]
        cols += [m - now for m in mem]
        if ex is not None:
            sidx = seasonal_index(o, H, day)
            for e in ex:
                en = e[o][:, None]
                cols += [np.broadcast_to(en, (K, H)),
                         np.broadcast_to((e[o] - e[np.maximum(o - day, 0)])[:, None], (K, H)),
                         e[sidx] - en]
        if cal is not None:
            ti = o[:, None] + h[None, :]
            cols += [cal[0][ti], cal[1][ti], cal[2][ti]]
        return np.stack([np.asarray(c, dtype=float) for c in cols], axis=-1)

    def _train(self, X: np.ndarray, lab: np.ndarray, key):
        lgb = require("lightgbm", "forecast", "the 'gbm' forecaster")

        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        model = lgb.train(self.params, lgb.Dataset(X, lab, free_raw_data=True), num_boost_round=self.n_estimators)
        self._cache[key] = model
        while len(self._cache) > 64:
            self._cache.popitem(last=False)
        return model

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y_all = np.asarray(series, dtype=float)
        Z, n = y_all.shape
        org = np.asarray(origins, dtype=int)
        H = horizon
        out = np.repeat(y_all[:, org][:, :, None], H, axis=2)  # persistence until a model is trained
        if H < 2:
            return out
        if exog is not None:
            exog = np.asarray(exog, dtype=float)
            if exog.ndim != 3 or exog.shape[0] != Z or exog.shape[2] != n:
                raise PlanError(f"exog must be [Z, E, n] = [{Z}, E, {n}], got {exog.shape}", field="exog")
        W = round(self.train_days * 24 * slots_per_h)
        stride = self.origin_stride_h * slots_per_h
        rp = refresh_points(org, self.retrain_h * slots_per_h, t0_abs)
        hh = np.arange(H)
        cal = None if self.zone is None else local_calendar(self.zone, self.start, t0_abs, n + H, slots_per_h)
        for z in range(Z):
            y = y_all[z]
            ex = exog[z] if exog is not None else None
            for r in np.unique(rp):
                r = int(r)
                a = max(0, r - W - H + 1)
                # training origins on an absolute grid, so the rows do not depend on where the array starts
                first = a + (-(a + t0_abs)) % stride
                tr = np.arange(first, r, stride)
                if tr.size == 0:
                    continue
                ok = (tr[:, None] + hh[None, :] <= r) & (hh[None, :] >= 1)
                if ok.sum() < MIN_ROWS:
                    continue
                Xtr = self._features(y, ex, tr, H, slots_per_h, t0_abs, cal)[ok]
                lab = (y[np.minimum(tr[:, None] + hh[None, :], n - 1)] - y[tr][:, None])[ok]
                good = np.isfinite(lab) & np.isfinite(Xtr).all(axis=1)
                if good.sum() < MIN_ROWS:
                    continue
                digest = hashlib.blake2b(y[a: r + 1].tobytes(), digest_size=16)
                if ex is not None:
                    digest.update(ex[:, a: r + 1].tobytes())
                key = (r + t0_abs, H, slots_per_h, 0 if ex is None else ex.shape[0], digest.hexdigest())
                model = self._train(Xtr[good], lab[good], key)
                sel = np.flatnonzero(rp == r)
                Xp = self._features(y, ex, org[sel], H, slots_per_h, t0_abs, cal)
                pred = model.predict(Xp.reshape(-1, Xp.shape[-1]), num_threads=self.params["num_threads"])
                out[z, sel] = y[org[sel]][:, None] + pred.reshape(sel.size, H)
                out[z, sel, 0] = y[org[sel]]
        return out
