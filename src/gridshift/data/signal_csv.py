"""The signal CSV that ``gridshift signals fetch`` writes (``time``, one value column named by its signal, e.g.
``moer_g_per_kwh``), and its hourly view.

Reading follows the one set of rules of :mod:`gridshift.data.signal_file` (the reader of both scenario keys,
``signals_file`` and its alias ``carbon_file``): native resolution, times with a UTC offset, values within
bounds, gaps kept for the scenario's gap policy. :func:`read_signal_csv` gives the file's carbon intensity
averaged to UTC hours (hours without data left out), for tools and tests that want the hourly series.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gridshift.data.files import write_text_atomic
from gridshift.data.signal_file import read_signal_file


def read_signal_csv(path: str | Path, *, carbon: bool = True) -> pd.Series:
    """The file's series averaged to UTC hours (index ``time``, name = its value column). ``carbon``: the one
    value column must be a carbon intensity (``*_g_per_kwh``); otherwise the file is read as a signals file
    and its first signal is returned."""
    sf = read_signal_file(path, carbon_only=carbon, max_gap_s=None)
    name = "carbon_g_per_kwh" if carbon else next(iter(sf.values))
    s = pd.Series(sf.values[name], index=sf.times).dropna()
    hourly = s.groupby(s.index.floor("h")).mean()
    hourly.index.name, hourly.name = "time", sf.columns[name]
    hourly.attrs["source"] = str(path)
    return hourly


def write_signal_csv(path: str | Path, rows: pd.DataFrame, signal: str) -> int:
    """Write ``rows`` (``signal``, ``at``, ``value``: a provider batch) of ``signal`` as a signal CSV;
    returns the rows written."""
    sel = rows[rows["signal"] == signal].sort_values("at")
    out = pd.DataFrame({"time": pd.to_datetime(sel["at"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
                        signal: sel["value"].to_numpy()})
    write_text_atomic(path, out.to_csv(index=False, float_format="%.10g"))
    return len(out)
