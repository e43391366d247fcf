"""The hourly series of a grid signal, per zone, that forecast backtests run on (read through the project's
loaders): 2023 by default, or any consecutive years of 2021–2023 (``years=``) for the grid signals.

========================  ==========  =====================================================================
signal                    unit        source (``zone`` is)
========================  ==========  =====================================================================
``carbon_intensity``      g/kWh       Electricity Maps 2023, life-cycle basis (a grid zone)
``clean_share``           fraction    Electricity Maps 2023, low-carbon share 0–1 (a grid zone)
``price``                 USD/MWh     green-dcc 2023 (a grid zone with a price file)
``load``                  MW          EIA-930 cleaned demand, 2023 (an EIA region, or a US grid zone mapped to
                                      its region: US-CAL-CISO→CAL, US-MIDA-PJM→MIDA, US-NY-NYIS→NY,
                                      US-TEX-ERCO→TEX)
``request_rate``          jobs/h      arrivals per hour of a GAIA year-long trace (``pai-100k``,
                                      ``azure-100k``, ``mustang-100k``); trace hour 0 is placed at
                                      2023-01-01 00:00 UTC so it lines up with the grid series
========================  ==========  =====================================================================

Every series is hourly on 2023-01-01 00:00 … 2023-12-31 23:00 UTC unless ``years=`` asks for others (e.g.
``years=range(2021, 2024)``: 2021-01-01 00:00 … 2023-12-31 23:00, the years' files joined; ``load`` has
2020–2024, ``request_rate`` only 2023). ``cross_signals`` gives the other signals
of the same zone on the same index (clean share, price, load), for models that use them as features.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from gridshift.data import grid
from gridshift.data.traces import load_gaia
from gridshift.errors import DataError

SIGNALS = {"carbon_intensity": "g_per_kwh", "clean_share": "frac", "price": "usd_per_mwh", "load": "mw",
           "request_rate": "per_h"}
ZONE_TO_LOAD_REGION = {"US-CAL-CISO": "CAL", "US-MIDA-PJM": "MIDA", "US-NY-NYIS": "NY", "US-TEX-ERCO": "TEX"}
TRACES = ("pai-100k", "azure-100k", "mustang-100k")
DEFAULT_YEARS = (2023,)
YEAR = pd.date_range("2023-01-01", "2023-12-31 23:00", freq="h", tz="UTC", name="time")


def hours_of(years: Iterable[int]) -> pd.DatetimeIndex:
    """Every UTC hour of the given consecutive years."""
    ys = sorted(years)
    return pd.date_range(f"{ys[0]}-01-01", f"{ys[-1]}-12-31 23:00", freq="h", tz="UTC", name="time")


def _check_years(years: int | Iterable[int] | None) -> tuple[int, ...]:
    if years is None:
        return DEFAULT_YEARS
    ys = tuple(sorted({int(y) for y in ([years] if isinstance(years, int) else years)}))
    if not ys or any(b - a != 1 for a, b in zip(ys, ys[1:])):
        raise DataError(f"years must be one year or consecutive years, got {list(ys)}", field="years")
    return ys


@dataclass
class Series:
    zone: str
    signal: str
    unit: str
    index: pd.DatetimeIndex
    values: np.ndarray  # [n]


def _on_year(s: pd.Series, what: str, index: pd.DatetimeIndex = YEAR) -> np.ndarray:
    s = s[~s.index.duplicated()].reindex(index)
    if s.isna().all():
        raise DataError(f"no {_span(index)} data for {what}")
    return s.ffill().bfill().to_numpy(dtype=float)


def _span(index: pd.DatetimeIndex) -> str:
    a, b = index[0].year, index[-1].year
    return str(a) if a == b else f"{a}–{b}"


def available(signal: str) -> list[str]:
    """The zones (regions, traces) a signal exists for."""
    check_signal(signal)
    if signal in ("carbon_intensity", "clean_share"):
        return grid.available_zones()
    if signal == "price":
        return grid.available_price_zones()
    if signal == "load":
        return sorted(ZONE_TO_LOAD_REGION) + grid.available_load_regions()
    return list(TRACES)


def check_signal(signal: str) -> None:
    if signal not in SIGNALS:
        raise DataError(f"unknown signal '{signal}' (known: {', '.join(SIGNALS)})", field="signal")


def load_series(zone: str, signal: str, years: int | Iterable[int] | None = None) -> Series:
    """One signal of one zone on the hourly UTC index of ``years`` (default 2023; consecutive years, e.g.
    ``[2022, 2023]``, give one series across New Year). Unknown zone, signal or year: ``DataError``."""
    check_signal(signal)
    ys = _check_years(years)
    zones = available(signal)
    if zone not in zones:
        raise DataError(f"no '{signal}' data for zone '{zone}' (known: {', '.join(zones)})", field="zone")
    index = YEAR if ys == DEFAULT_YEARS else hours_of(ys)
    if signal in ("carbon_intensity", "clean_share"):
        df = grid.load_carbon(zone, years=list(ys))
        col = "carbon_g_per_kwh" if signal == "carbon_intensity" else "clean_frac"
        v = _on_year(df[col], f"{zone} {signal}", index)
    elif signal == "price":
        v = _on_year(grid.load_price(zone, years=list(ys))["price_usd_per_mwh"], f"{zone} price", index)
    elif signal == "load":
        v = _on_year(grid.load_grid_load(ZONE_TO_LOAD_REGION.get(zone, zone))["load_mw"], f"{zone} load", index)
    else:
        if ys != DEFAULT_YEARS:
            raise DataError(f"'request_rate' is one year of trace, placed on 2023; got years {list(ys)}",
                            field="years")
        arr = load_gaia(zone)["arrival_h"].to_numpy()
        v = np.bincount(np.clip(arr.astype(int), 0, YEAR.size - 1), minlength=YEAR.size)[: YEAR.size].astype(float)
    return Series(zone, signal, SIGNALS[signal], index, v)


def cross_signals(zone: str, signal: str, years: int | Iterable[int] | None = None
                  ) -> tuple[list[str], np.ndarray | None]:
    """The other grid signals of ``zone`` (clean share, price, load, where they exist) as ``[E, n]``, on the
    same ``years`` as :func:`load_series`."""
    if signal == "request_rate":
        return [], None
    names, rows = [], []
    for other in ("carbon_intensity", "clean_share", "price", "load"):
        if other == signal:
            continue
        ok = (other in ("carbon_intensity", "clean_share") and zone in grid.available_zones()) or \
             (other == "price" and zone in grid.available_price_zones()) or \
             (other == "load" and (zone in ZONE_TO_LOAD_REGION or zone in grid.available_load_regions()))
        if ok:
            names.append(other)
            rows.append(load_series(zone, other, years).values)
    return names, (np.stack(rows) if rows else None)
