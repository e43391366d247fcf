"""``gated``: any forecaster, falling back to the climatological prior at leads where its ranking skill is lower.

A shifting decision inside a window of ``window_h`` hours starting at the origin reads only the *relative*
values of the forecast path: the deviation of each lead from the path's mean over the window. The ranking error
of a model at lead ``h`` is the mean absolute difference between its deviation and the actual one,
``|(f(o, h) − mean_w f(o, ·)) − (y[o + h] − mean_w y[o + ·])|``, over past origins.

At every refresh point ``r`` (every ``refit_h`` hours of absolute time) the ranking error of the base model and
of the prior (:mod:`gridshift.forecast.climatology`) are measured per lead on the ``window_days`` most recent
origins ``o`` whose whole window is already observed (``o + window − 1 <= r``): history only, no look-ahead.
Origins up to the next refresh point use that verdict: at leads where the prior ranked better, the forecast is
the base model's window mean plus the prior's deviation (so the level stays the base model's); elsewhere the
base model's forecast is kept. Leads beyond the window and lead 0 (known) are never changed. With fewer than
``MIN_FIT`` past origins the base model is kept. Gates are kept per refresh point and history
(:class:`~gridshift.forecast.fitcache.FitCache`), so repeated ``predict`` calls before the next refresh point
run the base model and the prior at their origin only.
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.fitcache import FitCache
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.refit import refresh_points
from gridshift.forecast.shapeblend import deviation

MIN_FIT = 48


class SkillGated(ProbForecaster):
    """``base`` where it ranks the hours of a ``window_h`` window better than the prior, else the prior's shape."""

    name = "gated"

    def __init__(self, base: str = "blend", base_params: dict | None = None, window_h: int = 24,
                 window_days: float = 28.0, refit_h: int = 24, calib_days: float = 28.0,
                 zone: str | None = None, start: str = "2023-01-01T00:00:00Z") -> None:
        from gridshift.forecast.climatology import Climatology
        from gridshift.forecast.registry import make_forecaster

        if base == "gated" or window_h < 2 or window_days <= 0 or refit_h < 1:
            raise PlanError("gated needs another base model, window_h >= 2, window_days > 0, refit_h >= 1",
                            field="forecast")
        self.base = make_forecaster(base, **(base_params or {}))
        if not isinstance(self.base, ProbForecaster):
            raise PlanError(f"gated needs a history-only base model, not '{base}'", field="forecast.base")
        self.prior = Climatology(zone=zone, start=start, refit_h=refit_h)
        self.window_h, self.window_days = int(window_h), float(window_days)
        self.refit_h, self.calib_days = int(refit_h), float(calib_days)
        self.last_gate: np.ndarray | None = None  # [Z, K, w] True where the prior's shape was used
        self._cache = FitCache()  # gates by refresh point and the history they read (not with exog)

    def fit(self, y, org, rp, H, slots_per_h, t0_abs, exog) -> tuple[dict, np.ndarray, np.ndarray]:
        """The gate ``[Z, w]`` (True where the prior ranks better) at each refresh point of ``rp``, and the base
        model's and the prior's forecasts ``[Z, K, H]`` at ``org``."""
        Z, n = y.shape
        w = min(self.window_h * slots_per_h, H)
        Wn = round(self.window_days * 24 * slots_per_h)
        lo = int(max(0, rp.min() - Wn - w + 1))
        ext = np.arange(lo, int(org.max()) + 1)
        fb = self.base.point_origins(y, ext, H, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
        fp = self.prior.point_origins(y, ext, H, slots_per_h=slots_per_h, t0_abs=t0_abs)
        idx = ext[:, None] + np.arange(w)[None, :]
        act = np.where(idx[None] < n, y[:, np.minimum(idx, n - 1)], np.nan)  # [Z, E, w]
        da = deviation(act, w)
        eb, ep = np.abs(deviation(fb, w) - da), np.abs(deviation(fp, w) - da)  # [Z, E, w]
        gates = {}
        for r in np.unique(rp):
            r = int(r)
            g = np.zeros((Z, w), dtype=bool)
            a, b = max(lo, r - w + 1 - Wn + 1), r - w + 2  # origins whose window ends by r
            if b - a >= MIN_FIT:
                sb = np.nanmean(eb[:, a - lo: b - lo], axis=1)
                sp = np.nanmean(ep[:, a - lo: b - lo], axis=1)  # [Z, w]
                g = sp < sb
            g[:, 0] = False  # lead 0 is known
            gates[r] = g
        k = org - lo
        return gates, fb[:, k], fp[:, k]

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        org = np.asarray(origins, dtype=int)
        H = horizon
        w = min(self.window_h * slots_per_h, H)
        rp = refresh_points(org, self.refit_h * slots_per_h, t0_abs)
        keys = self._cache.keys(y, rp, t0_abs, (H, slots_per_h)) if exog is None else {}
        gates = self._cache.lookup(keys) if keys else None
        if gates is None:  # refit (once per refresh point and history)
            gates, base, prior = self.fit(y, org, rp, H, slots_per_h, t0_abs, exog)
            for r, k in keys.items():
                self._cache.put(k, gates[r])
        else:  # every gate known: the base model and the prior at the origins only
            base = self.base.point_origins(y, org, H, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
            prior = self.prior.point_origins(y, org, H, slots_per_h=slots_per_h, t0_abs=t0_abs)
        gate = np.stack([gates[int(r)] for r in rp], axis=1)  # [Z, K, w]
        mixed = base[..., :w].mean(axis=-1, keepdims=True) + deviation(prior, w)
        out = base.copy()
        out[..., :w] = np.where(gate, mixed, base[..., :w])
        self.last_gate = gate
        return out
