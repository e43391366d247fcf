"""The hourly 2023 series of a grid signal, per zone, that forecast backtests run on (read through the
project's loaders).

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

Every series is hourly on 2023-01-01 00:00 … 2023-12-31 23:00 UTC. ``cross_signals`` gives the other signals
of the same zone on the same index (clean share, price, load), for models that use them as features.
"""

from __future__ import annotations

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
YEAR = pd.date_range("2023-01-01", "2023-12-31 23:00", freq="h", tz="UTC", name="time")


@dataclass
class Series:
    zone: str
    signal: str
    unit: str
    index: pd.DatetimeIndex
    values: np.ndarray  # [n]


def _on_year(s: pd.Series, what: str) -> np.ndarray:
    s = s[~s.index.duplicated()].reindex(YEAR)
    if s.isna().all():
        raise DataError(f"no 2023 data for {what}")
    return s.ffill().bfill().to_numpy(dtype=float)


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


def load_series(zone: str, signal: str) -> Series:
    """One signal of one zone on the 2023 hourly UTC index (unknown zone or signal: ``DataError``)."""
    check_signal(signal)
    zones = available(signal)
    if zone not in zones:
        raise DataError(f"no '{signal}' data for zone '{zone}' (known: {', '.join(zones)})", field="zone")
    if signal in ("carbon_intensity", "clean_share"):
        df = grid.load_carbon(zone)
        col = "carbon_g_per_kwh" if signal == "carbon_intensity" else "clean_frac"
        v = _on_year(df[col], f"{zone} {signal}")
    elif signal == "price":
        v = _on_year(grid.load_price(zone)["price_usd_per_mwh"], f"{zone} price")
    elif signal == "load":
        v = _on_year(grid.load_grid_load(ZONE_TO_LOAD_REGION.get(zone, zone))["load_mw"], f"{zone} load")
    else:
        arr = load_gaia(zone)["arrival_h"].to_numpy()
        v = np.bincount(np.clip(arr.astype(int), 0, YEAR.size - 1), minlength=YEAR.size)[: YEAR.size].astype(float)
    return Series(zone, signal, SIGNALS[signal], YEAR, v)


def cross_signals(zone: str, signal: str) -> tuple[list[str], np.ndarray | None]:
    """The other grid signals of ``zone`` (clean share, price, load, where they exist) as ``[E, n]``."""
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
            rows.append(load_series(zone, other).values)
    return names, (np.stack(rows) if rows else None)
