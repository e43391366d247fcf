"""A signal series as a small CSV: ``time`` (ISO 8601, UTC; the start of the interval) and one value
column whose name carries the unit (``moer_g_per_kwh``, ``carbon_direct_g_per_kwh`` …).

``gridshift signals fetch`` writes such files from a live provider (:mod:`gridshift.data.providers`); a
scenario zone's ``carbon_file`` reads one (e.g. a marginal signal, ``carbon_basis: marginal``). Values finer
than an hour are averaged to the hour; errors name the file, line and column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from gridshift.data.files import write_text_atomic
from gridshift.errors import DataError

CARBON_MAX_G_PER_KWH = 5000.0


def read_signal_csv(path: str | Path, *, carbon: bool = True) -> pd.Series:
    """The file's hourly series (UTC hour starts, name = its value column). ``carbon`` checks the values
    are intensities (``*_g_per_kwh``, 0 … 5,000)."""
    p = Path(path)
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", file=p) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise DataError(f"not a readable CSV: {str(e).splitlines()[0]}", file=p) from None
    values = [c for c in df.columns if c != "time"]
    if "time" not in df.columns or len(values) != 1:
        raise DataError("must have a 'time' column and one value column (e.g. moer_g_per_kwh)", file=p, row=1)
    col = values[0]
    if carbon and not col.endswith("_g_per_kwh"):
        raise DataError(f"the value column must be a carbon intensity in g/kWh (*_g_per_kwh), not '{col}'",
                        file=p, row=1, field=col)
    t = pd.to_datetime(df["time"], errors="coerce", utc=True, format="ISO8601")
    v = pd.to_numeric(df[col], errors="coerce")
    for bad, field, what in ((t.isna().to_numpy(), "time", "is not an ISO 8601 time"),
                             (~np.isfinite(v.to_numpy(dtype=float)), col, "is not a finite number")):
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(f"'{df[field].iloc[i]}' {what}", file=p, row=i + 2, field=field)
    if carbon and ((v < 0) | (v > CARBON_MAX_G_PER_KWH)).any():
        i = int(np.argmax(((v < 0) | (v > CARBON_MAX_G_PER_KWH)).to_numpy()))
        raise DataError(f"{v.iloc[i]:g} is outside 0–{CARBON_MAX_G_PER_KWH:g} g/kWh", file=p, row=i + 2, field=col)
    if t.duplicated().any():
        i = int(np.argmax(t.duplicated().to_numpy()))
        raise DataError(f"time {df['time'].iloc[i]} appears twice", file=p, row=i + 2, field="time")
    s = pd.Series(v.to_numpy(dtype=float), index=pd.DatetimeIndex(t, name="time"), name=col).sort_index()
    if s.empty:
        raise DataError("no rows", file=p)
    hourly = s.groupby(s.index.floor("h")).mean()
    hourly.index.name, hourly.name = "time", col
    hourly.attrs["source"] = str(p)
    return hourly


def write_signal_csv(path: str | Path, rows: pd.DataFrame, signal: str) -> int:
    """Write ``rows`` (``signal``, ``at``, ``value``: a provider batch) of ``signal`` as a signal CSV;
    returns the rows written."""
    sel = rows[rows["signal"] == signal].sort_values("at")
    out = pd.DataFrame({"time": pd.to_datetime(sel["at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        signal: sel["value"].to_numpy()})
    write_text_atomic(path, out.to_csv(index=False, float_format="%.10g"))
    return len(out)
