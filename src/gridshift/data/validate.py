"""Shared checks used by every loader.

Row numbers in errors are 1-based line numbers in the file, counting the CSV header as line 1 (so the
first data row is line 2). For JSONL files the row is the line number (no header). Every problem raises
:class:`gridshift.errors.DataError` naming the file, the row and the column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data.gaps import FillReport, Gaps, fill_gaps, find_gaps
from gridshift.errors import DataError

# Plausible unit ranges (inclusive).
CARBON_G_PER_KWH = (0.0, 2000.0)
PERCENT = (0.0, 100.0)
PRICE_USD_PER_MWH = (-2000.0, 20000.0)
NON_NEGATIVE = (0.0, np.inf)

__all__ = [
    "CARBON_G_PER_KWH", "NON_NEGATIVE", "PERCENT", "PRICE_USD_PER_MWH", "FillReport", "Gaps", "Source",
    "boolean", "check_aligned", "check_increasing", "check_no_gaps", "fill_gaps", "find_gaps", "numeric",
    "parse_utc", "read_csv", "text",
]

_TZ_SUFFIX = re.compile(r"(?:Z|[+-]\d{2}:?\d{2})$", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """Where rows came from: the file, and (for CSVs with multi-line quoted cells) each record's line."""

    path: Path
    record_lines: tuple[int, ...] | None = None
    first_line: int = 2  # line of the first record when record_lines is None

    def line(self, pos: int) -> int:
        """File line number of the record at 0-based position ``pos``."""
        if self.record_lines is not None and pos < len(self.record_lines):
            return self.record_lines[pos]
        return pos + self.first_line

    def error(self, message: str, pos: int | None = None, column: str | None = None) -> DataError:
        return DataError(message, file=self.path, row=None if pos is None else self.line(pos), field=column)


def read_csv(path: Path, required: list[str], *, multiline: bool = False) -> tuple[pd.DataFrame, Source]:
    """Read a CSV as strings-or-numbers, check the header has ``required`` columns.

    ``multiline=True`` maps records to their first line (for files whose quoted cells contain newlines).
    """
    path = Path(path)
    src = Source(path)
    try:
        df = pd.read_csv(path, skipinitialspace=False)
    except pd.errors.EmptyDataError as exc:
        raise DataError("file is empty (no header)", file=path, row=1) from exc
    except pd.errors.ParserError as exc:
        m = re.search(r"line (\d+)", str(exc))
        row = int(m.group(1)) if m else None
        raise DataError(f"malformed CSV: {exc}", file=path, row=row) from exc
    except (UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read file: {exc}", file=path) from exc
    missing = [c for c in required if c not in df.columns]
    if missing:
        found = ", ".join(repr(c) for c in df.columns[:12])
        raise DataError(f"missing column(s) {missing} in the header; found {found}", file=path, row=1,
                        field=missing[0])
    if multiline:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            next(reader, None)
            starts, prev = [], reader.line_num
            for _ in reader:
                starts.append(prev + 1)
                prev = reader.line_num
        src = Source(path, tuple(starts))
    return df, src


def parse_utc(values: pd.Series, src: Source, column: str) -> pd.DatetimeIndex:
    """Parse ISO-8601 timestamps to a tz-aware UTC index (microsecond unit).

    Naive timestamps are taken as UTC; timestamps with an offset are converted. A column mixing naive and
    offset timestamps, or holding an unparseable/empty value, is an error at its first offending row.
    """
    s = values.astype("str")
    blank = values.isna().to_numpy() | (s.str.strip() == "").to_numpy()
    if blank.any():
        raise src.error("missing timestamp", int(np.argmax(blank)), column)
    has_tz = s.str.strip().str.contains(_TZ_SUFFIX).to_numpy()
    if has_tz.any() and not has_tz.all():
        pos = int(np.argmax(has_tz != has_tz[0]))
        what = ("has a UTC offset but earlier rows are naive" if has_tz[pos]
                else "is naive but earlier rows have a UTC offset")
        raise src.error(f"timestamp '{s.iloc[pos]}' {what}; use one convention", pos, column)
    t = pd.to_datetime(s, utc=True, format="ISO8601", errors="coerce")
    bad = t.isna().to_numpy()
    if bad.any():
        pos = int(np.argmax(bad))
        hint = "; last row: is the file truncated?" if pos == len(s) - 1 else ""
        raise src.error(f"cannot parse timestamp '{s.iloc[pos]}' (expected ISO 8601{hint})", pos, column)
    return pd.DatetimeIndex(t).as_unit("us")


def check_increasing(idx: pd.DatetimeIndex | pd.Series, src: Source, column: str, *, strict: bool = True) -> None:
    """Timestamps (or numbers) must be strictly increasing (``strict``) or non-decreasing.

    Reports the first duplicate (naming the line of its first occurrence) or the first step backwards.
    """
    if isinstance(idx, pd.DatetimeIndex):
        v = (idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx).to_numpy()
    else:
        v = np.asarray(idx)
    if len(v) < 2:
        return
    d = v[1:] - v[:-1]
    zero = d == d.dtype.type(0)
    neg = d < d.dtype.type(0)
    bad = (zero | neg) if strict else neg
    if not bad.any():
        return
    pos = int(np.argmax(bad)) + 1
    if zero[pos - 1]:
        first = int(np.flatnonzero(v == v[pos])[0])
        raise src.error(f"duplicate value {_fmt(v[pos])} (first seen at line {src.line(first)})", pos, column)
    raise src.error(f"not in increasing order: {_fmt(v[pos])} comes after {_fmt(v[pos - 1])}", pos, column)


def check_aligned(idx: pd.DatetimeIndex, src: Source, column: str, freq: str = "1h") -> None:
    """Every timestamp must start a ``freq`` slot (e.g. hour-start: minutes = seconds = 0)."""
    off = idx != idx.floor(freq)
    if off.any():
        pos = int(np.argmax(off))
        raise src.error(f"timestamp {idx[pos]} is not at the start of a {freq} slot", pos, column)


def check_no_gaps(idx: pd.DatetimeIndex, src: Source, column: str, step: str = "1h") -> None:
    """No missing slots: reports the first gap, its length and the total number of gaps."""
    g = find_gaps(idx, step)
    if g.gaps:
        start, n = g.gaps[0]
        pos = int(idx.searchsorted(start))
        raise src.error(f"gap: {n} missing {step} slot(s) starting {start} ({len(g.gaps)} gap(s), "
                        f"{g.missing_slots} slot(s) missing in total); fill_gaps() can fill short gaps",
                        pos, column)


def numeric(df: pd.DataFrame, column: str, src: Source, *, bounds: tuple[float, float] | None = None,
            unit: str = "", allow_nan: bool = False, integer: bool = False) -> np.ndarray:
    """Column as float64 (or int64 when ``integer``), checked for non-numeric cells, NaN and range.

    Reports the first offending row. ``bounds`` are inclusive plausible limits in ``unit``.
    """
    raw = df[column]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    missing = raw.isna().to_numpy()
    nonnum = np.isnan(vals) & ~missing
    if nonnum.any():
        # a cell like 'NaN'/'nan' read as text is a missing value, anything else is non-numeric
        pos = int(np.argmax(nonnum))
        cell = str(raw.iloc[pos]).strip()
        if cell.lower() not in ("nan", "", "na", "null", "none", "n/a"):
            raise src.error(f"non-numeric value '{cell}'", pos, column)
        missing = missing | nonnum
    if not allow_nan and (missing | np.isnan(vals)).any():
        pos = int(np.argmax(missing | np.isnan(vals)))
        hint = " (last row: is the file truncated?)" if pos == len(vals) - 1 else ""
        raise src.error(f"missing value (empty or NaN){hint}", pos, column)
    inf = np.isinf(vals)
    if inf.any():
        raise src.error(f"infinite value '{raw.iloc[int(np.argmax(inf))]}'", int(np.argmax(inf)), column)
    if bounds is not None:
        lo, hi = bounds
        out = ~np.isnan(vals) & ((vals < lo) | (vals > hi))
        if out.any():
            pos = int(np.argmax(out))
            what = "negative value" if lo == 0 and vals[pos] < 0 else "value"
            rng = f"{lo:g}..{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
            raise src.error(f"{what} {vals[pos]:g} outside the plausible range {rng} {unit}".rstrip(), pos, column)
    if integer:
        frac = ~np.isnan(vals) & (vals != np.round(vals))
        if frac.any():
            raise src.error(f"expected a whole number, got {vals[int(np.argmax(frac))]:g}",
                            int(np.argmax(frac)), column)
        if not np.isnan(vals).any():
            return vals.astype("int64")
    return vals


def boolean(df: pd.DataFrame, column: str, src: Source) -> np.ndarray:
    """A true/false column (case-insensitive text or native bool) as a numpy bool array."""
    raw = df[column]
    if raw.dtype == bool:
        return raw.to_numpy()
    s = raw.astype("str").str.strip().str.lower()
    ok = s.isin(["true", "false", "1", "0"]).to_numpy()
    if not ok.all():
        pos = int(np.argmax(~ok))
        raise src.error(f"expected true/false, got '{raw.iloc[pos]}'", pos, column)
    return s.isin(["true", "1"]).to_numpy()


def text(df: pd.DataFrame, column: str, src: Source, *, allow_empty: bool = False) -> np.ndarray:
    """A text column as an object array of str; empty cells are errors unless ``allow_empty``."""
    raw = df[column]
    missing = raw.isna().to_numpy() | (raw.astype("str").str.strip() == "").to_numpy()
    if missing.any() and not allow_empty:
        raise src.error("missing value (empty)", int(np.argmax(missing)), column)
    return np.array([None if m else str(v) for v, m in zip(raw, missing, strict=True)], dtype=object)


def _fmt(v: object) -> str:
    if isinstance(v, np.datetime64):
        return str(pd.Timestamp(v, tz="UTC"))
    return str(v)

