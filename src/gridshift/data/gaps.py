"""Finding and (on request) filling gaps in regular time series."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gridshift.errors import DataError


@dataclass
class Gaps:
    """Missing slots in a regular series: ``(first missing slot, number of slots)`` per gap."""

    step: pd.Timedelta
    gaps: list[tuple[pd.Timestamp, int]] = field(default_factory=list)

    @property
    def missing_slots(self) -> int:
        return sum(n for _, n in self.gaps)


def find_gaps(idx: pd.DatetimeIndex, step: str | pd.Timedelta = "1h") -> Gaps:
    """Gaps in a sorted, aligned index with regular ``step``."""
    step = pd.Timedelta(step)
    out = Gaps(step)
    if len(idx) < 2:
        return out
    d = idx[1:] - idx[:-1]
    for i in np.flatnonzero(d > step):
        out.gaps.append((idx[i] + step, int(d[i] // step) - 1))
    return out


@dataclass
class FillReport:
    """What :func:`fill_gaps` filled: inserted slots per gap, and NaN cells filled per column."""

    step: pd.Timedelta
    gaps: list[tuple[pd.Timestamp, int]] = field(default_factory=list)
    cells: dict[str, int] = field(default_factory=dict)  # values filled per column, inserted rows included

    @property
    def filled_slots(self) -> int:
        return sum(n for _, n in self.gaps)

    @property
    def filled_times(self) -> list[pd.Timestamp]:
        return [start + k * self.step for start, n in self.gaps for k in range(n)]

    def summary(self) -> str:
        per_col = ", ".join(f"{c}: {n}" for c, n in self.cells.items()) or "none"
        return f"inserted {self.filled_slots} missing slot(s) in {len(self.gaps)} gap(s); values filled: {per_col}"


def fill_gaps(df: pd.DataFrame, max_gap_slots: int, *, step: str = "1h",
              flag_column: str | None = "estimated") -> tuple[pd.DataFrame, FillReport]:
    """Insert missing slots of a regular time-indexed frame and interpolate short runs of missing values.

    Loaders never call this; a scenario that explicitly allows gap filling does. Numeric columns are
    interpolated linearly in time (runs at the edges take the nearest value); integer columns are rounded
    back to integers. ``flag_column`` (if it exists, e.g. carbon's ``estimated``) is set True on inserted
    rows; other boolean/text columns are forward-filled. A run of more than ``max_gap_slots`` missing slots
    in any column raises DataError naming the column and where the run starts.
    """
    if not isinstance(df.index, pd.DatetimeIndex):
        raise DataError("fill_gaps needs a DatetimeIndex", file=df.attrs.get("source"))
    stepd = pd.Timedelta(step)
    idx = df.index
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise DataError("fill_gaps needs a strictly increasing index", file=df.attrs.get("source"))
    report = FillReport(stepd, find_gaps(idx, stepd).gaps)
    if len(idx) == 0:
        return df.copy(), report
    full = pd.date_range(idx[0], idx[-1], freq=stepd, name=idx.name).as_unit(idx.unit)
    if len(full) != len(idx) + report.filled_slots:
        raise DataError(f"index is not aligned to a regular {step} grid", file=df.attrs.get("source"))
    out = df.reindex(full)
    inserted = ~full.isin(idx)
    for col in df.columns:
        s = out[col]
        if pd.api.types.is_bool_dtype(df[col].dtype) or not pd.api.types.is_numeric_dtype(df[col].dtype):
            if col == flag_column:
                out[col] = s.where(~inserted, True).astype(df[col].dtype)
            else:
                out[col] = s.ffill().astype(df[col].dtype)
            continue
        miss = s.isna().to_numpy()
        if not miss.any():
            continue
        run_start, run_len = _longest_run(miss)
        if run_len > max_gap_slots:
            raise DataError(f"{run_len} consecutive missing slot(s) starting {full[run_start]} exceed "
                            f"max_gap_slots={max_gap_slots}", file=df.attrs.get("source"), field=str(col))
        filled = s.astype("float64").interpolate(method="time", limit_area="inside").ffill().bfill()
        if pd.api.types.is_integer_dtype(df[col].dtype):
            filled = filled.round().astype(df[col].dtype)
        out[col] = filled
        report.cells[str(col)] = int(miss.sum())
    out.attrs = dict(df.attrs)
    return out, report


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    best_start, best_len, start = 0, 0, None
    for i, m in enumerate(np.append(mask, False)):
        if m and start is None:
            start = i
        elif not m and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    return best_start, best_len
