"""Grid time series: hourly carbon intensity, electricity price and demand, indexed by UTC hour start."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from gridshift.data import registry
from gridshift.data import validate as v
from gridshift.data._cache import cached_parse, source_path
from gridshift.errors import DataError

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
                allow_gaps: bool = False) -> pd.DataFrame:
    """Hourly carbon intensity and clean share of grid ``zone`` (Electricity Maps, 2023, ODbL).

    Returns a frame indexed by tz-aware UTC hour-start ``time`` with columns

    - ``carbon_g_per_kwh``: gCO2eq per kWh consumed, life-cycle (``basis="lca"``, default) or direct
      combustion only (``basis="direct"``); plausible range 0–2000;
    - ``clean_frac``: low-carbon (renewable + nuclear) share, 0–1 (file's "Low Carbon Percentage"/100);
    - ``renewable_frac``: renewable share, 0–1;
    - ``estimated``: True where Electricity Maps estimated the hour (all of JP-TK and IN-WE).

    Timestamps must be hour-start, strictly increasing and gap-free (``allow_gaps=True`` keeps gaps so
    that :func:`gridshift.data.validate.fill_gaps` can fill them when a scenario asks).
    ``frame.attrs`` holds ``zone_id`` (the file's Zone Id, e.g. ``DE`` for DE-LU), ``basis``, ``source``.
    """
    if basis not in _CARBON_COLS:
        raise DataError(f"unknown carbon basis '{basis}'; use 'lca' or 'direct'", field="basis")
    p = source_path(f"carbon/{zone}", path)
    return _carbon(p, basis, allow_gaps)


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


def load_price(zone: str, path: str | Path | None = None, *, allow_gaps: bool = False) -> pd.DataFrame:
    """Hourly electricity price of ``zone`` in USD/MWh (green-dcc standardised, 2023; fixed FX rates).

    Index: tz-aware UTC hour-start ``time``; column ``price_usd_per_mwh`` (negative prices are real and
    kept; plausible range −2000..20000). Timestamps are read from ``Datetime (UTC)``.

    Files whose hours start at a fixed sub-hour offset (IN-WE: every interval starts at hh:30 UTC because
    IST is UTC+5:30) are re-gridded to UTC hour starts by time-weighted averaging of the two overlapping
    intervals; the first hour, which has only one overlapping interval, takes that interval's price.
    ``frame.attrs["source_offset_min"]`` records the original offset (0 for hour-aligned files).

    Data notes (kept as published): upstream filled hours outside each market's local 2023 by repeating
    values (the last 9–15 h of 2023-12-31 UTC are constant in AU-*, JP-TK, KR, SG, US-MIDA-PJM; the
    first hours of 2023-01-01 in US-NY-NYIS and US-TEX-ERCO); BR-SP sits at its floor price
    (~12.07 USD/MWh) for the first 6,451 hours; ZA is a time-of-use tariff with 12 distinct values.
    """
    p = source_path(f"price/{zone}", path)
    return _price(p, allow_gaps)


@cached_parse
def _price(p: Path, allow_gaps: bool) -> pd.DataFrame:
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
    if off_min:
        w = off_min / 60.0  # share of UTC hour h covered by the interval that started at h-1+offset
        prev = np.concatenate([[price[0]], price[:-1]])
        prev_is_adjacent = np.concatenate([[False], (idx[1:] - idx[:-1]) == pd.Timedelta("1h")])
        prev = np.where(prev_is_adjacent, prev, price)
        price = w * prev + (1.0 - w) * price
        idx = idx.floor("1h")
    out = pd.DataFrame({"price_usd_per_mwh": price}, index=idx.rename("time"))
    out.attrs.update(source=str(p), source_offset_min=off_min)
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
