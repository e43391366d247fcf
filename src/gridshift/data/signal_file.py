"""A zone's own signal series from a CSV file, at its native resolution (5-, 15-, 30-minute or hourly).

Grid signals come finer than an hour from several sources (e.g. Great Britain's carbon intensity per half hour,
German day-ahead prices per quarter hour since October 2025). A scenario's zone may name such a file
(``zones[].signals_file``); the simulation's slot is a planning choice, not the data's:
:func:`to_slots` averages the values inside each slot when the slot is longer than the data's step and holds
each value over the slots it covers when it is shorter.

File format: a header row, a ``time`` column (ISO 8601 with a UTC offset or ``Z``: the start of each
interval) and one or more of ``carbon_g_per_kwh``, ``price_usd_per_mwh``, ``clean_frac``; rows at one regular
step that divides an hour (60 s … 3600 s); every value finite and within the documented bounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.errors import DataError
from gridshift.model import bounds as B
from gridshift.model.time import S_PER_H

COLUMNS = {"carbon_g_per_kwh": (0.0, B.MAX_CARBON_G_PER_KWH),
           "price_usd_per_mwh": (-B.MAX_PRICE_USD_PER_MWH, B.MAX_PRICE_USD_PER_MWH),
           "clean_frac": (0.0, 1.0)}
MAX_BYTES = 200 * 2 ** 20


@dataclass(frozen=True)
class SignalFile:
    """The series of one file: ``values[name]`` per interval starting at ``times`` (UTC), ``step_s`` apart."""

    path: str
    times: pd.DatetimeIndex
    step_s: int
    values: dict[str, np.ndarray]


def read_signal_file(path: str | Path) -> SignalFile:
    """Read and check a signal file; one :class:`DataError` naming file, row and field for anything wrong."""
    p = Path(path)
    if not p.is_file():
        raise DataError("signal file not found", file=str(p))
    if p.stat().st_size > MAX_BYTES:
        raise DataError(f"signal file is larger than {MAX_BYTES // 2 ** 20} MB", file=str(p))
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"not a readable CSV file ({str(e).splitlines()[0]})", file=str(p)) from None
    if "time" not in df.columns:
        raise DataError("no 'time' column (the start of each interval, ISO 8601 with a UTC offset)", file=str(p),
                        field="time")
    have = [c for c in COLUMNS if c in df.columns]
    if not have:
        raise DataError(f"no signal column; expected one or more of {', '.join(COLUMNS)}", file=str(p))
    if len(df) < 2:
        raise DataError("a signal file needs at least two rows", file=str(p))
    times = []
    for i, s in enumerate(df["time"]):
        t = pd.Timestamp(s) if _has_offset(s) else None
        if t is None:
            raise DataError(f"time '{s}' has no UTC offset (write e.g. 2023-01-01T00:00:00Z)", file=str(p),
                            row=i + 2, field="time")
        times.append(t.tz_convert("UTC"))
    idx = pd.DatetimeIndex(times)
    steps = np.diff(idx.asi8) // 10 ** 9
    step = int(steps[0])
    if step <= 0 or S_PER_H % step:
        raise DataError(f"the step between rows must divide an hour (60 s … 3600 s), got {step} s", file=str(p),
                        row=3, field="time")
    bad = np.flatnonzero(steps != step)
    if bad.size:
        k = int(bad[0])
        what = "repeats or goes back" if steps[k] <= 0 else f"skips {int(steps[k]) - step} s (a missing row)"
        raise DataError(f"time {idx[k + 1].isoformat()} {what}; rows must be {step} s apart", file=str(p),
                        row=k + 3, field="time")
    if idx[0].timestamp() % step:
        raise DataError(f"times must be aligned to their {step} s step", file=str(p), row=2, field="time")
    values = {}
    for c in have:
        v = pd.to_numeric(df[c], errors="coerce").to_numpy(dtype=float)
        lo, hi = COLUMNS[c]
        wrong = np.flatnonzero(~np.isfinite(v) | (v < lo) | (v > hi))
        if wrong.size:
            k = int(wrong[0])
            raise DataError(f"value '{df[c].iloc[k]}' is not a number in [{lo:g}, {hi:g}]", file=str(p),
                            row=k + 2, field=c)
        values[c] = v
    return SignalFile(str(p), idx, step, values)


def _has_offset(s: str) -> bool:
    try:
        t = pd.Timestamp(s)
    except (ValueError, TypeError):
        return False
    return t.tzinfo is not None


def to_slots(sf: SignalFile, name: str, slot_starts: pd.DatetimeIndex, slot_s: int, *, field: str) -> np.ndarray:
    """The mean of ``name`` over each slot starting at ``slot_starts`` (``slot_s`` long): the mean of the
    file's intervals inside it when the slot is longer than the step (it must be a whole number of steps), the
    value of the interval that holds it when shorter. A slot the file does not cover is a DataError."""
    if name not in sf.values:
        raise DataError(f"signal file has no '{name}' column", file=sf.path, field=field)
    s = pd.Series(sf.values[name], index=sf.times)
    step = sf.step_s
    if slot_s >= step:
        if slot_s % step:
            raise DataError(f"a {slot_s} s slot is not a whole number of the file's {step} s steps", file=sf.path,
                            field=field)
        k = slot_s // step
        ns = slot_starts.asi8[:, None] + np.arange(k)[None, :] * step * 10 ** 9  # each slot's intervals
        fine = s.reindex(pd.to_datetime(ns.ravel(), utc=True)).to_numpy(dtype=float)
        out = fine.reshape(len(slot_starts), k).mean(axis=1)
    else:
        out = s.reindex(slot_starts.floor(f"{step}s")).to_numpy(dtype=float)
    miss = np.flatnonzero(np.isnan(out))
    if miss.size:
        raise DataError(f"signal file covers {sf.times[0].isoformat()} – "
                        f"{(sf.times[-1] + pd.Timedelta(seconds=step)).isoformat()}, not the slot starting "
                        f"{slot_starts[int(miss[0])].isoformat()}", file=sf.path, field=field)
    return out
