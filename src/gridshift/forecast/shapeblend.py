"""``shape-blend``: the blend's level with an intra-day shape fitted for the decision.

A shifting decision compares the hours inside a window, so it reads only the *shape* of the forecast path —
each lead's deviation from the path's mean over the window — never its level. The blend
(:mod:`gridshift.forecast.ensemble`) is fitted for the level; here the shape is fitted for the ranking:

- members: the blend itself, the climatological prior's level (:mod:`gridshift.forecast.climatology`), the
  prior's shape anchored on now (``y[o] + S_clim(t) − S_clim(o)``), and the naive members ``persistence``
  (flat: it shrinks the shape), ``day``, ``week``, ``day-mean`` and ``shape`` (the last 7 days' profile);
- the deviation of a path ``f`` at lead ``h`` is ``f(o, h) − mean(f(o, 0 … w − 1))`` over a window of
  ``w`` hours starting at the origin (``windows_h``, by default 24 h, then 8 h);
- at every refresh point (every ``refit_h`` hours of absolute time) and for each lead ``h < w``, non-negative
  weights summing to one are fitted by least squares between the members' deviations and the *actual*
  deviations, on the ``window_days`` most recent origins whose whole window is observed (history only), kept
  only if they beat every single member (:func:`~gridshift.forecast.ensemble.fit_weights`); before ``MIN_FIT``
  such origins exist, the blend's own shape is kept;
- forecast: ``f(o, h) = mean(B(o, 0 … w − 1)) + Σ_m w_hm · dev_m(o, h)`` for ``h < w`` (the blend's level over
  the window, the fitted shape), the blend ``B`` beyond the window, the known value at lead 0. Each narrower
  window is then refitted the same way inside the wider one, keeping the wider fit's mean over its leads, so
  the first hours are ranked by a shape fitted for short windows and compare with later hours as before;
- accuracy guard: per lead inside the window, non-negative weights summing to one of this shaped path and the
  blend are fitted to the actual values on the ``guard_days`` (28) most recent origins whose target is
  observed, kept only if they beat both alone — so where the shape costs accuracy (mostly the first hours,
  where the blend leans on the current value) the forecast moves back toward the blend.

Quantiles are conformal on this model's own errors.
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.climatology import Climatology
from gridshift.forecast.ensemble import Blend, fit_weights
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.members import naive_members
from gridshift.forecast.refit import refresh_points

MIN_FIT = 48
SHAPE_MEMBERS = ("blend", "clim", "clim-shape", "persistence", "day", "week", "day-mean", "shape")


def deviation(x: np.ndarray, w: int) -> np.ndarray:
    """``x [..., H]`` minus its mean over leads ``0 … w − 1`` (only those leads are returned)."""
    return x[..., :w] - x[..., :w].mean(axis=-1, keepdims=True)


class ShapeBlend(ProbForecaster):
    """The blend's level over the window plus a per-lead NNLS blend of member shapes fitted to actual shapes."""

    name = "shape-blend"

    def __init__(self, windows_h=(24, 8), window_days: float = 84.0, days: int = 7, zone: str | None = None,
                 start: str = "2023-01-01T00:00:00Z", refit_h: int = 24, calib_days: float = 28.0,
                 guard_days: float = 28.0, blend: dict | None = None, climatology: dict | None = None) -> None:
        windows_h = tuple(int(w) for w in np.atleast_1d(windows_h))
        if not windows_h or min(windows_h) < 2 or min(window_days, calib_days) <= 0 or guard_days < 0 or \
                days < 1 or refit_h < 1:
            raise PlanError("shape-blend needs windows_h >= 2, window_days > 0, days >= 1, refit_h >= 1 and "
                            "calib_days > 0", field="forecast")
        self.windows_h, self.window_days, self.days = windows_h, float(window_days), int(days)
        self.refit_h, self.calib_days, self.guard_days = int(refit_h), float(calib_days), float(guard_days)
        self.blend = Blend(**(blend or {}))
        self.prior = Climatology(zone=zone, start=start, refit_h=refit_h, **(climatology or {}))
        self.last_weights: dict[int, np.ndarray] = {}  # window (slots) -> [Z, K, w, M]

    def members(self, y, ext, H, slots_per_h, t0_abs) -> np.ndarray:
        """Member paths ``[M, Z, E, H]`` at origins ``ext`` (each reads ``y[:, : o + 1]`` only)."""
        B = self.blend.point_origins(y, ext, H, slots_per_h=slots_per_h, t0_abs=t0_abs)
        lvl, shp = self.prior.profiles(y, ext, H, slots_per_h=slots_per_h, t0_abs=t0_abs)
        now = y[:, ext][:, :, None]
        anchored = now + shp - shp[:, :, :1]
        naive = naive_members(y, ext, H, slots_per_h, SHAPE_MEMBERS[3:], self.days)
        out = np.concatenate([np.stack([B, lvl, anchored]), naive])
        out[:, :, :, 0] = y[:, ext]
        return out

    def fit_shape(self, y, F, ext, org, rp, w, Wn) -> np.ndarray:
        """Weights ``[Z, K, w, M]`` of the member deviations over windows of ``w`` leads, per refresh point."""
        Z, n = y.shape
        M, lo = F.shape[0], int(ext[0])
        dev = deviation(F, w)  # [M, Z, E, w]
        idx = ext[:, None] + np.arange(w)[None, :]
        act = np.where(idx[None] < n, y[:, np.minimum(idx, n - 1)], np.nan)
        da = deviation(act, w)  # [Z, E, w]
        weights = np.zeros((Z, org.size, w, M))
        weights[..., 0] = 1.0  # the blend's own shape until enough history
        for r in np.unique(rp):
            a, b = max(lo, int(r) - w + 2 - Wn), int(r) - w + 2  # origins whose window ends by r
            if b - a < MIN_FIT:
                continue
            wr = np.zeros((Z, w, M))
            wr[..., 0] = 1.0
            for z in range(Z):
                for j in range(1, w):
                    X = dev[:, z, a - lo: b - lo, j].T  # [N, M]
                    t = da[z, a - lo: b - lo, j]
                    ok = np.isfinite(X).all(axis=1) & np.isfinite(t)
                    if ok.sum() >= MIN_FIT:
                        wr[z, j], _ = fit_weights(X[ok], t[ok])
            weights[:, rp == r] = wr[:, None]
        return weights

    def guard(self, y, path, B, ext, org, rp, w, Wn) -> np.ndarray:
        """Per lead ``h < w``: non-negative weights summing to one of ``path`` and the blend ``B`` (both
        ``[Z, E, H]`` at origins ``ext``) fitted to the actual values on the last ``Wn`` origins whose target is
        observed, kept only if better than either alone; returns the guarded path at ``org`` ``[Z, K, H]``."""
        Z, n = y.shape
        lo = int(ext[0])
        wts = np.zeros((Z, org.size, w, 2))
        wts[..., 0] = 1.0
        for r in np.unique(rp):
            wr = np.zeros((Z, w, 2))
            wr[..., 0] = 1.0
            for j in range(1, w):
                a, b = max(lo, int(r) - j - Wn + 1), int(r) - j + 1  # origins with target o + j <= r
                if b - a < MIN_FIT:
                    continue
                for z in range(Z):
                    X = np.column_stack([path[z, a - lo: b - lo, j], B[z, a - lo: b - lo, j]])
                    t = y[z, a + j: b + j]
                    ok = np.isfinite(X).all(axis=1) & np.isfinite(t)
                    if ok.sum() >= MIN_FIT:
                        wr[z, j], _ = fit_weights(X[ok], t[ok])
            wts[:, rp == r] = wr[:, None]
        k = org - lo
        out = path[:, k].copy()
        out[..., :w] = path[:, k, :w] * wts[..., 0] + B[:, k, :w] * wts[..., 1]
        return out

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        org = np.asarray(origins, dtype=int)
        H = horizon
        ws = sorted({min(w * slots_per_h, H) for w in self.windows_h}, reverse=True)
        Wn = round(self.window_days * 24 * slots_per_h)
        Wg = round(self.guard_days * 24 * slots_per_h)
        refit = self.refit_h * slots_per_h
        rp = refresh_points(org, refit, t0_abs)
        g0 = int(max(0, rp.min() - Wg - ws[0] + 1)) if Wg else int(org.min())
        gx = np.arange(g0, int(org.max()) + 1) if Wg else org  # where the shaped path is needed
        rg = refresh_points(gx, refit, t0_abs)
        lo = int(max(0, rg.min() - Wn - ws[0] + 1))
        ext = np.arange(lo, int(org.max()) + 1)
        F = self.members(y, ext, H, slots_per_h, t0_abs)  # [M, Z, E, H]
        k = gx - lo
        out = F[0][:, k].copy()  # the blend
        self.last_weights = {}
        for w in ws:  # widest window first; each narrower one keeps the wider fit's mean over its leads
            weights = self.fit_shape(y, F, ext, gx, rg, w, Wn)
            self.last_weights[w] = weights
            shape = np.einsum("mzkh,zkhm->zkh", np.nan_to_num(deviation(F[:, :, k], w)), weights)
            out[..., :w] = out[..., :w].mean(axis=-1, keepdims=True) + shape
        out[:, :, 0] = y[:, gx]
        if Wg:
            out = self.guard(y, out, F[0][:, k], gx, org, rp, ws[0], Wg)
        out[:, :, 0] = y[:, org]
        return out
