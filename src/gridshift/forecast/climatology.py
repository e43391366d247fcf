"""A climatological prior: what the hour of day, the type of day and the season say about a target hour.

``climatology`` forecasts each target slot from the history before the origin as a robust profile by
(local) hour of day × day type (working day, or weekend/public holiday):

- level: the median, over the last ``weeks`` weeks, of the values in the target's class (hour of day × day
  type);
- shape: the median, over the same weeks, of each value minus the mean of its (local, complete) day — the
  typical intra-day deviation of that hour, the part a shifting decision needs.

When the history reaches back a year, both profiles are blended (weight ``prev_year_weight``) with those of
the same season one year earlier (364 days back, the ``weeks`` weeks centred there), so the prior knows that
July's solar noon dip is deeper than March's before it has seen many July days. With ``zone`` given (any zone
of :data:`~gridshift.forecast.calendar.ZONE_CALENDAR`) hours and days are local and the zone's public
holidays count as non-working days; without it hours are UTC and weekends Saturday and Sunday. ``start`` is
the UTC time of absolute slot 0 (``t_abs = 0``).

Profiles refresh every ``refit_h`` hours of absolute time and read only slots at or before that refresh point,
so no forecast reads a value after its origin. The point forecast is the level profile (lead 0: the known
current value); quantiles are conformal like every other :class:`~gridshift.forecast.interface.ProbForecaster`.
:meth:`Climatology.profiles` returns level and shape for other models (``shape-blend``, the skill gate).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from gridshift.errors import PlanError
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.refit import refresh_points
from gridshift.model.time import as_utc_timestamp

YEAR_D = 364  # whole weeks: the same weekday one year back


@functools.lru_cache(maxsize=32)
def slot_classes(zone: str | None, start: str, first_abs: int, n: int, slots_per_h: int) -> tuple[np.ndarray, np.ndarray]:
    """``(cls [n], day [n])`` for absolute slots ``first_abs …``: the class (hour-of-day bin × 2 + 1 if the
    day is a weekend or public holiday) and an integer id of the (local) calendar day. Read-only."""
    if zone is not None:
        from gridshift.forecast.calendar import local_calendar, zone_calendar

        cal = local_calendar(zone, start, first_abs, n, slots_per_h)
        hour, dow, hol = cal[0], cal[1], cal[2]
        local = pd.date_range(as_utc_timestamp(start) + pd.Timedelta(hours=first_abs / slots_per_h), periods=n,
                              freq=pd.Timedelta(hours=1 / slots_per_h)).tz_convert(zone_calendar(zone)[0])
        day = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]").astype(np.int64)
    else:
        t = as_utc_timestamp(start) + pd.to_timedelta(np.arange(first_abs, first_abs + n) / slots_per_h, unit="h")
        hour = (t.hour + t.minute / 60.0).to_numpy(dtype=float)
        dow = t.dayofweek.to_numpy(dtype=float)
        hol = np.zeros(n)
        day = t.tz_localize(None).normalize().to_numpy().astype("datetime64[D]").astype(np.int64)
    off = (dow >= 5) | (hol > 0)
    cls = (np.floor(hour * slots_per_h).astype(np.int64) * 2 + off).astype(np.int64)
    cls.setflags(write=False)
    day.setflags(write=False)
    return cls, day


def grouped_median(vals: np.ndarray, cls: np.ndarray, n_cls: int) -> np.ndarray:
    """Median of ``vals`` per class ``0 … n_cls − 1`` (NaN values ignored; NaN for an empty class)."""
    ok = np.isfinite(vals)
    v, c = vals[ok], cls[ok]
    order = np.lexsort((v, c))
    v, c = v[order], c[order]
    first = np.searchsorted(c, np.arange(n_cls), side="left")
    cnt = np.searchsorted(c, np.arange(n_cls), side="right") - first
    lo = first + np.maximum(cnt - 1, 0) // 2
    hi = first + cnt // 2
    vv = np.append(v, np.nan)
    med = 0.5 * (vv[np.minimum(lo, v.size)] + vv[np.minimum(hi, v.size)])
    return np.where(cnt > 0, med, np.nan)


def fill_classes(p: np.ndarray) -> np.ndarray:
    """An empty class takes the other day type's value at that hour, else the overall median."""
    p = p.copy()
    other = p.reshape(-1, 2)[:, ::-1].ravel()
    p = np.where(np.isfinite(p), p, other)
    return np.where(np.isfinite(p), p, np.nanmedian(p) if np.isfinite(p).any() else 0.0)


class Climatology(ProbForecaster):
    """Robust hour-of-day × day-type profile of the last ``weeks`` weeks (plus last year's same season)."""

    name = "climatology"

    def __init__(self, weeks: int = 4, prev_year_weight: float = 0.25, zone: str | None = None,
                 start: str = "2023-01-01T00:00:00Z", refit_h: int = 24, calib_days: float = 28.0) -> None:
        if weeks < 1 or refit_h < 1 or calib_days <= 0 or not 0 <= prev_year_weight <= 1:
            raise PlanError("climatology needs weeks >= 1, refit_h >= 1, calib_days > 0 and "
                            "0 <= prev_year_weight <= 1", field="forecast")
        if zone is not None:
            from gridshift.forecast.calendar import zone_calendar

            zone_calendar(zone)  # unknown zone: PlanError now
        self.weeks, self.prev_year_weight, self.zone = int(weeks), float(prev_year_weight), zone
        self.start, self.refit_h, self.calib_days = str(start), int(refit_h), float(calib_days)

    def _window_profiles(self, y: np.ndarray, cls: np.ndarray, day: np.ndarray, a: int, b: int,
                         n_cls: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Level and shape profiles ``[Z, n_cls]`` of slots ``a … b − 1`` (only complete days for the shape)
        and the number of slots read."""
        a = max(a, 0)
        if b - a <= 0:
            return np.full((y.shape[0], n_cls), np.nan), np.full((y.shape[0], n_cls), np.nan), 0
        c, d = cls[a:b], day[a:b]
        d0 = d - d.min()
        full = (d != d[0]) & (d != d[-1])  # drop the partial first and last days
        lvl, shp = [], []
        for z in range(y.shape[0]):
            v = y[z, a:b]
            fin = np.isfinite(v)
            s = np.bincount(d0[fin], v[fin], minlength=d0.max() + 1)
            k = np.bincount(d0[fin], minlength=d0.max() + 1)
            anom = np.where(full & fin, v - s[d0] / np.maximum(k[d0], 1), np.nan)
            lvl.append(grouped_median(v, c, n_cls))
            shp.append(grouped_median(anom, c, n_cls))
        return np.array(lvl), np.array(shp), b - a

    def profiles(self, series: np.ndarray, origins: np.ndarray, horizon: int, *, slots_per_h: int,
                 t0_abs: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``(level, shape)`` ``[Z, K, horizon]`` at ``origins``: the profiles (fitted at the last refresh point
        at or before each origin) read at each target slot's class."""
        y = np.asarray(series, dtype=float)
        Z, n = y.shape
        org = np.asarray(origins, dtype=int)
        H = horizon
        D = 24 * slots_per_h
        n_cls = 2 * D
        cls, day = slot_classes(self.zone, self.start, t0_abs, n + H, slots_per_h)
        rp = refresh_points(org, self.refit_h * slots_per_h, t0_abs)
        W = self.weeks * 7 * D
        tgt = org[:, None] + np.arange(H)[None, :]
        level, shape = np.zeros((Z, org.size, H)), np.zeros((Z, org.size, H))
        for r in np.unique(rp):
            r = int(r)
            lv, sh, _ = self._window_profiles(y, cls, day, r - W + 1, r + 1, n_cls)
            back = r - YEAR_D * D
            if self.prev_year_weight > 0 and back - W // 2 >= 0:
                plv, psh, _ = self._window_profiles(y, cls, day, back - W // 2, back + W // 2, n_cls)
                w = self.prev_year_weight
                lv = np.where(np.isfinite(plv), (1 - w) * lv + w * plv, lv)
                sh = np.where(np.isfinite(psh), (1 - w) * sh + w * psh, sh)
            lv = np.array([fill_classes(p) for p in lv])
            sh = np.array([fill_classes(p) for p in sh])
            k = rp == r
            c = cls[tgt[k]]  # [k, H]
            level[:, k] = lv[:, c]
            shape[:, k] = sh[:, c]
        return level, shape

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        org = np.asarray(origins, dtype=int)
        level, _ = self.profiles(y, org, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs)
        level[:, :, 0] = y[:, org]
        return level
