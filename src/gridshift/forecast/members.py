"""The naive members of the per-lead-time blends: cheap history-only forecasts at many origins at once.

- ``persistence``: the current value;
- ``day``: the same hour yesterday (seasonal-naive, 24 h);
- ``week``: the same hour last week (seasonal-naive, 168 h);
- ``day-mean``: the mean of the last 7 values at the same hour of day;
- ``shape``: the current value plus the typical change from this hour to the target hour (the 7-day mean
  daily profile, anchored on now);
- ``mean-24h``: the mean of the last 24 hours (what a long-lead forecast reverts to).

Used by the blends (:mod:`gridshift.forecast.ensemble`) and as features of the LightGBM forecaster
(:mod:`gridshift.forecast.gbm`).
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError
from gridshift.forecast.simple import seasonal_index

NAIVE_MEMBERS = ("persistence", "day", "week", "day-mean", "shape", "mean-24h")
MODEL_MEMBERS = ("gbm", "mstl")


def _day_mean_index(origins: np.ndarray, horizon: int, day: int, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``[D, K, H]`` of the last ``days`` values at the target's hour of day and their validity."""
    base = seasonal_index(origins, horizon, day)  # most recent same-hour slot (<= origin)
    base[:, 0] = origins
    d = np.arange(days)[:, None, None]
    idx = base[None] - d * day
    return np.maximum(idx, 0), idx >= 0


def naive_members(y: np.ndarray, origins: np.ndarray, horizon: int, slots_per_h: int,
                  names=NAIVE_MEMBERS, days: int = 7) -> np.ndarray:
    """Member forecasts ``[M, Z, K, H]`` at ``origins`` (each reads ``y[:, : o + 1]`` only)."""
    day, week = 24 * slots_per_h, 168 * slots_per_h
    o = np.asarray(origins, dtype=int)
    H = horizon
    now = y[:, o][:, :, None]  # [Z, K, 1]
    out = []
    cache: dict[str, np.ndarray] = {}

    def day_mean(lead0_is_now: bool) -> np.ndarray:
        key = f"dm{lead0_is_now}"
        if key not in cache:
            idx, ok = _day_mean_index(o, H, day, days)
            if not lead0_is_now:  # the profile value at the origin's own hour: mean of y[o - d*day]
                idx = np.maximum(o[None, :, None] - np.arange(days)[:, None, None] * day, 0)
                ok = (o[None, :, None] - np.arange(days)[:, None, None] * day) >= 0
                idx, ok = np.broadcast_to(idx, (days, o.size, 1)), np.broadcast_to(ok, (days, o.size, 1))
            v = y[:, idx]  # [Z, D, K, H]
            cnt = ok.sum(axis=0)
            cache[key] = np.where(ok[None], v, 0.0).sum(axis=1) / np.maximum(cnt, 1)[None]
        return cache[key]

    for name in names:
        if name == "persistence":
            m = np.broadcast_to(now, (y.shape[0], o.size, H))
        elif name == "day":
            m = y[:, seasonal_index(o, H, day)]
        elif name == "week":
            m = y[:, seasonal_index(o, H, week)]
        elif name == "day-mean":
            m = day_mean(True)
        elif name == "shape":
            m = now + day_mean(True) - day_mean(False)
        elif name == "mean-24h":
            c = np.concatenate([np.zeros((y.shape[0], 1)), np.cumsum(y, axis=1)], axis=1)
            a = np.maximum(o + 1 - day, 0)
            m = np.broadcast_to(((c[:, o + 1] - c[:, a]) / (o + 1 - a))[:, :, None], (y.shape[0], o.size, H))
        else:
            raise PlanError(f"unknown blend member '{name}' (known: {', '.join(NAIVE_MEMBERS + MODEL_MEMBERS)})",
                            field="forecast.members")
        m = np.array(m, dtype=float)
        m[:, :, 0] = y[:, o]  # the current slot is known
        out.append(m)
    return np.stack(out)
