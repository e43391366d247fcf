"""Scenario paths: coherent joint samples of a forecast across lead times.

Independent draws from each lead's quantiles would let one hour be high while the next is low, which no real
error path does; a planner weighing scenarios needs the whole path. :func:`sample_paths` draws whole past
residual trajectories (a block bootstrap over lead times): the errors ``y[o' + h] − f(o', h)`` for
``h = 0 … H − 1`` of one past origin ``o'``, taken from the ``calib_days`` most recent origins whose full path
is already observed (``o' + H − 1 <= o``), added to the forecast at the origin. Each sampled path keeps the
lead-to-lead correlation of the model's real errors, and its marginal at each lead is the empirical
distribution of that lead's errors — the same sample the conformal quantiles are taken from (there with
targets observed per lead, here per path). Pure numpy.
"""

from __future__ import annotations

import numpy as np

from gridshift.errors import PlanError

MIN_PATHS = 24


def sample_paths(model, series: np.ndarray, origin: int, horizon: int, n: int,
                 rng: np.random.Generator, *, slots_per_h: int = 1, t0_abs: int = 0) -> np.ndarray:
    """``n`` joint sample paths ``[n, horizon]`` (``[Z, n, horizon]`` for a series of several rows) of the
    forecast made at ``origin`` (an index into ``series``; only ``series[:, : origin + 1]`` is read).
    ``model`` is a :class:`~gridshift.forecast.interface.ProbForecaster` (its ``point_origins``,
    ``calib_days`` and ``bound``)."""
    y = np.asarray(series, dtype=float)
    y = y[None] if y.ndim == 1 else y
    if y.ndim != 2 or y.shape[1] == 0:
        raise PlanError(f"series must be [n] or [Z, n], got shape {np.shape(series)}", field="history")
    one = np.ndim(series) == 1 or y.shape[0] == 1
    o = int(origin)
    if not 0 <= o < y.shape[1] or horizon < 1 or n < 1:
        raise PlanError("sample_paths needs 0 <= origin < len(series), horizon >= 1 and n >= 1", field="origin")
    y = y[:, : o + 1]  # nothing after the origin
    W = round(model.calib_days * 24 * slots_per_h)
    last = o - horizon + 1  # the last origin whose whole path is observed
    past = np.arange(max(0, last - W + 1), last + 1) if last >= 0 else np.arange(0)
    org = np.append(past, o)
    pt = model.point_origins(y, org, horizon, slots_per_h=slots_per_h, t0_abs=t0_abs)  # [Z, P + 1, H]
    if past.size < MIN_PATHS:
        raise PlanError(f"sample_paths needs at least {MIN_PATHS + horizon - 1} slots of history before the "
                        f"origin, got {o}", field="origin")
    idx = past[:, None] + np.arange(horizon)[None, :]
    err = y[:, idx] - pt[:, :-1]  # [Z, P, H]
    err[:, :, 0] = 0.0  # the current slot is known
    pick = rng.integers(0, past.size, size=n)
    out = pt[:, -1][:, None, :] + np.nan_to_num(err[:, pick])
    out = model.bound(out)
    return out[0] if one else out
