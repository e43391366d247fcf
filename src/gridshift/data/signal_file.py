"""A zone's own signal series from a CSV file: the one reader and its one set of rules.

Grid signals come finer than an hour from several sources (e.g. Great Britain's carbon intensity per half hour,
German day-ahead prices per quarter hour since October 2025, WattTime's MOER per five minutes). A scenario's
zone names such a file with ``zones[].signals_file``; ``zones[].carbon_file`` (the file ``gridshift signals
fetch`` writes, e.g. a marginal signal with ``carbon_basis: marginal``) is an alias for a signals file used for
the zone's carbon alone. Both keys are read here, by the same rules:

1. **Format**: a header row; a ``time`` column (ISO 8601 with a UTC offset or ``Z``: the start of each
   interval); value columns ``carbon_g_per_kwh``, ``price_usd_per_mwh``, ``clean_frac``, or one carbon
   intensity named by its signal (``*_g_per_kwh``, e.g. ``moer_g_per_kwh``), which is then the zone's carbon.
   A ``carbon_file`` holds exactly one value column, a carbon intensity; other columns of a ``signals_file``
   are ignored. At least two rows, in increasing time order.
2. **Native resolution**: the step is the smallest interval between rows (an hour at most: rows further apart
   are hourly with gaps); it must divide an hour (60 s … 3600 s), the times must be aligned to it and every
   interval must be a whole number of steps. Values are kept at that step; :func:`to_slots` turns them into
   the simulation's slots (the mean of the intervals inside a longer slot, the interval's value held over
   shorter ones). Nothing is averaged on reading.
3. **Values**: finite and within the documented bounds (carbon 0 … 10,000 g/kWh, price ±1,000,000 $/MWh,
   clean share 0 … 1).
4. **Gaps** (explicit): a row missing on the step's grid is an error naming the row after it, unless the
   scenario sets ``fill_gaps_max_h`` — then a gap up to that many hours is filled by linear interpolation
   between its neighbours (and the run's notes say how many rows were filled), and a longer one is still an
   error. The same policy applies to both keys; a ``signals_file`` is checked when the scenario is loaded, a
   ``carbon_file`` when it is assembled (after the check that it covers the run's time range).

Every error is one :class:`~gridshift.errors.DataError` naming the file, row and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.errors import DataError
from gridshift.model import bounds as B
from gridshift.model.time import S_PER_H

COLUMNS = {"carbon_g_per_kwh": (0.0, B.MAX_CARBON_G_PER_KWH),
           "price_usd_per_mwh": (-B.MAX_PRICE_USD_PER_MWH, B.MAX_PRICE_USD_PER_MWH),
           "clean_frac": (0.0, 1.0)}
UNITS = {"carbon_g_per_kwh": " g/kWh", "price_usd_per_mwh": " $/MWh", "clean_frac": ""}
CARBON_SUFFIX = "_g_per_kwh"
MAX_BYTES = 200 * 2 ** 20
_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d*)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$", re.IGNORECASE)


@dataclass(frozen=True)
class SignalFile:
    """The series of one file on its regular grid: ``values[name]`` per interval starting at ``times`` (UTC),
    ``step_s`` apart; ``columns[name]`` is the file's column behind ``name`` (a ``moer_g_per_kwh`` column is the
    zone's ``carbon_g_per_kwh``); ``gaps`` lists (first missing time, rows missing, file row after the gap);
    ``filled_rows`` counts the rows filled under the gap policy (NaN where a gap is kept unfilled)."""

    path: str
    times: pd.DatetimeIndex
    step_s: int
    values: dict[str, np.ndarray]
    columns: dict[str, str] = field(default_factory=dict)
    gaps: tuple[tuple[pd.Timestamp, int, int], ...] = ()
    filled_rows: int = 0


def _value_columns(df: pd.DataFrame, p: Path, carbon_only: bool) -> dict[str, str]:
    """``{signal: file column}`` by rule 1."""
    values = [c for c in df.columns if c != "time"]
    carbon_like = [c for c in values if c.endswith(CARBON_SUFFIX)]
    if carbon_only:
        if len(values) != 1:
            raise DataError("must have a 'time' column and one value column (e.g. moer_g_per_kwh)", file=str(p),
                            row=1)
        if not carbon_like:
            raise DataError(f"the value column must be a carbon intensity in g/kWh (*_g_per_kwh), not '{values[0]}'",
                            file=str(p), row=1, field=values[0])
        return {"carbon_g_per_kwh": values[0]}
    have = {c: c for c in COLUMNS if c in df.columns}
    if "carbon_g_per_kwh" not in have and len(carbon_like) == 1:
        have["carbon_g_per_kwh"] = carbon_like[0]
    if not have:
        raise DataError(f"no signal column; expected one or more of {', '.join(COLUMNS)} (or one *_g_per_kwh)",
                        file=str(p))
    return have


def _times(df: pd.DataFrame, p: Path) -> pd.DatetimeIndex:
    raw = df["time"].astype(str)
    t = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    for i in np.flatnonzero(t.isna().to_numpy()):
        raise DataError(f"'{raw.iloc[i]}' is not an ISO 8601 time", file=str(p), row=int(i) + 2, field="time")
    naive = ~raw.str.strip().str.contains(_OFFSET)
    for i in np.flatnonzero(naive.to_numpy()):
        raise DataError(f"time '{raw.iloc[i]}' has no UTC offset (write e.g. 2023-01-01T00:00:00Z)", file=str(p),
                        row=int(i) + 2, field="time")
    return pd.DatetimeIndex(t)


def _step(idx: pd.DatetimeIndex, p: Path) -> int:
    """The native step by rule 2 (errors name the row)."""
    d = np.diff(idx.asi8) // 10 ** 9
    for k in np.flatnonzero(d <= 0)[:1]:
        raise DataError(f"time {idx[k + 1].isoformat()} repeats or goes back; rows must be in increasing time order",
                        file=str(p), row=int(k) + 3, field="time")
    k = int(np.argmin(d))
    step = int(min(d[k], S_PER_H))
    if S_PER_H % step:
        raise DataError(f"the step between rows must divide an hour (60 s … 3600 s), got {step} s", file=str(p),
                        row=k + 3, field="time")
    for k in np.flatnonzero(d % step)[:1]:
        raise DataError(f"time {idx[k + 1].isoformat()} is off the file's {step} s grid", file=str(p),
                        row=int(k) + 3, field="time")
    if idx[0].timestamp() % step:
        raise DataError(f"times must be aligned to their {step} s step", file=str(p), row=2, field="time")
    return step


def _check_values(df: pd.DataFrame, cols: dict[str, str], p: Path) -> dict[str, np.ndarray]:
    out = {}
    for name, col in cols.items():
        v = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        lo, hi = COLUMNS[name]
        for k in np.flatnonzero(~np.isfinite(v))[:1]:
            raise DataError(f"value '{df[col].iloc[k]}' is not a number in [{lo:g}, {hi:g}]", file=str(p),
                            row=int(k) + 2, field=col)
        for k in np.flatnonzero((v < lo) | (v > hi))[:1]:
            raise DataError(f"{v[k]:g} is outside {lo:g}–{hi:g}{UNITS[name]} (not a number in [{lo:g}, {hi:g}])",
                            file=str(p), row=int(k) + 2, field=col)
        out[name] = v
    return out


def read_signal_file(path: str | Path, *, carbon_only: bool = False, max_gap_s: float | None = 0.0) -> SignalFile:
    """Read and check a signal file by the module's rules. ``carbon_only``: a ``carbon_file`` (one carbon
    column). ``max_gap_s``: the gap policy — gaps up to this long are filled, longer ones are errors (0: every
    gap is an error); None keeps gaps as NaN for the caller to apply the policy later (:func:`apply_gap_policy`)."""
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
    cols = _value_columns(df, p, carbon_only)
    if len(df) < 2:
        raise DataError("a signal file needs at least two rows", file=str(p))
    idx = _times(df, p)
    step = _step(idx, p)
    given = _check_values(df, cols, p)
    grid = pd.date_range(idx[0], idx[-1], freq=f"{step}s")
    pos = ((idx.asi8 - idx.asi8[0]) // (step * 10 ** 9)).astype(np.int64)
    values = {}
    for name, v in given.items():
        full = np.full(len(grid), np.nan)
        full[pos] = v
        values[name] = full
    d = np.diff(pos)
    gaps = tuple((grid[pos[k] + 1], int(d[k]) - 1, int(k) + 3) for k in np.flatnonzero(d > 1))
    sf = SignalFile(str(p), grid, step, values, cols, gaps)
    return sf if max_gap_s is None else apply_gap_policy(sf, max_gap_s)


def apply_gap_policy(sf: SignalFile, max_gap_s: float, *, field: str = "time") -> SignalFile:
    """Rule 4: fill each gap of at most ``max_gap_s`` by linear interpolation; a longer gap is a DataError
    naming the row after it."""
    if not sf.gaps:
        return sf
    for start, n, row in sf.gaps:
        if n * sf.step_s > max_gap_s:
            what = "a missing row" if n == 1 else f"{n} missing rows"
            hint = f"; the scenario fills gaps up to {max_gap_s / S_PER_H:g} h (fill_gaps_max_h)" if max_gap_s \
                else "; set the scenario's fill_gaps_max_h to fill gaps up to that long"
            after = start + pd.Timedelta(seconds=n * sf.step_s)
            raise DataError(f"time {after.isoformat()} skips {n * sf.step_s} s ({what}); rows must be {sf.step_s} s "
                            f"apart{hint}", file=sf.path, row=row, field=field)
    x = np.arange(len(sf.times), dtype=float)
    values = {}
    for name, v in sf.values.items():
        ok = np.isfinite(v)
        values[name] = np.where(ok, v, np.interp(x, x[ok], v[ok]))
    return SignalFile(sf.path, sf.times, sf.step_s, values, sf.columns, sf.gaps,
                      sum(n for _, n, _ in sf.gaps))


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
