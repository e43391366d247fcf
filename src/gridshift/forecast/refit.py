"""The refit grid: models refit (and conformal quantiles refresh) at absolute slots that are multiples of a
refresh interval, so a forecast at an origin does not depend on where the series array starts or how much
later data it holds."""

from __future__ import annotations

import numpy as np


def refresh_points(origins: np.ndarray, refresh: int, t0_abs: int) -> np.ndarray:
    """For each origin (index into a series whose slot 0 is absolute slot ``t0_abs``), the index of the last
    refresh point at or before it: absolute slots that are multiples of ``refresh``, never before index 0."""
    a = origins + t0_abs
    r = (a // refresh) * refresh - t0_abs
    return np.maximum(r, 0)
