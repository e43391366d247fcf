"""Grid time series: hourly carbon intensity, electricity price and demand, indexed by UTC hour start.

Carbon and price files exist per calendar year (UTC; 2021–2023, see :func:`carbon_years`); the loaders read
the default year (2023) unless ``years=`` or a ``start``/``end`` range asks for others, and join the years'
files into one hourly series (each file validated on its own, then checked to follow the previous year's
last hour with no gap and no overlap).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gridshift.data import registry
from gridshift.data import validate as v
from gridshift.data._cache import cached_parse, source_path
from gridshift.errors import DataError
from gridshift.model.time import as_utc_timestamp

Years = int | Iterable[int] | None
When = str | datetime | pd.Timestamp | None

_CARBON_COLS = {
    "direct": "Carbon Intensity gCO₂eq/kWh (direct)",
    "lca": "Carbon Intensity gCO₂eq/kWh (LCA)",
}
_CARBON_TIME = "Datetime (UTC)"
_PRICE_COL = "Price (USD/MWh)"
_LOAD_TIME = "date_time"
_LOAD_RAW = "raw demand (MW)"
_LOAD_CLEAN = "cleaned demand (MW)"


def _names(prefix: str) -> list[str]:
    return sorted(n.split("/", 1)[1] for n in registry.load_registry() if n.startswith(prefix + "/"))


def available_zones() -> list[str]:
    """Grid zones with an hourly carbon file (e.g. ``GB``, ``US-CAL-CISO``)."""
    return _names("carbon")


def available_price_zones() -> list[str]:
    """Grid zones with an hourly price file (no ``GB``)."""
    return _names("price")


def carbon_years(zone: str) -> list[int]:
    """The years with a carbon file for ``zone`` (ascending, e.g. ``[2021, 2022, 2023]``)."""
    return registry.dataset_years(f"carbon/{zone}")


def price_years(zone: str) -> list[int]:
    """The years with a price file for ``zone`` (ascending)."""
    return registry.dataset_years(f"price/{zone}")


def _span(years: list[int]) -> str:
    return "none" if not years else f"{years[0]}–{years[-1]}" if len(years) > 1 else str(years[0])


def _choose_years(name: str, years: Years, start: When, end: When) -> list[int] | None:
    """The years to read for dataset ``name`` (None: its default file), consecutive and all registered."""
    if years is None and start is None and end is None:
        return None
    have = registry.dataset_years(name)
    if years is not None:
        chosen = sorted({int(y) for y in ([years] if isinstance(years, int) else years)})
        if not chosen:
            raise DataError(f"no years asked for {name}", field="years")
    elif not have:
        return None  # one file: start/end only trim it
    else:
        lo = as_utc_timestamp(start).year if start is not None else have[0]
        hi = as_utc_timestamp(end).year if end is not None else have[-1]
        if lo > hi:
            raise DataError(f"start {start} is after end {end}", field="start")
        chosen = list(range(lo, hi + 1))
    missing = [y for y in chosen if y not in have]
    if missing:
        raise DataError(f"no {name} data for {', '.join(map(str, missing))} (years with data: {_span(have)})",
                        field="years")
    if any(b - a != 1 for a, b in zip(chosen, chosen[1:])):
        raise DataError(f"years must be consecutive to give one hourly series, got {chosen}", field="years")
    return chosen


def _paths(name: str, path: str | Path | None, years: Years, start: When, end: When) -> list[Path]:
    if path is not None:
        if years is not None:
            raise DataError("path= reads one file: do not combine it with years=", field="years")
        return [source_path(name, path)]
    chosen = _choose_years(name, years, start, end)
    if chosen is None:
        return [source_path(name, None)]
    return [registry.resolve(name, year=y) for y in chosen]


def _join(frames: list[pd.DataFrame], paths: list[Path], column: str, allow_gaps: bool) -> pd.DataFrame:
    """Consecutive years' frames as one: each must start one hour after the previous one ends."""
    for a, b, pa, pb in zip(frames, frames[1:], paths, paths[1:]):
        if not len(a) or not len(b):
            continue
        last, first = a.index[-1], b.index[0]
        if first <= last:
            raise DataError(f"first timestamp {first} is not after {last}, the last of {pa.name} "
                            f"(overlap at the year boundary)", file=pb, row=2, field=column)
        if first - last != pd.Timedelta("1h") and not allow_gaps:
            raise DataError(f"gap at the year boundary: {pa.name} ends at {last}, this file starts at {first}",
                            file=pb, row=2, field=column)
    out = pd.concat(frames) if len(frames) > 1 else frames[0]
    out.attrs = dict(frames[0].attrs)
    out.attrs["source"] = "; ".join(str(p) for p in paths)
    return out


def _trim(df: pd.DataFrame, start: When, end: When) -> pd.DataFrame:
    if start is None and end is None:
        return df
    lo = as_utc_timestamp(start) if start is not None else None
    hi = as_utc_timestamp(end) if end is not None else None
    out = df.loc[lo:hi]
    out.attrs = dict(df.attrs)
    return out


def available_load_regions() -> list[str]:
    """EIA regions with an hourly demand file (13 regions and ``CONUS``)."""
    return _names("load")


def _time_index(df: pd.DataFrame, src: v.Source, column: str, *, allow_gaps: bool) -> pd.DatetimeIndex:
    idx = v.parse_utc(df[column], src, column)
    v.check_aligned(idx, src, column)
    v.check_increasing(idx, src, column)
    if not allow_gaps:
        v.check_no_gaps(idx, src, column)
    return idx.rename("time")


def load_carbon(zone: str, *, basis: Literal["lca", "direct"] = "lca", path: str | Path | None = None,
                allow_gaps: bool = False, years: Years = None, start: When = None, end: When = None) -> pd.DataFrame:
    """Hourly carbon intensity and clean share of grid ``zone`` (Electricity Maps, 2021–2023, ODbL).

    Which hours: the 2023 file by default; ``years=`` (one year or consecutive years, e.g. ``[2022, 2023]``)
    joins those years' files; ``start``/``end`` (UTC; naive is UTC) read the years they span (a missing end
    runs to the last year with data, a missing start from the first) and keep ``start <= time <= end``.

    Returns a frame indexed by tz-aware UTC hour-start ``time`` with columns

    - ``carbon_g_per_kwh``: gCO2eq per kWh consumed, life-cycle (``basis="lca"``, default) or direct
      combustion only (``basis="direct"``); plausible range 0–2000;
    - ``clean_frac``: low-carbon (renewable + nuclear) share, 0–1 (file's "Low Carbon Percentage"/100);
    - ``renewable_frac``: renewable share, 0–1;
    - ``estimated``: True where Electricity Maps estimated the hour (all of JP-TK and IN-WE).

    Timestamps must be hour-start, strictly increasing and gap-free (``allow_gaps=True`` keeps gaps so
    that :func:`gridshift.data.validate.fill_gaps` can fill them when a scenario asks).
    ``frame.attrs`` holds ``zone_id`` (the file's Zone Id, e.g. ``DE`` for DE-LU), ``basis``, ``source``
    (the files read, ``; ``-separated).
    """
    if basis not in _CARBON_COLS:
        raise DataError(f"unknown carbon basis '{basis}'; use 'lca' or 'direct'", field="basis")
    paths = _paths(f"carbon/{zone}", path, years, start, end)
    df = _join([_carbon(p, basis, allow_gaps) for p in paths], paths, _CARBON_TIME, allow_gaps)
    return _trim(df, start, end)


@cached_parse
def _carbon(p: Path, basis: str, allow_gaps: bool) -> pd.DataFrame:
    cols = [_CARBON_TIME, *_CARBON_COLS.values(), "Low Carbon Percentage", "Renewable Percentage",
            "Zone Id", "Data Estimated"]
    df, src = v.read_csv(p, cols)
    idx = _time_index(df, src, _CARBON_TIME, allow_gaps=allow_gaps)
    # validate both bases so a corrupt cell is caught whichever basis is asked for
    carbon = {b: v.numeric(df, c, src, bounds=v.CARBON_G_PER_KWH, unit="gCO2eq/kWh")
              for b, c in _CARBON_COLS.items()}
    out = pd.DataFrame(
        {
            "carbon_g_per_kwh": carbon[basis],
            "clean_frac": v.numeric(df, "Low Carbon Percentage", src, bounds=v.PERCENT, unit="%") / 100.0,
            "renewable_frac": v.numeric(df, "Renewable Percentage", src, bounds=v.PERCENT, unit="%") / 100.0,
            "estimated": v.boolean(df, "Data Estimated", src),
        },
        index=idx,
    )
    zone_ids = v.text(df, "Zone Id", src)
    out.attrs.update(zone_id=str(zone_ids[0]) if len(zone_ids) else "", basis=basis, source=str(p))
    return out


def load_price(zone: str, path: str | Path | None = None, *, allow_gaps: bool = False, years: Years = None,
               start: When = None, end: When = None) -> pd.DataFrame:
    """Hourly electricity price of ``zone`` in USD/MWh (green-dcc standardised, 2021–2023; fixed FX rates).

    Which hours: as :func:`load_carbon` (2023 by default; ``years=`` or ``start``/``end``).

    Index: tz-aware UTC hour-start ``time``; column ``price_usd_per_mwh`` (negative prices are real and
    kept; plausible range −2000..20000). Timestamps are read from ``Datetime (UTC)``.

    Files whose hours start at a fixed sub-hour offset (IN-WE: every interval starts at hh:30 UTC because
    IST is UTC+5:30) are re-gridded to UTC hour starts by time-weighted averaging of the two overlapping
    intervals; the first hour read, which has only one overlapping interval, takes that interval's price (when
    years are joined, the first hour of a later year averages the previous year's last interval with its own).
    ``frame.attrs["source_offset_min"]`` records the original offset (0 for hour-aligned files).

    Data notes (kept as published): upstream filled hours outside each market's local 2023 by repeating
    values (the last 9–15 h of 2023-12-31 UTC are constant in AU-*, JP-TK, KR, SG, US-MIDA-PJM; the
    first hours of 2023-01-01 in US-NY-NYIS and US-TEX-ERCO); BR-SP sits at its floor price
    (~12.07 USD/MWh) for the first 6,451 hours; ZA is a time-of-use tariff with 12 distinct values.
    """
    paths = _paths(f"price/{zone}", path, years, start, end)
    raw = [_price_raw(p, allow_gaps) for p in paths]
    offsets = {df.attrs["source_offset_min"] for df in raw}
    if len(offsets) > 1:
        raise DataError(f"the files' hours start at different sub-hour offsets ({sorted(offsets)} min)",
                        file=paths[-1], field="Datetime (UTC)")
    return _trim(_regrid(_join(raw, paths, "Datetime (UTC)", allow_gaps)), start, end)


@cached_parse
def _price_raw(p: Path, allow_gaps: bool) -> pd.DataFrame:
    """One price file as published (timestamps possibly at a sub-hour offset), validated."""
    df, src = v.read_csv(p, ["Datetime (UTC)", _PRICE_COL])
    col = "Datetime (UTC)"
    idx = v.parse_utc(df[col], src, col)
    price = v.numeric(df, _PRICE_COL, src, bounds=v.PRICE_USD_PER_MWH, unit="USD/MWh")
    offset = pd.Series(idx - idx.floor("1h"))
    usual = offset.mode().iloc[0] if len(idx) else pd.Timedelta(0)
    bad = (offset != usual).to_numpy() | (usual.total_seconds() % 60 != 0)
    if bad.any():
        pos = int(np.argmax(bad))
        raise src.error(f"timestamp {idx[pos]} is not at the start of an hour (nor at the sub-hour offset "
                        f"{usual} shared by the other rows)", pos, col)
    off_min = int(usual.total_seconds() // 60)
    v.check_increasing(idx, src, col)
    if not allow_gaps:
        v.check_no_gaps(idx, src, col)
    out = pd.DataFrame({"price_usd_per_mwh": price}, index=idx.rename("time"))
    out.attrs.update(source=str(p), source_offset_min=off_min)
    return out


def _regrid(df: pd.DataFrame) -> pd.DataFrame:
    """Prices at a sub-hour offset onto UTC hour starts (time-weighted mean of the two overlapping intervals)."""
    off_min = df.attrs["source_offset_min"]
    idx, price = pd.DatetimeIndex(df.index), df["price_usd_per_mwh"].to_numpy(dtype=float)
    if off_min and len(idx):
        w = off_min / 60.0  # share of UTC hour h covered by the interval that started at h-1+offset
        prev = np.concatenate([[price[0]], price[:-1]])
        prev_is_adjacent = np.concatenate([[False], (idx[1:] - idx[:-1]) == pd.Timedelta("1h")])
        prev = np.where(prev_is_adjacent, prev, price)
        price = w * prev + (1.0 - w) * price
        idx = idx.floor("1h")
    out = pd.DataFrame({"price_usd_per_mwh": price}, index=idx.rename("time"))
    out.attrs = dict(df.attrs)
    return out


def load_grid_load(region: str, path: str | Path | None = None, *, allow_gaps: bool = False) -> pd.DataFrame:
    """Hourly electricity demand of an EIA region (Ruggles & Farnham cleaned EIA-930, 2020–2024, CC BY 4.0).

    Time convention: EIA-930 reports each hour's demand as the integrated mean over the hour *ending* at
    the timestamp, and the upstream README states "the reported demand value for each hour corresponds to
    the integrated mean value in megawatts over the previous hour". The cleaned files keep EIA's
    timestamps unchanged (their first row, 2020-01-01 00:00, equals the raw EIA value). So the
    files are hour-ending, and this loader shifts them back one hour to hour-start, matching the carbon
    and price files: the index runs 2019-12-31 23:00 .. 2024-12-31 22:00 UTC.

    Columns: ``load_mw`` (cleaned demand, MW, must be >= 0) and ``raw_load_mw`` (demand as reported to
    EIA, MW; kept as is: it contains reporting anomalies, including zeros and large negative values,
    which the cleaned column replaces).
    """
    p = source_path(f"load/{region}", path)
    return _load(p, allow_gaps)


@cached_parse
def _load(p: Path, allow_gaps: bool) -> pd.DataFrame:
    df, src = v.read_csv(p, [_LOAD_TIME, _LOAD_RAW, _LOAD_CLEAN])
    idx = _time_index(df, src, _LOAD_TIME, allow_gaps=allow_gaps)
    out = pd.DataFrame(
        {
            "load_mw": v.numeric(df, _LOAD_CLEAN, src, bounds=v.NON_NEGATIVE, unit="MW"),
            "raw_load_mw": v.numeric(df, _LOAD_RAW, src, unit="MW"),
        },
        index=(idx - pd.Timedelta("1h")).rename("time"),
    )
    out.attrs.update(source=str(p), time_convention="hour-start (shifted from EIA hour-ending)")
    return out
