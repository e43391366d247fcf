"""Rolling-origin backtests (pure: arrays in, metrics out).

At every origin ``o`` each model forecasts slots ``o … o + H`` having seen ``series[: o + 1]`` only; the
metrics are computed per lead time over all origins whose target lies inside the series:

- ``mae``: mean absolute error (the signal's unit);
- ``mape``: mean of ``|e| / |y|`` in percent, over targets with ``|y|`` at least ``MAPE_FLOOR`` times the
  series' mean absolute value (prices cross zero; a near-zero target would dominate the mean);
- ``smape``: mean of ``2 |e| / (|y| + |f|)`` in percent (0 where both are 0);
- ``coverage80``: share of targets inside the central 80 % interval (quantiles 0.1 and 0.9);
- ``width80``: mean width of that interval (the signal's unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.interface import Forecast, ProbForecaster, as_2d

MAPE_FLOOR = 1e-3
METRICS = ("mae", "mape", "smape", "coverage80", "width80", "n")


def targets(y: np.ndarray, origins: np.ndarray, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Actual values ``[Z, K, H]`` at ``origins + lead`` and a mask of those inside the series."""
    y = as_2d(y)
    n = y.shape[1]
    idx = np.asarray(origins, dtype=int)[:, None] + np.arange(horizon)[None, :]
    ok = idx < n
    return y[:, np.minimum(idx, n - 1)], np.broadcast_to(ok, (y.shape[0],) + ok.shape)


def lead_metrics(actual: np.ndarray, point: np.ndarray, valid: np.ndarray | None = None,
                 lo: np.ndarray | None = None, hi: np.ndarray | None = None,
                 scale: np.ndarray | float | None = None) -> dict[str, np.ndarray]:
    """Metrics per lead time ``[Z, H]`` from ``actual``, ``point`` (and interval ``lo``/``hi``), all
    ``[Z, K, H]``; ``valid`` masks the (origin, lead) pairs to count. ``scale`` (per zone) sets the MAPE floor
    (default: the mean absolute actual value)."""
    a = np.asarray(actual, dtype=float)
    f = np.asarray(point, dtype=float)
    if a.shape != f.shape or a.ndim != 3:
        raise PlanError(f"actual and forecast must both be [Z, K, H], got {a.shape} and {f.shape}")
    v = np.ones(a.shape, bool) if valid is None else np.asarray(valid, bool)
    v = v & np.isfinite(a) & np.isfinite(f)
    cnt = v.sum(axis=1)
    e = np.abs(a - f)
    if scale is None:
        scale = np.array([np.abs(a[z][v[z]]).mean() if v[z].any() else 0.0 for z in range(a.shape[0])])
    scale = np.broadcast_to(np.asarray(scale, dtype=float), (a.shape[0],))
    mv = v & (np.abs(a) >= MAPE_FLOOR * scale[:, None, None])

    def mean(x, m):
        c = m.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(c > 0, np.where(m, x, 0.0).sum(axis=1) / np.maximum(c, 1), np.nan)

    with np.errstate(invalid="ignore", divide="ignore"):
        ape = np.where(mv, e / np.abs(a), 0.0) * 100
        den = np.abs(a) + np.abs(f)
        sape = np.where(den > 0, 2 * e / np.where(den > 0, den, 1.0), 0.0) * 100
    out = {"mae": mean(e, v), "mape": mean(ape, mv), "smape": mean(sape, v), "n": cnt}
    if lo is not None and hi is not None:
        inside = (a >= lo) & (a <= hi)
        out["coverage80"] = mean(inside.astype(float), v)
        out["width80"] = mean(np.asarray(hi) - np.asarray(lo), v)
    else:
        out["coverage80"] = np.full(cnt.shape, np.nan)
        out["width80"] = np.full(cnt.shape, np.nan)
    return out


@dataclass
class ModelResult:
    name: str
    forecast: Forecast
    metrics: dict[str, np.ndarray]  # each [Z, H]
    decision: dict[int, np.ndarray] = field(default_factory=dict)  # window_h -> quality [Z]
    seconds: float = 0.0


def evaluate(y: np.ndarray, fc: Forecast, coverage: float = 0.8) -> dict[str, np.ndarray]:
    """Per-lead metrics ``[Z, H]`` of a forecast against the series it was made on."""
    y = as_2d(y)
    H = fc.point.shape[2]
    a, ok = targets(y, fc.origins, H)
    lo, hi = fc.interval(coverage)
    return lead_metrics(a, fc.point, ok, lo, hi)


def backtest(y: np.ndarray, models: dict[str, ProbForecaster], origins: np.ndarray, horizon: int, *,
             slots_per_h: int = 1, t0_abs: int = 0, exog: np.ndarray | None = None,
             windows_h=(8, 24), job_h: int = 1) -> dict[str, ModelResult]:
    """Run every model at every origin; metrics per lead time and decision quality per window."""
    import time

    from gridshift.forecast.decision import decision_quality

    y = as_2d(y)
    out = {}
    for name, m in models.items():
        t = time.perf_counter()
        fc = m.forecast_origins(y, origins, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs, exog=exog)
        met = evaluate(y, fc)
        dq = {w: np.array([decision_quality(y[z], fc.point[z], fc.origins, w * slots_per_h,
                                            job_h * slots_per_h)["quality"] for z in range(y.shape[0])])
              for w in windows_h if w * slots_per_h <= horizon}
        out[name] = ModelResult(name, fc, met, dq, time.perf_counter() - t)
    return out
