"""The local calendar of a grid zone: hour of day, day of week and public holidays in the zone's local time,
as features for forecasts of signals people drive (load, price).

``ZONE_CALENDAR`` maps each grid zone and EIA load region of the project's data to its IANA time zone and the
country (and subdivision, where the zone lies in one) whose public holidays apply; holidays come from
``holidays.country_holidays`` (computed, no I/O). A zone that spans several subdivisions (PJM, the EIA
regions) gets the country's national holidays.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from gridshift.errors import PlanError
from gridshift.model.time import as_utc_timestamp

ZONE_CALENDAR: dict[str, tuple[str, str, str | None]] = {
    # grid zones: (IANA time zone, ISO 3166 country, subdivision or None)
    "AU-NSW": ("Australia/Sydney", "AU", "NSW"), "AU-VIC": ("Australia/Melbourne", "AU", "VIC"),
    "BR-SP": ("America/Sao_Paulo", "BR", "SP"), "CA-ON": ("America/Toronto", "CA", "ON"),
    "CL-SIC": ("America/Santiago", "CL", None), "DE-LU": ("Europe/Berlin", "DE", None),
    "FR": ("Europe/Paris", "FR", None), "GB": ("Europe/London", "GB", None), "IN-WE": ("Asia/Kolkata", "IN", None),
    "JP-TK": ("Asia/Tokyo", "JP", None), "KR": ("Asia/Seoul", "KR", None), "SG": ("Asia/Singapore", "SG", None),
    "US-CAL-CISO": ("America/Los_Angeles", "US", "CA"), "US-MIDA-PJM": ("America/New_York", "US", None),
    "US-NY-NYIS": ("America/New_York", "US", "NY"), "US-TEX-ERCO": ("America/Chicago", "US", "TX"),
    "ZA": ("Africa/Johannesburg", "ZA", None),
    # EIA-930 load regions (the lower 48 as a whole on Central time)
    "CAL": ("America/Los_Angeles", "US", "CA"), "CAR": ("America/New_York", "US", None),
    "CENT": ("America/Chicago", "US", None), "CONUS": ("America/Chicago", "US", None),
    "FLA": ("America/New_York", "US", "FL"), "MIDA": ("America/New_York", "US", None),
    "MIDW": ("America/Chicago", "US", None), "NE": ("America/New_York", "US", None),
    "NW": ("America/Los_Angeles", "US", None), "NY": ("America/New_York", "US", "NY"),
    "SE": ("America/New_York", "US", None), "SW": ("America/Phoenix", "US", None),
    "TEN": ("America/Chicago", "US", "TN"), "TEX": ("America/Chicago", "US", "TX"),
}


def zone_calendar(zone: str) -> tuple[str, str, str | None]:
    """``(time zone, country, subdivision)`` of ``zone``; PlanError if it is not in ``ZONE_CALENDAR``."""
    if zone not in ZONE_CALENDAR:
        raise PlanError(f"no local calendar for zone '{zone}' (known: {', '.join(ZONE_CALENDAR)})",
                        field="forecast.zone")
    return ZONE_CALENDAR[zone]


@functools.lru_cache(maxsize=64)
def local_calendar(zone: str, start_utc: str, first_abs: int, n: int, slots_per_h: int) -> np.ndarray:
    """``[3, n]`` for absolute slots ``first_abs … first_abs + n − 1`` (slot 0 starts at ``start_utc``):
    hour of day (fractional), day of week (0 = Monday) and public holiday (1.0 or 0.0), all in ``zone``'s
    local time. Read-only."""
    import holidays

    tz, country, subdiv = zone_calendar(zone)
    start = as_utc_timestamp(start_utc)
    slot = pd.Timedelta(hours=1 / slots_per_h)
    local = pd.date_range(start + first_abs * slot, periods=n, freq=slot).tz_convert(tz)
    days = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]")
    years = range(local.year.min(), local.year.max() + 1) if n else range(0)
    public = np.array(sorted(holidays.country_holidays(country, subdiv=subdiv, years=years)), dtype="datetime64[D]")
    out = np.stack([local.hour + local.minute / 60.0, local.dayofweek.to_numpy(dtype=float),
                    np.isin(days, public).astype(float)]).astype(float)
    out.setflags(write=False)
    return out
