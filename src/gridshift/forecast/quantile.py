"""Conformal quantiles: per lead time, the empirical quantiles of a model's past errors.

At a refresh point ``r`` (absolute slots that are multiples of the refresh interval), the sample for lead
``h`` is the errors ``y[o + h] − f(o, h)`` of the ``window`` most recent origins ``o`` whose target is already
observed (``o + h <= r``). An origin uses the quantiles of the last refresh point at or before it, so no
quantile ever reads a value after its origin. Lead 0 (the known current slot) has zero width.
"""

from __future__ import annotations

import numpy as np

from gridshift.forecast.refit import refresh_points

MIN_SAMPLES = 24  # below this many errors at a lead, borrow the quantiles of the nearest shorter lead


def masked_quantiles(x: np.ndarray, valid: np.ndarray, levels, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Quantiles (linear interpolation) of ``x`` along ``axis`` over entries where ``valid``; returns
    ``(q [Q, ...], count [...])``; where no entry is valid the quantile is NaN."""
    x = np.where(valid, x, np.inf)
    x = np.sort(x, axis=axis)
    x = np.moveaxis(x, axis, -1)
    c = np.moveaxis(valid, axis, -1).sum(axis=-1)
    out = []
    for lv in levels:
        pos = lv * np.maximum(c - 1, 0)
        i0 = np.floor(pos).astype(int)
        i1 = np.minimum(i0 + 1, np.maximum(c - 1, 0))
        fr = pos - i0
        a = np.take_along_axis(x, i0[..., None], -1)[..., 0]
        b = np.take_along_axis(x, i1[..., None], -1)[..., 0]
        with np.errstate(invalid="ignore"):
            v = a + fr * (b - a)
        out.append(np.where(c > 0, v, np.nan))
    return np.stack(out), c


def conformal_quantiles(y: np.ndarray, ext: np.ndarray, pt_ext: np.ndarray, origins: np.ndarray, horizon: int, *,
                        levels, window: int, refresh: int, t0_abs: int = 0) -> np.ndarray:
    """Error quantiles ``[Z, K, H, Q]`` to add to the point forecasts at ``origins``.

    ``ext`` is a contiguous range of origins (indices into ``y``) with point forecasts ``pt_ext [Z, E, H]``;
    it must start at least ``window + horizon`` before the first origin for full-size samples.
    """
    Z, n = y.shape
    H = horizon
    lv = tuple(levels)
    lo = int(ext[0])
    h = np.arange(H)
    tgt = ext[:, None] + h[None, :]  # [E, H]
    ok = tgt < n
    err = np.where(ok[None], y[:, np.minimum(tgt, n - 1)] - pt_ext, np.nan)  # [Z, E, H]
    rp = refresh_points(origins, refresh, t0_abs)
    out = np.zeros((Z, origins.size, H, len(lv)))
    for r in np.unique(rp):
        a = max(lo, int(r) - window - H + 1)
        b = int(r) + 1
        o = np.arange(a, b)
        sl = err[:, a - lo: b - lo, :]  # [Z, len(o), H]
        valid = (o[:, None] + h[None, :] <= r) & (o[:, None] >= r - h[None, :] - window + 1)
        valid = np.broadcast_to(valid[None], sl.shape) & np.isfinite(sl)
        q, c = masked_quantiles(sl, valid, lv, axis=1)  # q [Q, Z, H], c [Z, H]
        q = np.moveaxis(q, 0, -1)  # [Z, H, Q]
        q[:, 0, :] = 0.0
        few = c < MIN_SAMPLES
        few[:, 0] = False
        for j in range(1, H):  # carry the previous lead's quantiles where a lead has too few errors
            q[:, j, :] = np.where(few[:, j, None], q[:, j - 1, :], q[:, j, :])
        q = np.nan_to_num(q, nan=0.0)
        q = np.sort(q, axis=-1)
        out[:, rp == r] = q[:, None]
    return out
