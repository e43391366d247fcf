"""Units, the error type and the range checks shared by the capacity study's modules.

Units are in the names: ``_per_day`` per day (86,400 s), ``_per_month`` per month (730 h = 8,760 h / 12),
``_per_yr`` per year (8,760 h).
"""

from __future__ import annotations

import math

from gridshift.errors import GridShiftError

SECONDS_PER_DAY = 86_400.0
HOURS_PER_YEAR = 8_760.0
DAYS_PER_YEAR = HOURS_PER_YEAR / 24.0  # 365
SECONDS_PER_MONTH = HOURS_PER_YEAR / 12.0 * 3_600.0  # 730 h = 2,628,000 s


class CapacityError(GridShiftError):
    """A capacity study input is invalid (negative, out of range, unknown name)."""


def check_finite(name: str, v: float) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise CapacityError(f"{name} must be a finite number (got {v!r})", field=name)


def check_at_least(name: str, v: float, lo: float) -> None:
    check_finite(name, v)
    if v < lo:
        raise CapacityError(f"{name} must be at least {lo:g} (got {v:g})", field=name)


def check_in_range(name: str, v: float, lo: float, hi: float, *, low_open: bool = False) -> None:
    check_finite(name, v)
    if (v <= lo if low_open else v < lo) or v > hi:
        lo_s = f"above {lo:g}" if low_open else f"at least {lo:g}"
        hi_s = "" if math.isinf(hi) else f" and at most {hi:g}"
        raise CapacityError(f"{name} must be {lo_s}{hi_s} (got {v:g})", field=name)
