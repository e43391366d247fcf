"""Per-lead-time blends: learn, for every lead time, how much to trust each member forecast.

``blend`` (the default model) combines cheap history-only members:

- ``persistence``: the current value;
- ``day``: the same hour yesterday (seasonal-naive, 24 h);
- ``week``: the same hour last week (seasonal-naive, 168 h);
- ``day-mean``: the mean of the last 7 values at the same hour of day;
- ``shape``: the current value plus the typical change from this hour to the target hour (the 7-day mean
  daily profile, anchored on now);
- ``mean-24h``: the mean of the last 24 hours (what a long-lead forecast reverts to).

``ensemble`` adds the model-based members ``gbm`` (LightGBM) and ``mstl`` (statsforecast MSTL).

At each refresh point (every ``refit_h`` = 24 hours of absolute time) and for each lead time ``h``, the
weights are fitted by non-negative least squares with weights summing to one, on the ``window_days`` (84) most
recent origins whose targets are already observed (``loss="mape"`` weights each row by 1/|y|). Then, still per
lead time, the fitted blend is kept only if its mean absolute error on that trailing window beats every
member's; otherwise the best member on that window is used alone. So the blend falls back to the best naive
forecast wherever the others do not help. With fewer than ``MIN_FIT`` past samples at a lead (the first days
of a series) the lead is forecast by persistence. Fits of the naive-member blends are kept per refresh point and history
(:class:`~gridshift.forecast.fitcache.FitCache`): a later call refits only refresh points it has not seen.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from gridshift.errors import PlanError
from gridshift.forecast.fitcache import FitCache
from gridshift.forecast.interface import ProbForecaster
from gridshift.forecast.members import MODEL_MEMBERS, NAIVE_MEMBERS, naive_members
from gridshift.forecast.refit import refresh_points

MAPE_FLOOR = 0.05  # loss="mape": targets below this share of the mean absolute level count as that level
MIN_FIT = 48  # fewer trailing samples than this at a lead: use persistence there
SUM_PENALTY = 1e3  # weight of the sum-to-one row in the augmented NNLS (relative to the data scale)


def fit_weights(X: np.ndarray, t: np.ndarray, sw: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Non-negative weights summing to one for members ``X [N, M]`` against targets ``t [N]`` (least
    squares, rows weighted by ``sw``), then kept only if the blend's weighted mean absolute error beats the
    best single member's; returns ``(weights [M], weighted mae)``."""
    M = X.shape[1]
    if sw is not None:
        X, t = X * sw[:, None], t * sw
    mae_single = np.abs(X - t[:, None]).mean(axis=0)
    best = int(np.argmin(mae_single))
    w_best = np.zeros(M)
    w_best[best] = 1.0
    if M == 1:
        return w_best, float(mae_single[best])
    scale = max(float(np.std(t)), 1e-9) * np.sqrt(len(t))
    A = np.vstack([X, np.full((1, M), SUM_PENALTY * scale / np.sqrt(len(t)))])
    b = np.concatenate([t, [SUM_PENALTY * scale / np.sqrt(len(t))]])
    try:
        w, _ = nnls(A, b, maxiter=50 * M)
    except RuntimeError:
        return w_best, float(mae_single[best])
    if w.sum() <= 0:
        return w_best, float(mae_single[best])
    w = w / w.sum()
    mae_blend = float(np.abs(X @ w - t).mean())
    if mae_blend < mae_single[best]:
        return w, mae_blend
    return w_best, float(mae_single[best])


class Blend(ProbForecaster):
    """Per-lead-time NNLS blend of member forecasts with a fall-back to the best single member."""

    name = "blend"

    def __init__(self, members=NAIVE_MEMBERS, window_days: float = 84.0, refit_h: int = 24,
                 calib_days: float = 28.0, days: int = 7, loss: str = "mae", gbm: dict | None = None,
                 mstl: dict | None = None) -> None:
        members = tuple(members)
        bad = [m for m in members if m not in NAIVE_MEMBERS + MODEL_MEMBERS]
        if bad or not members:
            raise PlanError(f"unknown blend member(s) {bad} (known: {', '.join(NAIVE_MEMBERS + MODEL_MEMBERS)})",
                            field="forecast.members")
        if window_days <= 0 or refit_h < 1 or calib_days <= 0:
            raise PlanError("window_days and calib_days must be > 0 and refit_h >= 1", field="forecast")
        if loss not in ("mape", "mae"):
            raise PlanError(f"loss must be 'mape' or 'mae', got '{loss}'", field="forecast.loss")
        self.loss = loss
        self.members, self.window_days, self.refit_h = members, float(window_days), int(refit_h)
        self.calib_days, self.days = float(calib_days), int(days)
        self._models = {}
        if "gbm" in members:
            from gridshift.forecast.gbm import GbmForecaster

            self._models["gbm"] = GbmForecaster(**(gbm or {}))
        if "mstl" in members:
            from gridshift.forecast.stats import MstlForecaster

            self._models["mstl"] = MstlForecaster(**(mstl or {}))
        self.last_weights: np.ndarray | None = None  # [Z, K, H, M] weights used at the last call
        self._cache = FitCache()  # naive-member fits by refresh point and the history they read

    def member_forecasts(self, y, origins, horizon, *, slots_per_h, t0_abs=0, exog=None) -> np.ndarray:
        naive = [m for m in self.members if m in NAIVE_MEMBERS]
        parts = {}
        if naive:
            arr = naive_members(y, origins, horizon, slots_per_h, naive, self.days)
            parts.update(zip(naive, arr))
        for m, model in self._models.items():
            parts[m] = model.point_origins(y, origins, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
        return np.stack([parts[m] for m in self.members])  # [M, Z, K, H]

    def point_origins(self, series, origins, horizon, *, slots_per_h, t0_abs=0, exog=None):
        y = np.asarray(series, dtype=float)
        Z, _n = y.shape
        org = np.asarray(origins, dtype=int)
        H = horizon
        W = round(self.window_days * 24 * slots_per_h)
        rp = refresh_points(org, self.refit_h * slots_per_h, t0_abs)
        # naive members only and no exog: the fit at r reads y[:, : r + 1] alone, so it can be kept
        keys = self._cache.keys(y, rp, t0_abs, (H, slots_per_h)) if exog is None and not self._models else {}
        fits = {r: v for r, v in ((r, self._cache.get(k)) for r, k in keys.items()) if v is not None}
        todo = [int(r) for r in np.unique(rp) if int(r) not in fits]
        if todo:
            lo = int(max(0, min(todo) - W - H + 1))
            ext = np.arange(lo, int(org.max()) + 1)  # origins whose member forecasts are needed
            F = self.member_forecasts(y, ext, H, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)  # [M, Z, E, H]
            for r in todo:
                fits[r] = self.fit_at(y, F, lo, r, W)
                if keys:
                    self._cache.put(keys[r], fits[r])
            Fo = F[:, :, org - lo, :]  # [M, Z, K, H]
        else:  # every fit known: the members at the origins only
            Fo = self.member_forecasts(y, org, H, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
        weights = np.stack([fits[int(r)] for r in rp], axis=1)  # [Z, K, H, M]
        self.last_weights = weights
        out = np.einsum("mzkh,zkhm->zkh", np.nan_to_num(Fo), weights)
        out[:, :, 0] = y[:, org]
        return out

    def fit_at(self, y: np.ndarray, F: np.ndarray, lo: int, r: int, W: int) -> np.ndarray:
        """Weights ``[Z, H, M]`` at refresh point ``r`` from member forecasts ``F [M, Z, E, H]`` at origins
        ``lo …`` (persistence where fewer than ``MIN_FIT`` samples exist)."""
        M, Z, _, H = F.shape
        p_idx = self.members.index("persistence") if "persistence" in self.members else 0
        wr = np.zeros((Z, H, M))
        wr[:, :, p_idx] = 1.0
        for j in range(1, H):
            a, b = max(lo, r - j - W + 1), r - j + 1  # origins with target o + j <= r
            if b - a < MIN_FIT:
                continue
            tgt = y[:, a + j: b + j]  # [Z, N]
            for z in range(Z):
                X = F[:, z, a - lo: b - lo, j].T  # [N, M]
                ok = np.isfinite(X).all(axis=1) & np.isfinite(tgt[z])
                if ok.sum() < MIN_FIT:
                    continue
                sw = None
                if self.loss == "mape":  # relative errors, with a floor so near-zero targets do not dominate
                    sc = np.abs(tgt[z, ok])
                    sw = 1.0 / np.maximum(sc, MAPE_FLOOR * max(float(sc.mean()), 1e-12))
                wr[z, j], _ = fit_weights(X[ok], tgt[z, ok], sw)
        return wr


class Ensemble(Blend):
    """The blend with the model-based members LightGBM (``gbm``) and MSTL (``mstl``) added."""

    name = "ensemble"

    def __init__(self, members=NAIVE_MEMBERS + MODEL_MEMBERS, **kw) -> None:
        super().__init__(members=members, **kw)
