"""Electricity Maps API v3: carbon intensity (life-cycle and direct; history and forecast) and the power
breakdown (renewable and fossil-free shares, total consumption).

Documentation: https://static.electricitymaps.com/api/docs/index.html (v3; the key goes in the
``auth-token`` header). Requests used:

- ``GET /carbon-intensity/past-range?zone&start&end&emissionFactorType`` → ``{"zone", "data": [{"zone",
  "carbonIntensity", "datetime", "updatedAt", "createdAt", "emissionFactorType", "isEstimated",
  "estimationMethod"}]}`` (hourly; at most 10 days per request, so longer ranges are asked in pieces);
- ``GET /carbon-intensity/forecast?zone&emissionFactorType`` → ``{"zone", "forecast": [{"carbonIntensity",
  "datetime"}], "updatedAt"}`` (``updatedAt`` is the issue time);
- ``GET /power-breakdown/past-range?zone&start&end`` → ``{"zone", "data": [{"datetime",
  "fossilFreePercentage", "renewablePercentage", "powerConsumptionTotal", …}]}``;
- ``GET /carbon-intensity/latest?zone&emissionFactorType`` and ``GET /power-breakdown/latest?zone`` → one
  such object (``latest``).

Units: gCO2eq/kWh as given; percentages → fractions; MW as given. Times are UTC ISO 8601.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from gridshift.data.providers.base import Batch, Provider, clean, frame
from gridshift.model.time import S_PER_H, as_utc_timestamp

MAX_RANGE = timedelta(days=10)
CARBON = {"carbon_lifecycle_g_per_kwh": "lifecycle", "carbon_direct_g_per_kwh": "direct"}
BREAKDOWN = {"renewable_frac": ("renewablePercentage", 0.01), "clean_frac": ("fossilFreePercentage", 0.01),
             "load_mw": ("powerConsumptionTotal", 1.0)}


def _iso(t: Any) -> str:
    return as_utc_timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def pieces(start: datetime, end: datetime, step: timedelta) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """``[start, end)`` cut into consecutive ranges of at most ``step``."""
    lo, hi = as_utc_timestamp(start), as_utc_timestamp(end)
    out = []
    while lo < hi:
        out.append((lo, min(lo + step, hi)))
        lo = out[-1][1]
    return out


class ElectricityMaps(Provider):
    name = "electricitymaps"
    default_base_url = "https://api.electricitymap.org/v3"
    key_env = "ELECTRICITYMAPS_API_KEY"
    doc_url = "https://static.electricitymaps.com/api/docs/index.html"
    signals = {"carbon_lifecycle_g_per_kwh": (True, True), "carbon_direct_g_per_kwh": (True, True),
               "renewable_frac": (True, False), "clean_frac": (True, False), "load_mw": (True, False)}

    def _headers(self) -> dict[str, str]:
        return {"auth-token": self.key() or ""}

    def _list(self, body: Any, key: str, zone: str, start: Any, end: Any) -> list[dict]:
        rows = body.get(key) if isinstance(body, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise self.shape_error(zone, start, end, f"no list '{key}'")
        return rows

    def actuals(self, zone: str, start: datetime, end: datetime, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for lo, hi in pieces(start, end, MAX_RANGE):
            params = {"zone": pz, "start": _iso(lo), "end": _iso(hi)}
            for sig in (s for s in want if s in CARBON):
                body = self.get_json("/carbon-intensity/past-range", {**params, "emissionFactorType": CARBON[sig]},
                                     zone, lo, hi, headers=self._headers())
                records += [{"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity")}
                            for r in self._list(body, "data", zone, lo, hi)]
            breakdown = [s for s in want if s in BREAKDOWN]
            if breakdown:
                body = self.get_json("/power-breakdown/past-range", params, zone, lo, hi, headers=self._headers())
                for r in self._list(body, "data", zone, lo, hi):
                    for sig in breakdown:
                        field, scale = BREAKDOWN[sig]
                        v = r.get(field)
                        records.append({"signal": sig, "at": r.get("datetime"),
                                        "value": v * scale if isinstance(v, int | float) else v})
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H)

    def forecasts(self, zone: str, signals: Iterable[str] | None = None, start: datetime | None = None,
                  end: datetime | None = None) -> Batch:
        want = self.chosen(signals, forecast=True)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for sig in want:
            body = self.get_json("/carbon-intensity/forecast", {"zone": pz, "emissionFactorType": CARBON[sig]},
                                 zone, start, end, headers=self._headers())
            issued = body.get("updatedAt") if isinstance(body, dict) else None
            records += [{"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity"),
                         "issue_time": issued} for r in self._list(body, "forecast", zone, start, end)]
        return clean(Batch(self.name, zone, frame(records)), start, end, step_s=S_PER_H, forecast=True)

    def latest(self, zone: str, signals: Iterable[str] | None = None) -> Batch:
        want = self.chosen(signals, forecast=False)
        pz = self.provider_zone(zone)
        records: list[dict] = []
        for sig in (s for s in want if s in CARBON):
            r = self.get_json("/carbon-intensity/latest", {"zone": pz, "emissionFactorType": CARBON[sig]},
                              zone, None, None, headers=self._headers())
            if not isinstance(r, dict):
                raise self.shape_error(zone, None, None, "not an object")
            records.append({"signal": sig, "at": r.get("datetime"), "value": r.get("carbonIntensity")})
        breakdown = [s for s in want if s in BREAKDOWN]
        if breakdown:
            r = self.get_json("/power-breakdown/latest", {"zone": pz}, zone, None, None, headers=self._headers())
            if not isinstance(r, dict):
                raise self.shape_error(zone, None, None, "not an object")
            for sig in breakdown:
                field, scale = BREAKDOWN[sig]
                v = r.get(field)
                records.append({"signal": sig, "at": r.get("datetime"),
                                "value": v * scale if isinstance(v, int | float) else v})
        return clean(Batch(self.name, zone, frame(records)), step_s=S_PER_H)
