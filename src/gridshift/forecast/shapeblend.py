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

Quantiles are conformal on this model's own errors. The fits at each refresh point are kept
(:class:`~gridshift.forecast.fitcache.FitCache`, keyed by the exact history they read), so a planner calling
``predict`` every slot refits once per refresh point and otherwise only computes the members at its origin.
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.climatology import Climatology
from gridshift.forecast.ensemble import Blend, fit_weights
from gridshift.forecast.fitcache import FitCache
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
        self._cache = FitCache()  # fits by refresh point and the history they read

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

    def fit_shape(self, y, F, ext, points, w, Wn) -> dict[int, np.ndarray]:
        """Weights ``[Z, w, M]`` of the member deviations over windows of ``w`` leads, per refresh point."""
        Z, n = y.shape
        M, lo = F.shape[0], int(ext[0])
        dev = deviation(F, w)  # [M, Z, E, w]
        idx = ext[:, None] + np.arange(w)[None, :]
        act = np.where(idx[None] < n, y[:, np.minimum(idx, n - 1)], np.nan)
        da = deviation(act, w)  # [Z, E, w]
        out = {}
        for r in points:
            r = int(r)
            wr = np.zeros((Z, w, M))
            wr[..., 0] = 1.0  # the blend's own shape until enough history
            a, b = max(lo, r - w + 2 - Wn), r - w + 2  # origins whose window ends by r
            if b - a >= MIN_FIT:
                for z in range(Z):
                    for j in range(1, w):
                        X = dev[:, z, a - lo: b - lo, j].T  # [N, M]
                        t = da[z, a - lo: b - lo, j]
                        ok = np.isfinite(X).all(axis=1) & np.isfinite(t)
                        if ok.sum() >= MIN_FIT:
                            wr[z, j], _ = fit_weights(X[ok], t[ok])
            out[r] = wr
        return out

    def guard(self, y, path, B, ext, points, w, Wn) -> dict[int, np.ndarray]:
        """Per refresh point and lead ``h < w``: non-negative weights ``[Z, w, 2]`` summing to one of ``path`` and
        the blend ``B`` (both ``[Z, E, H]`` at origins ``ext``) fitted to the actual values on the last ``Wn``
        origins whose target is observed, kept only if better than either alone."""
        Z, n = y.shape
        lo = int(ext[0])
        out = {}
        for r in points:
            r = int(r)
            wr = np.zeros((Z, w, 2))
            wr[..., 0] = 1.0
            for j in range(1, w):
                a, b = max(lo, r - j - Wn + 1), r - j + 1  # origins with target o + j <= r
                if b - a < MIN_FIT:
                    continue
                for z in range(Z):
                    X = np.column_stack([path[z, a - lo: b - lo, j], B[z, a - lo: b - lo, j]])
                    t = y[z, a + j: b + j]
                    ok = np.isfinite(X).all(axis=1) & np.isfinite(t)
                    if ok.sum() >= MIN_FIT:
                        wr[z, j], _ = fit_weights(X[ok], t[ok])
            out[r] = wr
        return out

    def apply(self, y, F, org, ws, shape_w, guard_w) -> np.ndarray:
        """The forecast ``[Z, K, H]`` at ``org`` from member paths ``F [M, Z, K, H]`` there, shape weights
        ``{w: [Z, K, w, M]}`` (widest window first) and guard weights ``[Z, K, ws[0], 2]`` (or None)."""
        out = F[0].copy()  # the blend
        for w in ws:  # widest window first; each narrower one keeps the wider fit's mean over its leads
            shape = np.einsum("mzkh,zkhm->zkh", np.nan_to_num(deviation(F, w)), shape_w[w])
            out[..., :w] = out[..., :w].mean(axis=-1, keepdims=True) + shape
        out[:, :, 0] = y[:, org]
        if guard_w is not None:
            w = ws[0]
            out[..., :w] = out[..., :w] * guard_w[..., 0] + F[0][..., :w] * guard_w[..., 1]
            out[:, :, 0] = y[:, org]
        return out

    def fit(self, y, org, rp, H, slots_per_h, t0_abs, ws) -> tuple[dict, np.ndarray]:
        """Fits ``{r: (shape weights {w: [Z, w, M]}, guard weights [Z, ws[0], 2] or None)}`` for the refresh
        points ``rp`` of ``org`` and the member paths ``[M, Z, K, H]`` at ``org``."""
        Wn = round(self.window_days * 24 * slots_per_h)
        Wg = round(self.guard_days * 24 * slots_per_h)
        refit = self.refit_h * slots_per_h
        g0 = int(max(0, rp.min() - Wg - ws[0] + 1)) if Wg else int(org.min())
        gx = np.arange(g0, int(org.max()) + 1) if Wg else org  # where the shaped path is needed
        rg = refresh_points(gx, refit, t0_abs)
        lo = int(max(0, rg.min() - Wn - ws[0] + 1))
        ext = np.arange(lo, int(org.max()) + 1)
        F = self.members(y, ext, H, slots_per_h, t0_abs)  # [M, Z, E, H]
        pts = np.unique(np.concatenate([rg, rp]))
        shape = {w: self.fit_shape(y, F, ext, pts, w, Wn) for w in ws}
        guard = {}
        if Wg:
            Fg = F[:, :, gx - lo]
            path = self.apply(y, Fg, gx, ws, {w: np.stack([shape[w][int(r)] for r in rg], axis=1) for w in ws},
                              None)
            guard = self.guard(y, path, Fg[0], gx, np.unique(rp), ws[0], Wg)
        fits = {int(r): ({w: shape[w][int(r)] for w in ws}, guard.get(int(r))) for r in np.unique(rp)}
        return fits, F[:, :, org - lo]

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        org = np.asarray(origins, dtype=int)
        H = horizon
        ws = sorted({min(w * slots_per_h, H) for w in self.windows_h}, reverse=True)
        rp = refresh_points(org, self.refit_h * slots_per_h, t0_abs)
        keys = self._cache.keys(y, rp, t0_abs, (H, slots_per_h))
        fits = self._cache.lookup(keys)
        if fits is None:  # refit (once per refresh point and history)
            fits, F = self.fit(y, org, rp, H, slots_per_h, t0_abs, ws)
            for r, v in fits.items():
                self._cache.put(keys[r], v)
        else:  # every fit known: only the members at the origins are needed
            F = self.members(y, org, H, slots_per_h, t0_abs)
        shape_w = {w: np.stack([fits[int(r)][0][w] for r in rp], axis=1) for w in ws}
        guard_w = np.stack([fits[int(r)][1] for r in rp], axis=1) if fits[int(rp[0])][1] is not None else None
        self.last_weights = shape_w
        return self.apply(y, F, org, ws, shape_w, guard_w)
