"""Time at the edges and inside: UTC instants, and the one spelling of seconds, hours and slots.

Inside the core time is a float of seconds since the epoch (``*_s``) or an integer slot index; at the edges
it is a timezone-aware UTC ``datetime``/``pandas.Timestamp``. Every conversion between seconds and hours or
slots goes through the names here, so that none is written by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from gridshift.model.bounds import EARLIEST, LATEST

S_PER_MIN = 60.0
S_PER_H = 3600.0
S_PER_DAY = 86400.0


def as_utc(t: datetime) -> datetime:
    """``t`` as a timezone-aware UTC ``datetime``; a naive time is taken as UTC."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def utc_in_range(t: datetime | None) -> datetime | None:
    """``t`` as :func:`as_utc` does, refused (ValueError) outside the documented range of instants
    (``model.bounds``: 1970-01-01 to 2100-01-01 UTC); None stays None."""
    if t is None:
        return None
    try:
        u = as_utc(t)
    except OverflowError:
        u = None
    if u is None or not EARLIEST <= u < LATEST:
        raise ValueError(f"must be from {EARLIEST.date()} to before {LATEST.date()} (UTC), not {t.isoformat()}")
    return u


def as_utc_timestamp(t: datetime | pd.Timestamp | str) -> pd.Timestamp:
    """``t`` as a UTC ``pandas.Timestamp``; a naive time is taken as UTC."""
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def slot_hours(slot_duration_s: float) -> float:
    """The length of a slot in hours."""
    return slot_duration_s / S_PER_H


def slots_per_hour(slot_duration_s: float) -> int:
    """Whole slots in an hour (at least one; an hour-long or longer slot gives 1)."""
    return max(1, int(round(S_PER_H / slot_duration_s)))


def floor_time(t: datetime, slot_s: int) -> datetime:
    """``t`` (UTC) rounded down to a whole slot since the epoch."""
    sec = as_utc(t).timestamp()
    return datetime.fromtimestamp(sec - sec % slot_s, UTC)


def hours(seconds: float | np.ndarray) -> float | np.ndarray:
    """Seconds as hours (arrays too)."""
    return seconds / S_PER_H


def seconds(hours_: float | np.ndarray) -> float | np.ndarray:
    """Hours as seconds (arrays too)."""
    return hours_ * S_PER_H
